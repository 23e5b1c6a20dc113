"""``pdh interfaces``: every component's commands, events and telemetry, from the tables in the code.

    pdh interfaces [COMPONENT] [--format text|md]    the interface tables (one, or all)
    pdh interfaces --kinds [KIND] [--format text|md] process kinds: endpoint roles and config keys
    pdh interfaces --write [--docs DIR]               regenerate the generated docs
    pdh interfaces --check [--docs DIR]               exit 1 if a generated doc is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_interfaces_parser"]


def _show_tables(args: argparse.Namespace) -> int:
    from pdh.gendocs import interfaces_doc
    from pdh.interfaces import find_table, interfaces_markdown, interfaces_text
    from pdh.topology import INTERFACES

    tables = list(INTERFACES)
    if args.component is not None:
        table = find_table(tables, args.component)
        if table is None:
            print(f"unknown component '{args.component}'; one of {sorted(t.component for t in tables)}",
                  file=sys.stderr)
            return 2
        tables = [table]
    if args.format == "md":
        print(interfaces_doc() if args.component is None else interfaces_markdown(tables), end="")
    else:
        print(interfaces_text(tables), end="")
    return 0


def _show_kinds(args: argparse.Namespace) -> int:
    from pdh.gendocs import processes_doc
    from pdh.interfaces import kinds_markdown, kinds_text
    from pdh.topology import ALL_KINDS

    kinds = list(ALL_KINDS)
    if args.component is not None:
        kinds = [k for k in kinds if k.name == args.component]
        if not kinds:
            print(f"unknown kind '{args.component}'; one of {sorted(k.name for k in ALL_KINDS)}", file=sys.stderr)
            return 2
    if args.format == "md":
        print(processes_doc() if args.component is None else kinds_markdown(kinds), end="")
    else:
        print(kinds_text(kinds), end="")
    return 0


def _docs(args: argparse.Namespace) -> int:
    from pdh.gendocs import DOCS_DIR, REGENERATE, GeneratedDocError, stale_docs, write_docs

    docs = DOCS_DIR if args.docs is None else Path(args.docs)
    if not docs.is_dir():
        print(f"--docs: no directory {docs} (an installed package has no docs; pass the source tree's)",
              file=sys.stderr)
        return 2
    try:
        paths = write_docs(docs) if args.write else stale_docs(docs)
    except GeneratedDocError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    for path in paths:
        print(f"{'wrote' if args.write else 'stale'} {path}")
    if paths and not args.write:
        print(f"run `{REGENERATE}` to regenerate", file=sys.stderr)
        return 1
    return 0


def _cmd_interfaces(args: argparse.Namespace) -> int:
    if args.write or args.check:
        return _docs(args)
    return _show_kinds(args) if args.kinds else _show_tables(args)


def add_interfaces_parser(sub: Any) -> None:
    """Add ``pdh interfaces`` to the CLI's subcommands."""
    p = sub.add_parser("interfaces", help="print every component's commands, events and telemetry from its table")
    p.add_argument("component", nargs="?", help="one component's table (imaging), or with --kinds one kind")
    p.add_argument("--format", choices=("text", "md"), default="text", help="text (default) or Markdown")
    p.add_argument("--kinds", action="store_true", help="process kinds instead: endpoint roles and config keys")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="regenerate docs/interfaces.md, docs/processes.md and "
                      "the generated sections of other docs")
    mode.add_argument("--check", action="store_true", help="exit 1 if a generated doc is stale")
    p.add_argument("--docs", default=None, help="the docs directory (default: the source tree's)")
    p.set_defaults(func=_cmd_interfaces)
