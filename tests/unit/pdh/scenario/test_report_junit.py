"""The JUnit XML of a scenario run: one testcase per judged step and runner check, the right counts,
failures that say what was expected, what was seen and the concerned process's last log lines.

No JUnit XSD ships with the project (the common ones live in other projects' repositories), so the
document is read back with xml.etree and checked against the structure CI readers (Jenkins, GitLab,
GitHub reporters) take: testsuites > testsuite > (properties, testcase*, system-out?), a testcase
holding at most one of failure / error / skipped, and totals that add up.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from pdh.scenario.engine import StepResult
from pdh.scenario.evidence import gather_log_tails
from pdh.scenario.expect import Condition
from pdh.scenario.junit import junit_document, write_junit
from pdh.scenario.model import CommandAction, ExpectAction, Step, WaitAction
from pdh.scenario.report import build_report

SUITE_CHILDREN = {"properties", "testcase", "system-out", "system-err"}
CASE_CHILDREN = {"failure", "error", "skipped", "system-out", "system-err"}
VERDICTS = {"failure", "error", "skipped"}


def steps() -> list[Step]:
    return [
        Step(0, "arm", None, 0.0, CommandAction("boom_driver", "ARM", {})),
        Step(1, "2", None, 0.0, WaitAction(1.0)),
        Step(2, "deployed", None, 0.0, ExpectAction(Condition("evt.boom_driver"))),
        Step(3, "4", None, 0.0, ExpectAction(Condition("tlm.navcam_driver"))),
    ]


def results() -> list[StepResult]:
    return [
        StepResult(0, "arm", "command", "command boom_driver ARM -> completed", True, 0.0, 0.05, 0.0,
                   "completed (expected completed) after 0.05 s"),
        StepResult(1, "2", "wait", "wait 1 s", True, 0.05, 1.05, 0.0, "waited 1.00 s"),
        StepResult(2, "deployed", "expect", "expect evt.boom_driver {name: 'deploy_verdict'} within 5 s", False,
                   1.05, 6.05, 0.0, "not seen within 5 s: 3 on evt.boom_driver: armed, firing x2; "
                   "last near miss at t=4.10 s: outcome='partial'",
                   [{"t_s": 4.1, "topic": "evt.boom_driver", "fields": {"name": "deploy_verdict", "outcome": "partial"}}]),
        StepResult(3, "4", "expect", "expect tlm.navcam_driver within 5 s", None, None, None, 0.0,
                   "not run: scenario timeout (7 s)"),
    ]


def a_report(checks: list[dict[str, Any]] | None = None, exits: dict[str, list[int]] | None = None,
             name: str = "boom_test") -> dict[str, Any]:
    exits = exits or {}
    processes = {n: {"kind": k, "starts": 1 + len(exits.get(n, [])), "exits": exits.get(n, [])}
                 for n, k in (("broker", "bus.broker"), ("boom_driver", "drivers.deploy"),
                              ("navcam_driver", "drivers.camera"))}
    checks = checks if checks is not None else [{"name": "ready", "ok": True, "detail": "3 processes publishing health"}]
    return build_report(name, f"configs/scenarios/{name}.yaml", "OUT/x", results(), checks,
                        "2026-01-02T03:04:05+00:00", 7.5, processes)


def write_logs(out: Path, process: str, lines: list[str]) -> None:
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "logs" / f"{process}.jsonl").write_text("\n".join(lines) + "\n")


def check_structure(root: ET.Element) -> None:
    """What a JUnit reader relies on, and the totals adding up."""
    assert root.tag == "testsuites"
    for suite in root:
        assert suite.tag == "testsuite" and {c.tag for c in suite} <= SUITE_CHILDREN
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        for tag, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            assert int(suite.get(attr)) == sum(1 for c in cases if c.find(tag) is not None)
        float(suite.get("time"))
        for case in cases:
            assert case.get("name") and case.get("classname")
            float(case.get("time"))
            assert {c.tag for c in case} <= CASE_CHILDREN
            assert sum(1 for c in case if c.tag in VERDICTS) <= 1
            for v in case:
                if v.tag in ("failure", "error"):
                    assert v.get("message") and v.get("type")
    for attr in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(attr)) == sum(int(s.get(attr)) for s in root)


def parse(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def test_one_testcase_per_judged_step_and_check_with_counts(tmp_path: Path) -> None:
    path = write_junit(tmp_path / "j.xml", [a_report()])
    root = parse(path)
    check_structure(root)
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "scenario.boom_test"
    cases = suite.findall("testcase")
    # arm, deployed, step 4 (the wait judges nothing), and the ready check
    assert [c.get("name")[:2] for c in cases[:3]] == ["01", "03", "04"] and cases[3].get("name") == "ready"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("4", "1", "0", "1")
    assert cases[0].get("name") == "01 arm: command boom_driver ARM -> completed"
    assert cases[2].get("name") == "04 expect tlm.navcam_driver within 5 s"  # no id of its own: numbered only
    assert cases[3].get("classname") == "scenario.boom_test.runner"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["file"] == "configs/scenarios/boom_test.yaml" and props["ok"] == "False"


def test_failure_says_what_was_expected_seen_and_logged(tmp_path: Path) -> None:
    write_logs(tmp_path, "boom_driver", [json.dumps({"timestamp": f"T{i}", "level": "info", "event": f"line{i}"})
                                          for i in range(50)])
    report = a_report()
    path = write_junit(tmp_path / "j.xml", [report], tails=gather_log_tails(report, tmp_path, steps()))
    failure = parse(path).find("testsuite/testcase/failure")
    assert failure is not None and failure.get("type") == "expect"
    assert "last near miss at t=4.10 s: outcome='partial'" in (failure.get("message") or "")
    text = failure.text or ""
    assert "expected: expect evt.boom_driver {name: 'deploy_verdict'}" in text
    assert '"outcome": "partial"' in text  # the messages seen
    assert "last lines of logs/boom_driver.jsonl" in text and "T49 info line49" in text
    assert "line19" not in text  # only the last lines


def test_runner_checks_ready_is_an_error_and_deaths_a_failure(tmp_path: Path) -> None:
    checks = [{"name": "ready", "ok": False, "detail": "no health from ['navcam_driver'] within 30 s (see OUT/logs)"},
              {"name": "processes", "ok": False, "detail": "boom_driver exited [-9] (restarted by the supervisor)"}]
    write_logs(tmp_path, "navcam_driver", ['{"event": "link_down", "level": "warning"}'])
    (tmp_path / "logs" / "boom_driver.stderr").write_text("Traceback (most recent call last):\nKeyError: 'x'\n")
    report = a_report(checks, exits={"boom_driver": [-9]})
    root = parse(write_junit(tmp_path / "j.xml", [report], tails=gather_log_tails(report, tmp_path, steps())))
    check_structure(root)
    suite = root.find("testsuite")
    assert suite is not None and (suite.get("failures"), suite.get("errors")) == ("2", "1")
    by_name = {c.get("name"): c for c in suite.findall("testcase")}
    error = by_name["ready"].find("error")
    assert error is not None and "link_down" in (error.text or "")
    failure = by_name["processes"].find("failure")
    assert failure is not None and "KeyError: 'x'" in (failure.text or "")
    out = suite.find("system-out")
    assert out is not None and '"boom_driver": [-9]' in (out.text or "")


def test_several_runs_make_one_document_with_totals() -> None:
    ok = a_report(name="one")
    ok["steps"] = [s for s in ok["steps"] if s["ok"] is True]
    tree = junit_document([ok, a_report(name="two")])
    root = tree.getroot()
    check_structure(root)
    assert [s.get("name") for s in root] == ["scenario.one", "scenario.two"]
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("6", "1", "1")


def test_control_characters_in_details_still_make_well_formed_xml(tmp_path: Path) -> None:
    report = a_report()
    report["steps"][2]["detail"] = "reply \x00\x07 with bytes \x1b[0m"
    root = parse(write_junit(tmp_path / "j.xml", [report]))
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and "with bytes" in (failure.get("message") or "")
