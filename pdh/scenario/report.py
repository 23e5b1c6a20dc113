"""The scenario report: one map for ``OUT/scenario-report.json``, and its printed form. Pure."""

from __future__ import annotations

from typing import Any

from pdh.scenario.engine import StepResult

__all__ = ["build_report", "format_report"]


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
    total = len(report["steps"])
    verdict = "PASSED" if report["ok"] else "FAILED"
    lines.append(f"{verdict}: {report['steps_ok']}/{total} steps ok in {report['duration_s']:.1f} s")
    return lines
