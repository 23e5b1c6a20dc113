"""The shared-memory frame ring: round trips, overwrite detection, naming and clean-up, typed errors."""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from framework.bus.frames_shm import FrameRing, FrameRingReader, ShmError, ring_path
from framework.errors import BusError


@pytest.fixture
def ring() -> Iterator[FrameRing]:
    r = FrameRing(f"test-{uuid.uuid4().hex[:12]}", slots=3, slot_bytes=1000)
    try:
        yield r
    finally:
        r.close()


def test_put_then_read_returns_the_same_bytes(ring: FrameRing) -> None:
    reader = FrameRingReader(ring.name)
    h = ring.put(b"pixels" * 10)
    assert reader.read(h.slot, h.generation, h.length, h.offset) == b"pixels" * 10
    assert reader.overwritten == 0
    reader.close()


def test_slot_rewritten_after_a_full_turn_reads_as_none_and_is_counted(ring: FrameRing) -> None:
    reader = FrameRingReader(ring.name)
    h = ring.put(b"first")
    for _ in range(ring.slots):
        ring.put(b"later")
    assert reader.get(h.slot, h.generation, h.length) is None
    assert reader.read(h.slot, h.generation, h.length) is None
    assert reader.overwritten == 2
    reader.close()


def test_slot_rewritten_during_a_copy_fails_the_after_check(ring: FrameRing) -> None:
    reader = FrameRingReader(ring.name)
    h = ring.put(b"abc")
    view = reader.get(h.slot, h.generation, h.length)
    assert view is not None and bytes(view) == b"abc"
    slot, _ = ring.begin()  # ring turns over to this slot while the reader holds a view
    while slot != h.slot:
        slot, _ = ring.begin()
    assert not reader.valid(h.slot, h.generation, h.length)
    assert reader.copy_into(memoryview(bytearray(3)), h.slot, h.generation, h.length) is False
    reader.close()


def test_receive_into_a_slot_then_commit_with_offset_reads_back(ring: FrameRing) -> None:
    reader = FrameRingReader(ring.name)
    slot, area = ring.begin()
    area[10:15] = b"hello"
    assert ring.offset_in(slot, area[10:15]) == 10
    assert ring.offset_in(slot, memoryview(bytearray(5))) is None
    h = ring.commit(slot, 5, offset=10)
    assert reader.read(h.slot, h.generation, h.length, h.offset) == b"hello"
    reader.close()


def test_writes_in_progress_are_never_readable(ring: FrameRing) -> None:
    reader = FrameRingReader(ring.name)
    h = ring.put(b"abc")
    ring.begin(); ring.begin(); ring.begin()  # noqa: E702 - the third claims h's slot again
    assert reader.read(h.slot, h.generation, h.length) is None
    with pytest.raises(ShmError):
        reader.get(h.slot, h.generation + 1, h.length)  # odd: a write in progress
    reader.close()


def test_commit_of_a_slot_not_begun_is_a_typed_error(ring: FrameRing) -> None:
    with pytest.raises(ShmError):
        ring.commit(0, 1)
    slot, _ = ring.begin()
    with pytest.raises(ShmError):
        ring.commit(slot, ring.slot_bytes + 1)


def test_data_larger_than_a_slot_is_refused(ring: FrameRing) -> None:
    with pytest.raises(ShmError):
        ring.put(bytes(ring.slot_bytes + 1))


@pytest.mark.parametrize("handle", [
    (-1, 0, 1, 0), (3, 0, 1, 0), (0, 0, 1001, 0), (0, 0, 10, 995), (0, 1, 1, 0), ("0", 0, 1, 0),
    (0, None, 1, 0), (True, 0, 1, 0), (0, 0, -5, 0), (0, 0.5, 1, 0),
])
def test_garbage_handles_raise_a_typed_error(ring: FrameRing, handle: tuple) -> None:
    reader = FrameRingReader(ring.name)
    with pytest.raises(ShmError) as exc:
        reader.get(*handle)
    assert isinstance(exc.value, BusError)
    reader.close()


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden", "x" * 200, 5])
def test_bad_ring_names_are_refused(name: object) -> None:
    with pytest.raises(ShmError):
        ring_path(name)  # type: ignore[arg-type]


def test_attaching_to_a_missing_ring_is_a_typed_error() -> None:
    with pytest.raises(ShmError, match="no frame ring"):
        FrameRingReader(f"missing-{uuid.uuid4().hex[:12]}")


def test_a_segment_without_the_ring_header_is_refused() -> None:
    name = f"junk-{uuid.uuid4().hex[:12]}"
    ring_path(name).write_bytes(b"\x00" * 4096)
    try:
        with pytest.raises(ShmError, match="bad header"):
            FrameRingReader(name)
    finally:
        ring_path(name).unlink()


def test_writer_close_unlinks_and_a_new_writer_is_seen_as_a_new_ring() -> None:
    name = f"restart-{uuid.uuid4().hex[:12]}"
    first = FrameRing(name, 2, 64)
    h = first.put(b"old")
    reader = FrameRingReader(name)
    first.close()
    assert not ring_path(name).exists() and not reader.is_current()
    second = FrameRing(name, 2, 64)
    try:
        h2 = second.put(b"new")
        assert reader.read(h2.slot, h2.generation, h2.length) is None  # still mapped to the old segment
        fresh = FrameRingReader(name)
        assert fresh.is_current()
        assert fresh.read(h2.slot, h2.generation, h2.length) == b"new"
        assert fresh.read(h.slot, h.generation, h.length) is None  # generations start afresh from the clock
        fresh.close()
    finally:
        reader.close()
        second.close()


def test_bad_ring_geometry_is_refused() -> None:
    with pytest.raises(ShmError):
        FrameRing(f"geo-{uuid.uuid4().hex[:8]}", 1, 64)
    with pytest.raises(ShmError):
        FrameRing(f"geo-{uuid.uuid4().hex[:8]}", 2, 0)
