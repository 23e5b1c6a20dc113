"""Hypothesis: any bytes up to a slot round-trip through the ring; garbage handles give typed errors only."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from framework.bus.frames_shm import FrameRing, FrameRingReader, ShmError

SLOT_BYTES = 4096
SLOTS = 4
_ring = FrameRing(f"prop-{uuid.uuid4().hex[:12]}", SLOTS, SLOT_BYTES)
_reader = FrameRingReader(_ring.name)


def teardown_module() -> None:
    _reader.close()
    _ring.close()


@given(st.lists(st.binary(max_size=SLOT_BYTES), min_size=1, max_size=12))
def test_any_bytes_up_to_a_slot_round_trip_while_the_slot_is_not_rewritten(blobs: list[bytes]) -> None:
    handles = [_ring.put(b) for b in blobs]
    live = handles[-SLOTS:]  # the last turn of the ring is intact; anything older was overwritten
    for h, b in zip(handles, blobs):
        got = _reader.read(h.slot, h.generation, h.length, h.offset)
        assert got == (b if h in live else None)


@given(st.binary(max_size=SLOT_BYTES), st.integers(0, SLOT_BYTES))
def test_received_into_a_slot_at_any_offset_round_trips(data: bytes, offset: int) -> None:
    data = data[:SLOT_BYTES - offset]
    slot, area = _ring.begin()
    area[offset:offset + len(data)] = data
    h = _ring.commit(slot, len(data), offset)
    assert _reader.read(h.slot, h.generation, h.length, h.offset) == data


_anything = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=4),
                      st.binary(max_size=4))


@settings(max_examples=200)
@given(_anything, _anything, _anything, _anything)
def test_garbage_handles_give_a_typed_error_or_none_never_a_crash(slot: Any, gen: Any, length: Any,
                                                                   offset: Any) -> None:
    try:
        view = _reader.get(slot, gen, length, offset)
    except ShmError:
        return
    assert view is None or len(view) == length
