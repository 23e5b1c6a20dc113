"""The driver's shared-memory frame path: frames received straight into ring slots, byte-exact."""

from __future__ import annotations

import uuid
from typing import Any, Iterator

import numpy as np
import pytest

from drivers.camera import protocol as p
from drivers.camera.core import DriverCore, RingDecoder
from framework.bus.frames_shm import FrameRing, FrameRingReader

H, W = 120, 300  # 72 000 pixel bytes: above the driver's 64 KiB hunting reads, so the frame takes a slot


def _frame_bytes(counter: int, h: int = H, w: int = W) -> tuple[bytes, np.ndarray]:
    px = np.random.default_rng(counter).integers(1, 4000, (h, w), dtype=np.uint16)
    return p.encode(p.Frame(camera="navcam", counter=counter, width=w, height=h, bit_depth=12, pattern="mono",
                            exposure_us=100, gain=1.0, temp_c=20.0, t_capture=0.0, pixels=px.tobytes(),
                            seq=counter + 1)), px


@pytest.fixture
def ring() -> Iterator[FrameRing]:
    r = FrameRing(f"dec-{uuid.uuid4().hex[:12]}", 4, H * W * 2 + 4096)
    try:
        yield r
    finally:
        r.close()


def _drive(core: DriverCore, stream: bytes, chunk: int = 50_000) -> None:
    """What the driver's read loop does: receive into the decoder's target, else feed a small buffer."""
    buf, i = memoryview(stream), 0
    while i < len(buf):
        target = core.recv_target()
        if target is None:
            n = min(64 << 10, len(buf) - i)
            core.on_bytes(buf[i:i + n])
        else:
            n = min(len(target), chunk, len(buf) - i)
            target[:n] = buf[i:i + n]
            core.on_received(n)
        i += n


def test_large_frames_are_received_into_slots_and_committed_without_a_copy(ring: FrameRing) -> None:
    published: list[tuple[dict[str, Any], Any]] = []

    def publish(fields: dict[str, Any], pixels: memoryview) -> None:
        [slot] = [s for s in ring.open_slots() if ring.offset_in(s, pixels) is not None]
        published.append((fields, ring.commit(slot, pixels.nbytes, ring.offset_in(slot, pixels))))

    core = DriverCore("navcam", publish, lambda n, d: None, defect_check=False,
                      decoder_factory=lambda: RingDecoder(ring))
    encoded = [_frame_bytes(c) for c in range(3)]
    _drive(core, b"\x00garbage" + b"".join(e for e, _ in encoded))
    reader = FrameRingReader(ring.name)
    assert [f["counter"] for f, _ in published] == [0, 1, 2]
    for (fields, h), (_, px) in zip(published, encoded):
        assert h.offset > 0 and h.length == px.nbytes
        assert reader.read(h.slot, h.generation, h.length, h.offset) == px.tobytes()
    reader.close()


def test_a_corrupt_frame_in_a_slot_is_not_published_and_the_next_is(ring: FrameRing) -> None:
    published: list[int] = []
    events: list[str] = []
    core = DriverCore("navcam", lambda f, px: published.append(f["counter"]), lambda n, d: events.append(n),
                      defect_check=False, decoder_factory=lambda: RingDecoder(ring))
    bad = bytearray(_frame_bytes(0)[0])
    bad[-100] ^= 0x01
    _drive(core, bytes(bad) + _frame_bytes(1)[0])
    assert published == [1] and "frame_crc_error" in events


def test_small_frames_stay_in_ordinary_buffers() -> None:
    ring = FrameRing(f"dec-{uuid.uuid4().hex[:12]}", 2, 1 << 20)
    try:
        seen: list[bool] = []
        core = DriverCore("navcam", lambda f, px: seen.append(any(ring.offset_in(s, px) is not None
                                                                   for s in range(ring.slots))),
                          lambda n, d: None, defect_check=False, decoder_factory=lambda: RingDecoder(ring))
        _drive(core, b"".join(_frame_bytes(c, 8, 8)[0] for c in range(5)))
        assert seen == [False] * 5
    finally:
        ring.close()
