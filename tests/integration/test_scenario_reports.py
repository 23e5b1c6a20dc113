"""The reports a bench keeps, from real runs: ``python -m pdh.cli_scenario A B --out DIR`` (``pdh scenario``)
runs the shipped camera-fault scenario and one whose expectation cannot hold, each into ``DIR/<name>``
with its JSON report, JUnit XML and HTML page; the campaign gets one JUnit document, an index page and a
summary table, and exits 1 because one failed.

The command runs in its own process group with a bounded wait; on timeout it gets SIGINT (the runner
stops its processes on the way out), then SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.pdh.scenario.test_report_junit import check_structure
from tests.unit.pdh.scenario.test_report_page import Page

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "configs" / "scenarios"


def run_cli(args: list[str], timeout_s: float = 240.0) -> tuple[int, str]:
    p = subprocess.Popen([sys.executable, "-m", "pdh.cli_scenario", *args], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGINT)
        try:
            out, _ = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
        pytest.fail(f"pdh scenario did not finish within {timeout_s:g} s:\n{out}")
    return p.returncode, out


def never_scenario(tmp_path: Path) -> Path:
    path = tmp_path / "never.yaml"
    path.write_text(yaml.safe_dump({
        "scenario": "never",
        "config": str(SCENARIOS / "bench.yaml"),
        "start": ["broker", "boom_emulator"],
        "steps": [
            {"inject": {"process": "boom_emulator", "fault": "slow", "params": {"factor": 2}}},
            {"expect": {"event": "fault_injected", "from": "boom_emulator", "fields": {"fault": "jam"},
                        "within_s": 1.0}},
            {"wait": 0.5},
        ],
    }))
    return path


def suite_of(root: ET.Element, name: str) -> ET.Element:
    suite = next((s for s in root if s.get("name") == f"scenario.{name}"), None)
    assert suite is not None, [s.get("name") for s in root]
    return suite


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_campaign_of_a_passing_and_a_failing_scenario_keeps_every_report(tmp_path: Path) -> None:
    out = tmp_path / "campaign"
    rc, text = run_cli([str(SCENARIOS / "camera_corrupt.yaml"), str(never_scenario(tmp_path)), "--out", str(out)])
    assert rc == 1, text
    assert "camera_corrupt  PASSED" in text and "never           FAILED" in text, text
    assert "FAILED: 1/2 scenarios passed, 1 failed, 0 could not run" in text

    # each run: its JSON report names the JUnit XML and HTML page beside it
    for name, ok in (("camera_corrupt", True), ("never", False)):
        report = read_json(out / name / "scenario-report.json")
        assert report["ok"] is ok
        assert report["files"] == {"junit": str(out / name / "scenario-junit.xml"),
                                   "html": str(out / name / "scenario-report.html")}
        assert all(not p["exits"] for p in report["processes"].values())

    # JUnit: one testcase per judged step and check; the failure says what was heard and what was logged
    root = ET.parse(out / "campaign-junit.xml").getroot()
    check_structure(root)
    cam = suite_of(root, "camera_corrupt")
    steps = read_json(out / "camera_corrupt" / "scenario-report.json")["steps"]
    assert int(cam.get("tests")) == len([s for s in steps if s["kind"] != "wait"]) + 1  # + the ready check
    assert cam.get("failures") == "0" and cam.get("errors") == "0"
    never = suite_of(ET.parse(out / "never" / "scenario-junit.xml").getroot(), "never")
    assert (never.get("tests"), never.get("failures")) == ("3", "1")
    failure = never.find("testcase/failure")
    assert failure is not None and "fault='slow'" in (failure.get("message") or "")
    assert "last lines of logs/boom_emulator.jsonl" in (failure.text or "")

    # HTML: the timeline, plots of what the processes published, the thumbnails section, no outside fetches
    page = Page((out / "camera_corrupt" / "scenario-report.html").read_text())
    assert page.timeline and {"timeline", "telemetry", "thumbnails", "failures"} <= set(page.sections)
    assert any(p.startswith("navcam_driver ") for p in page.plots), page.plots
    assert page.fetching == [] and "script" not in page.tags
    failed_page = Page((out / "never" / "scenario-report.html").read_text())
    assert "fault='slow'" in failed_page.text("failures")
    assert "logs/boom_emulator.jsonl" in failed_page.text("failures")

    index = Page((out / "index.html").read_text())
    assert ("a", "href", "never/scenario-report.html") in index.fetching
