"""``pdh missing`` and ``pdh products``: the operator's questions to the ground's archive (docs/archive.md).

    pdh missing [--out DIR] [--config FILE | --archive URL] [--json | --csv SECTION] [--gap-factor F]
    pdh products list [--camera C] [--kind K] [--since T] [--until T] [--min-grade G] [--limit N] [--csv]
    pdh products show ID [--json]
    pdh products export ID --to DIR        the product's files (PNG, sidecar, PDS4 label and pixels)

The archive is found as the ground station finds it: ``--archive URL``, else the ``archive.url`` of the
config's ground station (``--config``), else ``sqlite:///archive.sqlite``; a relative SQLite path is
under ``--out`` (the run's output directory, default OUT). The archive is opened read-only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from framework.errors import PdhError

__all__ = ["add_archive_parsers", "cmd_missing", "cmd_products"]


def _where(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="OUT", help="the run's output directory (default OUT)")
    p.add_argument("--config", default=None, help="take the archive URL from this config's ground station")
    p.add_argument("--ground", default=None, help="which ground station of --config (default: its only one)")
    p.add_argument("--archive", default=None, help="archive URL (sqlite:///FILE or postgresql://...)")


def add_archive_parsers(sub: Any) -> None:
    m = sub.add_parser("missing", help="what the ground lacks: full frames, open transfers, telemetry gaps, evictions")
    _where(m)
    m.add_argument("--json", action="store_true", help="every section as JSON")
    m.add_argument("--csv", default=None, metavar="SECTION",
                   help="one section as CSV: thumbnails_without_full, open_transfers, tm_gaps, evicted")
    m.add_argument("--gap-factor", type=float, default=3.0,
                   help="a time gap is longer than this many times a source's usual housekeeping period (default 3)")
    m.add_argument("--min-gap", type=float, default=0.0, help="and longer than this many seconds (default 0)")
    m.set_defaults(func=cmd_missing)
    p = sub.add_parser("products", help="list, show or export the products the ground holds")
    p.add_argument("action", choices=("list", "show", "export"))
    p.add_argument("id", nargs="?", help="show/export: the product id")
    _where(p)
    p.add_argument("--camera", default=None)
    p.add_argument("--kind", default=None)
    p.add_argument("--since", type=float, default=None, help="capture time from (Unix seconds)")
    p.add_argument("--until", type=float, default=None, help="capture time up to (Unix seconds)")
    p.add_argument("--min-grade", type=float, default=None, help="on-board score at least")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--csv", action="store_true", help="list: as CSV")
    p.add_argument("--json", action="store_true", help="show: as JSON")
    p.add_argument("--to", default=None, help="export: the directory to copy the product's files into")
    p.set_defaults(func=cmd_products)


def _url(args: argparse.Namespace) -> str:
    from ground.archive import DEFAULT_URL

    if args.archive:
        return str(args.archive)
    if args.config is None:
        return DEFAULT_URL
    from framework.config import find_config, load_config

    config = load_config(find_config(args.config))
    grounds = list(config.processes_of_kind("ground.station"))
    name = args.ground or (grounds[0] if len(grounds) == 1 else None)
    if name not in grounds:
        raise SystemExit(f"{config.file}: name one ground station with --ground (have: {grounds})")
    from ground.station import archive_url

    return archive_url(config, name)  # the one lookup the station and the console use


def _open(args: argparse.Namespace) -> Any:
    from ground.archive import Archive

    try:
        return Archive(_url(args), Path(args.out), readonly=True)
    except PdhError as exc:
        raise SystemExit(f"cannot read the archive: {exc}") from None


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    if not rows:
        print("  (none)")
        return
    cells = [[_fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def cmd_missing(args: argparse.Namespace) -> int:
    with _open(args) as archive:
        try:
            got = archive.missing(gap_factor=args.gap_factor, min_gap_s=args.min_gap)
        except PdhError as exc:
            raise SystemExit(f"cannot read the archive: {exc}") from None
    if args.csv:
        try:
            got.section(args.csv).to_csv(sys.stdout)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        return 0
    if args.json:
        print(json.dumps(got.to_dict(), indent=1, default=str))
        return 0
    views = (
        ("thumbnails_without_full", "Frames with a thumbnail but no full frame",
         ("camera", "counter", "full_id", "status", "grade")),
        ("open_transfers", "Transfers still open", ("seq", "id", "file_size", "held_bytes", "missing_bytes",
                                                    "missing_text", "naks", "eof_received")),
        ("tm_gaps", "Telemetry gaps", ("source", "apid", "kind", "t_from", "t_to", "gap_s", "packets_missing")),
        ("evicted", "Products the lander reported evicted", ("id", "kind", "class", "bytes", "reason", "received")),
    )
    for section, title, columns in views:
        rows = got.section(section).dicts()
        print(f"{title}: {len(rows)}")
        _table(rows, columns)
    return 0


def cmd_products(args: argparse.Namespace) -> int:
    with _open(args) as archive:
        if args.action == "list":
            got = archive.products(camera=args.camera, kind=args.kind, t0=args.since, t1=args.until,
                                   min_grade=args.min_grade, limit=args.limit)
            if args.csv:
                got.to_csv(sys.stdout)
            else:
                print(f"{len(got)} products")
                _table(got.dicts(), ("id", "kind", "camera", "counter", "t_capture", "grade", "bytes"))
            return 0
        if not args.id:
            raise SystemExit(f"products {args.action}: give a product id")
        found = archive.product(args.id)
    if found is None:
        raise SystemExit(f"no product {args.id} in the archive")
    if args.action == "show":
        if args.json:
            print(json.dumps(found, indent=1, default=str))
        else:
            for k, v in found.items():
                print(f"{k:>10}: {_fmt(v)}")
        return 0
    if not args.to:
        raise SystemExit("products export: give --to DIR")
    return _export(found, Path(args.to))


def _export(found: dict[str, Any], to: Path) -> int:
    png = Path(found["path"])
    files = [png, png.with_suffix(".json")]
    if found.get("label"):
        label = Path(found["label"])
        files += [label, label.with_suffix(".img")]
    to.mkdir(parents=True, exist_ok=True)
    for f in files:
        if not f.exists():
            raise SystemExit(f"{found['id']}: {f} is not there (moved or deleted since it was archived)")
        shutil.copy2(f, to / f.name)
        print(to / f.name)
    return 0
