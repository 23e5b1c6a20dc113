"""Camera wire protocol: pure encode and decode, no sockets.

Every message is one envelope (all integers little-endian)::

    offset size field
    0      4    sync marker 1A CF FC 1D
    4      1    version (1)
    5      1    message type
    6      2    flags (0; reserved)
    8      4    sequence number (per sender, +1 per message, wraps at 2**32)
    12     4    payload length in bytes (at most MAX_PAYLOAD_BYTES)
    16     4    header CRC-32C over bytes 0..15
    20     n    payload
    20+n   4    CRC-32C over bytes 0..20+n-1 (header, header CRC and payload)

The header CRC lets a receiver reject a false sync (or a corrupted length)
at once instead of waiting for a payload that never comes. ``docs/wire-protocol.md``
describes each payload. :class:`StreamDecoder` turns a byte stream into
messages and typed errors and resynchronises after garbage.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Union

import crc32c

from fsw.errors import ProtocolError

__all__ = [
    "SYNC", "VERSION", "HEADER_LEN", "TRAILER_LEN", "OVERHEAD", "MAX_PAYLOAD_BYTES", "PATTERNS",
    "MsgType", "Code",
    "Ping", "StatusRequest", "SetExposure", "SetGain", "Capture", "StreamStart", "StreamStop",
    "Ack", "Nak", "StatusReply", "Frame", "Message", "COMMAND_TYPES",
    "WireError", "EncodeError", "SyncLostError", "HeaderCrcError", "CrcError", "TruncatedError",
    "UnsupportedVersion", "LengthError", "UnknownMessageType", "MalformedPayload",
    "encode", "decode_payload", "StreamDecoder", "bytes_per_pixel",
]

SYNC = b"\x1a\xcf\xfc\x1d"
VERSION = 1
_HEAD = struct.Struct("<4sBBHII")
_U32 = struct.Struct("<I")
HEADER_LEN = _HEAD.size + 4  # 20: fixed header plus its CRC
TRAILER_LEN = 4
OVERHEAD = HEADER_LEN + TRAILER_LEN
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
PATTERNS = ("mono", "RGGB", "BGGR", "GRBG", "GBRG")
_GARBAGE_REPORT_BYTES = 1024 * 1024  # report a long run of garbage at least this often


class MsgType:
    """Message type codes: commands below 0x80, replies and data from 0x80."""

    PING = 0x01
    STATUS = 0x02
    SET_EXPOSURE = 0x03
    SET_GAIN = 0x04
    CAPTURE = 0x05
    STREAM_START = 0x06
    STREAM_STOP = 0x07
    ACK = 0x80
    NAK = 0x81
    STATUS_REPLY = 0x82
    FRAME = 0x90


class Code:
    """ACK/NAK status codes."""

    OK = 0
    UNKNOWN_TYPE = 1
    MALFORMED = 2
    OUT_OF_RANGE = 3
    CRC = 4
    NOT_ALLOWED = 5
    INTERNAL = 6


# --- errors -----------------------------------------------------------------------------------

class WireError(ProtocolError):
    """A camera wire-protocol fault. ``seq``/``msg_type`` are set when the header was sound."""

    def __init__(self, detail: str, *, seq: int | None = None, msg_type: int | None = None) -> None:
        super().__init__(detail)
        self.seq = seq
        self.msg_type = msg_type


class EncodeError(WireError):
    """A message cannot be encoded: a field is out of its wire range."""


class SyncLostError(WireError):
    """Bytes that are not a message were skipped while hunting for the sync marker."""

    def __init__(self, skipped_bytes: int) -> None:
        super().__init__(f"skipped {skipped_bytes} bytes hunting for sync")
        self.skipped_bytes = skipped_bytes


class HeaderCrcError(WireError):
    """A sync marker was followed by a header whose CRC fails: a false sync or a corrupt header."""


class CrcError(WireError):
    """A message's CRC-32C fails; it is dropped."""


class TruncatedError(WireError):
    """The stream ended inside a message."""


class UnsupportedVersion(WireError):
    """The header names a protocol version this decoder does not speak."""


class LengthError(WireError):
    """The payload length exceeds MAX_PAYLOAD_BYTES."""


class UnknownMessageType(WireError):
    """A sound message of a type this decoder does not know."""


class MalformedPayload(WireError):
    """A sound message whose payload does not fit its type."""


# --- messages ---------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Ping:
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class StatusRequest:
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class SetExposure:
    exposure_us: int
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class SetGain:
    gain: float
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class Capture:
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class StreamStart:
    rate_hz: float
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class StreamStop:
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class Ack:
    """The command with sequence ``ref_seq`` was done; ``reason`` may add a note."""

    ref_seq: int
    code: int = Code.OK
    reason: str = ""
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class Nak:
    """The command with sequence ``ref_seq`` was refused, with a code and why."""

    ref_seq: int
    code: int
    reason: str = ""
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class StatusReply:
    ref_seq: int
    temp_c: float
    exposure_us: int
    gain: float
    frames_sent: int
    streaming: bool
    rate_hz: float = 0.0
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class Frame:
    """One image: metadata plus raw little-endian pixels (row-major, height x width)."""

    camera: str
    counter: int
    width: int
    height: int
    bit_depth: int
    pattern: str
    exposure_us: int
    gain: float
    temp_c: float
    t_capture: float
    pixels: bytes | bytearray | memoryview
    seq: int = 0

    @property
    def dtype(self) -> str:
        return "uint8" if self.bit_depth <= 8 else "uint16"


Message = Union[Ping, StatusRequest, SetExposure, SetGain, Capture, StreamStart, StreamStop,
                Ack, Nak, StatusReply, Frame]
COMMAND_TYPES = (Ping, StatusRequest, SetExposure, SetGain, Capture, StreamStart, StreamStop)


def bytes_per_pixel(bit_depth: int) -> int:
    return 1 if bit_depth <= 8 else 2


# --- payload codecs ---------------------------------------------------------------------------

_EMPTY_TYPES: dict[type, int] = {
    Ping: MsgType.PING, StatusRequest: MsgType.STATUS, Capture: MsgType.CAPTURE, StreamStop: MsgType.STREAM_STOP,
}
_U32_ST = struct.Struct("<I")
_F64_ST = struct.Struct("<d")
_REPLY_ST = struct.Struct("<IH")  # ref_seq, code; then reason text
_STATUS_ST = struct.Struct("<IdIdQBd")  # ref_seq, temp_c, exposure_us, gain, frames_sent, streaming, rate_hz
_FRAME_ST = struct.Struct("<QIIBBBxIddd")  # counter, w, h, bit_depth, pattern, camera len, pad, exp, gain, temp, t
_MAX_CAMERA_BYTES = 255


def _check_uint(name: str, value: int, bits: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise EncodeError(f"{name}={value!r} is not a {bits}-bit unsigned integer")


def _check_float(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EncodeError(f"{name}={value!r} is not a finite number")


def _encode_payload(msg: Message) -> tuple[int, list[bytes | memoryview]]:
    """The message type and the payload parts of one message."""
    t = type(msg)
    if t in _EMPTY_TYPES:
        return _EMPTY_TYPES[t], []
    if isinstance(msg, SetExposure):
        _check_uint("exposure_us", msg.exposure_us, 32)
        return MsgType.SET_EXPOSURE, [_U32_ST.pack(msg.exposure_us)]
    if isinstance(msg, SetGain):
        _check_float("gain", msg.gain)
        return MsgType.SET_GAIN, [_F64_ST.pack(msg.gain)]
    if isinstance(msg, StreamStart):
        _check_float("rate_hz", msg.rate_hz)
        return MsgType.STREAM_START, [_F64_ST.pack(msg.rate_hz)]
    if isinstance(msg, (Ack, Nak)):
        _check_uint("ref_seq", msg.ref_seq, 32)
        _check_uint("code", msg.code, 16)
        mtype = MsgType.ACK if isinstance(msg, Ack) else MsgType.NAK
        return mtype, [_REPLY_ST.pack(msg.ref_seq, msg.code), msg.reason.encode("utf-8")]
    if isinstance(msg, StatusReply):
        return MsgType.STATUS_REPLY, [_encode_status(msg)]
    if isinstance(msg, Frame):
        return MsgType.FRAME, _encode_frame(msg)
    raise EncodeError(f"not a camera protocol message: {t.__name__}")


def _encode_status(msg: StatusReply) -> bytes:
    _check_uint("ref_seq", msg.ref_seq, 32)
    _check_uint("exposure_us", msg.exposure_us, 32)
    _check_uint("frames_sent", msg.frames_sent, 64)
    for name in ("temp_c", "gain", "rate_hz"):
        _check_float(name, getattr(msg, name))
    return _STATUS_ST.pack(msg.ref_seq, msg.temp_c, msg.exposure_us, msg.gain, msg.frames_sent,
                           1 if msg.streaming else 0, msg.rate_hz)


def _encode_frame(msg: Frame) -> list[bytes | memoryview]:
    _check_uint("counter", msg.counter, 64)
    _check_uint("width", msg.width, 32)
    _check_uint("height", msg.height, 32)
    _check_uint("exposure_us", msg.exposure_us, 32)
    if msg.bit_depth not in range(1, 17):
        raise EncodeError(f"bit_depth={msg.bit_depth!r} is not 1..16")
    if msg.pattern not in PATTERNS:
        raise EncodeError(f"pattern={msg.pattern!r} is not one of {PATTERNS}")
    for name in ("gain", "temp_c", "t_capture"):
        _check_float(name, getattr(msg, name))
    cam = msg.camera.encode("utf-8")
    if len(cam) > _MAX_CAMERA_BYTES:
        raise EncodeError(f"camera id is {len(cam)} bytes, more than {_MAX_CAMERA_BYTES}")
    pixels = memoryview(msg.pixels).cast("B")
    expected = msg.width * msg.height * bytes_per_pixel(msg.bit_depth)
    if pixels.nbytes != expected:
        raise EncodeError(f"pixels are {pixels.nbytes} bytes; {msg.width}x{msg.height} at "
                          f"{msg.bit_depth} bits needs {expected}")
    meta = _FRAME_ST.pack(msg.counter, msg.width, msg.height, msg.bit_depth, PATTERNS.index(msg.pattern),
                          len(cam), msg.exposure_us, msg.gain, msg.temp_c, msg.t_capture)
    return [meta, cam, pixels]


def encode(msg: Message) -> bytes:
    """One message as its complete envelope bytes."""
    _check_uint("seq", msg.seq, 32)
    mtype, parts = _encode_payload(msg)
    length = sum(memoryview(p).nbytes for p in parts)
    if length > MAX_PAYLOAD_BYTES:
        raise EncodeError(f"payload is {length} bytes, more than {MAX_PAYLOAD_BYTES}")
    head = _HEAD.pack(SYNC, VERSION, mtype, 0, msg.seq, length)
    head += _U32.pack(crc32c.crc32c(head))
    out = bytearray(len(head) + length + TRAILER_LEN)
    view = memoryview(out)
    view[:HEADER_LEN] = head
    pos = HEADER_LEN
    for p in parts:
        n = memoryview(p).nbytes
        view[pos:pos + n] = memoryview(p).cast("B")
        pos += n
    view[pos:] = _U32.pack(crc32c.crc32c(view[:pos]))
    return bytes(out)


def _finite(name: str, value: float, mtype: int, seq: int) -> float:
    if not math.isfinite(value):
        raise MalformedPayload(f"{name} is not finite", seq=seq, msg_type=mtype)
    return value


def _need(data: memoryview, n: int, mtype: int, seq: int, exact: bool = True) -> None:
    if (len(data) != n) if exact else (len(data) < n):
        raise MalformedPayload(f"payload of type {mtype:#04x} is {len(data)} bytes, expected "
                               f"{'' if exact else 'at least '}{n}", seq=seq, msg_type=mtype)


def _text(data: memoryview, mtype: int, seq: int) -> str:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPayload("text is not UTF-8", seq=seq, msg_type=mtype) from None


def _decode_frame(data: memoryview, seq: int) -> Frame:
    mt = MsgType.FRAME
    _need(data, _FRAME_ST.size, mt, seq, exact=False)
    counter, w, h, bits, pat, cam_len, exp_us, gain, temp_c, t_capture = _FRAME_ST.unpack_from(data)
    if not 1 <= bits <= 16:
        raise MalformedPayload(f"bit_depth {bits} is not 1..16", seq=seq, msg_type=mt)
    if pat >= len(PATTERNS):
        raise MalformedPayload(f"pattern code {pat} is unknown", seq=seq, msg_type=mt)
    for name, value in (("gain", gain), ("temp_c", temp_c), ("t_capture", t_capture)):
        _finite(name, value, mt, seq)
    start = _FRAME_ST.size + cam_len
    _need(data, start + w * h * bytes_per_pixel(bits), mt, seq)
    camera = _text(data[_FRAME_ST.size:start], mt, seq)
    return Frame(camera=camera, counter=counter, width=w, height=h, bit_depth=bits, pattern=PATTERNS[pat],
                 exposure_us=exp_us, gain=gain, temp_c=temp_c, t_capture=t_capture, pixels=data[start:], seq=seq)


def decode_payload(mtype: int, seq: int, data: memoryview) -> Message:
    """Decode one payload of a known envelope; raise UnknownMessageType or MalformedPayload."""
    for cls, code in _EMPTY_TYPES.items():
        if code == mtype:
            _need(data, 0, mtype, seq)
            return cls(seq=seq)
    if mtype == MsgType.SET_EXPOSURE:
        _need(data, 4, mtype, seq)
        return SetExposure(exposure_us=_U32_ST.unpack_from(data)[0], seq=seq)
    if mtype in (MsgType.SET_GAIN, MsgType.STREAM_START):
        _need(data, 8, mtype, seq)
        value = _F64_ST.unpack_from(data)[0]
        if mtype == MsgType.SET_GAIN:
            return SetGain(gain=_finite("gain", value, mtype, seq), seq=seq)
        return StreamStart(rate_hz=_finite("rate_hz", value, mtype, seq), seq=seq)
    if mtype in (MsgType.ACK, MsgType.NAK):
        _need(data, _REPLY_ST.size, mtype, seq, exact=False)
        ref_seq, code = _REPLY_ST.unpack_from(data)
        cls = Ack if mtype == MsgType.ACK else Nak
        return cls(ref_seq=ref_seq, code=code, reason=_text(data[_REPLY_ST.size:], mtype, seq), seq=seq)
    if mtype == MsgType.STATUS_REPLY:
        _need(data, _STATUS_ST.size, mtype, seq)
        ref_seq, temp_c, exp_us, gain, sent, streaming, rate_hz = _STATUS_ST.unpack_from(data)
        if streaming > 1:
            raise MalformedPayload(f"streaming flag {streaming} is not 0 or 1", seq=seq, msg_type=mtype)
        return StatusReply(ref_seq=ref_seq, temp_c=_finite("temp_c", temp_c, mtype, seq), exposure_us=exp_us,
                           gain=_finite("gain", gain, mtype, seq), frames_sent=sent, streaming=bool(streaming),
                           rate_hz=_finite("rate_hz", rate_hz, mtype, seq), seq=seq)
    if mtype == MsgType.FRAME:
        return _decode_frame(data, seq)
    raise UnknownMessageType(f"unknown message type {mtype:#04x}", seq=seq, msg_type=mtype)


# --- stream decoder ---------------------------------------------------------------------------

class StreamDecoder:
    """Incremental decoder: ``feed(bytes)`` returns complete messages and typed errors, in order.

    Never raises on any input. While hunting it scans for the sync marker
    with ``bytearray.find``; a header whose CRC fails is a false sync, so the
    hunt resumes one byte later. Once a header is sound its whole message is
    collected in a buffer of its own (a decoded Frame's pixels are a view of
    it, never copied). If the message CRC then fails, the hunt resumes one
    byte after that message's sync marker, so messages hidden inside a
    truncated one are still recovered. :meth:`finish` ends the stream.
    """

    def __init__(self, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self._max_payload = max_payload_bytes
        self._buf = bytearray()  # hunting area
        self._msg: bytearray | None = None  # the message being collected
        self._msg_fill = 0
        self._skipped = 0  # garbage bytes not yet reported
        self._quiet = 0  # leading bytes of _buf that belong to a message already reported as bad
        self.bytes_skipped = 0

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf) + self._msg_fill

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message | WireError]:
        """Add bytes; return every message and error they complete."""
        out: list[Message | WireError] = []
        view = memoryview(data).cast("B")
        if self._msg is not None:
            view = self._fill(view, out)
        if len(view):
            self._buf += view
        self._hunt(out)
        return out

    def finish(self) -> list[Message | WireError]:
        """The stream has ended: report a partial message as truncated and drain what is left."""
        out: list[Message | WireError] = []
        while self._msg is not None or self._buf:
            if self._msg is not None:
                partial = self._msg[:self._msg_fill]
                self._msg, self._msg_fill = None, 0
                out.append(TruncatedError(f"stream ended {len(partial)} bytes into a message",
                                          seq=_U32.unpack_from(partial, 8)[0], msg_type=partial[5]))
                self._buf[:0] = partial[1:]
                self._quiet += len(partial) - 1
                self._hunt(out)
                continue
            start = self._buf.find(SYNC)
            if start < 0:
                self._skip(len(self._buf))
                break
            self._skip(start)
            out.append(TruncatedError(f"stream ended {len(self._buf)} bytes into a header"))
            del self._buf[:1]
            self._quiet = len(self._buf)
            self._hunt(out)
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
        """Find and check headers in the hunting area; start collecting a message on a sound one."""
        while self._msg is None:
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
            error = self._check_header()
            if error is not None:
                out.append(error)
                self._quiet = max(self._quiet, 1)  # the bad header is reported, not counted as garbage too
                self._skip(1)
                continue
            length = _U32.unpack_from(self._buf, 12)[0]
            self._msg = bytearray(HEADER_LEN + length + TRAILER_LEN)
            self._msg_fill = 0
            chunk, self._buf = self._buf, bytearray()
            quiet_after = max(0, self._quiet - len(self._msg))
            self._quiet = 0
            self._buf += self._fill(memoryview(chunk), out)
            self._quiet += quiet_after

    def _check_header(self) -> WireError | None:
        head = memoryview(self._buf)[:HEADER_LEN]
        try:
            if crc32c.crc32c(head[:_HEAD.size]) != _U32.unpack_from(head, _HEAD.size)[0]:
                return HeaderCrcError("header CRC-32C fails")
            _, version, mtype, _, seq, length = _HEAD.unpack_from(head)
        finally:
            head.release()
        if version != VERSION:
            return UnsupportedVersion(f"version {version} is not {VERSION}", seq=seq, msg_type=mtype)
        if length > self._max_payload:
            return LengthError(f"payload length {length} exceeds {self._max_payload}", seq=seq, msg_type=mtype)
        return None

    def _fill(self, view: memoryview, out: list[Message | WireError]) -> memoryview:
        """Copy bytes into the message being collected; finish it when full. Return the bytes left over."""
        msg = self._msg
        assert msg is not None
        n = min(len(msg) - self._msg_fill, len(view))
        msg[self._msg_fill:self._msg_fill + n] = view[:n]
        self._msg_fill += n
        if self._msg_fill < len(msg):
            return view[n:]
        self._msg, self._msg_fill = None, 0
        self._complete(msg, out)
        return view[n:]

    def _complete(self, msg: bytearray, out: list[Message | WireError]) -> None:
        mv = memoryview(msg)
        _, _, mtype, _, seq, length = _HEAD.unpack_from(mv)
        end = HEADER_LEN + length
        if crc32c.crc32c(mv[:end]) != _U32.unpack_from(mv, end)[0]:
            out.append(CrcError(f"message CRC-32C fails (type {mtype:#04x}, {length} payload bytes)",
                                seq=seq, msg_type=mtype))
            # Resume the hunt one byte after this sync: a truncated message may hide sound ones.
            self._buf[:0] = mv[1:]
            self._quiet += len(mv) - 1
            return
        try:
            out.append(decode_payload(mtype, seq, mv[HEADER_LEN:end]))
        except WireError as exc:
            out.append(exc)
