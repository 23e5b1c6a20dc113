"""The scenario runner end to end: ``python -m pdh.cli_scenario FILE --out DIR`` (``pdh scenario``).

Real processes started by the runner's supervisor on free ports; the shipped jam and camera-fault
scenarios must pass, a scenario whose expectation cannot hold must fail with a report saying what
was heard instead, and a bad scenario file is refused before anything starts.
"""

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


def test_boom_jam_scenario_passes_with_the_partial_verdict(tmp_path: Path) -> None:
    rc, text, report = run(SCENARIOS / "boom_jam.yaml", tmp_path / "out")
    assert rc == 0, text
    assert report is not None and report["ok"] and "PASSED" in text
    fire = next(s for s in report["steps"] if s["id"] == "fire")
    assert fire["ok"] and "partially deployed at" in fire["detail"]
    assert all(not p["exits"] for p in report["processes"].values())
    assert (tmp_path / "out" / "scenario-config.yaml").exists() and (tmp_path / "out" / "keys").is_dir()


def test_camera_fault_scenario_passes_with_the_drivers_events(tmp_path: Path) -> None:
    rc, text, report = run(SCENARIOS / "camera_corrupt.yaml", tmp_path / "out")
    assert rc == 0, text
    assert report is not None and set(report["processes"]) == {"broker", "navcam_emulator", "navcam_driver"}


def test_expectation_that_cannot_hold_fails_the_run_and_reports_what_was_heard(tmp_path: Path) -> None:
    scenario = {
        "scenario": "never",
        "config": str(SCENARIOS / "bench.yaml"),
        "start": ["broker", "boom_emulator"],
        "steps": [
            {"inject": {"process": "boom_emulator", "fault": "slow", "params": {"factor": 2}}},
            {"expect": {"event": "fault_injected", "from": "boom_emulator", "fields": {"fault": "jam"},
                        "within_s": 1.0}},
            {"control": {"process": "boom_emulator", "cmd": "TRUTH", "result": {"state": "stowed"}}},
        ],
    }
    path = tmp_path / "never.yaml"
    path.write_text(yaml.safe_dump(scenario))
    rc, text, report = run(path, tmp_path / "out")
    assert rc == 1, text
    assert report is not None and not report["ok"] and "FAILED: 2/3" in text
    failed = report["steps"][1]
    assert failed["ok"] is False and "fault='slow'" in failed["detail"]
    assert report["steps"][2]["ok"] is True  # later steps still run


def test_bad_scenario_file_is_refused_before_anything_starts(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"config": str(SCENARIOS / "bench.yaml"),
                                    "steps": [{"inject": {"process": "boom_emulator", "fault": "meteor"}}]}))
    rc, text, report = run(path, tmp_path / "out", timeout_s=60)
    assert rc == 2 and "steps[0].inject.fault" in text and report is None
    assert not (tmp_path / "out").exists()


def test_output_directory_in_use_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "something").write_text("x")
    rc, text, _ = run(SCENARIOS / "camera_corrupt.yaml", out, timeout_s=60)
    assert rc == 2 and "--out" in text
