"""A stored sequence on real processes: camera emulator -> driver -> bus -> imaging, steered by the sequencer,
which is SIGKILLed and restarted between two steps: the second step runs once, the first never again. The
sequence is built as over the uplink: SEQ_LOAD of the first step (compact form), SEQ_APPEND of the second."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import msgpack
import pytest
import zmq

from framework.bus.client import Subscriber
from framework.bus.commands import CommandClient
from tests.conftest import free_port

pytestmark = pytest.mark.integration

CAMERA = "navcam"
H, W = 128, 160
GAP_S = 8.0  # between the burst and the lossy product: the sequencer is killed and restarted in it


def _config() -> dict[str, Any]:
    ports = {n: free_port() for n in ("bus_pub", "bus_sub", "cam_link", "cam_cmd", "cam_ctl", "products",
                                       "imaging_cmd", "seq_cmd")}
    return {
        "version": 1,
        "security": {"curve": False},
        "endpoints": {n: f"tcp://127.0.0.1:{p}" for n, p in ports.items()},
        "processes": {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
            "cam_emulator": {"kind": "hil.camera", "endpoints": {"link": "cam_link", "control": "cam_ctl"},
                             "camera": CAMERA, "seed": 11,
                             "profile": {"width": W, "height": H, "bit_depth": 12, "pattern": "mono",
                                         "max_frame_rate_hz": 20.0, "readout_s": 0.005}},
            "cam_driver": {"kind": "drivers.camera", "endpoints": {"link": "cam_link", "bus_pub": "bus_pub",
                                                                   "command": "cam_cmd"},
                           "camera": CAMERA, "frame_rate_hz": 4.0, "stream_on_start": False,
                           "profile": {"width": W, "height": H}},
            "imaging": {"kind": "fsw.imaging", "cameras": [CAMERA], "thumbnail_px": 32, "recent_frames": 8,
                        "endpoints": {"bus_pub": "bus_pub", "bus_sub": "bus_sub", "products": "products",
                                      "command": "imaging_cmd"}},
            "sequencer": {"kind": "fsw.sequencer", "endpoints": {"bus_pub": "bus_pub", "command": "seq_cmd"},
                          "late_after_s": 30.0, "reply_timeout_s": 30.0},
        },
    }


class Bus:
    """Everything seen on the topics of interest, gathered while waiting (every wait bounded)."""

    def __init__(self, zctx: zmq.Context, endpoint: str) -> None:
        self.sub = Subscriber(zctx, endpoint, ["evt.sequencer", "tlm.sequencer", "tlm.imaging", "tlm.cam_driver",
                                               f"frame.{CAMERA}"])
        self.seen: list[Any] = []

    def wait(self, pred: Any, timeout_s: float, what: str) -> Any:
        for msg in self.seen:
            if pred(msg):
                return msg
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            msg = self.sub.recv(200)
            if msg is None:
                continue
            self.seen.append(msg)
            if pred(msg):
                return msg
        raise AssertionError(f"no {what} within {timeout_s} s; events: {self.events()}")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [m.header.fields for m in self.seen if m.topic == "evt.sequencer"
                and (name is None or m.header.fields.get("name") == name)]


def _step_result(step: int, status: str) -> Any:
    return lambda m: (m.topic == "evt.sequencer" and m.header.fields.get("name") == "step_result"
                      and m.header.fields.get("step") == step and m.header.fields.get("status") == status)


def test_a_sequence_survives_a_sigkill_between_steps_and_runs_each_step_once(write_config: Any,
                                                                            processes: Any) -> None:
    raw = _config()
    cfg = write_config(raw)
    ep = raw["endpoints"]
    zctx = zmq.Context()
    bus = Bus(zctx, ep["bus_sub"])
    pull = zctx.socket(zmq.PULL)  # imaging's products (the downlink's port, taken by the test)
    pull.bind(ep["products"])
    seq = CommandClient(zctx, ep["seq_cmd"])
    try:
        for name in ("broker", "imaging", "cam_emulator", "cam_driver", "sequencer"):
            processes.start(cfg, name)
        for topic in ("tlm.imaging", "tlm.cam_driver", "tlm.sequencer"):
            bus.wait(lambda m, t=topic: m.topic == t, 30.0, topic)
        bus.wait(lambda m: m.topic == "tlm.cam_driver" and m.header.fields.get("link_state") == "up", 30.0,
                 "the camera link")
        time.sleep(0.5)  # imaging's frame subscription joins the broker

        steps = [{"rel": 0, "target": "cam_driver", "cmd": "CAPTURE_BURST", "args": {"count": 5}},
                 {"rel": GAP_S, "target": "imaging", "cmd": "MAKE_LOSSY",
                  "args": {"camera": CAMERA, "pick": "best", "budget_bytes": 8000}}]
        bad = seq.call("SEQ_LOAD", {"name": "bad", "steps_json": json.dumps([steps[0], {**steps[1], "args": {}}])})
        assert bad[-1].status == "rejected" and bad[-1].reason.startswith("step 1 (imaging MAKE_LOSSY)"), bad
        # built from two commands, as over the uplink: the burst (compact form), then the product appended
        compact = ["r", 0, "cam_driver", "CAPTURE_BURST", [5]]
        loaded = seq.call("SEQ_LOAD", {"name": "burst_best", "steps_json": json.dumps([compact])})
        assert loaded[-1].status == "completed", loaded
        append = {"name": "burst_best", "steps_json": json.dumps({"at": 1, "steps": steps[1:]})}
        appended = seq.call("SEQ_APPEND", append)
        assert appended[-1].status == "completed" and appended[-1].result["steps"] == 2, appended
        again = seq.call("SEQ_APPEND", append)  # sent again: refused, nothing added twice
        assert again[-1].status == "rejected" and "'at' is 1" in again[-1].reason, again
        assert seq.call("SEQ_START", {"name": "burst_best"})[-1].status == "completed"

        bus.wait(_step_result(0, "completed"), 30.0, "the burst's completion")
        processes.stop("sequencer", sig=signal.SIGKILL)  # between the steps: the next is GAP_S after the burst
        processes.start(cfg, "sequencer")
        bus.wait(lambda m: m.topic == "evt.sequencer" and m.header.fields.get("name") == "seq_resumed", 30.0,
                 "seq_resumed after the restart")
        bus.wait(_step_result(1, "completed"), 60.0, "the lossy product's completion")
        bus.wait(lambda m: m.topic == "evt.sequencer" and m.header.fields.get("name") == "seq_completed", 10.0,
                 "seq_completed")

        dispatched = [e["step"] for e in bus.events("step_dispatched")]
        assert dispatched == [0, 1], dispatched  # across both lives: each step once
        shown = seq.call("SEQ_SHOW", {"name": "burst_best"})[-1]
        assert shown.status == "completed"
        assert [r["status"] for r in shown.result["results"]] == ["completed", "completed"]
        assert shown.result["state"] == "done"

        time.sleep(1.0)  # frames the burst sent have all reached the bus by now
        frames = [m for m in bus.seen if m.topic == f"frame.{CAMERA}"]
        assert len(frames) == 5, len(frames)  # the burst ran once
        lossy = []
        end = time.monotonic() + 20.0
        while not lossy and time.monotonic() < end:
            if pull.poll(200):
                head = pull.recv_multipart()[0]
                meta = msgpack.unpackb(head)
                if meta.get("kind") == "lossy":
                    lossy.append(meta)
        assert lossy, "no lossy product from the imaging core"
        health = bus.wait(lambda m: m.topic == "tlm.sequencer" and m.header.fields.get("steps_completed", 0) >= 1,
                          10.0, "the sequencer's health")
        assert health.header.fields["state_write_errors"] == 0
    finally:
        processes.stop_all()
        seq.close()
        pull.close()
        bus.sub.close()
        zctx.destroy(linger=0)


def test_with_curve_the_steps_go_as_a_delegate_acting_for_whoever_loaded_the_sequence(write_config: Any,
                                                                                      processes: Any) -> None:
    """Every command port takes only authorised keys; the sequencer's steps carry the loader's name."""
    from framework.bus.auth import operator_client
    from framework.config import load_config
    from framework.process import ensure_keys

    raw = _config()
    raw["security"] = {"curve": True}
    raw["processes"].pop("imaging")
    cfg = write_config(raw)
    config = load_config(str(cfg)).for_run(processes.out)
    ensure_keys(config, processes.out)
    zctx = zmq.Context()
    bus = Bus(zctx, raw["endpoints"]["bus_sub"])
    seq = operator_client(zctx, config, processes.out, "sequencer")
    try:
        for name in ("broker", "cam_emulator", "cam_driver", "sequencer"):
            processes.start(cfg, name)
        for topic in ("tlm.cam_driver", "tlm.sequencer"):
            bus.wait(lambda m, t=topic: m.topic == t, 30.0, topic)
        bus.wait(lambda m: m.topic == "tlm.cam_driver" and m.header.fields.get("link_state") == "up", 30.0,
                 "the camera link")
        steps = [{"rel": 0, "target": "cam_driver", "cmd": "CAPTURE_BURST", "args": {"count": 2}}]
        loaded = seq.call("SEQ_LOAD", {"name": "pair", "steps_json": json.dumps(steps)}, timeout_s=20.0)
        assert loaded and loaded[-1].status == "completed", loaded
        assert seq.call("SEQ_START", {"name": "pair"})[-1].status == "completed"
        end = time.monotonic() + 30.0
        shown: Any = None
        while time.monotonic() < end:
            shown = seq.call("SEQ_SHOW", {"name": "pair"})[-1].result
            if shown["state"] == "done":
                break
            time.sleep(0.3)
        assert shown["state"] == "done" and shown["operator"] == "operator", shown
        assert [r["status"] for r in shown["results"]] == ["completed"], shown["results"]
        plain = CommandClient(zctx, raw["endpoints"]["seq_cmd"])  # no key: refused at the handshake
        assert plain.call("SEQ_LIST", timeout_s=2.0) == []
        plain.close()
    finally:
        processes.stop_all()
        seq.close()
        bus.sub.close()
        zctx.destroy(linger=0)
