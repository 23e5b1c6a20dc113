"""Boom in view (issue 6 item 5): the mechanism emulator moves the boom in the camera emulator's scene.

Real processes: broker, camera emulator + driver, mechanism emulator (with ``camera_controls``
naming the camera emulator's control port) + deploy driver. After a deployment commanded over
CURVE, the camera scene holds the boom's true angle and the frames change where the boom is
drawn, and (almost) nowhere else.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import yaml
import zmq

from framework.bus.auth import authorize, generate_keypair
from framework.bus.client import Subscriber
from framework.bus.commands import CommandClient, CurveClientKeys
from fsw.imaging.grades import change_fraction, frame_blocks
from hil.camera.view import boom_segment
from tests.conftest import Processes, free_port

pytestmark = pytest.mark.integration

SIZE = 384


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.keys = tmp / "keys"
        self.service = generate_keypair(self.keys, "service")
        self.operator = generate_keypair(self.keys, "operator")
        authorize(self.keys, self.keys / "operator.key")
        names = ("bus_pub", "bus_sub", "cam_link", "cam_cmd", "cam_ctl", "boom_link", "boom_ctl", "boom_cmd")
        self.ep = {n: f"tcp://127.0.0.1:{free_port()}" for n in names}
        profile = {"width": SIZE, "height": SIZE}
        procs = {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
            "cam_emu": {"kind": "hil.camera", "endpoints": {"link": "cam_link", "control": "cam_ctl"},
                        "camera": "navcam", "seed": 11, "profile_file": "navcam", "profile": profile,
                        "scene": {"sun_elevation_deg": 30.0, "sun_azimuth_deg": 200.0}},
            "cam_drv": {"kind": "drivers.camera", "endpoints": {"link": "cam_link", "bus_pub": "bus_pub",
                                                                "command": "cam_cmd"},
                        "camera": "navcam", "profile_file": "navcam", "profile": profile, "frame_rate_hz": 4.0},
            "boom_emu": {"kind": "hil.deploy", "endpoints": {"link": "boom_link", "control": "boom_ctl",
                                                             "bus_pub": "bus_pub"},
                         "profile": "spring_boom", "time_scale": 5.0, "camera_controls": {"navcam": "cam_ctl"}},
            "boom_drv": {"kind": "drivers.deploy", "endpoints": {"link": "boom_link", "bus_pub": "bus_pub",
                                                                 "command": "boom_cmd"},
                         "mechanism": "boom", "profile": "spring_boom", "keys_dir": str(self.keys),
                         "confirm_camera": "cam_drv"},
        }
        self.config = tmp / "bench.yaml"
        self.config.write_text(yaml.safe_dump({"version": 1, "endpoints": self.ep, "processes": procs}))
        self.procs = Processes(tmp / "out")
        self.zctx = zmq.Context()

    def start(self) -> "Bench":
        for name in ("broker", "cam_emu", "cam_drv", "boom_emu", "boom_drv"):
            self.procs.start(self.config, name)
        self.frames = Subscriber(self.zctx, self.ep["bus_sub"], ["frame.navcam"], 4)
        self.cam_ctl = CommandClient(self.zctx, self.ep["cam_ctl"],  # every port of the run is CURVE
                                     CurveClientKeys(self.operator.public, self.operator.secret, self.service.public))
        self.op = CommandClient(self.zctx, self.ep["boom_cmd"],
                                CurveClientKeys(self.operator.public, self.operator.secret, self.service.public))
        return self

    def frame(self, timeout_s: float = 20.0) -> np.ndarray:
        """A frame captured after this call (older queued frames are skipped)."""
        while self.frames.recv(timeout_ms=0) is not None:
            pass
        t_asked = time.time()
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            m = self.frames.recv(timeout_ms=200)
            if m is None or m.header.fields["t_capture"] < t_asked:
                continue
            f = m.header.fields
            return np.frombuffer(m.buffers[0], dtype=f["dtype"]).reshape(f["shape"]).copy()
        raise AssertionError("no frame from the camera")

    def scene_boom_deg(self) -> float:
        r = self.cam_ctl.call("status", {}, 5.0)
        assert r and r[-1].status == "completed", r
        return float(r[-1].result["boom_angle_deg"])

    def close(self) -> None:
        try:
            self.procs.stop_all()
        finally:
            self.zctx.destroy(linger=0)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    try:
        yield b.start()
    finally:
        b.close()


def boom_mask(shape: tuple[int, int], angle_deg: float, half_width_px: float) -> np.ndarray:
    """Pixels within ``half_width_px`` of the boom's drawn centre line."""
    (hx, hy), (tx, ty) = boom_segment(shape, angle_deg)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    dx, dy = tx - hx, ty - hy
    t = np.clip(((xx - hx) * dx + (yy - hy) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(xx - (hx + t * dx), yy - (hy + t * dy)) <= half_width_px


def deploy(b: Bench) -> dict[str, Any]:
    end = time.monotonic() + 20
    while time.monotonic() < end:  # the driver is ready once it answers STATUS with its link up
        r = b.op.call("STATUS", {}, 1.0)
        if r and r[-1].status == "completed" and r[-1].result["link_up"]:
            break
    arm = b.op.call("ARM", {"mechanism": "boom"}, 5.0)
    assert arm and arm[-1].status == "completed", arm
    fire = b.op.call("FIRE", {"mechanism": "boom"}, 30.0)
    assert fire and fire[-1].status == "completed", fire
    return fire[-1].result


def test_deployed_boom_appears_in_the_frames_where_the_scene_draws_it(bench: Bench) -> None:
    assert bench.scene_boom_deg() == pytest.approx(0.0, abs=0.5)  # stowed: pushed at start
    before = [bench.frame(), bench.frame()]
    verdict = deploy(bench)
    assert verdict["outcome"] == "deployed"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and abs(bench.scene_boom_deg() - verdict["angle_deg"]) > 1.0:
        time.sleep(0.1)
    assert bench.scene_boom_deg() == pytest.approx(90.0, abs=1.0)
    after = bench.frame()

    change_before = change_fraction(frame_blocks(before[1]), frame_blocks(before[0]), 12)
    change_after = change_fraction(frame_blocks(after), frame_blocks(before[1]), 12)
    assert change_before == 0.0 and change_after is not None and change_after > 0.0
    after, before = after.astype(np.float64), [b.astype(np.float64) for b in before]
    shape = after.shape
    width_px = max(1.0, 0.012 * SIZE / 2)  # the drawn boom's half width (hil/camera/view.py)
    on_boom = boom_mask(shape, 90.0, width_px * 0.6)
    away = ~boom_mask(shape, 90.0, width_px * 4)
    change = np.abs(after - before[1])
    noise = np.abs(before[1] - before[0])
    assert change[on_boom].mean() > 10 * np.median(noise[away]) + 1.0
    assert np.median(change[away]) <= 2 * np.median(noise[away]) + 1.0
    assert math.isfinite(verdict["angle_deg"])
