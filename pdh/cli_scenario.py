"""``pdh scenario FILE [--out DIR]``: run a scenario (configs/scenarios/) and report on it.

Exit status: 0 when every step and check held, 1 when one failed, 2 for a bad
scenario file, config or output directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from framework.errors import ConfigError

__all__ = ["add_scenario_parser", "cmd_scenario"]


def add_scenario_parser(sub: Any) -> argparse.ArgumentParser:
    s = sub.add_parser("scenario", help="run a scenario timeline against real processes and report")
    s.add_argument("file", help="scenario file, e.g. configs/scenarios/boom_jam.yaml")
    s.add_argument("--out", default=None,
                   help="output directory, new or empty (default OUT/scenarios/<name>-<UTC time>)")
    s.set_defaults(func=cmd_scenario)
    return s


def cmd_scenario(args: argparse.Namespace) -> int:
    from pdh.scenario.runner import run_scenario

    out = args.out
    if out is None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = str(Path("OUT") / "scenarios" / f"{Path(args.file).stem}-{stamp}")
    try:
        return run_scenario(args.file, out)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m pdh.cli_scenario FILE``) until the lead wires it into ``pdh``."""
    ap = argparse.ArgumentParser(prog="pdh")
    sub = ap.add_subparsers(dest="command", required=True)
    add_scenario_parser(sub)
    args = ap.parse_args(["scenario", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
