"""Every camera fault end to end: emulator + driver + broker as real processes, a bus subscriber watching.

One rig per module (processes started once, small frames, short stalls). For each fault the control
port arms it; the test waits for the driver's event and checks that every frame published on the bus is
sound: its pixels match the header CRC, and the emulator's manifest records that counter with the same
CRC and no fault. The serial test runs the same over the emulator's paced pseudo-terminal.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import zmq

from framework.bus.client import Subscriber
from framework.bus.commands import CommandClient
from framework.crc import pixels_crc32c
from tests.conftest import Processes, free_port

pytestmark = pytest.mark.integration

CAMERA = "navcam"


def rig_config(serial: bool) -> dict[str, Any]:
    ports = {n: free_port() for n in ("bus_pub", "bus_sub", "cam_link", "cam_cmd", "cam_ctl")}
    profile: dict[str, Any] = {"width": 64, "height": 48, "max_frame_rate_hz": 20.0, "readout_s": 0.002,
                               "exposure_us": 2000, "boot_s": 0.3}
    if serial:
        profile.update(binning=2)  # 32x24 at 12 bits: about 17 ms a frame at 921 600 baud
    return {
        "version": 1,
        "security": {"curve": False},  # plain command ports: this test is not about keys
        "endpoints": {n: f"tcp://127.0.0.1:{port}" for n, port in ports.items()},
        "bus": {"sndhwm": 100, "rcvhwm": 100},
        "processes": {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
            "cam_emulator": {"kind": "hil.camera", "endpoints": {"link": "cam_link", "control": "cam_ctl"},
                             "camera": CAMERA, "seed": 5, "profile_file": "monitor" if serial else "navcam",
                             "profile": profile},
            "cam_driver": {"kind": "drivers.camera", "camera": CAMERA,
                           "endpoints": {"link": "cam_link", "bus_pub": "bus_pub", "command": "cam_cmd"},
                           "profile_file": "monitor" if serial else "navcam", "profile": profile,
                           "frame_rate_hz": 10.0, "reconnect_max_s": 0.3, "frame_timeout_s": 0.5,
                           "latch_timeout_s": 2.0, "reply_timeout_s": 2.0},
        },
    }


class Rig:
    def __init__(self, tmp: Path, serial: bool) -> None:
        import yaml

        self.raw = rig_config(serial)
        self.cfg = tmp / "faults.yaml"
        self.cfg.write_text(yaml.safe_dump(self.raw))
        self.procs = Processes(tmp / "out")
        self.zctx = zmq.Context()
        ep = self.raw["endpoints"]
        self.sub = Subscriber(self.zctx, ep["bus_sub"], [f"frame.{CAMERA}", "evt.cam_driver"])
        self.control = CommandClient(self.zctx, ep["cam_ctl"])
        self.bad: list[str] = []

    def start(self) -> "Rig":
        for name in ("broker", "cam_emulator", "cam_driver"):
            self.procs.start(self.cfg, name)
        assert self.wait_for(lambda m: m.header.kind == "frame", 20.0), "no frame from the rig"
        return self

    def manifest(self) -> dict[int, dict[str, Any]]:
        path = self.procs.out / "hil" / "manifest.jsonl"
        return {r["counter"]: r for r in map(json.loads, path.read_text().splitlines())}

    def check_frame(self, msg: Any) -> None:
        f = msg.header.fields
        crc = pixels_crc32c(bytes(msg.buffers[0]))
        if crc != f["crc32c"]:
            self.bad.append(f"frame {f['counter']}: pixels do not match the header CRC")
        rec = self.manifest().get(f["counter"])
        deadline = time.monotonic() + 2.0
        while rec is None and time.monotonic() < deadline:  # the record follows the frame's last byte
            time.sleep(0.02)
            rec = self.manifest().get(f["counter"])
        if rec is None or rec["crc32c"] != crc or rec.get("fault"):
            self.bad.append(f"frame {f['counter']}: not a sound frame of the manifest: {rec}")

    def wait_for(self, pred: Any, timeout_s: float = 10.0) -> list[Any]:
        """Messages until one satisfies ``pred`` (checking every frame on the way); [] on timeout."""
        seen: list[Any] = []
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            msg = self.sub.recv(100)
            if msg is None:
                continue
            seen.append(msg)
            if msg.header.kind == "frame":
                self.check_frame(msg)
            if pred(msg):
                return seen
        return []

    def event(self, name: str, timeout_s: float = 10.0) -> list[Any]:
        return self.wait_for(lambda m: m.header.kind == "evt" and m.header.fields["name"] == name, timeout_s)

    def inject(self, fault: str, **args: Any) -> None:
        replies = self.control.call("inject_fault", {"fault": fault, **args})
        assert replies and replies[-1].status == "completed", replies

    def close(self) -> None:
        for name in ("cam_driver", "cam_emulator", "broker"):
            if name in self.procs.procs:
                self.procs.stop(name)
        self.sub.close()
        self.control.close()
        self.zctx.destroy(linger=0)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = Rig(tmp_path_factory.mktemp("camfaults"), serial=False)
    try:
        yield r.start()
    finally:
        r.close()


FAULT_EVENTS = [
    ("drop_frame", {"count": 2}, "frame_counter_gap"),
    ("corrupt", {"count": 1, "bytes": 3}, "frame_crc_error"),
    ("truncate", {"count": 1, "keep": 0.4}, "frame_truncated"),
    ("late", {"count": 1, "delay_s": 0.6}, "frame_late"),
    ("garbage", {"bytes": 300}, "link_garbage"),
    ("stall", {"duration_s": 1.0}, "frame_timeout"),
    ("disconnect", {}, "link_down"),
    ("stuck_pixels", {"count": 30}, "pixel_defects"),
    ("dead_pixels", {"count": 4}, "pixel_defects"),
    ("over_temperature", {"delta_c": 60.0}, "over_temperature"),
    ("latch_up", {}, "camera_power_cycled"),
]


@pytest.mark.parametrize("fault,args,event", FAULT_EVENTS, ids=[f[0] for f in FAULT_EVENTS])
def test_fault_gives_its_event_and_no_corrupt_frame_is_published(rig: Rig, fault: str, args: dict[str, Any],
                                                                  event: str) -> None:
    rig.inject(fault, **args)
    assert rig.event(event), f"no {event} event after {fault}"
    # The driver keeps going: sound frames flow again after the fault.
    assert rig.wait_for(lambda m: m.header.kind == "frame", 15.0), f"no frame after {fault}"
    if fault == "over_temperature":
        rig.inject("over_temperature", delta_c=0.0)
        assert rig.event("temperature_nominal")
    assert rig.bad == []


def test_unknown_fault_is_rejected_naming_the_known_ones(rig: Rig) -> None:
    [reply] = rig.control.call("inject_fault", {"fault": "meteor"})
    assert reply.status == "rejected" and "drop_frame" in reply.reason


def test_boom_angle_is_set_through_the_control_port(rig: Rig) -> None:
    [*_, done] = rig.control.call("set_boom_angle", {"deg": 90.0})
    assert done.status == "completed" and done.result["boom_angle_deg"] == 90.0
    assert rig.control.call("set_boom_angle", {"deg": -5})[-1].status == "rejected"


def test_serial_line_carries_frames_and_survives_corruption_and_garbage(tmp_path: Path) -> None:
    r = Rig(tmp_path, serial=True)
    try:
        r.start()
        r.inject("corrupt", count=1)
        assert r.event("frame_crc_error")
        r.inject("garbage", bytes=200)
        assert r.event("link_garbage")
        frames = r.wait_for(lambda m: m.header.kind == "frame", 10.0)
        assert frames and frames[-1].header.fields["shape"] == [24, 32]
        assert r.bad == []
    finally:
        r.close()
