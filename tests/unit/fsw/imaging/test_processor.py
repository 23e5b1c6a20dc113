from __future__ import annotations

import time

import numpy as np

from framework.config import validate_config
from fsw.imaging.frame import Frame
from fsw.imaging.processor import FrameProcessor
from framework.crc import pixels_crc32c


def _settings(**over):
    raw = {"version": 1, "endpoints": {"a": "tcp://127.0.0.1:1", "b": "tcp://127.0.0.1:2",
                                       "c": "tcp://127.0.0.1:3", "d": "tcp://127.0.0.1:4"},
           "processes": {"imaging": {"kind": "fsw.imaging", "cameras": ["cam"], "thumbnail_px": 32,
                                     "endpoints": {"bus_pub": "a", "bus_sub": "b", "products": "c", "command": "d"},
                                     **over}}}
    return validate_config(raw).processes["imaging"]


def _frame(counter: int, value: int | None = None) -> Frame:
    rng = np.random.default_rng(counter)
    px = rng.integers(200, 3000, (48, 64)).astype(np.uint16) if value is None else np.full((48, 64), value, np.uint16)
    return Frame("cam", counter, px, 12, "mono", 1000, 1.0, -10.0, time.time(), pixels_crc32c(px))


def _run(proc: FrameProcessor) -> None:
    for _ in range(2000):
        proc.step()
        if not proc.busy():
            break
        time.sleep(0.001)
    proc.close()


def test_products_come_out_thumbnail_first_and_in_frame_order() -> None:
    out, events = [], []
    proc = FrameProcessor(_settings(workers=2), out.append, lambda n, f: events.append(n))
    for i in range(5):
        proc.accept(_frame(i))
    _run(proc)
    fulls = [p.counter for p in out if p.kind == "full"]
    assert fulls == list(range(5))
    for i in range(5):
        kinds = [p.kind for p in out if p.counter == i]
        assert kinds == ["thumbnail", "full"]
    assert events == []


def test_full_queue_keeps_only_a_thumbnail_and_names_the_frame() -> None:
    out, events = [], []
    proc = FrameProcessor(_settings(queue_max=2), out.append, lambda n, f: events.append((n, f)))
    for i in range(4):
        proc.accept(_frame(i))  # nothing stepped: the queue fills at 2
    _run(proc)
    assert [p.counter for p in out if p.kind == "full"] == [0, 1]
    assert sorted(p.counter for p in out if p.kind == "thumbnail") == [0, 1, 2, 3]
    names = [(n, f["counters"], f["reason"]) for n, f in events]
    assert names == [("frames_thumbnail_only", [2], "queue_full"), ("frames_thumbnail_only", [3], "queue_full")]
    assert proc.sample()["frames_thumbnail_only"] == 2


def test_grade_rule_sends_saturated_frames_as_thumbnail_only() -> None:
    out, events = [], []
    proc = FrameProcessor(_settings(thumbnail_only_rule={"max_saturated_frac": 0.5}), out.append,
                          lambda n, f: events.append((n, f.get("reason"))))
    proc.accept(_frame(1, value=4095))
    proc.accept(_frame(2))
    _run(proc)
    assert [(p.counter, p.kind) for p in out] == [(1, "thumbnail"), (2, "thumbnail"), (2, "full")]
    assert events == [("frames_thumbnail_only", "rule")]


def test_confirmation_frame_jumps_the_queue_and_its_products_say_so() -> None:
    from dataclasses import replace

    out = []
    proc = FrameProcessor(_settings(workers=1), out.append, lambda n, f: None)
    for i in range(3):
        proc.accept(_frame(i))
    proc.accept(replace(_frame(9), priority="confirmation"))
    _run(proc)
    assert [p.counter for p in out if p.kind == "full"][0] == 9
    assert all(p.meta.get("priority") == "confirmation" for p in out if p.counter == 9)
    assert all("priority" not in p.meta and p.meta["calibration"] == "none" for p in out if p.counter != 9)
