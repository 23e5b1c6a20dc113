"""The scenario campaign of issue 15 (configs/scenarios/, docs/campaign.md), run whole, once: every scenario
passes. The reports (campaign-junit.xml, index.html and a page per scenario) go to OUT/campaign/ inside the
repository (ignored by git; CI keeps the run's directory), and the test prints where. A failure names each
scenario that failed, the expectation and the report's reason.

Not the reliability campaign of issue 12 (tests/integration/test_campaign.py): that one is one long run of
random kills; this one is the mission's phases and faults, each scripted and judged on its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "configs" / "scenarios"
OUT = ROOT / "OUT" / "campaign"
TIMEOUT_S = 900  # the campaign takes 6 to 8 minutes on two cores; this only bounds a hang


def _failures(out: Path) -> list[str]:
    """Each failed step or check of each scenario: scenario, step, what it expected, and why it failed."""
    lines = []
    for report_path in sorted(out.glob("*/scenario-report.json")):
        report: dict[str, Any] = json.loads(report_path.read_text())
        if report.get("ok"):
            continue
        name = report.get("scenario", report_path.parent.name)
        for step in report.get("steps", []):
            if step.get("ok") is not True:
                lines.append(f"{name}: step {step.get('index')} {step.get('id')}: {step.get('what', '')}\n"
                             f"    -> {step.get('detail', '')}")
        for check in report.get("checks", []):
            if not check.get("ok"):
                lines.append(f"{name}: check {check.get('name')}: {check.get('detail', '')}")
    return lines


@pytest.mark.timeout(TIMEOUT_S + 60)  # the suite's 300 s per test is less than the campaign takes
def test_the_whole_scenario_campaign_passes(capsys: pytest.CaptureFixture[str]) -> None:
    if OUT.exists():
        shutil.rmtree(OUT)  # the runner wants a new or empty directory; the last run's reports go
    with capsys.disabled():
        print(f"\nscenario campaign reports: {OUT / 'index.html'} (JUnit: {OUT / 'campaign-junit.xml'})")
    p = subprocess.run([sys.executable, "-m", "pdh.cli_scenario", str(SCENARIOS), "--out", str(OUT)], cwd=ROOT,
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    summary = p.stdout[p.stdout.rfind("\n\n"):] if "\n\n" in p.stdout else p.stdout[-3000:]
    assert p.returncode == 0, ("the scenario campaign failed:\n" + "\n".join(_failures(OUT))
                               + f"\n{summary}\n{p.stderr[-2000:]}")
    assert (OUT / "index.html").exists() and (OUT / "campaign-junit.xml").exists()
    ran = sorted(r.parent.name for r in OUT.glob("*/scenario-report.json"))
    shipped = sorted(f.stem for f in SCENARIOS.glob("*.yaml") if not f.stem.startswith("bench"))
    assert len(ran) == len(shipped), (ran, shipped)
