"""``pdh scenario`` over several files or a folder, with a fake run in place of real processes: which
files are scenarios, every file loaded before anything runs, one output directory each, the summary
table, the campaign's JUnit XML and index page, and the exit status."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

from pdh.cli_scenario import run_campaign, scenario_files
from pdh.scenario.report import format_summary, summary_row
from tests.unit.pdh.scenario.test_report_junit import a_report, check_structure
from tests.unit.pdh.scenario.test_report_page import Page

ROOT = Path(__file__).resolve().parents[4]
SCENARIOS = ROOT / "configs" / "scenarios"


class FakeRun:
    """Writes the report a run of each named scenario would; ``failing`` names those that fail."""

    def __init__(self, failing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.failing = failing
        self.ran: list[tuple[str, Path]] = []

    def __call__(self, file: Path, out: Path) -> int:
        out.mkdir(parents=True)
        name = out.name
        self.ran.append((Path(file).name, out))
        report = a_report(name=name)
        if name not in self.failing:
            report["steps"] = [s for s in report["steps"] if s["ok"] is True]
            report["steps_ok"], report["ok"] = len(report["steps"]), True
        report["files"] = {"html": str(out / "scenario-report.html")}
        (out / "scenario-report.json").write_text(json.dumps(report))
        return 0 if report["ok"] else 1


def test_a_folder_means_its_scenarios_not_the_bench_config() -> None:
    files, campaign = scenario_files([str(SCENARIOS)])
    names = {f.name for f in files}
    assert campaign and "bench.yaml" not in names
    assert {"boom_jam.yaml", "camera_corrupt.yaml", "boom_deploy.yaml"} <= names
    one, campaign = scenario_files([str(SCENARIOS / "boom_jam.yaml")])
    assert one == [SCENARIOS / "boom_jam.yaml"] and not campaign


def test_campaign_runs_each_into_its_own_directory_and_summarises(tmp_path: Path) -> None:
    lines: list[str] = []
    run = FakeRun(failing={"boom_jam"})
    files = [SCENARIOS / "camera_corrupt.yaml", SCENARIOS / "boom_jam.yaml"]
    rc = run_campaign(files, tmp_path / "c", run, emit=lines.append)
    assert rc == 1
    assert [(f, o.name) for f, o in run.ran] == [("camera_corrupt.yaml", "camera_corrupt"), ("boom_jam.yaml", "boom_jam")]
    table = "\n".join(lines)
    assert "camera_corrupt  PASSED" in table and "boom_jam        FAILED" in table
    assert "failed: 3 deployed" in table
    assert "FAILED: 1/2 scenarios passed, 1 failed, 0 could not run" in table
    root = ET.parse(tmp_path / "c" / "campaign-junit.xml").getroot()
    check_structure(root)
    assert [s.get("name") for s in root] == ["scenario.camera_corrupt", "scenario.boom_jam"]
    assert root.get("failures") == "1"
    index = Page((tmp_path / "c" / "index.html").read_text())
    assert index.fetching == [("a", "href", "camera_corrupt/scenario-report.html"),
                              ("a", "href", "boom_jam/scenario-report.html")]  # relative, inside the campaign


def test_campaign_passes_when_every_scenario_does(tmp_path: Path) -> None:
    lines: list[str] = []
    rc = run_campaign([SCENARIOS / "camera_corrupt.yaml", SCENARIOS / "camera_corrupt.yaml"], tmp_path / "c",
                      FakeRun(), emit=lines.append)
    assert rc == 0 and "PASSED: 2/2 scenarios passed" in "\n".join(lines)
    assert (tmp_path / "c" / "camera_corrupt").is_dir() and (tmp_path / "c" / "camera_corrupt-2").is_dir()


def test_one_bad_file_and_nothing_runs(tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"config": str(SCENARIOS / "bench.yaml"),
                                   "steps": [{"inject": {"process": "boom_emulator", "fault": "meteor"}}]}))
    run = FakeRun()
    rc = run_campaign([SCENARIOS / "camera_corrupt.yaml", bad], tmp_path / "c", run, emit=lambda s: None)
    assert rc == 2 and run.ran == []
    assert "steps[0].inject.fault" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_campaign_output_in_use_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("")
    run = FakeRun()
    assert run_campaign([SCENARIOS / "camera_corrupt.yaml"], tmp_path / "c", run, emit=lambda s: None) == 2
    assert run.ran == []


def test_summary_of_a_run_that_could_not_start() -> None:
    rows = [summary_row("a", a_report()), summary_row("b", None, "ports in use")]
    lines = format_summary(rows)
    assert lines[2].split()[:2] == ["b", "ERROR"] and "ports in use" in lines[2]
    assert lines[-1] == "FAILED: 0/2 scenarios passed, 1 failed, 1 could not run"
