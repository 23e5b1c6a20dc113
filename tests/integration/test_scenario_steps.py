"""The mission steps against real processes (the runner's supervisor, free ports, short time scales):
the relay's control port (a window closed for a while, a relay out and back, the link changed, its clock
stepped), process faults (a hang ended by CONT, a SIGKILL the supervisor restarts, a restart), a full disk
(RLIMIT_FSIZE on the running process) and a ballast file, a request uplinked through the ground's queue and
judged on its stages; and the shipped uplink scenario (issue 13's done-when). Every wait is bounded by the
scenario's timeout_s and the subprocess timeout; the runner ends every process it started."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "configs" / "scenarios"


def run(scenario: Path, out: Path, timeout_s: float = 180.0) -> tuple[int, str, dict[str, Any] | None]:
    p = subprocess.run([sys.executable, "-m", "pdh.cli_scenario", str(scenario), "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    report_path = out / "scenario-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return p.returncode, p.stdout + p.stderr, report


def contact(relay: Any, **kw: Any) -> dict[str, Any]:
    return {"expect": {"event": "contact_changed", "from": "relay", "fields": {"relay": relay}, "since": "step",
                       "within_s": 5, **kw}}


STEPS: list[dict[str, Any]] = [
    contact("relay_a", since="start"),
    {"link": {"window": "closed", "duration_s": 2}},
    contact(None, since=None),
    contact("relay_a"),
    {"link": {"relay_out": "relay_a"}},
    contact(None, since=None),
    {"link": {"relay_in": "relay_a"}},
    contact("relay_a", since=None),
    {"link": {"set": {"loss": 0.1, "corrupt": 0.001, "rate_bps": 2000000}, "relay": "relay_a"}},
    {"link": {"clock_step_s": 200}},
    {"link": {"status": True, "result": {"overrides.clock_offset_s": 200.0, "contact": None}}},
    {"link": {"clear": True}},
    {"link": {"status": True, "result": {"contact": "relay_a", "overrides.forced": None}}},
    {"request": {"frame": "full", "camera": "navcam", "counter": 1, "expect": "rejected", "timeout_s": 30}},
    {"id": "hang", "signal": {"process": "downlink", "signal": "STOP", "hold_s": 2}},
    {"after": 2.5, "expect": {"telemetry": "downlink", "channel": "contact", "value": {"exists": True},
                              "since": "step", "within_s": 10}},
    {"id": "kill", "signal": {"process": "downlink", "signal": "KILL"}},
    {"expect": {"telemetry": "downlink", "channel": "contact", "value": {"exists": True}, "since": "kill",
                "within_s": 20}},
    {"restart": {"process": "ground"}},
    {"expect": {"telemetry": "ground", "channel": "commands_accepted", "value": {"exists": True},
                "since": "step", "within_s": 20}},
    {"disk": {"process": "downlink", "limit_bytes": 1}},
    {"disk": {"process": "downlink", "lift": True}},
    {"disk": {"process": "downlink", "ballast_bytes": 1 << 20}},
    {"disk": {"process": "downlink", "ballast_bytes": 0}},
    {"expect": {"telemetry": "downlink", "channel": "store_fill", "value": {"lt": 0.9}, "during_s": 2}},
    {"expect": {"event": "command_stage", "from": "ground", "unique": "stage", "fields": {"id": 1}}},
]


# one window of 150 s per 300 s orbit from t=0: the whole test runs inside it, and a clock stepped by 200 s
# reads the plan in its gap
PLAN = {"relays": [{"name": "relay_a", "period_s": 300, "lander_windows_s": [[0, 150]], "rate_bps": 1000000,
                    "latency_ms": 200}]}


def test_every_mission_step_against_real_processes(tmp_path: Path) -> None:
    steps = []  # since: None -> the previous step (the moment the link changed; 'step' would come after it)
    for i, s in enumerate(STEPS):
        s = json.loads(json.dumps(s))
        if "expect" in s and s["expect"].get("since", "x") is None:
            s["expect"]["since"] = f"s{i - 1}"
        s.setdefault("id", f"s{i}")
        steps.append(s)
    scenario = {"scenario": "mission_steps", "config": str(SCENARIOS / "bench_uplink.yaml"),
                "contact_epoch": {"at_s": 0, "startup_s": 8}, "timeout_s": 140, "steps": steps,
                "overrides": {"downlink": PLAN, "relay": PLAN, "ground": PLAN}}
    path = tmp_path / "steps.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    rc, text, report = run(path, tmp_path / "out")
    assert rc == 0, text
    assert report is not None and report["ok"]
    assert report["processes"]["downlink"]["starts"] == 2 and len(report["processes"]["downlink"]["exits"]) == 1
    assert report["processes"]["ground"]["starts"] == 2 and not report["processes"]["ground"]["exits"]
    assert not (tmp_path / "out" / "store" / ".scenario-ballast").exists()


def test_the_shipped_uplink_outside_window_scenario_passes(tmp_path: Path) -> None:
    rc, text, report = run(SCENARIOS / "uplink_outside_window.yaml", tmp_path / "out")
    assert rc == 0, text
    assert report is not None and report["ok"]
    queued = next(s for s in report["steps"] if s["id"] == "queued")
    assert [x["stage"] for x in queued["seen"]][-3:] == ["received", "accepted", "completed"]
    assert all(not p["exits"] for p in report["processes"].values())
