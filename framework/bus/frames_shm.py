"""A ring of fixed-size frame slots in one shared-memory segment, so pixels skip the bus hops.

One writer (the camera driver) puts a frame's pixels into the next slot and
publishes a small handle ``(slot, generation, length, offset)`` on the bus
instead of the pixels; readers attach to the segment by name and read the
slot. Each slot header carries a generation counter used seqlock style: the
writer makes it odd while writing and the next even value when done, so a
reader that checks the generation before and after its copy knows whether
the slot was overwritten meanwhile (then the read is dropped and counted).
A reader may also use the bytes where they lie (:meth:`FrameRingReader.get`,
no copy) and check :meth:`FrameRingReader.valid` once its work on them is done.

Segment layout (little-endian): a 64-byte ring header (magic, version,
slots, slot_bytes), then ``slots`` slot headers of 64 bytes (generation u64,
length u64, offset u64), then the slot data areas, each page aligned. The
segment is a file under ``/dev/shm`` (or the temp directory where there is
none) mapped with mmap; the writer creates it and unlinks it on close.

No sockets here: the driver and the imaging core carry the handle on the bus.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from framework.errors import BusError

__all__ = ["FrameRing", "FrameRingReader", "ShmHandle", "ShmError", "ring_path", "MAX_SLOTS"]

MAGIC = b"PDHRING1"
_RING_HEAD = struct.Struct("<8sIIQ")  # magic, version, slots, slot_bytes
_SLOT_HEAD = struct.Struct("<QQQ")  # generation, length, offset
_HEAD_BYTES = 64
_SLOT_HEAD_BYTES = 64
_PAGE = mmap.PAGESIZE
_VERSION = 1
MAX_SLOTS = 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SHM_DIR = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())


class ShmError(BusError):
    """A shared-memory frame handle or segment is malformed, or names no ring."""


@dataclass(frozen=True)
class ShmHandle:
    """Where a frame's bytes lie: the bus carries this instead of the pixels."""

    name: str
    slot: int
    generation: int
    length: int
    offset: int = 0

    def fields(self) -> dict[str, object]:
        return {"name": self.name, "slot": self.slot, "generation": self.generation, "length": self.length,
                "offset": self.offset}


def ring_path(name: str) -> Path:
    """The file backing ring ``name``; the name must be a plain file name."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ShmError(f"ring name {name!r} is not 1..128 of [A-Za-z0-9_.-]")
    return _SHM_DIR / f"lunar-pdh-{name}"


def _layout(slots: int, slot_bytes: int) -> tuple[int, int, int]:
    """(data start, slot stride, total bytes)."""
    stride = -(-slot_bytes // _PAGE) * _PAGE
    data_at = -(-(_HEAD_BYTES + slots * _SLOT_HEAD_BYTES) // _PAGE) * _PAGE
    return data_at, stride, data_at + slots * stride


class _Segment:
    """The mapped segment and its slot arithmetic, shared by writer and reader."""

    def __init__(self, name: str, mm: mmap.mmap, slots: int, slot_bytes: int, inode: int) -> None:
        self.name = name
        self.mm = mm
        self.view = memoryview(mm)
        self.slots = slots
        self.slot_bytes = slot_bytes
        self.inode = inode
        self.data_at, self.stride, _ = _layout(slots, slot_bytes)

    def head_at(self, slot: int) -> int:
        return _HEAD_BYTES + slot * _SLOT_HEAD_BYTES

    def read_head(self, slot: int) -> tuple[int, int, int]:
        return _SLOT_HEAD.unpack_from(self.mm, self.head_at(slot))

    def data(self, slot: int) -> memoryview:
        start = self.data_at + slot * self.stride
        return self.view[start:start + self.slot_bytes]

    def close(self) -> None:
        self.view.release()
        try:
            self.mm.close()
        except BufferError:
            pass  # a caller still holds a view of a slot; the mapping goes with the last reference


class FrameRing:
    """The writer: creates ring ``name`` of ``slots`` slots of ``slot_bytes`` each; unlinks it on close."""

    def __init__(self, name: str, slots: int, slot_bytes: int) -> None:
        if not 2 <= slots <= MAX_SLOTS:
            raise ShmError(f"slots {slots} not in 2..{MAX_SLOTS}")
        if not 1 <= slot_bytes <= 1 << 32:
            raise ShmError(f"slot_bytes {slot_bytes} not in 1..2**32")
        self.path = ring_path(name)
        _, _, total = _layout(slots, slot_bytes)
        # A ring of this name left by a writer that died is replaced; its readers re-attach (new inode).
        self.path.unlink(missing_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, total)
            mm = mmap.mmap(fd, total)
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        _RING_HEAD.pack_into(mm, 0, MAGIC, _VERSION, slots, slot_bytes)
        self._seg = _Segment(name, mm, slots, slot_bytes, inode)
        # Generations start from the clock, so a handle from an earlier writer of this name never matches.
        base = (time.time_ns() >> 1 << 1) & ((1 << 62) - 1)
        for s in range(slots):
            _SLOT_HEAD.pack_into(mm, self._seg.head_at(s), base, 0, 0)
        self._next = 0
        self._open: set[int] = set()  # slots handed out by begin() and not yet committed
        self.writes = 0

    @property
    def name(self) -> str:
        return self._seg.name

    @property
    def slots(self) -> int:
        return self._seg.slots

    @property
    def slot_bytes(self) -> int:
        return self._seg.slot_bytes

    def begin(self) -> tuple[int, memoryview]:
        """Claim the next slot for writing (its generation goes odd); return it and its whole data area.

        Several writes may be open at once (a stream decoder may start the next message before the last is
        published); a slot whose write was never committed is simply claimed again when its turn comes.
        """
        slot = self._next
        self._next = (slot + 1) % self._seg.slots
        gen = self._seg.read_head(slot)[0]
        _SLOT_HEAD.pack_into(self._seg.mm, self._seg.head_at(slot), gen | 1, 0, 0)
        self._open.add(slot)
        return slot, self._seg.data(slot)

    def open_slots(self) -> frozenset[int]:
        return frozenset(self._open)

    def commit(self, slot: int, length: int, offset: int = 0) -> ShmHandle:
        """The bytes ``[offset, offset + length)`` of ``slot`` are written: publish a handle to them."""
        if slot not in self._open or not 0 <= offset <= offset + length <= self._seg.slot_bytes:
            raise ShmError(f"commit of slot {slot} [{offset}, +{length}) does not match an open write")
        self._open.discard(slot)
        gen = self._seg.read_head(slot)[0] + 1
        # Length and offset first, generation last: a reader that sees the new generation sees them too.
        struct.pack_into("<QQ", self._seg.mm, self._seg.head_at(slot) + 8, length, offset)
        struct.pack_into("<Q", self._seg.mm, self._seg.head_at(slot), gen)
        self.writes += 1
        return ShmHandle(self._seg.name, slot, gen, length, offset)

    def put(self, data: bytes | bytearray | memoryview) -> ShmHandle:
        """Copy ``data`` into the next slot; return its handle."""
        src = memoryview(data).cast("B")
        if src.nbytes > self._seg.slot_bytes:
            raise ShmError(f"{src.nbytes} bytes do not fit a slot of {self._seg.slot_bytes}")
        slot, dst = self.begin()
        dst[:src.nbytes] = src
        return self.commit(slot, src.nbytes)

    def offset_in(self, slot: int, view: memoryview) -> int | None:
        """Where ``view`` starts inside ``slot``'s data area, if it lies wholly inside it."""
        base = np.frombuffer(self._seg.data(slot), dtype=np.uint8).ctypes.data
        arr = np.frombuffer(view, dtype=np.uint8)
        at = arr.ctypes.data - base
        return at if 0 <= at and at + arr.nbytes <= self._seg.slot_bytes else None

    def close(self) -> None:
        self._seg.close()
        self.path.unlink(missing_ok=True)


class FrameRingReader:
    """A reader attached to ring ``name``; counts reads lost to overwriting in ``overwritten``."""

    def __init__(self, name: str) -> None:
        path = ring_path(name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise ShmError(f"no frame ring '{name}' ({exc.strerror})") from None
        try:
            size = os.fstat(fd).st_size
            if size < _HEAD_BYTES:
                raise ShmError(f"frame ring '{name}' is {size} bytes, too small for its header")
            mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        magic, version, slots, slot_bytes = _RING_HEAD.unpack_from(mm, 0)
        if magic != MAGIC or version != _VERSION or not 2 <= slots <= MAX_SLOTS \
                or _layout(slots, slot_bytes)[2] > size:
            mm.close()
            raise ShmError(f"frame ring '{name}' has a bad header ({magic!r}, v{version}, {slots} slots)")
        self._seg = _Segment(name, mm, slots, slot_bytes, inode)
        self.overwritten = 0

    @property
    def name(self) -> str:
        return self._seg.name

    @property
    def slot_bytes(self) -> int:
        return self._seg.slot_bytes

    @property
    def slots(self) -> int:
        """Frames the ring holds: a reader using pixels in place keeps fewer than this many in work."""
        return self._seg.slots

    def is_current(self) -> bool:
        """False once the writer has gone and a new ring of this name replaced (or removed) this one."""
        try:
            return ring_path(self._seg.name).stat().st_ino == self._seg.inode
        except OSError:
            return False

    def _check(self, slot: object, generation: object, length: object, offset: object) -> None:
        for what, v in (("slot", slot), ("generation", generation), ("length", length), ("offset", offset)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ShmError(f"handle {what} {v!r} is not a non-negative int")
        assert isinstance(slot, int) and isinstance(length, int) and isinstance(offset, int)
        if slot >= self._seg.slots:
            raise ShmError(f"handle slot {slot} not in 0..{self._seg.slots - 1}")
        if offset + length > self._seg.slot_bytes:
            raise ShmError(f"handle [{offset}, +{length}) exceeds the slot size {self._seg.slot_bytes}")
        if generation % 2:
            raise ShmError(f"handle generation {generation} is odd (a write in progress is never published)")

    def valid(self, slot: int, generation: int, length: int, offset: int = 0) -> bool:
        """True while the slot still holds the write this handle names."""
        return self._seg.read_head(slot) == (generation, length, offset)

    def get(self, slot: int, generation: int, length: int, offset: int = 0) -> memoryview | None:
        """A read-only view of the handle's bytes, or None if the slot has been rewritten (counted).

        The view is only good while :meth:`valid` holds: copy what you keep, then check :meth:`valid` again.
        """
        self._check(slot, generation, length, offset)
        if not self.valid(slot, generation, length, offset):
            self.overwritten += 1
            return None
        return self._seg.data(slot)[offset:offset + length]

    def copy_into(self, dst: memoryview, slot: int, generation: int, length: int, offset: int = 0) -> bool:
        """Copy the handle's bytes into ``dst`` (exactly ``length`` bytes); False (counted) if overwritten."""
        view = self.get(slot, generation, length, offset)
        if view is None:
            return False
        dst = memoryview(dst).cast("B")
        if dst.nbytes != length:
            raise ShmError(f"destination of {dst.nbytes} bytes for a handle of {length}")
        dst[:] = view
        view.release()
        if not self.valid(slot, generation, length, offset):
            self.overwritten += 1
            return False
        return True

    def read(self, slot: int, generation: int, length: int, offset: int = 0) -> bytes | None:
        """A copy of the handle's bytes, or None if the slot was rewritten before or during the copy."""
        self._check(slot, generation, length, offset)  # before allocating: a forged length costs nothing
        buf = bytearray(length)
        return bytes(buf) if self.copy_into(memoryview(buf), slot, generation, length, offset) else None

    def close(self) -> None:
        self._seg.close()
