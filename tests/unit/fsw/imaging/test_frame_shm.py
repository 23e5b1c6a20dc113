"""frame_from_message with a shared-memory handle instead of a pixel buffer."""

from __future__ import annotations

import uuid
from typing import Any, Iterator

import numpy as np
import pytest

from framework.bus.frames_shm import FrameRing
from framework.bus.message import Header, Message
from fsw.imaging.frame import FrameRejected, frame_from_message
from framework.crc import pixels_crc32c

H, W = 16, 24


@pytest.fixture
def ring() -> Iterator[FrameRing]:
    r = FrameRing(f"img-{uuid.uuid4().hex[:12]}", 2, H * W * 2)
    try:
        yield r
    finally:
        r.close()


def _message(px: np.ndarray, shm: Any, **over: Any) -> Message:
    fields = dict(camera="cam", counter=1, shape=[H, W], dtype="uint16", bit_depth=12, pattern="mono",
                  exposure_us=10, gain=1.0, temp_c=0.0, t_capture=1.0, crc32c=pixels_crc32c(px), shm=shm)
    fields.update(over)
    return Message(topic="frame.cam", header=Header(kind="frame", src="drv", seq=0, t=0.0, fields=fields),
                   buffers=[])


def _px(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, (H, W), dtype=np.uint16)


def test_pixels_in_shared_memory_become_a_frame_that_owns_a_copy(ring: FrameRing) -> None:
    px = _px(1)
    h = ring.put(px.tobytes())
    frame = frame_from_message(_message(px, h.fields()))
    assert np.array_equal(frame.pixels, px)
    ring.put(bytes(px.nbytes)); ring.put(bytes(px.nbytes))  # noqa: E702 - the slot is rewritten later
    assert np.array_equal(frame.pixels, px)


def test_an_overwritten_slot_is_rejected_as_shm_overwritten(ring: FrameRing) -> None:
    px = _px(2)
    h = ring.put(px.tobytes())
    ring.put(px.tobytes()); ring.put(px.tobytes())  # noqa: E702
    with pytest.raises(FrameRejected) as exc:
        frame_from_message(_message(px, h.fields()))
    assert exc.value.reason == "shm_overwritten"


def test_pixels_that_do_not_match_the_crc_are_rejected(ring: FrameRing) -> None:
    px = _px(3)
    h = ring.put(px.tobytes())
    with pytest.raises(FrameRejected) as exc:
        frame_from_message(_message(px, h.fields(), crc32c=pixels_crc32c(px) ^ 1))
    assert exc.value.reason == "crc"


@pytest.mark.parametrize("shm", [None, 5, {"slot": 0}, {"name": "no-such-ring-xyz", "slot": 0, "generation": 0,
                                                         "length": H * W * 2}, {"name": "../x"}])
def test_bad_handles_are_rejected_with_a_reason(shm: Any) -> None:
    with pytest.raises(FrameRejected) as exc:
        frame_from_message(_message(_px(4), shm))
    assert exc.value.reason in ("shm", "size")


def test_garbage_slot_fields_in_a_real_ring_are_rejected(ring: FrameRing) -> None:
    px = _px(5)
    with pytest.raises(FrameRejected) as exc:
        frame_from_message(_message(px, {"name": ring.name, "slot": 9, "generation": "x", "length": px.nbytes}))
    assert exc.value.reason == "shm"
