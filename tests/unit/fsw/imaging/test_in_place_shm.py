"""Frames used in place in a real shared-memory ring: no copy, and a slot rewritten before or during the work is
detected and handled as an overwrite at the boundary is (the frame named lost, reason ``shm_overwritten``).

The ring, the slots and the rewrites are real (:class:`~framework.bus.frames_shm.FrameRing`); a rewrite "during"
the work is made deterministic by holding the lossless worker on a gate while the slot is rewritten."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from framework.bus.frames_shm import FrameRing
from framework.bus.message import Header, Message
from framework.config import validate_config
from framework.crc import pixels_crc32c
from fsw.imaging.frame import Frame, FrameRejected, PixelsOverwritten, frame_from_message
from fsw.imaging.pipeline import make_preview
from fsw.imaging.processor import FrameProcessor
from fsw.imaging.product import Product, decode_product, encode_product
from tests.unit.fsw.imaging.test_core_accounting import Rig, rig  # noqa: F401 - the fixture is used below

H, W = 24, 32
NBYTES = H * W * 2


@pytest.fixture
def ring() -> Iterator[FrameRing]:
    r = FrameRing(f"inplace-{uuid.uuid4().hex[:12]}", 4, NBYTES)
    try:
        yield r
    finally:
        r.close()


def _px(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(100, 4000, (H, W), dtype=np.uint16)


def _message(counter: int, px: np.ndarray, shm: dict[str, Any], **over: Any) -> Message:
    fields = dict(camera="cam", counter=counter, shape=[H, W], dtype="uint16", bit_depth=12, pattern="mono",
                  exposure_us=1000, gain=1.0, temp_c=-20.0, t_capture=1.0, crc32c=pixels_crc32c(px), shm=shm)
    fields.update(over)
    return Message("frame.cam", Header("drv", counter, 0.0, "frame", fields), [])


def _in_place(ring: FrameRing, counter: int, px: np.ndarray) -> Frame:
    return frame_from_message(_message(counter, px, ring.put(px.tobytes()).fields()), in_place=True)


def _rewrite(ring: FrameRing, times: int) -> None:
    for _ in range(times):
        ring.put(bytes(NBYTES))


def _settings(**over: Any) -> dict[str, Any]:
    raw = {"version": 1, "endpoints": {"a": "tcp://127.0.0.1:1", "b": "tcp://127.0.0.1:2",
                                       "c": "tcp://127.0.0.1:3", "d": "tcp://127.0.0.1:4"},
           "processes": {"imaging": {"kind": "fsw.imaging", "cameras": ["cam"], "thumbnail_px": 16,
                                     "lossless_codec": "jpegxl", "lossless_params": {"effort": 1},
                                     "endpoints": {"bus_pub": "a", "bus_sub": "b", "products": "c", "command": "d"},
                                     **over}}}
    return validate_config(raw).processes["imaging"]


class Sink:
    """What a FrameProcessor hands out: products, and the frames it names (event, kinds, fields)."""

    def __init__(self) -> None:
        self.products: list[Product] = []
        self.named: list[tuple[str, int, frozenset[str], dict[str, Any]]] = []

    def processor(self, **settings: Any) -> FrameProcessor:
        return FrameProcessor(_settings(**settings), self.products.append, lambda n, f: None,
                              named=lambda name, frame, kinds, fields: self.named.append(
                                  (name, frame.counter, kinds, fields)))

    def kinds(self) -> list[tuple[int, str]]:
        return sorted((p.counter, p.kind) for p in self.products)


def _run(proc: FrameProcessor) -> None:
    for _ in range(2000):
        proc.step()
        if not proc.busy():
            break
        proc.wait(0.01)
    proc.close()


# -- the frame ------------------------------------------------------------------------------------------
def test_in_place_pixels_are_the_slot_itself_read_only_and_know_when_they_are_rewritten(ring: FrameRing) -> None:
    px = _px(1)
    frame = _in_place(ring, 1, px)
    assert np.array_equal(frame.pixels, px) and not frame.pixels.flags.writeable
    assert frame.lease is not None and frame.intact()
    frame.check_intact()
    _rewrite(ring, 4)  # every slot of the ring written again, this frame's too
    assert not frame.intact()
    assert not np.array_equal(frame.pixels, px)  # no copy was made: the frame saw its slot change
    with pytest.raises(PixelsOverwritten) as exc:
        frame.check_intact()
    assert exc.value.reason == "shm_overwritten" and (exc.value.camera, exc.value.counter) == ("cam", 1)


def test_in_place_frames_are_checked_at_the_boundary_as_copies_are(ring: FrameRing) -> None:
    px = _px(2)
    with pytest.raises(FrameRejected) as exc:
        frame_from_message(_message(2, px, ring.put(px.tobytes()).fields(), crc32c=pixels_crc32c(px) ^ 1),
                           in_place=True)
    assert exc.value.reason == "crc"
    h = ring.put(px.tobytes()).fields()
    _rewrite(ring, 4)
    with pytest.raises(FrameRejected) as exc:
        frame_from_message(_message(3, px, h), in_place=True)
    assert exc.value.reason == "shm_overwritten"
    loud = _px(3) | 0x1000  # 13-bit values in a frame that says 12
    with pytest.raises(FrameRejected) as exc:
        frame_from_message(_message(4, loud, ring.put(loud.tobytes()).fields()), in_place=True)
    assert exc.value.reason == "bit_depth"


# -- the processor --------------------------------------------------------------------------------------
def test_an_untouched_frame_in_place_becomes_products_bit_exact(ring: FrameRing) -> None:
    sink = Sink()
    proc = sink.processor(workers=1)
    px = _px(4)
    proc.accept(_in_place(ring, 4, px))
    _run(proc)
    assert sink.kinds() == [(4, "full"), (4, "thumbnail")] and sink.named == []
    full = next(p for p in sink.products if p.kind == "full")
    _, back = decode_product(encode_product(full))
    assert np.array_equal(back, px) and full.crc32c == pixels_crc32c(px)


def test_a_frame_rewritten_while_it_waits_is_named_lost_and_makes_nothing(ring: FrameRing) -> None:
    sink = Sink()
    proc = sink.processor(workers=1)
    proc.accept(_in_place(ring, 5, _px(5)))
    _rewrite(ring, 4)
    _run(proc)
    assert sink.products == []
    assert [(n, c, sorted(k), f["reason"]) for n, c, k, f in sink.named] == \
        [("frames_lost", 5, ["full", "thumbnail"], "shm_overwritten")]
    assert sink.named[0][3]["ranges"] == [[5, 5]]
    assert proc.counters["products_failed"] == 0 and proc.overwritten == 1
    assert proc.recent_frame("cam", 5) is None


def test_a_frame_rewritten_during_its_lossless_encoding_keeps_its_thumbnail_and_is_named_for_the_full(
        ring: FrameRing) -> None:
    sink = Sink()
    proc = sink.processor(workers=1)
    gate = threading.Event()
    proc.pool.submit(gate.wait, 30)  # the only worker waits here, so the frame's encoding starts after the rewrite
    px = _px(6)
    frame = _in_place(ring, 6, px)
    proc.accept(frame)
    proc.step()  # grades and thumbnail while the slot holds the frame; the lossless work is queued
    assert sink.kinds() == [(6, "thumbnail")]
    assert proc.recent_frame("cam", 6) is not None
    _rewrite(ring, 4)
    gate.set()
    _run(proc)
    assert sink.kinds() == [(6, "thumbnail")]  # no full product of someone else's pixels
    assert [(n, c, sorted(k), f["reason"]) for n, c, k, f in sink.named] == \
        [("frames_lost", 6, ["full"], "shm_overwritten")]
    assert proc.counters["products_failed"] == 0 and proc.overwritten == 1
    assert proc.recent_frame("cam", 6) is None  # a held frame is let go once its slot is rewritten


def test_a_request_on_a_held_frame_whose_slot_was_rewritten_fails_as_overwritten(ring: FrameRing) -> None:
    sink = Sink()
    proc = sink.processor(workers=1)
    frame = _in_place(ring, 7, _px(7))
    proc.accept(frame)
    _run(proc)
    held = proc.recent_frame("cam", 7)
    assert held is not None
    assert make_preview(held[0], 2, "zstd", held[1]).kind == "preview"
    _rewrite(ring, 4)
    with pytest.raises(PixelsOverwritten):
        make_preview(held[0], 2, "zstd", held[1])


def test_no_more_frames_wait_than_the_ring_holds(ring: FrameRing) -> None:
    """With a 4-slot ring, at most 3 in-place frames wait (the writer fills the 4th); the rest keep only their
    thumbnail, made at once while their slot holds them: none is lost to the rewrite of a waiting frame."""
    sink = Sink()
    proc = sink.processor(workers=1, queue_max=8)
    for n in range(4):
        proc.accept(_in_place(ring, 10 + n, _px(10 + n)))
    _run(proc)
    assert [p.counter for p in sink.products if p.kind == "full"] == [10, 11, 12]
    assert [p.counter for p in sink.products if p.kind == "thumbnail"] == [13, 10, 11, 12]
    assert [(n, c, f["reason"]) for n, c, _, f in sink.named] == [("frames_thumbnail_only", 13, "queue_full")]


# -- the imaging core -----------------------------------------------------------------------------------
def test_the_core_names_a_frame_rewritten_before_its_work_lost_and_journals_it_closed(
        rig: Callable[..., Rig], ring: FrameRing) -> None:
    r = rig()
    core = r.core()
    good, gone = _px(20), _px(21)
    core.take(_message(0, good, ring.put(good.tobytes()).fields()))
    r.run(core)
    core.take(_message(1, gone, ring.put(gone.tobytes()).fields()))  # taken: valid at the boundary
    _rewrite(ring, 4)  # then rewritten before the core works on it
    r.run(core)
    products = r.products()
    assert sorted((h["counter"], h["kind"]) for h, _ in products) == [(0, "full"), (0, "thumbnail")]
    for head, body in products:
        if head["kind"] == "full":
            assert np.array_equal(decode_product(body)[1], good)
    lost = r.named("frames_lost")
    assert [(e["ranges"], e["reason"], e["products"]) for e in lost] == \
        [([[1, 1]], "shm_overwritten", ["full", "thumbnail"])]
    assert core.accounts.open == {}  # the frame is accounted for: named, not left open
    assert core.sample()["frames_lost"] == 1


def test_in_place_frames_leave_no_mapping_broken_when_the_writer_restarts(tmp_path: Path) -> None:
    """A writer that restarts replaces its ring (same name, new file): frames in work keep the old mapping,
    and the next frame attaches to the new ring."""
    name = f"inplace-{uuid.uuid4().hex[:12]}"
    first = FrameRing(name, 2, NBYTES)
    try:
        px = _px(30)
        frame = _in_place(first, 30, px)
        first.close()
        second = FrameRing(name, 2, NBYTES)
        try:
            assert frame.intact() and np.array_equal(frame.pixels, px)  # the old mapping outlives its file
            px2 = _px(31)
            frame2 = frame_from_message(_message(31, px2, second.put(px2.tobytes()).fields()), in_place=True)
            assert np.array_equal(frame2.pixels, px2) and frame2.intact()
            assert frame.intact() and np.array_equal(frame.pixels, px)
        finally:
            second.close()
    finally:
        first.close()
