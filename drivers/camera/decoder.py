"""The camera stream decoder: a byte stream in, messages and typed errors out, resynchronising.

Pure: no sockets, no clock. The envelope (header checks, errors) is
:mod:`drivers.links.envelope`; the camera's payload codecs are
:mod:`drivers.camera.protocol`, which this module imports (never the other
way round). ``docs/wire-protocol.md`` explains the resynchronisation rules.
"""

from __future__ import annotations

import crc32c
import numpy as np

from drivers.camera.messages import Message, MsgType
from drivers.camera.protocol import FRAME_CAMERA_LEN_AT, FRAME_META_LEN, MAX_PAYLOAD_BYTES, decode_payload
from drivers.links.envelope import (
    HEADER_LEN, OVERHEAD, SYNC, TRAILER_LEN, U32, CrcError, SyncLostError, TruncatedError, WireError,
    header_fields, header_sound, parse_header,
)
from framework.crc import crc32c_combine

__all__ = ["StreamDecoder", "CALL_CHECKS", "CALL_BYTES", "FINISH_CHECKS"]

_GARBAGE_REPORT_BYTES = 1024 * 1024  # report a long run of garbage at least this often
CALL_CHECKS = 8192
"""Header checks one call does at most before it returns with :attr:`StreamDecoder.busy` set."""
CALL_BYTES = 16 * 1024 * 1024
"""Bytes one call moves at most (re-hunted, copied into a message) before it returns busy (a
message already begun is always completed, so a call moves at most this plus one message)."""
FINISH_CHECKS = 4 * CALL_CHECKS
"""Header checks :meth:`StreamDecoder.finish` does at most; what it has not looked at by then is skipped."""
_CLASSIFY_CHECKS = 64  # sync markers looked at inside a failed message to call it truncated rather than corrupt
_FRAME_META_END = HEADER_LEN + FRAME_META_LEN  # a FRAME's pixels start here plus the camera id length
_CAMERA_LEN_AT = HEADER_LEN + FRAME_CAMERA_LEN_AT  # the camera id length byte of a FRAME


class StreamDecoder:
    """Incremental decoder: ``feed(bytes)`` returns complete messages and typed errors, in order.

    Never raises on any input. While hunting it scans for the sync marker
    with ``bytearray.find``; a header whose CRC fails is a false sync, so the
    hunt resumes one byte later. Once a header is sound its whole message is
    collected in a buffer of its own (a decoded Frame's pixels are a view of
    it, never copied). The caller may receive straight into that buffer
    (:meth:`recv_target`, then :meth:`received`) instead of calling
    :meth:`feed`, so a frame's bytes are written once, by the kernel. The
    message CRC is computed as the bytes arrive, while they are still in
    cache; for a FRAME the pixels get a CRC of their own, combined into the
    message CRC, so the pixel CRC the driver publishes costs no second pass. If the message CRC then fails, the hunt resumes one
    byte after that message's sync marker, so messages hidden inside a
    truncated one are still recovered, and the failure is then reported as
    :class:`TruncatedError` (the message was cut short by the next one) rather
    than :class:`CrcError`. :meth:`finish` ends the stream; :meth:`abandon`
    gives up on a message that stopped arriving (a timeout) and goes on.

    Bounded work, whatever the bytes. Re-hunting inside a failed message looks
    at its bytes again; sound headers announcing long messages every few bytes
    would make that work grow with the square of the stream. So re-hunting
    spends an allowance earned by the bytes received (one byte re-hunted per
    byte received, up to twice the largest message): a failed message that
    cannot be paid for is dropped whole, and the hunt goes on after it. And each
    call returns after at most :data:`CALL_CHECKS` header checks or
    :data:`CALL_BYTES` bytes moved, with :attr:`busy` set while bytes wait to be
    looked at: the caller then calls :meth:`pump` (instead of reading more)
    between its other work, so its loop stays responsive.
    """

    def __init__(self, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self._max_payload = max_payload_bytes
        self._allowance_max = 2 * (max_payload_bytes + OVERHEAD)
        self._allowance = self._allowance_max  # bytes that may still be re-hunted
        self._checks = 0  # header checks in this call
        self._moved = 0  # bytes re-hunted or copied out of the hunting area in this call
        self._check_limit = CALL_CHECKS
        self._backlog = False  # the last call stopped at its limit with bytes not yet looked at
        self._buf = bytearray()  # hunting area
        self._msg: memoryview | None = None  # the message being collected (uninitialised past _msg_fill)
        self._msg_fill = 0
        self._msg_end = 0  # where its CRC-covered bytes end (the trailer follows)
        self._split: int | None = None  # where a FRAME's pixels start; -1: no pixel part; None: not known yet
        self._crc_head = 0  # CRC-32C of the message bytes before _split (all of them without a split)
        self._crc_pixels = 0  # CRC-32C of the pixel bytes received so far
        self._skipped = 0  # garbage bytes not yet reported
        self._quiet = 0  # leading bytes of _buf that belong to a message already reported as bad
        self.bytes_skipped = 0
        self.rehunts_dropped = 0  # failed messages dropped whole: the re-hunt allowance was spent

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf) + self._msg_fill

    @property
    def busy(self) -> bool:
        """True while received bytes wait to be looked at: call :meth:`pump` before feeding more."""
        return self._backlog and self._msg is None

    def pump(self) -> list[Message | WireError]:
        """Go on looking at the bytes a call left (see :attr:`busy`); return what that completes."""
        out: list[Message | WireError] = []
        self._begin_call()
        self._hunt(out)
        return out

    def _begin_call(self, received: int = 0, check_limit: int = CALL_CHECKS) -> None:
        """A new call: its work limits start afresh, and the bytes it brings earn re-hunt allowance."""
        self._checks = self._moved = 0
        self._check_limit = check_limit
        self._allowance = min(self._allowance_max, self._allowance + received)

    def _at_limit(self) -> bool:
        return self._checks >= self._check_limit or self._moved >= CALL_BYTES

    def _rehunt(self, data: memoryview) -> bool:
        """Put ``data`` (a failed message after its sync marker) back in front of the hunting area, if the
        allowance pays for it; else drop it (its bytes were reported with the message). True if put back."""
        n = len(data)
        if n > self._allowance:
            self.rehunts_dropped += 1
            return False
        self._allowance -= n
        self._moved += n
        self._buf[:0] = data
        self._quiet += n
        return True

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message | WireError]:
        """Add bytes; return every message and error they complete (see :attr:`busy`)."""
        out: list[Message | WireError] = []
        view = memoryview(data).cast("B")
        self._begin_call(len(view))
        if self._msg is not None:
            view = self._fill(view, out)
        if len(view):
            self._buf += view
        self._hunt(out)
        return out

    def recv_target(self) -> memoryview | None:
        """Where the next bytes of the stream may be received directly: the rest of the message being
        collected, or None while hunting (then use :meth:`feed`). Fill a prefix, then call :meth:`received`."""
        if self._msg is None:
            return None
        return self._msg[self._msg_fill:]

    def received(self, n: int) -> list[Message | WireError]:
        """``n`` bytes were written at the start of :meth:`recv_target`'s view; return what they complete."""
        out: list[Message | WireError] = []
        msg = self._msg
        if msg is None or not 0 <= n <= len(msg) - self._msg_fill:
            raise ValueError(f"received({n}) does not fit the receive target")
        self._begin_call(n)
        self._advance(self._msg_fill + n)
        if self._msg_fill == len(msg):
            self._complete(msg, out)
            self._hunt(out)
        return out

    @property
    def in_message(self) -> bool:
        """True while a message's header has been accepted and its bytes are still arriving."""
        return self._msg is not None

    def abandon(self) -> list[Message | WireError]:
        """Stop waiting for the message being collected: report it truncated and hunt in what it holds."""
        out: list[Message | WireError] = []
        self._begin_call()
        if self._msg is not None:
            self._truncate_partial(out)
            self._hunt(out)
        return out

    def _truncate_partial(self, out: list[Message | WireError]) -> None:
        assert self._msg is not None
        partial = self._msg[:self._msg_fill]
        self._msg, self._msg_fill = None, 0
        out.append(TruncatedError(f"stream stopped {len(partial)} bytes into a message",
                                  seq=U32.unpack_from(partial, 8)[0], msg_type=partial[5]))
        self._rehunt(partial[1:])

    def finish(self) -> list[Message | WireError]:
        """The stream has ended: report a partial message as truncated and drain what is left.

        At most :data:`FINISH_CHECKS` header checks: bytes not looked at by then are skipped (counted)."""
        out: list[Message | WireError] = []
        self._begin_call(check_limit=FINISH_CHECKS)
        self._hunt(out)  # what earlier calls left
        while not self._backlog and (self._msg is not None or self._buf):
            if self._msg is not None:
                self._truncate_partial(out)
                self._hunt(out)
                continue
            start = self._buf.find(SYNC)
            if start < 0:
                self._skip(len(self._buf))
                break
            self._skip(start)  # the hunt stopped here: a sync with less than a header after it
            out.append(TruncatedError(f"stream ended {len(self._buf)} bytes into a header"))
            del self._buf[:1]
            self._quiet = len(self._buf)
            self._hunt(out)
        if self._backlog:  # out of work for this stream: the rest is skipped unread
            self._skip(len(self._buf))
            self._backlog = False
        self._report_skipped(out)
        return out

    def _skip(self, n: int) -> None:
        if n:
            del self._buf[:n]
            quiet = min(n, self._quiet)
            self._quiet -= quiet
            self._skipped += n - quiet
            self.bytes_skipped += n - quiet

    def _report_skipped(self, out: list[Message | WireError]) -> None:
        if self._skipped:
            out.append(SyncLostError(self._skipped))
            self._skipped = 0

    def _hunt(self, out: list[Message | WireError]) -> None:
        """Find and check headers in the hunting area; start collecting a message on a sound one.
        Stops at the call's work limits with :attr:`_backlog` set."""
        self._backlog = False
        while self._msg is None:
            if self._at_limit():
                self._backlog = bool(self._buf)
                return
            start = self._buf.find(SYNC)
            if start < 0:
                keep = len(SYNC) - 1  # the tail may be the start of a sync marker
                self._skip(max(0, len(self._buf) - keep))
                if self._skipped >= _GARBAGE_REPORT_BYTES:
                    self._report_skipped(out)
                return
            self._skip(start)
            if len(self._buf) < HEADER_LEN:
                return
            self._report_skipped(out)
            self._checks += 1
            error = self._check_header()
            if error is not None:
                out.append(error)
                self._quiet = max(self._quiet, 1)  # the bad header is reported, not counted as garbage too
                self._skip(1)
                continue
            mtype, _, length = header_fields(self._buf)
            self._start_message(mtype, length)
            chunk, self._buf = self._buf, bytearray()
            self._moved += min(len(chunk), len(self._msg))
            quiet_after = max(0, self._quiet - len(self._msg))
            self._quiet = 0
            self._buf += self._fill(memoryview(chunk), out)
            self._quiet += quiet_after

    def _check_header(self) -> WireError | None:
        head = memoryview(self._buf)[:HEADER_LEN]
        try:
            parse_header(head, self._max_payload)
        except WireError as exc:
            return exc
        finally:
            head.release()
        return None

    def _start_message(self, mtype: int, length: int) -> None:
        """A sound header announced a message: give it a buffer (not zeroed: only filled bytes are read)."""
        self._msg = memoryview(np.empty(HEADER_LEN + length + TRAILER_LEN, dtype=np.uint8)).cast("B")
        self._msg_fill = 0
        self._msg_end = HEADER_LEN + length
        self._split = None if mtype == MsgType.FRAME and self._msg_end >= _FRAME_META_END else -1
        self._crc_head = self._crc_pixels = 0

    def _advance(self, fill: int) -> None:
        """Bytes up to ``fill`` of the message have arrived: carry the running CRCs over them."""
        msg, old = self._msg, self._msg_fill
        assert msg is not None
        self._msg_fill = fill
        if self._split is None and fill > _CAMERA_LEN_AT:
            split = _FRAME_META_END + msg[_CAMERA_LEN_AT]
            self._split = split if split <= self._msg_end else -1
        hi = min(fill, self._msg_end)
        if old >= hi:
            return
        split = self._split if self._split is not None and self._split >= 0 else hi
        if old < split:
            self._crc_head = crc32c.crc32c(msg[old:min(hi, split)], self._crc_head)
        if hi > split:
            self._crc_pixels = crc32c.crc32c(msg[max(old, split):hi], self._crc_pixels)

    def _message_crc(self) -> int:
        if self._split is None or self._split < 0:
            return self._crc_head
        return crc32c_combine(self._crc_head, self._crc_pixels, self._msg_end - self._split)

    def _fill(self, view: memoryview, out: list[Message | WireError]) -> memoryview:
        """Copy bytes into the message being collected; finish it when full. Return the bytes left over."""
        msg = self._msg
        assert msg is not None
        n = min(len(msg) - self._msg_fill, len(view))
        msg[self._msg_fill:self._msg_fill + n] = view[:n]
        self._advance(self._msg_fill + n)
        if self._msg_fill < len(msg):
            return view[n:]
        self._complete(msg, out)
        return view[n:]

    def _complete(self, mv: memoryview, out: list[Message | WireError]) -> None:
        """The message is all here: check its CRC, decode it or resume the hunt inside it."""
        self._msg, self._msg_fill = None, 0
        mtype, seq, length = header_fields(mv)
        end = HEADER_LEN + length
        if self._message_crc() != U32.unpack_from(mv, end)[0]:
            # Resume the hunt one byte after this sync: a truncated message may hide sound ones.
            cut = self._next_sound_header(len(mv) - 1) if self._rehunt(mv[1:]) else None
            if cut is not None:
                out.append(TruncatedError(f"message cut short after {cut} of {len(mv)} bytes: the next message "
                                          f"starts inside it (type {mtype:#04x})", seq=seq, msg_type=mtype))
            else:
                out.append(CrcError(f"message CRC-32C fails (type {mtype:#04x}, {length} payload bytes)",
                                    seq=seq, msg_type=mtype))
            return
        pixels_crc = self._crc_pixels if self._split is not None and self._split >= 0 else None
        try:
            out.append(decode_payload(mtype, seq, mv[HEADER_LEN:end], pixels_crc32c=pixels_crc))
        except WireError as exc:
            out.append(exc)

    def _next_sound_header(self, n: int) -> int | None:
        """Where in a failed message put back as the first ``n`` bytes of the hunting area (it lacks its
        first byte) the first sync marker with a sound header starts, if any among the first few."""
        pos = self._buf.find(SYNC, 0, n)
        for _ in range(_CLASSIFY_CHECKS):
            if not 0 <= pos <= n - HEADER_LEN:
                return None
            if header_sound(self._buf, pos):
                return pos + 1
            pos = self._buf.find(SYNC, pos + 1, n)
        return None


