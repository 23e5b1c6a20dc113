"""Auto-exposure over real processes: camera emulator, camera driver, broker and imaging core.

The imaging core grades each frame and commands SET_EXPOSURE on the camera driver's
command port; the emulator's sensor answers with brighter or darker frames.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from framework.bus.client import Subscriber
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def _config(write_config, exposure_us: int) -> tuple[Path, dict[str, str]]:
    ep = {k: f"tcp://127.0.0.1:{free_port()}" for k in
          ("bus_pub", "bus_sub", "cam_link", "cam_ctl", "cam_cmd", "imaging_cmd", "products")}
    cfg = write_config({
        "version": 1,
        "endpoints": ep,
        "processes": {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
            "cam_emulator": {"kind": "hil.camera", "endpoints": {"link": "cam_link", "control": "cam_ctl"},
                             "camera": "cam", "seed": 5, "profile_file": "navcam",
                             "profile": {"width": 256, "height": 256, "exposure_us": exposure_us,
                                         "max_frame_rate_hz": 20.0}},
            "cam_driver": {"kind": "drivers.camera", "endpoints": {"link": "cam_link", "bus_pub": "bus_pub",
                                                                  "command": "cam_cmd"},
                           "camera": "cam", "profile_file": "navcam", "frame_rate_hz": 8.0},
            "imaging": {"kind": "fsw.imaging", "cameras": ["cam"], "thumbnail_px": 32,
                        "endpoints": {"bus_pub": "bus_pub", "bus_sub": "bus_sub", "products": "products",
                                      "command": "imaging_cmd"},
                        "autoexposure": {"enabled": True, "target_frac": 0.6, "exposure_max_us": 2_000_000},
                        "camera_commands": {"cam": "cam_cmd"}},
        },
    })
    return cfg, ep


@pytest.mark.parametrize("start_exposure_us", [300, 150_000])
def test_loop_drives_the_real_camera_to_target_without_oscillating(write_config, processes,
                                                                   start_exposure_us) -> None:
    cfg, ep = _config(write_config, start_exposure_us)
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)  # the downlink's place: take the products so nothing backs up
    pull.bind(ep["products"])
    try:
        for name in ("broker", "imaging", "cam_emulator", "cam_driver"):
            processes.start(cfg, name)
        sub = Subscriber(ctx, ep["bus_sub"], ["product.thumbnail"])
        levels: list[float] = []
        end = time.monotonic() + 60
        while time.monotonic() < end and len(levels) < 30:
            while pull.poll(0):
                pull.recv_multipart()
            m = sub.recv(200)
            if m is not None:
                g = m.header.fields["grades"]
                levels.append(g["p99_5_dn"])
        assert len(levels) >= 20, f"only {len(levels)} frames graded"
        target = 0.6 * 4095
        last = np.array(levels[-5:])
        assert np.all(np.abs(last - target) / target < 0.15), levels
        errors = np.log(target / np.maximum(np.array(levels), 1.0))
        big = [np.sign(e) for e in errors if abs(e) > np.log(1.15)]
        flips = sum(1 for a, b in zip(big, big[1:]) if a != b)
        assert flips <= 1, f"oscillated: {levels}"
    finally:
        ctx.destroy(linger=0)
