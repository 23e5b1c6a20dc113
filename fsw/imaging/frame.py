"""A camera frame as it arrives from the bus, checked at the boundary.

The driver publishes ``frame.<camera>`` with header fields camera, counter,
shape, dtype, bit_depth, pattern, exposure_us, gain, temp_c, t_capture,
crc32c and one buffer of pixels. :func:`frame_from_message` turns that into a
:class:`Frame` or raises :class:`FrameRejected` naming what was wrong.

With the driver's opt-in ``frame_transport: shm`` the message carries no
buffer but a field ``shm: {name, slot, generation, length, offset}`` naming
where the pixels lie in a shared-memory ring (:mod:`framework.bus.frames_shm`):
they are copied out once, and the copy is kept only if the slot was not
rewritten meanwhile (else reason ``shm_overwritten``) and its CRC-32C holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.bus.frames_shm import FrameRingReader, ShmError
from framework.bus.message import Message
from framework.errors import PdhError
from framework.crc import pixels_crc32c

__all__ = ["Frame", "FrameRejected", "frame_from_message", "FRAME_FIELDS"]

FRAME_FIELDS: dict[str, type | tuple[type, ...]] = {
    "camera": str, "counter": int, "shape": list, "dtype": str, "bit_depth": int, "pattern": str,
    "exposure_us": int, "gain": (int, float), "temp_c": (int, float), "t_capture": (int, float), "crc32c": int,
}


class FrameRejected(PdhError):
    """A frame message fails validation; ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class Frame:
    camera: str
    counter: int
    pixels: np.ndarray
    bit_depth: int
    pattern: str
    exposure_us: int
    gain: float
    temp_c: float
    t_capture: float
    crc32c: int
    priority: str = ""  # "confirmation": taken to confirm a deployment; its products go first

    def meta(self) -> dict[str, Any]:
        m = {"exposure_us": self.exposure_us, "gain": self.gain, "temp_c": self.temp_c, "pattern": self.pattern}
        if self.priority:
            m["priority"] = self.priority
        return m


def frame_from_message(msg: Message, check_crc: bool = True) -> Frame:
    f = msg.header.fields
    for k, t in FRAME_FIELDS.items():
        if k not in f:
            raise FrameRejected("metadata", f"field '{k}' missing")
        if isinstance(f[k], bool) or not isinstance(f[k], t):
            raise FrameRejected("metadata", f"field '{k}' has type {type(f[k]).__name__}")
    shape = f["shape"]
    if len(shape) != 2 or not all(isinstance(s, int) and 0 < s <= 16384 for s in shape):
        raise FrameRejected("shape", f"shape {shape!r} is not [h, w] within 1..16384")
    if f["dtype"] not in ("uint8", "uint16"):
        raise FrameRejected("dtype", f"dtype {f['dtype']!r} is not uint8 or uint16")
    dt = np.dtype(f["dtype"])
    if not 1 <= f["bit_depth"] <= dt.itemsize * 8:
        raise FrameRejected("bit_depth", f"bit_depth {f['bit_depth']} does not fit {f['dtype']}")
    if "shm" in f and not msg.buffers:
        pixels = _pixels_from_shm(f["shm"], shape, dt)
        return _checked_frame(f, pixels, check_crc)
    if len(msg.buffers) != 1:
        raise FrameRejected("buffers", f"{len(msg.buffers)} buffers, expected 1")
    buf = memoryview(msg.buffers[0]).cast("B")
    expected = shape[0] * shape[1] * dt.itemsize
    if buf.nbytes != expected:
        raise FrameRejected("size", f"{buf.nbytes} bytes, expected {expected} for {shape} {f['dtype']}")
    pixels = np.frombuffer(buf, dtype=dt.newbyteorder("<")).reshape(shape)
    return _checked_frame(f, pixels, check_crc)


def _checked_frame(f: dict[str, Any], pixels: np.ndarray, check_crc: bool) -> Frame:
    if check_crc and pixels_crc32c(pixels) != f["crc32c"]:
        raise FrameRejected("crc", f"pixel CRC-32C does not match {f['crc32c']:#010x}")
    if f["bit_depth"] < pixels.dtype.itemsize * 8 and int(pixels.max()) >= (1 << f["bit_depth"]):
        raise FrameRejected("bit_depth", f"pixel values exceed {f['bit_depth']} bits")
    return Frame(camera=f["camera"], counter=f["counter"], pixels=pixels, bit_depth=f["bit_depth"],
                 pattern=f["pattern"], exposure_us=f["exposure_us"], gain=float(f["gain"]),
                 temp_c=float(f["temp_c"]), t_capture=float(f["t_capture"]), crc32c=f["crc32c"],
                 priority=f["priority"] if isinstance(f.get("priority"), str) else "")


_rings: dict[str, FrameRingReader] = {}  # attachments, one per ring name, kept for the process's life


def _ring(name: str, fresh: bool = False) -> FrameRingReader:
    ring = _rings.get(name)
    if ring is not None and (not fresh or ring.is_current()):
        return ring
    try:
        new = FrameRingReader(name)
    except ShmError as exc:
        raise FrameRejected("shm", str(exc)) from None
    if ring is not None:
        ring.close()
    _rings[name] = new
    return new


def _pixels_from_shm(handle: Any, shape: list[int], dt: np.dtype) -> np.ndarray:
    """One copy out of the ring slot, checked for a rewrite during it."""
    if not isinstance(handle, dict) or not isinstance(handle.get("name"), str):
        raise FrameRejected("shm", f"handle {handle!r} is not a mapping with a ring name")
    args = [handle.get(k) for k in ("slot", "generation", "length")] + [handle.get("offset", 0)]
    expected = shape[0] * shape[1] * dt.itemsize
    if args[2] != expected:
        raise FrameRejected("size", f"{args[2]!r} bytes in shared memory, expected {expected} for {shape} {dt}")
    pixels = np.empty(shape, dtype=dt.newbyteorder("<"))
    dst = memoryview(pixels.reshape(-1).view(np.uint8))
    ring = _ring(handle["name"])
    try:
        ok = ring.copy_into(dst, *args)
        if not ok and not ring.is_current():  # the writer restarted: attach to its new ring and retry once
            ok = _ring(handle["name"], fresh=True).copy_into(dst, *args)
    except ShmError as exc:
        raise FrameRejected("shm", str(exc)) from None
    if not ok:
        raise FrameRejected("shm_overwritten", f"ring '{handle['name']}' slot {args[0]} was rewritten "
                                               f"(generation {args[1]} gone)")
    return pixels
