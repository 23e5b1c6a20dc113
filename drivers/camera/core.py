"""The camera driver's logic, with no I/O: bytes from the link go in; frames, events and replies come out.

:class:`DriverCore` decodes the link, validates every frame (CRC, counter
gaps, temperature, pixel defects) and counts faults, through callbacks, so it
is tested against byte transcripts. :class:`RingDecoder` is the stream decoder
that collects each large FRAME message in a slot of a shared-memory ring
(``frame_transport: shm``). The process adapter is :mod:`drivers.camera.process`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import crc32c
import numpy as np

from drivers.camera import protocol as p
from drivers.camera.decoder import StreamDecoder
from framework.bus.frames_shm import FrameRing
from framework.counters import saturating_add

__all__ = ["DriverCore", "RingDecoder", "frame_fields", "HUNT_RECV_BYTES", "PublishFrame", "Emit"]

PublishFrame = Callable[[dict[str, Any], memoryview], None]
Emit = Callable[[str, dict[str, Any]], None]
HUNT_RECV_BYTES = 64 << 10  # reads between messages: small, so little of the next message is copied
_BAD_FRAME_ERRORS = (p.CrcError, p.TruncatedError, p.HeaderCrcError, p.LengthError)


def frame_fields(f: p.Frame, crc: int) -> dict[str, Any]:
    """The bus header fields of a ``frame`` message."""
    return {"camera": f.camera, "counter": f.counter, "shape": [f.height, f.width], "dtype": f.dtype,
            "bit_depth": f.bit_depth, "pattern": f.pattern, "exposure_us": f.exposure_us, "gain": f.gain,
            "temp_c": f.temp_c, "t_capture": f.t_capture, "crc32c": crc}


class RingDecoder(StreamDecoder):
    """A stream decoder that collects each large FRAME message in a slot of a shared-memory ring.

    So the link receives a frame's bytes straight into the slot (through
    :meth:`recv_target`) and its pixels, a view of the message, are already
    where readers find them. Only messages longer than ``min_bytes`` take a
    slot: with the driver's small hunting reads, at most one such message is
    then between its completion and its publication, so the ring never wraps
    under it. Everything else behaves as :class:`~drivers.camera.decoder.StreamDecoder`.
    """

    def __init__(self, ring: FrameRing, min_bytes: int = HUNT_RECV_BYTES,
                 max_payload_bytes: int = p.MAX_PAYLOAD_BYTES) -> None:
        super().__init__(max_payload_bytes)
        self.ring = ring
        self.min_bytes = min_bytes

    def _start_message(self, mtype: int, length: int) -> None:
        super()._start_message(mtype, length)
        total = p.HEADER_LEN + length + p.TRAILER_LEN
        if mtype == p.MsgType.FRAME and self.min_bytes < total <= self.ring.slot_bytes:
            _, area = self.ring.begin()
            self._msg = area[:total]


class DriverCore:
    """Decodes the link, validates frames, counts faults; no sockets, no clock."""

    def __init__(self, camera: str, publish_frame: PublishFrame, emit: Emit, max_temp_c: float = 60.0,
                 defect_check: bool = True,
                 decoder_factory: Callable[[], StreamDecoder] = StreamDecoder, limited: Emit | None = None) -> None:
        self.camera = camera
        self.max_temp_c = max_temp_c
        self.defect_check = defect_check
        self.hot = False
        self.defects = (0, 0)  # dead, stuck in the last frame
        self._publish_frame = publish_frame
        self._emit = emit
        self._limited = limited or emit  # for what a flood of bad bytes raises: garbage, protocol errors
        self._decoder_factory = decoder_factory
        self.decoder = decoder_factory()
        self._seq = 0
        self.awaiting: set[int] = set()
        self.replies: dict[int, p.Message] = {}
        self.temp_c = float("nan")
        self.last_counter: int | None = None
        self.reset_counters()

    def reset_counters(self) -> None:
        self.frames_good = 0
        self.frames_bad = 0
        self.counter_gaps = 0
        self.frames_missing = 0
        self.protocol_errors = 0
        self.camera_naks = 0
        self.bytes_skipped = 0
        self.frames_truncated = 0
        self.crc_errors = 0
        self.last_error = ""

    def command(self, msg: p.Message, await_reply: bool = True) -> tuple[int, bytes]:
        """Assign the next sequence number (1..2**32-1) and encode; the reply is kept if awaited."""
        self._seq = self._seq % 0xFFFFFFFF + 1
        if await_reply:
            self.awaiting.add(self._seq)
        return self._seq, p.encode(dataclasses.replace(msg, seq=self._seq))

    def take_reply(self, seq: int) -> p.Message | None:
        reply = self.replies.pop(seq, None)
        if reply is not None:
            self.awaiting.discard(seq)
        return reply

    def on_bytes(self, data: bytes | bytearray | memoryview) -> None:
        for item in self.decoder.feed(data):
            self._on_item(item)

    @property
    def busy(self) -> bool:
        """The decoder has received bytes still to look at: :meth:`pump` before reading more from the link."""
        return self.decoder.busy

    def pump(self) -> None:
        """Let the decoder go on with the bytes it has (a bounded amount of work)."""
        for item in self.decoder.pump():
            self._on_item(item)

    def recv_target(self) -> memoryview | None:
        """Where the link may receive the next bytes directly (the decoder's message buffer), if anywhere."""
        return self.decoder.recv_target()

    def on_received(self, n: int) -> None:
        """``n`` bytes were received into :meth:`recv_target`."""
        for item in self.decoder.received(n):
            self._on_item(item)

    def on_silence(self) -> None:
        """Bytes stopped arriving mid-message: give up on it (truncated) and resynchronise."""
        for item in self.decoder.abandon():
            self._on_item(item)

    def on_link_closed(self, drain: bool = True) -> None:
        """The link ended: whatever was half received is truncated (``drain=False``, stopping: dropped
        unread); start afresh."""
        for item in self.decoder.finish() if drain else ():
            self._on_item(item)
        self.decoder = self._decoder_factory()
        self._seq = 0  # sequence numbers restart with every connection
        self.awaiting.clear()
        self.replies.clear()

    def _on_item(self, item: p.Message | p.WireError) -> None:
        if isinstance(item, p.Frame):
            self._on_frame(item)
        elif isinstance(item, (p.Ack, p.Nak, p.StatusReply)):
            self._on_reply(item)
        elif isinstance(item, p.WireError):
            self._on_error(item)
        else:
            self._fault("protocol_error", f"camera sent a command: {type(item).__name__}", wire_seq=item.seq,
                        limited=True)

    def _on_reply(self, reply: p.Ack | p.Nak | p.StatusReply) -> None:
        if isinstance(reply, p.StatusReply):
            self._check_temp(reply.temp_c)
        if isinstance(reply, p.Nak):
            self.camera_naks += 1
            self.last_error = f"camera NAK {reply.code}: {reply.reason}"
            self._emit("camera_nak", {"ref_seq": reply.ref_seq, "code": reply.code, "reason": reply.reason})
        if reply.ref_seq in self.awaiting:
            self.replies[reply.ref_seq] = reply

    def _on_error(self, err: p.WireError) -> None:
        if isinstance(err, p.SyncLostError):
            self.bytes_skipped = saturating_add(self.bytes_skipped, err.skipped_bytes)
            self._fault("link_garbage", str(err), skipped_bytes=err.skipped_bytes, count=False, limited=True)
            return
        if isinstance(err, _BAD_FRAME_ERRORS) or (isinstance(err, p.MalformedPayload)
                                                  and err.msg_type == p.MsgType.FRAME):
            self.frames_bad += 1
            truncated = isinstance(err, p.TruncatedError)
            self.frames_truncated += truncated
            self.crc_errors += not truncated
            name = "frame_truncated" if truncated else "frame_crc_error"
            if isinstance(err, p.MalformedPayload):
                name = "protocol_error"
            self._fault(name, f"{type(err).__name__}: {err}", wire_seq=err.seq, count=False, limited=True)
            return
        self._fault("protocol_error", f"{type(err).__name__}: {err}", wire_seq=err.seq, limited=True)

    def _fault(self, name: str, detail: str, count: bool = True, limited: bool = False, **details: Any) -> None:
        if count:
            self.protocol_errors = saturating_add(self.protocol_errors, 1)
        self.last_error = detail
        (self._limited if limited else self._emit)(name, {"detail": detail, **details})

    def _on_frame(self, f: p.Frame) -> None:
        if f.camera != self.camera:
            self.frames_bad += 1
            self._fault("protocol_error", f"frame from camera '{f.camera}', expected '{self.camera}'",
                        counter=f.counter, count=False, limited=True)
            return
        self._check_counter(f.counter)
        self.frames_good += 1
        self._check_temp(f.temp_c)
        pixels = memoryview(f.pixels)
        if self.defect_check:
            self._check_defects(f, pixels)
        # The decoder computed the pixel CRC in the pass that checked the message CRC; else compute it here.
        crc = f.pixels_crc32c if f.pixels_crc32c is not None else crc32c.crc32c(pixels)
        self._publish_frame(frame_fields(f, crc), pixels)

    def _check_temp(self, temp_c: float) -> None:
        self.temp_c = temp_c
        if not self.hot and temp_c > self.max_temp_c:
            self.hot = True
            self._emit("over_temperature", {"temp_c": round(temp_c, 2), "limit_c": self.max_temp_c})
        elif self.hot and temp_c < self.max_temp_c - 2.0:
            self.hot = False
            self._emit("temperature_nominal", {"temp_c": round(temp_c, 2), "limit_c": self.max_temp_c})

    def _check_defects(self, f: p.Frame, pixels: memoryview) -> None:
        """Dead pixels read 0 DN (below the black level, which no live pixel does); stuck ones full scale."""
        arr = np.frombuffer(pixels, dtype=f.dtype)
        dead = int(np.count_nonzero(arr == 0))
        stuck = int(np.count_nonzero(arr == (1 << f.bit_depth) - 1))
        last_dead, last_stuck = self.defects
        self.defects = (dead, stuck)
        # Full-scale pixels also come from bright scenes: only a jump far beyond frame-to-frame noise counts.
        if self.frames_good > 1 and (dead > last_dead or stuck > last_stuck + max(4, 4 * int(last_stuck ** 0.5))):
            self._emit("pixel_defects", {"dead_px": dead, "full_scale_px": stuck, "counter": f.counter,
                                         "previous_dead_px": last_dead, "previous_full_scale_px": last_stuck})

    def _check_counter(self, counter: int) -> None:
        last = self.last_counter
        self.last_counter = counter
        if last is None:
            return
        if counter <= last:
            self._emit("frame_counter_reset", {"counter": counter, "previous": last})
        elif counter > last + 1:
            missing = counter - last - 1
            self.counter_gaps = saturating_add(self.counter_gaps, 1)
            self.frames_missing = saturating_add(self.frames_missing, missing)  # counters come from the camera
            self._emit("frame_counter_gap", {"counter": counter, "previous": last, "missing": missing})
