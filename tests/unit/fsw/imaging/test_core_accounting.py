"""The imaging core in-process: bad frame messages never kill it, frames survive its restart or are named,
reports go out until heard back, the downlink's confirmations end the hand-off.

The core's sockets are real (tcp on 127.0.0.1): the test binds a SUB where it publishes (a tap), a PULL
where it pushes products; messages from the bus are handed to the core directly (``take``/``accept``)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import msgpack
import numpy as np
import pytest
import zmq

from framework.bus.frames_shm import FrameRing
from framework.bus.message import Header, Message, decode_message
from framework.config import load_config
from framework.crc import pixels_crc32c
from framework.process import ProcessContext
from fsw.imaging.process import ImagingCore
from fsw.imaging.product import decode_product
from tests.conftest import free_port

H, W = 24, 32


class Log:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda event, **fields: self.records.append((level, event, fields))


class Rig:
    """Endpoints the core connects to, bound by the test; ``core()`` builds one on the same output directory."""

    def __init__(self, tmp_path: Path, write_config: Any, **imaging: Any) -> None:
        self.zctx = zmq.Context()
        self.ports = {k: free_port() for k in ("bus_pub", "bus_sub", "products", "command")}
        ep = {k: f"tcp://127.0.0.1:{v}" for k, v in self.ports.items()}
        self.config = load_config(write_config({"version": 1, "endpoints": ep, "processes": {"imaging": {
            "kind": "fsw.imaging", "cameras": ["cam"], "thumbnail_px": 16, "lossless_codec": "zstd", "workers": 1,
            "endpoints": {"bus_pub": "bus_pub", "bus_sub": "bus_sub", "products": "products", "command": "command"},
            **imaging}}}))
        self.out = tmp_path / "out"
        self.tap = self.zctx.socket(zmq.SUB)
        self.tap.setsockopt(zmq.SUBSCRIBE, b"")
        self.tap.bind(ep["bus_pub"])
        self.pull = self.zctx.socket(zmq.PULL)
        self.pull.bind(ep["products"])
        self.cores: list[ProcessContext] = []
        self.events: list[dict[str, Any]] = []

    def core(self) -> ImagingCore:
        ctx = ProcessContext(name="imaging", config=self.config, out_dir=self.out, log=Log())
        self.cores.append(ctx)
        core = ImagingCore(ctx)
        self._joined(core)
        return core

    def _joined(self, core: ImagingCore) -> None:
        """Until the tap hears the core's health, what it publishes may fall before the connection."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            core.health.tick(force=True)
            if self.tap.poll(20):
                m = decode_message(self.tap.recv_multipart())
                if m.topic.startswith("evt."):
                    self.events.append(m.header.fields)
                return
        raise AssertionError("the core's publisher never reached the tap")

    def crash(self, core: ImagingCore) -> None:
        """Stop using ``core`` as SIGKILL would: no closing turn, no last commit; its sockets go."""
        core.proc.pool.shutdown(wait=True)
        core.ctx.zmq.destroy(linger=0)

    def run(self, core: ImagingCore, turns: int = 20) -> None:
        for _ in range(turns):
            core.turn()
            if not core.proc.busy():
                break
        self.drain_events()

    def drain_events(self) -> list[dict[str, Any]]:
        while self.tap.poll(50):
            m = decode_message(self.tap.recv_multipart())
            if m.topic.startswith("evt."):
                self.events.append(m.header.fields)
        return self.events

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.drain_events() if e.get("name") == name]

    def products(self, timeout_s: float = 5.0) -> list[tuple[dict[str, Any], bytes]]:
        got = []
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and self.pull.poll(200):
            head, body = self.pull.recv_multipart()
            got.append((msgpack.unpackb(head), body))
        return got

    def close(self) -> None:
        for ctx in self.cores:
            if ctx._zmq is not None:
                ctx._zmq.destroy(linger=0)
        self.zctx.destroy(linger=0)


@pytest.fixture
def rig(tmp_path: Path, write_config: Any) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(**imaging: Any) -> Rig:
        made.append(Rig(tmp_path, write_config, **imaging))
        return made[-1]

    try:
        yield make
    finally:
        for r in made:
            r.close()


def _px(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(100, 4000, (H, W), dtype=np.uint16)


def _fields(n: int, px: np.ndarray, **over: Any) -> dict[str, Any]:
    f = dict(camera="cam", counter=n, shape=[H, W], dtype="uint16", bit_depth=12, pattern="mono",
             exposure_us=1000, gain=1.0, temp_c=-20.0, t_capture=1.0, crc32c=pixels_crc32c(px))
    f.update(over)
    return f


def _msg(fields: dict[str, Any], buffers: list[Any] | None = None, topic: str = "frame.cam",
         src: str = "drv") -> Message:
    return Message(topic, Header(src, 0, 0.0, "frame", fields), buffers if buffers is not None else [])


def _inline(n: int) -> Message:
    px = _px(n)
    return _msg(_fields(n, px), [px.tobytes()])


BAD_FRAMES = [
    ("evilcam on this camera's topic", _msg(_fields(1, _px(1), camera="evilcam"), [_px(1).tobytes()])),
    ("evilcam on its own topic", _msg(_fields(1, _px(1), camera="evilcam"), [_px(1).tobytes()],
                                      topic="frame.evilcam")),
    ("a path for a camera id on this camera's topic", _msg(_fields(1, _px(1), camera="../../../x"),
                                                           [_px(1).tobytes()])),
    ("a path for a camera id", _msg(_fields(1, _px(1), camera="../../../x"), [_px(1).tobytes()],
                                    topic="frame.../../../x")),
    ("counter beyond u64", _msg(_fields(2**64, _px(1)), [_px(1).tobytes()])),
    ("negative counter", _msg(_fields(-1, _px(1)), [_px(1).tobytes()])),
    ("counter as text", _msg(_fields("7", _px(1)), [_px(1).tobytes()])),  # type: ignore[arg-type]
    ("shape of booleans", _msg(_fields(3, _px(1), shape=[True, True]), [b"\x00\x00"])),
    ("unknown pattern", _msg(_fields(4, _px(1), pattern="XYZW"), [_px(1).tobytes()])),
    ("gain not finite", _msg(_fields(5, _px(1), gain=float("nan")), [_px(1).tobytes()])),
    ("a Bayer frame one pixel high", _msg(_fields(6, np.zeros((1, 5), np.uint16), shape=[1, 5], pattern="RGGB"),
                                          [np.zeros((1, 5), np.uint16).tobytes()])),
    ("camera id a map", _msg(_fields(8, _px(1), camera={"a": 1}), [_px(1).tobytes()])),
    ("shm handle naming no ring", _msg(_fields(9, _px(1), shm={"name": "../x", "slot": 0, "generation": 2,
                                                               "length": H * W * 2}))),
]


@pytest.mark.parametrize("what, msg", BAD_FRAMES, ids=[w for w, _ in BAD_FRAMES])
def test_a_bad_frame_message_is_dropped_and_never_kills_the_core(rig: Callable[..., Rig], what: str,
                                                                  msg: Message) -> None:
    """Before the fix, ``camera: "evilcam"`` (or ``../../../x``) on frame.cam raised KeyError in the processor,
    and a Bayer frame one pixel high cv2.error, each ending the core."""
    r = rig()
    core = r.core()
    core.accept(msg)
    for _ in range(5):
        core.proc.step()
    assert core.rejected == 1
    assert core.proc.counters["frames_accepted"] == 0
    assert r.products(timeout_s=0.1) == []


def test_all_bad_frame_messages_in_a_row_leave_the_core_working(rig: Callable[..., Rig]) -> None:
    r = rig()
    core = r.core()
    for what, msg in BAD_FRAMES:
        core.accept(msg)
        core.proc.step()
    assert core.rejected == len(BAD_FRAMES)
    assert core.proc.counters["frames_accepted"] == 0
    assert r.products(timeout_s=0.3) == []


def test_rejections_are_one_rate_limited_event_with_a_count(rig: Callable[..., Rig]) -> None:
    r = rig()
    core = r.core()
    for _, msg in BAD_FRAMES:
        core.take(msg)
    r.run(core, turns=2)
    rejected = r.named("frame_rejected")
    assert len(rejected) == 1 and rejected[0]["count"] == 1
    assert core.events.suppressed == len(BAD_FRAMES) - 1


def test_a_frame_whose_message_is_bad_is_named_lost_and_good_ones_still_become_products(
        rig: Callable[..., Rig]) -> None:
    r = rig()
    core = r.core()
    core.take(_inline(0))
    px = _px(1)
    core.take(_msg(_fields(1, px, crc32c=pixels_crc32c(px) ^ 1), [px.tobytes()]))
    core.take(_inline(2))
    r.run(core)
    kinds = sorted((h["counter"], h["kind"]) for h, _ in r.products())
    assert kinds == [(0, "full"), (0, "thumbnail"), (2, "full"), (2, "thumbnail")]
    lost = r.named("frames_lost")
    assert [(e["camera"], e["ranges"], e["reason"]) for e in lost] == [("cam", [[1, 1]], "crc")]
    assert core.accounts.open == {}  # no downlink to confirm: handed over once pushed


def test_after_a_crash_open_frames_are_made_again_from_the_ring_or_named_lost(rig: Callable[..., Rig]) -> None:
    ring = FrameRing(f"acct-{uuid.uuid4().hex[:10]}", 3, H * W * 2)
    try:
        r = rig()
        a = r.core()
        a.handoff.acked = True  # as with a downlink in the config: products wait for its product_stored
        frames = {n: _px(10 + n) for n in (0, 1)}
        for n, px in frames.items():
            a.take(_msg(_fields(n, px, shm=ring.put(px.tobytes()).fields())))
        r.run(a)
        first = r.products()
        assert len(first) == 4
        a.take(Message("evt.downlink", Header("downlink", 0, 0.0, "evt", {"name": "product_stored",
                                                                          "id": "cam-00000001-thumbnail"})))
        a.downlinks = {"downlink"}
        a.take(Message("evt.downlink", Header("downlink", 1, 0.0, "evt", {"name": "product_stored",
                                                                          "id": "cam-00000001-thumbnail"})))
        a.turn()  # the confirmation is journalled
        r.crash(a)
        ring.put(b"\0" * (H * W * 2))
        ring.put(b"\0" * (H * W * 2))  # frame 0's slot is rewritten; frame 1's still holds it
        b = r.core()
        r.run(b)
        again = r.products()
        assert sorted((h["counter"], h["kind"]) for h, _ in again) == [(1, "full")]
        p, pixels = decode_product(again[0][1])
        assert np.array_equal(pixels, frames[1])
        lost = r.named("frames_lost")
        assert [(e["ranges"], e["reason"], e["products"]) for e in lost] == \
            [([[0, 0]], "restart_pixels_overwritten", ["full", "thumbnail"])]
        assert b.remade == 1
    finally:
        ring.close()


def test_frames_of_inline_transport_open_at_a_crash_are_named_and_later_gaps_too(rig: Callable[..., Rig]) -> None:
    r = rig()
    a = r.core()
    a.handoff.acked = True
    a.take(_inline(0))
    r.run(a)
    r.crash(a)
    b = r.core()
    b.take(_inline(3))  # 1 and 2 came while no core was there
    r.run(b)
    lost = [(e["ranges"], e["reason"]) for e in r.named("frames_lost")]
    assert lost == [([[0, 0]], "restart_pixels_not_held"), ([[1, 2]], "not_received")]


def test_a_report_goes_out_again_until_the_core_hears_it_back(rig: Callable[..., Rig]) -> None:
    r = rig(report_retry_s=0.1)
    core = r.core()
    core.take(_inline(2))  # 0 and 1 never came: a report
    r.run(core)
    deadline = time.monotonic() + 5
    while len(r.named("frames_lost")) < 2 and time.monotonic() < deadline:
        core.turn()
    sent = r.named("frames_lost")
    assert len(sent) >= 2 and {e["report"] for e in sent} == {1}
    core.take(Message("evt.imaging", Header("imaging", 9, 0.0, "evt", dict(sent[0]))))
    core.turn()
    n = len(r.named("frames_lost"))
    time.sleep(0.5)
    for _ in range(5):
        core.turn()
    assert len(r.named("frames_lost")) == n
    assert core.accounts.reports == {}


def test_the_downlink_confirms_by_product_stored_or_by_refusing_a_duplicate(rig: Callable[..., Rig]) -> None:
    r = rig(handoff_timeout_s=0.5)
    core = r.core()
    core.handoff.acked, core.downlinks = True, {"downlink"}
    core.take(_inline(0))
    r.run(core)
    assert len(r.products()) == 2 and core.accounts.open
    core.take(Message("evt.downlink", Header("downlink", 0, 0.0, "evt", {"name": "product_stored",
                                                                        "id": "cam-00000000-thumbnail"})))
    time.sleep(0.6)
    core.turn()
    assert [h["kind"] for h, _ in r.products(timeout_s=1)] == ["full"]  # pushed again: not yet confirmed
    core.take(Message("evt.downlink", Header("downlink", 1, 0.0, "evt", {
        "name": "product_rejected", "reason": "product cam-00000000-full is already stored"})))
    core.take(Message("evt.downlink", Header("forger", 2, 0.0, "evt", {"name": "product_stored", "id": "x"})))
    assert core.accounts.open == {} and core.handoff.sample()["products_unacked"] == 0


def test_a_product_the_downlink_refuses_for_good_names_its_frame_and_is_not_pushed_again(
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
        "name": "product_rejected", "id": "cam-00000000-full", "reason": "no room: the quota is full"})))
    time.sleep(0.6)
    r.run(core, turns=3)
    assert r.products(timeout_s=0.5) == []
    lost = r.named("frames_lost")
    assert [(e["ranges"], e["reason"], e["products"], e["product"]) for e in lost] == \
        [([[0, 0]], "downlink_refused", ["full"], "cam-00000000-full")]
    assert core.accounts.open == {}
