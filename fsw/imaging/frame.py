"""A camera frame as it arrives from the bus, checked at the boundary.

The driver publishes ``frame.<camera>`` with header fields camera, counter,
shape, dtype, bit_depth, pattern, exposure_us, gain, temp_c, t_capture,
crc32c and one buffer of pixels. :func:`frame_from_message` turns that into a
:class:`Frame` or raises :class:`FrameRejected` naming what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fsw.bus.message import Message
from fsw.errors import PdhError
from fsw.imaging.product import pixels_crc32c

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
    if len(msg.buffers) != 1:
        raise FrameRejected("buffers", f"{len(msg.buffers)} buffers, expected 1")
    buf = memoryview(msg.buffers[0]).cast("B")
    expected = shape[0] * shape[1] * dt.itemsize
    if buf.nbytes != expected:
        raise FrameRejected("size", f"{buf.nbytes} bytes, expected {expected} for {shape} {f['dtype']}")
    pixels = np.frombuffer(buf, dtype=dt.newbyteorder("<")).reshape(shape)
    if check_crc and pixels_crc32c(pixels) != f["crc32c"]:
        raise FrameRejected("crc", f"pixel CRC-32C does not match {f['crc32c']:#010x}")
    if f["bit_depth"] < dt.itemsize * 8 and int(pixels.max()) >= (1 << f["bit_depth"]):
        raise FrameRejected("bit_depth", f"pixel values exceed {f['bit_depth']} bits")
    return Frame(camera=f["camera"], counter=f["counter"], pixels=pixels, bit_depth=f["bit_depth"],
                 pattern=f["pattern"], exposure_us=f["exposure_us"], gain=float(f["gain"]),
                 temp_c=float(f["temp_c"]), t_capture=float(f["t_capture"]), crc32c=f["crc32c"],
                 priority=f["priority"] if isinstance(f.get("priority"), str) else "")
