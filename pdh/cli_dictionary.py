"""``pdh dictionary``: the XTCE 1.2 dictionary of the TM/TC link, generated from a config.

    pdh dictionary --xtce OUT.xml [--config FILE]    write the SpaceSystem (docs/dictionary.md)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_dictionary_parser"]


def _cmd_dictionary(args: argparse.Namespace) -> int:
    from framework.config import find_config, load_config
    from pdh.dictionary import dictionary_of_config, write_xtce

    path = find_config(args.config)
    dictionary = dictionary_of_config(load_config(path))
    out = Path(args.xtce)
    if not out.parent.is_dir():
        print(f"--xtce: no directory {out.parent}", file=sys.stderr)
        return 2
    write_xtce(out, dictionary, name=args.name)
    commands = sum(len(e.interface.commands) for e in dictionary.entries())
    print(f"wrote {out}: {len(dictionary)} processes from {path}, {commands} commands")
    return 0


def add_dictionary_parser(sub: Any, default_config: str) -> None:
    """Add ``pdh dictionary`` to the CLI's subcommands."""
    p = sub.add_parser("dictionary", help="write the XTCE 1.2 TM/TC dictionary generated from a config's tables")
    p.add_argument("--xtce", required=True, metavar="OUT.xml", help="the XTCE file to write")
    p.add_argument("--config", default=default_config,
                   help="config file, or the name of a shipped one (default configs/demo.yaml)")
    p.add_argument("--name", default="lunar_pdh", help="the SpaceSystem's name (default lunar_pdh)")
    p.set_defaults(func=_cmd_dictionary)
