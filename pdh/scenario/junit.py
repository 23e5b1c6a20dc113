"""Scenario reports as JUnit XML, the format CI dashboards (Jenkins, GitLab, GitHub test reporters) read.

One ``<testsuite>`` per scenario run, one ``<testcase>`` per step that judges something (every step but
``wait``) and one per runner check (readiness, processes that died). A failed step is a ``<failure>``
whose message is the step's detail (what was expected and what was seen instead) and whose text adds
the replies or messages seen and the last log lines of the processes concerned; a runner check that
kept the timeline from running (``ready``, ``runner``) is an ``<error>``; a step that never ran is
``<skipped>``. Several runs make one ``<testsuites>`` document (``pdh scenario`` over a folder).
Pure apart from :func:`write_junit`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

__all__ = ["junit_suite", "junit_document", "write_junit", "judged_steps"]

_MESSAGE_CHARS = 1000
_ERROR_CHECKS = ("ready", "runner")  # the timeline could not run: an error, not a failed expectation
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: Any) -> str:
    """Text XML 1.0 can hold (a reply or log line may carry control characters)."""
    return _XML_BAD.sub("?", str(text))


def judged_steps(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps that are testcases: all but ``wait`` (a pause judges nothing)."""
    return [s for s in report["steps"] if s.get("kind") != "wait"]


def _duration(s: dict[str, Any]) -> float:
    if s.get("started_s") is None or s.get("finished_s") is None:
        return 0.0
    return max(0.0, float(s["finished_s"]) - float(s["started_s"]))


def _tail_text(tails: dict[str, dict[str, list[str]]]) -> str:
    parts = []
    for files in tails.values():
        for name, lines in files.items():
            if lines:
                parts.append(f"--- last lines of logs/{name} ---\n" + "\n".join(lines))
    return "\n".join(parts)


def _case_name(s: dict[str, Any]) -> str:
    """``07 fire: command boom_driver FIRE ...``; a step without an id of its own is just numbered."""
    n = s["index"] + 1
    return f"{n:02d} {s['what']}" if s["id"] == str(n) else f"{n:02d} {s['id']}: {s['what']}"


def _step_case(suite_name: str, s: dict[str, Any], tails: dict[str, Any]) -> ET.Element:
    case = ET.Element("testcase", {
        "classname": suite_name, "name": _clean(_case_name(s))[:300],
        "time": f"{_duration(s):.3f}"})
    if s["ok"] is True:
        ET.SubElement(case, "system-out").text = _clean(s["detail"])
    elif s["ok"] is False:
        text = [f"expected: {s['what']}", f"got: {s['detail']}"]
        if s.get("started_s") is not None:
            text.append(f"step began at t={s['started_s']:.2f} s, ended at t={s.get('finished_s') or 0:.2f} s")
        if s.get("seen"):
            text.append("seen: " + json.dumps(s["seen"], default=str)[:4000])
        tail = _tail_text(tails.get(s["index"], {}))
        if tail:
            text.append(tail)
        ET.SubElement(case, "failure", {"message": _clean(s["detail"])[:_MESSAGE_CHARS] or "failed",
                                        "type": f"{s.get('kind', 'step')}"}).text = _clean("\n".join(text))
    else:
        ET.SubElement(case, "skipped", {"message": _clean(s["detail"] or "not run")[:_MESSAGE_CHARS]})
    return case


def _check_case(suite_name: str, c: dict[str, Any], tails: dict[str, Any]) -> ET.Element:
    case = ET.Element("testcase", {"classname": f"{suite_name}.runner", "name": _clean(c["name"]), "time": "0.000"})
    if c["ok"]:
        ET.SubElement(case, "system-out").text = _clean(c.get("detail", ""))
    else:
        tag = "error" if c["name"] in _ERROR_CHECKS else "failure"
        text = "\n".join(x for x in (str(c.get("detail", "")), _tail_text(tails.get(c["name"], {}))) if x)
        ET.SubElement(case, tag, {"message": _clean(c.get("detail", ""))[:_MESSAGE_CHARS] or c["name"],
                                  "type": f"check.{c['name']}"}).text = _clean(text)
    return case


def junit_suite(report: dict[str, Any], tails: dict[str, Any] | None = None) -> ET.Element:
    """One run's ``<testsuite>``; ``tails`` as :func:`pdh.scenario.evidence.gather_log_tails` gives them."""
    tails = tails or {}
    name = f"scenario.{report['scenario']}"
    cases = [_step_case(name, s, tails.get("steps", {})) for s in judged_steps(report)]
    cases += [_check_case(name, c, tails.get("checks", {})) for c in report.get("checks", [])]
    counts = {tag: sum(1 for c in cases if c.find(tag) is not None) for tag in ("failure", "error", "skipped")}
    suite = ET.Element("testsuite", {
        "name": name, "tests": str(len(cases)), "failures": str(counts["failure"]), "errors": str(counts["error"]),
        "skipped": str(counts["skipped"]), "time": f"{float(report.get('duration_s', 0.0)):.3f}",
        "timestamp": str(report.get("started_utc", ""))[:19], "hostname": socket.gethostname()})
    props = ET.SubElement(suite, "properties")
    for key in ("file", "out", "ok", "steps_ok"):
        ET.SubElement(props, "property", {"name": key, "value": _clean(report.get(key, ""))})
    suite.extend(cases)
    exited = {n: p["exits"] for n, p in report.get("processes", {}).items() if p.get("exits")}
    if exited:
        out_text = "processes that exited: " + json.dumps(exited) + "\n" + _tail_text(tails.get("exited", {}))
        ET.SubElement(suite, "system-out").text = _clean(out_text)
    return suite


def junit_document(reports: Sequence[dict[str, Any]], tails: Sequence[dict[str, Any] | None] = (),
                   name: str = "pdh scenario") -> ET.ElementTree:
    """A ``<testsuites>`` document of one suite per run, with the totals."""
    root = ET.Element("testsuites", {"name": name})
    for i, report in enumerate(reports):
        root.append(junit_suite(report, tails[i] if i < len(tails) else None))
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root)))
    root.set("time", f"{sum(float(s.get('time', '0')) for s in root):.3f}")
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path: Path, reports: Sequence[dict[str, Any]], tails: dict[str, Any] | None = None,
                all_tails: Sequence[dict[str, Any] | None] | None = None) -> Path:
    """Write the JUnit document of ``reports`` to ``path`` (atomically); ``tails`` for a single report."""
    tree = junit_document(reports, all_tails if all_tails is not None else [tails])
    tmp = path.with_name(path.name + ".tmp")
    tree.write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)
    return path
