"""Every frame accounted for while processes die: the imaging core and the broker are SIGKILLed during a short
run of the whole chain; afterwards every frame of the emulator's manifest is at the ground bit-exact or named
by an event (from the ground's ledger or the bus), and the verdict fails, naming it, when one is lost."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from framework.bus.client import Subscriber
from framework.bus.auth import operator_client
from framework.config import load_config
from pdh.demo import judge_frames
from pdh.verify import NAMING_EVENTS, FramesCheck
from tests.conftest import Processes
from tests.integration.test_demo_chain import small_demo_config

pytestmark = pytest.mark.integration

ORDER = ["broker", "ground_broker", "relay", "ground", "downlink", "imaging", "navcam_emulator", "navcam_driver"]


class BusEvents:
    """The events that name frames, heard on the lander's bus (the record pdh demo keeps too)."""

    def __init__(self, zctx: Any, endpoint: str) -> None:
        self.sub = Subscriber(zctx, endpoint, ["evt.", "product.thumbnail"])
        self.heard: list[tuple[str, dict[str, Any]]] = []
        self.products = 0
        self.thumbnails = 0

    def pump(self, for_s: float, until: Any = None) -> None:
        end = time.monotonic() + for_s
        while time.monotonic() < end and not (until and until()):
            m = self.sub.recv(timeout_ms=20)
            if m is None:
                continue
            if m.topic == "product.thumbnail":
                self.thumbnails += 1
            elif m.header.fields.get("name") in NAMING_EVENTS:
                self.heard.append((m.header.src, dict(m.header.fields)))
            elif m.header.fields.get("name") == "product_stored":
                self.products += 1


def _wait_for(events: BusEvents, pred: Any, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        events.pump(0.2)
    return bool(pred())


def _kill(processes: Processes, cfg: Path, name: str, down_s: float, events: BusEvents) -> None:
    processes.stop(name, sig=signal.SIGKILL)
    events.pump(down_s)
    processes.start(cfg, name)


def test_killing_the_imaging_core_and_the_broker_loses_no_frame_unnamed(tmp_path: Path, processes: Processes) -> None:
    import zmq

    cfg = small_demo_config(tmp_path)
    out = processes.out
    config = load_config(cfg)
    if hasattr(config, "for_run"):  # ipc:// endpoints live in the run's private directory
        config = config.for_run(out)
    for name in ORDER:
        processes.start(cfg, name)
    zctx = zmq.Context()
    events = BusEvents(zctx, config.reach("broker", "xpub"))
    try:
        assert _wait_for(events, lambda: events.products >= 2, 60), "no product stored within 60 s"
        _kill(processes, cfg, "imaging", 1.5, events)  # frames in its memory and unconfirmed products die
        events.pump(2.0)
        _kill(processes, cfg, "broker", 1.5, events)  # frames and events published meanwhile go nowhere
        events.pump(2.0)
        seen = events.thumbnails
        events.pump(5.0, until=lambda: events.thumbnails > seen)
        _kill(processes, cfg, "imaging", 0.2, events)  # as a thumbnail leaves: its full frame is in work
        events.pump(1.5)
        client = operator_client(zctx, config, out, "navcam_driver")  # the run's operator key: every port is CURVE
        assert client.call("STREAM_STOP", {}, timeout_s=10.0)[-1].status == "completed"
        client.close()
        events.pump(1.0)
        check: list[FramesCheck] = []

        def accounted() -> bool:
            check[:] = [judge_frames(out, config, events.heard)]
            return check[0].ok

        assert _wait_for(events, accounted, 120), check[0].failure()
    finally:
        events.sub.close()
        zctx.destroy(linger=0)
        processes.stop_all()
    final = judge_frames(out, config, events.heard)
    figures = final.summary()
    print(f"frames accounted after 2 imaging kills and 1 broker kill: {figures}")
    assert final.ok, final.failure()
    assert figures["frames_in_manifest"] >= 8 and figures["frames_at_ground"] >= 2
    # The verdict fails, naming the frame, when one is lost without an event.
    gone = final.at_ground[0]
    camera, counter = gone.split("/")
    (out / "ground" / f"{camera}-{int(counter):08d}-full.png").unlink()
    lost = judge_frames(out, config, events.heard)
    assert not lost.ok and lost.missing == {gone: ["full"]}
    assert gone in lost.failure()


def test_the_scenario_runner_counts_frames_against_the_manifest(tmp_path: Path) -> None:
    """``expect: {frames: accounted}`` on the demo chain: the runner's verdict on every manifest frame."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    scenario = {
        "scenario": "frames_accounted",
        "config": str(root / "configs" / "demo.yaml"),
        "overrides": {"navcam_emulator": {"profile": {"width": 320, "height": 256, "bit_depth": 12,
                                                      "pattern": "mono"}},
                      "navcam_driver": {"frame_rate_hz": 2.0}},
        "timeout_s": 150,
        "steps": [
            {"expect": {"event": "product_stored", "from": "downlink", "within_s": 60}},
            {"wait": 2.0},
            {"command": {"process": "navcam_driver", "cmd": "STREAM_STOP"}},
            {"expect": {"frames": "accounted", "within_s": 90, "min_frames": 3}},
        ],
    }
    path = tmp_path / "frames.yaml"
    path.write_text(__import__("yaml").safe_dump(scenario))
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "pdh.cli_scenario", str(path), "--out", str(out)], cwd=root,
                       capture_output=True, text=True, timeout=240)
    report = json.loads((out / "scenario-report.json").read_text())
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    frames = report["steps"][-1]
    assert frames["ok"] and "sound frames" in frames["detail"] and frames["seen"][0]["frames_unaccounted_count"] == 0
