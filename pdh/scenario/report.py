"""The scenario report: one map for ``OUT/scenario-report.json``, its printed form, and the summary table of
several runs. Pure. The JUnit XML and HTML forms: :mod:`pdh.scenario.junit`, :mod:`pdh.scenario.page`
(written by :func:`pdh.scenario.evidence.write_bench_reports`)."""

from __future__ import annotations

from typing import Any

from pdh.scenario.engine import StepResult

__all__ = ["build_report", "format_report", "format_summary", "summary_row"]


def build_report(name: str, file: str, out: str, results: list[StepResult], checks: list[dict[str, Any]],
                 started_utc: str, duration_s: float, processes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``checks`` are the runner's own findings (readiness, process deaths), each {name, ok, detail}."""
    ok = all(r.ok is True for r in results) and all(c["ok"] for c in checks)
    return {
        "scenario": name, "file": file, "out": out, "ok": ok, "started_utc": started_utc,
        "duration_s": round(duration_s, 3),
        "steps_ok": sum(1 for r in results if r.ok is True), "steps": [r.as_dict() for r in results],
        "checks": checks, "processes": processes,
    }


def _mark(ok: bool | None) -> str:
    return {True: " ok ", False: "FAIL"}.get(ok, " -- ")  # type: ignore[arg-type]


def format_report(report: dict[str, Any]) -> list[str]:
    lines = [f"scenario {report['scenario']}  ({report['file']})", f"  output {report['out']}"]
    for c in report["checks"]:
        if not c["ok"] or c.get("show"):
            lines.append(f"  [{_mark(c['ok'])}] {c['name']}: {c['detail']}")
    for s in report["steps"]:
        t = "" if s["started_s"] is None else f"t={s['started_s']:7.2f}s"
        dur = ""
        if s["started_s"] is not None and s["finished_s"] is not None:
            dur = f"+{s['finished_s'] - s['started_s']:.2f}s"
        late = f" (late {s['late_s']:.2f}s)" if s["late_s"] >= 0.5 else ""
        lines.append(f"  [{_mark(s['ok'])}] {s['index'] + 1:>2} {s['id'][:14]:14s} {t:11s} {dur:8s} {s['what']}{late}")
        if s["detail"]:
            lines.append(f"         {s['detail']}")
    for kind, path in report.get("files", {}).items():
        lines.append(f"  {kind} report {path}")
    total = len(report["steps"])
    verdict = "PASSED" if report["ok"] else "FAILED"
    lines.append(f"{verdict}: {report['steps_ok']}/{total} steps ok in {report['duration_s']:.1f} s")
    return lines


def summary_row(name: str, report: dict[str, Any] | None, error: str = "") -> dict[str, Any]:
    """One row of a campaign's summary: a run's verdict from its report, or the error that stopped it."""
    if report is None:
        return {"name": name, "ok": False, "verdict": "ERROR", "steps": "", "duration": "", "note": error}
    failed = [f"{s['index'] + 1} {s['id']}" for s in report["steps"] if s["ok"] is False]
    failed += [c["name"] for c in report.get("checks", []) if not c["ok"]]
    return {"name": name, "ok": bool(report["ok"]), "verdict": "PASSED" if report["ok"] else "FAILED",
            "steps": f"{report['steps_ok']}/{len(report['steps'])}", "duration": f"{report['duration_s']:.1f} s",
            "note": ("failed: " + ", ".join(failed)) if failed else "", "out": report.get("out", ""),
            "html": report.get("files", {}).get("html", "")}


def format_summary(rows: list[dict[str, Any]]) -> list[str]:
    """The table ``pdh scenario`` prints after several runs, and its last line."""
    w = max([8] + [len(r["name"]) for r in rows])
    lines = [f"{'scenario':{w}s}  {'result':6s}  {'steps':>7s}  {'time':>9s}  note"]
    for r in rows:
        lines.append(f"{r['name']:{w}s}  {r['verdict']:6s}  {r['steps']:>7s}  {r['duration']:>9s}  {r['note']}"
                     .rstrip())
    passed = sum(1 for r in rows if r["verdict"] == "PASSED")
    failed = sum(1 for r in rows if r["verdict"] == "FAILED")
    errors = sum(1 for r in rows if r["verdict"] == "ERROR")
    verdict = "PASSED" if passed == len(rows) else "FAILED"
    lines.append(f"{verdict}: {passed}/{len(rows)} scenarios passed, {failed} failed, {errors} could not run")
    return lines
