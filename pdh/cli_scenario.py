"""``pdh scenario PATH... [--out DIR]``: run scenarios (configs/scenarios/) and report on them.

One file runs into ``--out`` (default ``OUT/scenarios/<name>-<UTC time>``) and writes there
``scenario-report.json``, ``scenario-junit.xml`` and ``scenario-report.html``. Several files, or a
folder (its ``*.yaml`` files that have ``steps``; a bench config beside them is skipped), make a
campaign: every file is loaded and checked first (one bad file: nothing runs), then each runs into
``DIR/<name>/``, and ``DIR`` gets ``campaign-junit.xml`` (one suite per scenario), ``index.html``
(linking each page) and a printed summary table.

Exit status: 0 when every step and check of every scenario held, 1 when one failed, 2 for a bad
scenario file, config or output directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, Callable

import yaml

from framework.errors import ConfigError

__all__ = ["add_scenario_parser", "cmd_scenario", "scenario_files", "run_campaign"]


def add_scenario_parser(sub: Any) -> argparse.ArgumentParser:
    s = sub.add_parser("scenario", help="run scenario timelines against real processes and report")
    s.add_argument("paths", nargs="+", metavar="PATH",
                   help="scenario files or folders of them, e.g. configs/scenarios/boom_jam.yaml or configs/scenarios")
    s.add_argument("--out", default=None,
                   help="output directory, new or empty (default OUT/scenarios/<name>-<UTC time>; with several "
                        "scenarios each runs into DIR/<name>)")
    s.set_defaults(func=cmd_scenario)
    return s


def _is_scenario(path: Path) -> bool:
    """A YAML mapping with ``steps``: a scenario (a bench config in the same folder has none)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return True  # let the loader say what is wrong with it
    return isinstance(data, dict) and "steps" in data


def scenario_files(paths: list[str]) -> tuple[list[Path], bool]:
    """The scenario files ``paths`` name (a folder: its scenarios, sorted) and whether that is a campaign
    (more than one file, or a folder)."""
    files: list[Path] = []
    campaign = len(paths) > 1
    for p in map(Path, paths):
        if p.is_dir():
            campaign = True
            files += [f for f in sorted(p.iterdir()) if f.suffix in (".yaml", ".yml") and _is_scenario(f)]
        else:
            files.append(p)
    return files, campaign


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def cmd_scenario(args: argparse.Namespace) -> int:
    from pdh.scenario.runner import run_scenario

    files, campaign = scenario_files(args.paths)
    if not files:
        print(f"config error: no scenario files in {args.paths}", file=sys.stderr)
        return 2
    if not campaign:
        out = args.out or str(Path("OUT") / "scenarios" / f"{files[0].stem}-{_stamp()}")
        try:
            return run_scenario(files[0], out)
        except ConfigError as exc:
            print(f"config error: {exc}", file=sys.stderr)
            return 2
    return run_campaign(files, Path(args.out or Path("OUT") / "scenarios" / f"campaign-{_stamp()}"), run_scenario)


def _load_all(files: list[Path]) -> tuple[list[tuple[Path, str]], list[str]]:
    """Every file loaded and checked before anything starts: (file, scenario name) pairs, and the errors."""
    from pdh.scenario.spec import load_scenario

    loaded, errors = [], []
    for f in files:
        try:
            loaded.append((f, load_scenario(f).name))
        except ConfigError as exc:
            errors.append(f"config error: {exc}")
    return loaded, errors


def _run_dirs(loaded: list[tuple[Path, str]], base: Path) -> list[tuple[Path, str, Path]]:
    """Each scenario's output directory, ``base/<name>`` (``<name>-2`` ... when two share a name)."""
    used: set[str] = set()
    dirs = []
    for f, name in loaded:
        sub, n = name, 1
        while sub in used:
            n += 1
            sub = f"{name}-{n}"
        used.add(sub)
        dirs.append((f, sub, base / sub))
    return dirs


def _read_report(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / "scenario-report.json").read_text())
    except (OSError, ValueError):
        return None


def run_campaign(files: list[Path], base: Path, run: Callable[[Path, Path], int],
                 emit: Callable[[str], None] = print) -> int:
    """Run every scenario into ``base/<name>``; write the campaign's JUnit XML and index page; print the
    summary table. 2 if a file is bad (then nothing runs) or a run could not start, 1 if one failed."""
    from pdh.scenario.evidence import gather_log_tails
    from pdh.scenario.junit import write_junit
    from pdh.scenario.page import render_index, write_page
    from pdh.scenario.report import format_summary, summary_row

    loaded, errors = _load_all(files)
    if base.exists() and (not base.is_dir() or any(base.iterdir())):
        errors.append(f"config error: {base}: --out: expected a new or empty output directory, got not empty")
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        return 2
    rows, reports, tails = [], [], []
    for f, sub, out in _run_dirs(loaded, base):
        emit(f"=== {sub} ({f})")
        try:
            run(f, out)
        except ConfigError as exc:
            print(f"config error: {exc}", file=sys.stderr)
            rows.append(summary_row(sub, None, str(exc)))
            continue
        report = _read_report(out)
        rows.append(summary_row(sub, report, "" if report else "no report written"))
        if report is not None:
            reports.append(report)
            tails.append(gather_log_tails(report, out))
            if rows[-1].get("html"):
                rows[-1]["html"] = str(Path(sub) / Path(rows[-1]["html"]).name)
    base.mkdir(parents=True, exist_ok=True)
    write_junit(base / "campaign-junit.xml", reports, all_tails=tails)
    write_page(base / "index.html", render_index(rows, f"scenario campaign {base.name}"))
    emit("")
    for line in format_summary(rows):
        emit(line)
    emit(f"reports: {base / 'index.html'}, {base / 'campaign-junit.xml'}")
    if any(r["verdict"] == "ERROR" for r in rows):
        return 2
    return 0 if all(r["ok"] for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m pdh.cli_scenario PATH...``); ``pdh scenario`` is the same."""
    ap = argparse.ArgumentParser(prog="pdh")
    sub = ap.add_subparsers(dest="command", required=True)
    add_scenario_parser(sub)
    args = ap.parse_args(["scenario", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
