"""A camera frame as it arrives from the bus, checked at the boundary.

The driver publishes ``frame.<camera>`` with header fields camera, counter,
shape, dtype, bit_depth, pattern, exposure_us, gain, temp_c, t_capture,
crc32c and one buffer of pixels. :func:`frame_from_message` turns that into a
:class:`Frame` or raises :class:`FrameRejected` naming what was wrong.

With the driver's opt-in ``frame_transport: shm`` the message carries no
buffer but a field ``shm: {name, slot, generation, length, offset}`` naming
where the pixels lie in a shared-memory ring (:mod:`framework.bus.frames_shm`).
By default they are copied out once, and the copy is kept only if the slot was
not rewritten meanwhile (else reason ``shm_overwritten``) and its CRC-32C holds.

``in_place=True`` (the imaging core on the driver's host) copies nothing: the
frame's pixels are a read-only view of the slot, checked (CRC-32C, bit depth,
generation) where they lie, and the frame carries a :class:`ShmLease` that says
whether the slot still holds them. Whoever works on such a frame checks
:meth:`Frame.intact` *after* the work (seqlock style: the writer makes the
generation odd before it touches a slot), and a frame found rewritten is handled
as an overwrite at the boundary is: :class:`PixelsOverwritten`, reason
``shm_overwritten``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Collection

import numpy as np

from framework.bus.frames_shm import FrameRingReader, ShmError
from framework.bus.message import Message
from framework.errors import PdhError, ProductError
from framework.crc import pixels_crc32c

__all__ = ["Frame", "FrameRejected", "PixelsOverwritten", "ShmLease", "frame_from_message", "frame_identity", "FRAME_FIELDS", "PATTERNS",
           "CAMERA_ID", "MAX_COUNTER"]

FRAME_FIELDS: dict[str, type | tuple[type, ...]] = {
    "camera": str, "counter": int, "shape": list, "dtype": str, "bit_depth": int, "pattern": str,
    "exposure_us": int, "gain": (int, float), "temp_c": (int, float), "t_capture": (int, float), "crc32c": int,
}
PATTERNS = ("mono", "RGGB", "BGGR", "GRBG", "GBRG")
CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{0,63}$")
"""A camera id names topics, product ids and ground files: letters, digits and underscores only (no dot,
dash or slash, so ``../../x`` or ``a-0001-full`` can never be one)."""
MAX_COUNTER = 2**64 - 1  # the camera wire format's counter is a u64
_MAX_EXPOSURE_US = 2**32 - 1  # a u32 on the wire
_MAX_PRIORITY_CHARS = 32
_MAX_RINGS = 16  # ring attachments kept; a message naming ring after ring cannot grow the table


class FrameRejected(PdhError):
    """A frame message fails validation; ``reason`` is a short stable code.

    ``camera`` and ``counter`` are set once the message named a camera this core serves and a counter
    in range, so the frame it stood for can be named; otherwise they are None."""

    def __init__(self, reason: str, detail: str, camera: str | None = None, counter: int | None = None) -> None:
        self.reason = reason
        self.camera = camera
        self.counter = counter
        super().__init__(f"{reason}: {detail}")


class PixelsOverwritten(ProductError):
    """A frame used in place was rewritten in its ring slot while (or before) it was worked on: what was
    made from it is void. ``reason`` is ``shm_overwritten``, as for a frame found rewritten at the boundary."""

    reason = "shm_overwritten"

    def __init__(self, camera: str, counter: int, lease: "ShmLease") -> None:
        self.camera = camera
        self.counter = counter
        super().__init__(f"shm_overwritten: frame {camera}/{counter}: {lease.describe()} was rewritten "
                         f"while its pixels were in use")


@dataclass(frozen=True)
class ShmLease:
    """Where an in-place frame's pixels lie, and whether the slot still holds them (one header read)."""

    ring: FrameRingReader
    slot: int
    generation: int
    length: int
    offset: int = 0

    def valid(self) -> bool:
        return self.ring.valid(self.slot, self.generation, self.length, self.offset)

    def describe(self) -> str:
        return f"ring '{self.ring.name}' slot {self.slot} (generation {self.generation})"


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
    lease: ShmLease | None = None  # pixels used in place in a ring slot: valid only while this holds

    def intact(self) -> bool:
        """True while the pixels are the frame's: always for owned pixels, while the slot is unwritten for
        pixels used in place. Check it after the work, never only before."""
        return self.lease is None or self.lease.valid()

    def check_intact(self) -> None:
        """PixelsOverwritten unless :meth:`intact`: call when the work on the pixels is done."""
        if self.lease is not None and not self.lease.valid():
            raise PixelsOverwritten(self.camera, self.counter, self.lease)

    def detached(self) -> "Frame":
        """This frame with pixels of its own: a copy of its ring slot, checked intact after the copy
        (PixelsOverwritten if the writer got there first). A frame that owns its pixels is returned as it is."""
        if self.lease is None:
            return self
        own = np.array(self.pixels, copy=True)
        self.check_intact()
        return replace(self, pixels=own, lease=None)

    def meta(self) -> dict[str, Any]:
        m = {"exposure_us": self.exposure_us, "gain": self.gain, "temp_c": self.temp_c, "pattern": self.pattern}
        if self.priority:
            m["priority"] = self.priority
        return m


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def frame_identity(msg: Message, cameras: Collection[str] | None = None) -> tuple[str, int]:
    """The (camera, counter) a frame message claims, checked: a safe camera id (one of ``cameras``
    when given, and the one its topic names) and a counter within the wire's u64. FrameRejected if not."""
    f = msg.header.fields
    camera, counter = f.get("camera"), f.get("counter")
    if not isinstance(camera, str) or not CAMERA_ID.match(camera):
        raise FrameRejected("camera_id", f"camera id {str(camera)[:80]!r} is not a safe name")
    if cameras is not None and camera not in cameras:
        raise FrameRejected("camera_unknown", f"camera {camera!r} is not one of {sorted(cameras)}")
    if msg.topic != f"frame.{camera}":
        raise FrameRejected("camera_topic", f"camera {camera!r} on topic {msg.topic[:80]!r}")
    if not _is_int(counter):
        raise FrameRejected("metadata", f"field 'counter' has type {type(counter).__name__}")
    if not 0 <= counter <= MAX_COUNTER:
        raise FrameRejected("counter", f"counter {str(counter)[:40]} is not in 0..2**64-1")
    return camera, counter


def _check_fields(f: dict[str, Any], camera: str, counter: int) -> None:
    """Every field's type and range; FrameRejected naming the first that is wrong (and the frame)."""
    def bad(reason: str, detail: str) -> FrameRejected:
        return FrameRejected(reason, detail, camera, counter)

    for k, t in FRAME_FIELDS.items():
        if k not in f:
            raise bad("metadata", f"field '{k}' missing")
        if isinstance(f[k], bool) or not isinstance(f[k], t):
            raise bad("metadata", f"field '{k}' has type {type(f[k]).__name__}")
    shape = f["shape"]
    if len(shape) != 2 or not all(_is_int(s) and 0 < s <= 16384 for s in shape):
        raise bad("shape", f"shape {str(shape)[:80]} is not [h, w] within 1..16384")
    if f["dtype"] not in ("uint8", "uint16"):
        raise bad("dtype", f"dtype {f['dtype'][:40]!r} is not uint8 or uint16")
    if not 1 <= f["bit_depth"] <= np.dtype(f["dtype"]).itemsize * 8:
        raise bad("bit_depth", f"bit_depth {f['bit_depth']} does not fit {f['dtype']}")
    if f["pattern"] not in PATTERNS:
        raise bad("pattern", f"pattern {f['pattern'][:40]!r} is not one of {list(PATTERNS)}")
    if f["pattern"] != "mono" and min(shape) < 2:
        raise bad("shape", f"a {f['pattern']} mosaic of {shape} holds no 2x2 cell")
    if not 0 <= f["exposure_us"] <= _MAX_EXPOSURE_US:
        raise bad("metadata", f"exposure_us {f['exposure_us']} is not in 0..2**32-1")
    for k in ("gain", "temp_c", "t_capture"):
        if not math.isfinite(f[k]) or abs(f[k]) > 1e12:
            raise bad("metadata", f"{k} {f[k]!r} is not a finite number")
    if not 0 <= f["crc32c"] < 2**32:
        raise bad("metadata", f"crc32c {f['crc32c']} is not a 32-bit value")
    prio = f.get("priority", "")
    if not isinstance(prio, str) or len(prio) > _MAX_PRIORITY_CHARS:
        raise bad("metadata", f"priority {str(prio)[:40]!r} is not a short string")


def frame_from_message(msg: Message, check_crc: bool = True, cameras: Collection[str] | None = None,
                       in_place: bool = False) -> Frame:
    """The frame a ``frame.<camera>`` message carries, every field checked; FrameRejected if anything is wrong.

    ``cameras``: the camera ids this reader serves (None: any safe id). ``in_place``: pixels in shared
    memory stay there (a read-only view and a :class:`ShmLease`; see the module doc), else one copy."""
    camera, counter = frame_identity(msg, cameras)
    f = msg.header.fields
    _check_fields(f, camera, counter)
    shape = f["shape"]
    dt = np.dtype(f["dtype"])
    if "shm" in f and not msg.buffers:
        if in_place:
            return _frame_in_place(f, dt, check_crc)
        pixels = _pixels_from_shm(f["shm"], shape, dt, camera, counter)
        return _checked_frame(f, pixels, check_crc)
    if len(msg.buffers) != 1:
        raise FrameRejected("buffers", f"{len(msg.buffers)} buffers, expected 1", camera, counter)
    try:
        buf = memoryview(msg.buffers[0]).cast("B")
    except (TypeError, ValueError) as exc:
        raise FrameRejected("buffers", f"the buffer is not bytes: {exc}", camera, counter) from None
    expected = shape[0] * shape[1] * dt.itemsize
    if buf.nbytes != expected:
        raise FrameRejected("size", f"{buf.nbytes} bytes, expected {expected} for {shape} {f['dtype']}",
                            camera, counter)
    pixels = np.frombuffer(buf, dtype=dt.newbyteorder("<")).reshape(shape)
    return _checked_frame(f, pixels, check_crc)


def _checked_frame(f: dict[str, Any], pixels: np.ndarray, check_crc: bool, lease: ShmLease | None = None) -> Frame:
    camera, counter = f["camera"], f["counter"]
    if check_crc and pixels_crc32c(pixels) != f["crc32c"]:
        raise FrameRejected("crc", f"pixel CRC-32C does not match {f['crc32c']:#010x}", camera, counter)
    if f["bit_depth"] < pixels.dtype.itemsize * 8 and int(pixels.max()) >= (1 << f["bit_depth"]):
        raise FrameRejected("bit_depth", f"pixel values exceed {f['bit_depth']} bits", camera, counter)
    return Frame(camera=camera, counter=counter, pixels=pixels, bit_depth=f["bit_depth"],
                 pattern=f["pattern"], exposure_us=f["exposure_us"], gain=float(f["gain"]),
                 temp_c=float(f["temp_c"]), t_capture=float(f["t_capture"]), crc32c=f["crc32c"],
                 priority=f.get("priority", ""), lease=lease)


_rings: dict[str, FrameRingReader] = {}  # attachments, one per ring name, kept for the process's life (bounded)


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
    elif len(_rings) >= _MAX_RINGS:
        _rings.pop(next(iter(_rings))).close()
    _rings[name] = new
    return new


def _handle_args(handle: Any, shape: list[int], dt: np.dtype, camera: str, counter: int) -> list[Any]:
    """(slot, generation, length, offset) of a handle whose length fits the frame; FrameRejected if not."""
    if not isinstance(handle, dict) or not isinstance(handle.get("name"), str):
        raise FrameRejected("shm", f"handle {str(handle)[:120]} is not a mapping with a ring name", camera, counter)
    args = [handle.get(k) for k in ("slot", "generation", "length")] + [handle.get("offset", 0)]
    expected = shape[0] * shape[1] * dt.itemsize
    if args[2] != expected or isinstance(args[2], bool):
        raise FrameRejected("size", f"{str(args[2])[:40]} bytes in shared memory, expected {expected} for "
                                    f"{shape} {dt}", camera, counter)
    return args


def _overwritten(handle: dict[str, Any], args: list[Any], camera: str, counter: int) -> FrameRejected:
    return FrameRejected("shm_overwritten", f"ring '{handle['name']}' slot {args[0]} was rewritten "
                                            f"(generation {args[1]} gone)", camera, counter)


def _frame_in_place(f: dict[str, Any], dt: np.dtype, check_crc: bool) -> Frame:
    """The frame over its ring slot, no copy: CRC-32C and bit depth checked where the pixels lie, then the
    generation (a rewrite during the checks is an overwrite, as for a copy)."""
    camera, counter, shape, handle = f["camera"], f["counter"], f["shape"], f["shm"]
    args = _handle_args(handle, shape, dt, camera, counter)
    try:
        ring = _ring(handle["name"])
        view = ring.get(*args)
        if view is None and not ring.is_current():  # the writer restarted: attach to its new ring, once
            ring = _ring(handle["name"], fresh=True)
            view = ring.get(*args)
    except ShmError as exc:
        raise FrameRejected("shm", str(exc), camera, counter) from None
    except FrameRejected as exc:
        exc.camera, exc.counter = camera, counter
        raise
    if view is None:
        raise _overwritten(handle, args, camera, counter)
    pixels = np.frombuffer(view, dtype=dt.newbyteorder("<")).reshape(shape)
    lease = ShmLease(ring, *args)
    try:
        frame = _checked_frame(f, pixels, check_crc, lease)
    except FrameRejected as exc:
        if not lease.valid():  # the slot changed under the checks: that, not the CRC, is what happened
            raise _overwritten(handle, args, camera, counter) from None
        raise exc
    if not lease.valid():
        ring.overwritten += 1
        raise _overwritten(handle, args, camera, counter)
    return frame


def _pixels_from_shm(handle: Any, shape: list[int], dt: np.dtype, camera: str, counter: int) -> np.ndarray:
    """One copy out of the ring slot, checked for a rewrite during it."""
    args = _handle_args(handle, shape, dt, camera, counter)
    expected = args[2]
    try:
        ring = _ring(handle["name"])
        if expected > ring.slot_bytes:  # checked before the copy's buffer is allocated
            raise FrameRejected("size", f"{expected} bytes do not fit a slot of ring '{handle['name']}'",
                                camera, counter)
        pixels = np.empty(shape, dtype=dt.newbyteorder("<"))
        dst = memoryview(pixels.reshape(-1).view(np.uint8))
        ok = ring.copy_into(dst, *args)
        if not ok and not ring.is_current():  # the writer restarted: attach to its new ring and retry once
            ring = _ring(handle["name"], fresh=True)
            ok = expected <= ring.slot_bytes and ring.copy_into(dst, *args)
    except ShmError as exc:
        raise FrameRejected("shm", str(exc), camera, counter) from None
    except FrameRejected as exc:
        exc.camera, exc.counter = camera, counter
        raise
    if not ok:
        raise _overwritten(handle, args, camera, counter)
    return pixels
