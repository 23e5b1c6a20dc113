"""The capture path degrades by policy, not by loss: a frame used in place whose ring slot is due to be rewritten
before its full product could be done keeps only its thumbnail (reason ``falling_behind``), and a full product the
downlink's store refuses by its quota leaves its frame thumbnail only (reason ``store_full``).

The ring is real (:class:`~framework.bus.frames_shm.FrameRing`); the clock is the test's and the camera's recent
work time is set, so what is judged is the rule, not this machine's speed."""

from __future__ import annotations

import math
import uuid
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from framework.bus.frames_shm import FrameRing
from framework.bus.message import Header, Message
from fsw.imaging.ringwatch import RingWatch, write_number
from tests.unit.fsw.imaging.test_core_accounting import Rig, _inline, rig  # noqa: F401 - the fixture is used
from tests.unit.fsw.imaging.test_in_place_shm import NBYTES, Sink, _message, _px, _run

SLOTS = 8
RATE_HZ = 10.0


@pytest.fixture
def ring() -> Iterator[FrameRing]:
    r = FrameRing(f"behind-{uuid.uuid4().hex[:12]}", SLOTS, NBYTES)
    try:
        yield r
    finally:
        r.close()


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _stream(ring: FrameRing, counters: range) -> list[tuple[Message, np.ndarray]]:
    """Frames as a camera at RATE_HZ puts them in the ring: capture times 1/RATE_HZ apart."""
    out = []
    for n in counters:
        px = _px(n)
        out.append((_message(n, px, ring.put(px.tobytes()).fields(), t_capture=1000.0 + n / RATE_HZ), px))
    return out


def _processor(sink: Sink, clock: Clock, said: list[tuple[str, dict[str, Any]]], **settings: Any) -> Any:
    from fsw.imaging.processor import FrameProcessor
    from tests.unit.fsw.imaging.test_in_place_shm import _settings

    return FrameProcessor(_settings(**settings), sink.products.append, lambda n, f: None, monotonic=clock,
                          named=lambda name, frame, kinds, fields: sink.named.append(
                              (name, frame.counter, kinds, fields)),
                          limited=lambda name, fields: said.append((name, fields)))


def _accept_all(proc: Any, frames: list[tuple[Message, np.ndarray]]) -> None:
    from fsw.imaging.frame import frame_from_message

    for msg, _ in frames:
        proc.accept(frame_from_message(msg, in_place=True))


# -- the ring watch -------------------------------------------------------------------------------------
def test_the_ring_watch_numbers_writes_across_slots_and_laps_and_times_the_writer() -> None:
    gen0 = 1 << 40
    assert write_number(0, gen0 + 2, 4) - write_number(3, gen0, 4) == 1  # slot 3 then slot 0 of the next lap
    watch = RingWatch()
    assert watch.seconds_left("r", 0, gen0 + 2, 8, now=0.0) == math.inf  # nothing seen: no claim on the frame
    for slot in range(4):  # the bus brought four at once; their capture times are 0.1 s apart
        watch.seen("r", slot, gen0 + 2, 8, t_capture=50.0 + slot / 10, now=10.0)
        if slot == 2:  # three frames are no stream yet (single captures on command look like this too)
            assert watch.seconds_left("r", 0, gen0 + 2, 8, now=10.0) == math.inf
    assert watch.lag("r", 0, gen0 + 2, 8) == 3 and watch.writes_left("r", 0, gen0 + 2, 8) == 4
    assert watch.seconds_left("r", 0, gen0 + 2, 8, now=10.0) == pytest.approx(0.4)  # rate from the capture times
    assert watch.seconds_left("r", 3, gen0 + 2, 8, now=10.05) == pytest.approx(0.65)
    assert watch.seconds_left("r", 3, gen0 + 2, 8, now=10.15) == pytest.approx(0.6)  # one write late: it goes on
    # overdue by two write times: a burst that ended or a writer its reader holds back; no rewrite is coming
    assert watch.seconds_left("r", 3, gen0 + 2, 8, now=10.25) == math.inf
    assert watch.seconds_left("r", 3, gen0 + 2, 8, now=99.0) == math.inf
    watch.seen("r", 0, 2, 8, t_capture=1.0, now=11.0)  # a restarted writer: generations from a new base
    assert watch.lag("r", 0, 2, 8) == 0 and watch.seconds_left("r", 0, 2, 8, now=11.0) == math.inf


# -- the processor --------------------------------------------------------------------------------------
def test_frames_whose_slot_is_due_before_their_work_could_be_done_keep_only_their_thumbnail(
        ring: FrameRing) -> None:
    sink, clock, said = Sink(), Clock(), []
    proc = _processor(sink, clock, said, workers=1, queue_max=16, ring_copies=0)  # no copies allowed
    proc.work_s["cam"] = {"lossless": 0.38}  # what a frame of this camera lately took (wall)
    frames = _stream(ring, range(7))  # 7 frames in an 8-slot ring: the oldest has 1 write to go (0.1 s)
    _accept_all(proc, frames)
    proc.step()
    _run(proc)
    # needed 1.5 x 0.38 s (and the thumbnails' few ms): only frames with 6 writes to go (0.6 s) or more get
    # their full product
    assert sorted(p.counter for p in sink.products if p.kind == "full") == [5, 6]
    assert sorted(p.counter for p in sink.products if p.kind == "thumbnail") == list(range(7))
    degraded = [(n, c, sorted(k), f["reason"]) for n, c, k, f in sink.named]
    assert degraded == [("frames_thumbnail_only", c, ["full"], "falling_behind") for c in range(5)]
    assert all(f["seconds_left"] < f["seconds_needed"] for _, _, _, f in sink.named)
    assert proc.overwritten == 0  # degraded before the writer came round: nothing lost
    assert proc.thumbnail_only_by == {"falling_behind": 5} and proc.counters["frames_thumbnail_only"] == 5
    assert proc.sample()["thumbnail_only_by"] == {"falling_behind": 5}
    assert said and all(name == "capture_degraded" and f["reason"] == "falling_behind" for name, f in said)
    for p in sink.products:  # what was made is the frames' own pixels, made while their slots held them
        if p.kind == "full":
            assert p.crc32c == frames[p.counter][0].header.fields["crc32c"]


def test_frames_due_too_soon_are_copied_out_while_copies_are_allowed_and_keep_their_full_product(
        ring: FrameRing) -> None:
    sink, clock, said = Sink(), Clock(), []
    proc = _processor(sink, clock, said, workers=1, queue_max=16, ring_copies=3)
    proc.work_s["cam"] = {"lossless": 0.38}
    frames = _stream(ring, range(7))  # as above: frames 0-4 are due before their work could be done
    _accept_all(proc, frames)
    proc.step()
    for n in range(7, 7 + 2 * SLOTS):  # the writer comes round the ring twice: every slot is rewritten
        ring.put(_px(n).tobytes())
    _run(proc)
    # the three most at risk (the oldest) were copied and keep their full product; the next two, beyond the
    # copies allowed, keep only a thumbnail; 5 and 6 had time but were rewritten under their work: lost
    fulls = {p.counter: p for p in sink.products if p.kind == "full"}
    assert sorted(fulls) == [0, 1, 2]
    for c, p in fulls.items():  # the copies are the frames' own pixels, whatever the ring holds now
        assert p.crc32c == frames[c][0].header.fields["crc32c"]
    assert proc.counters["frames_copied_out"] == 3
    named = {(c, f["reason"]) for n, c, _, f in sink.named if n == "frames_thumbnail_only"}
    assert named == {(3, "falling_behind"), (4, "falling_behind")}
    assert proc.sample()["frames_copied_out"] == 3


def test_a_frame_with_time_to_spare_or_a_camera_not_yet_timed_keeps_its_full_product(ring: FrameRing) -> None:
    sink, clock, said = Sink(), Clock(), []
    proc = _processor(sink, clock, said, workers=1, queue_max=16)
    _accept_all(proc, _stream(ring, range(3)))  # the camera's cost is not known yet: nothing is given up
    _run(proc)
    assert [p.counter for p in sink.products if p.kind == "full"] == [0, 1, 2] and sink.named == []
    sink2, said2 = Sink(), []
    proc2 = _processor(sink2, clock, said2, workers=1, queue_max=16)
    proc2.work_s["cam"] = {"front": 0.001, "lossless": 0.01}
    _accept_all(proc2, _stream(ring, range(10, 13)))
    _run(proc2)
    assert [p.counter for p in sink2.products if p.kind == "full"] == [10, 11, 12]
    assert sink2.named == [] and said2 == [] and proc2.thumbnail_only_by == {}


def test_a_slow_cameras_frame_still_waits_when_a_fast_camera_filled_its_share_of_the_queue(
        ring: FrameRing) -> None:
    slow = FrameRing(f"behind-slow-{uuid.uuid4().hex[:8]}", 4, NBYTES)
    try:
        sink, clock, said = Sink(), Clock(), []
        proc = _processor(sink, clock, said, workers=1, queue_max=3)
        _accept_all(proc, _stream(ring, range(5)))  # the fast camera: 3 may wait, the rest keep a thumbnail
        px = _px(50)
        from fsw.imaging.frame import frame_from_message
        proc.accept(frame_from_message(_message(50, px, slow.put(px.tobytes()).fields()), in_place=True))
        _run(proc)
        assert [(c, f["reason"]) for _, c, _, f in sink.named] == [(3, "queue_full"), (4, "queue_full")]
        assert sorted(p.counter for p in sink.products if p.kind == "full") == [0, 1, 2, 50]
    finally:
        slow.close()


def test_ring_margin_zero_turns_the_rule_off(ring: FrameRing) -> None:
    sink, clock, said = Sink(), Clock(), []
    proc = _processor(sink, clock, said, workers=1, queue_max=16, ring_margin=0.0)
    proc.work_s["cam"] = {"front": 0.05, "lossless": 0.30}
    _accept_all(proc, _stream(ring, range(4)))
    _run(proc)
    assert [p.counter for p in sink.products if p.kind == "full"] == [0, 1, 2, 3]


# -- the core: a store full by its quota ----------------------------------------------------------------
def test_a_full_product_refused_by_the_store_quota_leaves_its_frame_thumbnail_only_by_policy(
        rig: Callable[..., Rig]) -> None:
    r = rig(handoff_timeout_s=0.5)
    core = r.core()
    core.handoff.acked, core.downlinks = True, {"downlink"}
    core.take(_inline(0))
    r.run(core)
    assert len(r.products()) == 2
    core.take(Message("evt.downlink", Header("downlink", 0, 0.0, "evt", {"name": "product_stored",
                                                                        "id": "cam-00000000-thumbnail"})))
    core.take(Message("evt.downlink", Header("downlink", 1, 0.0, "evt", {
        "name": "product_rejected", "id": "cam-00000000-full",
        "reason": "store full: 4000 bytes of rest do not fit in 2000000000 and the eviction policy frees too little"})))
    r.run(core, turns=3)
    assert r.products(timeout_s=0.5) == []  # not pushed again
    assert r.named("frames_lost") == []
    only = r.named("frames_thumbnail_only")
    assert [(e["counters"], e["reason"], e["product"]) for e in only] == [([0], "store_full", "cam-00000000-full")]
    said = r.named("capture_degraded")
    assert said and said[0]["reason"] == "store_full" and said[0]["thumbnail_only_by"] == {"store_full": 1}
    assert core.sample()["thumbnail_only_by"] == {"store_full": 1}
    assert core.accounts.open == {}  # the thumbnail stored and the full named: the frame is accounted for
