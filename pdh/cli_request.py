"""``pdh request``: ask the lander for a full frame, a stored product or a region, through the uplink.

    pdh request full (ID | --camera C --counter N) [--wait [--wait-s S]] [--force]
    pdh request product ID [--wait ...]
    pdh request region --camera C [--counter N] --region X,Y,W,H [--wait ...]
        [--out OUT] [--config FILE] [--ground NAME] [--downlink NAME] [--keys DIR] [--operator NAME]

Each is one ``UPLINK`` to the ground station's command port (as ``pdh uplink`` sends it, with the
operator's key) for the lander's downlink: ``SEND_FULL``, ``SEND_PRODUCT`` (the product moves to the
``requested`` class, ahead of every frame nobody asked for) or ``SEND_REGION`` (forwarded to imaging's
``MAKE_ROI``; the region comes down as a requested ``roi`` product). ``--wait`` prints each stage of
the command as ``pdh uplink --wait`` does, then waits until the product is in the ground's archive and
prints where its files are: exit 0 only once it has arrived. A full frame the ground already holds is
not asked for again (``--force`` asks anyway).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from framework.config import Config, find_config, load_config
from framework.errors import PdhError
from pdh.cli_uplink import GroundClient, add_ground_args, follow_stages

__all__ = ["add_request_parser", "cmd_request", "request_of", "parse_region"]

_ARRIVAL_POLL_S = 1.0


def parse_region(text: str) -> list[int]:
    """``X,Y,W,H`` (or ``[X, Y, W, H]``) as four integers, width and height above 0; ValueError saying so."""
    parts = [p.strip() for p in text.strip().strip("[]").split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or values[0] < 0 or values[1] < 0 or values[2] <= 0 or values[3] <= 0:
        raise ValueError(f"--region {text!r}: expected X,Y,WIDTH,HEIGHT in pixels (x, y >= 0; width, height > 0)")
    return values


def request_of(what: str, pid: str | None, camera: str | None, counter: int | None,
               region: str | None) -> tuple[str, dict[str, Any], str | None]:
    """The downlink command, its arguments and the product id that will answer it (None: a region of the
    newest frame, whose id is not known yet). ValueError naming what is missing or contradictory."""
    from fsw.imaging.product import product_id

    if what == "region":
        if pid or not camera or region is None:
            raise ValueError("request region: give --camera and --region X,Y,W,H (and --counter, else the newest "
                             "frame imaging holds)")
        args: dict[str, Any] = {"camera": camera, "region": parse_region(region)}
        if counter is not None:
            args["counter"] = counter
        return "SEND_REGION", args, None if counter is None else product_id(camera, counter, "roi")
    if region is not None:
        raise ValueError(f"request {what}: --region is for 'request region'")
    if what == "product":
        if not pid or camera or counter is not None:
            raise ValueError("request product: give the product's id (and no --camera/--counter)")
        return "SEND_PRODUCT", {"id": pid}, pid
    if pid and (camera or counter is not None):
        raise ValueError("request full: give an id, or --camera and --counter, not both")
    if pid:
        return "SEND_FULL", {"id": pid}, pid
    if not camera or counter is None:
        raise ValueError("request full: give the product id, or --camera and --counter")
    return "SEND_FULL", {"camera": camera, "counter": counter}, product_id(camera, counter, "full")


def _downlink(config: Config, wanted: str | None) -> str:
    names = config.processes_of_kind("fsw.downlink")
    if wanted is not None:
        if wanted not in names:
            raise SystemExit(f"{config.file}: no downlink '{wanted}' (have: {names})")
        return wanted
    if len(names) != 1:
        raise SystemExit(f"{config.file}: {len(names)} downlinks ({names}); name one with --downlink")
    return names[0]


class _Archive:
    """The ground's archive, read-only, opened again on each look (the station may not have made it yet)."""

    def __init__(self, config: Config, out: Path, ground: str | None) -> None:
        from ground.station import archive_url

        grounds = config.processes_of_kind("ground.station")
        name = ground or (grounds[0] if len(grounds) == 1 else None)
        if name not in grounds:
            raise SystemExit(f"{config.file}: name one ground station with --ground (have: {grounds})")
        self.url, self.out = archive_url(config, name), out

    def look(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(archive)``, or None while the archive cannot be read."""
        from ground.archive import Archive

        try:
            with Archive(self.url, self.out, readonly=True) as a:
                return fn(a)
        except PdhError:
            return None


def _roi_ids(archive: _Archive, camera: str) -> set[str]:
    got = archive.look(lambda a: [p["id"] for p in a.products(camera=camera, kind="roi").dicts()])
    return set(got or ())


def _arrived(archive: _Archive, pid: str | None, camera: str, before: set[str]) -> dict[str, Any] | None:
    """The product that answers the request, once the archive holds it."""
    if pid is not None:
        return archive.look(lambda a: a.product(pid))
    new = sorted(_roi_ids(archive, camera) - before)
    return archive.look(lambda a: a.product(new[-1])) if new else None


def _await_arrival(archive: _Archive, pid: str | None, camera: str, before: set[str], deadline: float) -> int:
    what = pid or f"a new region of {camera}"
    print(f"waiting for {what} at the ground", flush=True)
    while time.monotonic() < deadline:
        got = _arrived(archive, pid, camera, before)
        if got is not None:
            print(f"arrived     {got['id']}  {got['width']}x{got['height']} {got['bit_depth']}-bit  {got['path']}",
                  flush=True)
            return 0
        time.sleep(_ARRIVAL_POLL_S)
    print(f"{what} has not reached the ground's archive yet (--wait-s); pdh missing and pdh products show it later",
          file=sys.stderr)
    return 1


def cmd_request(args: argparse.Namespace) -> int:
    try:
        cmd, cmd_args, pid = request_of(args.what, args.id, args.camera, args.counter, args.region)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    config = load_config(find_config(args.config)).for_run(args.out)
    target = _downlink(config, args.downlink)
    archive = _Archive(config, Path(args.out), args.ground)
    camera = str(cmd_args.get("camera") or "")
    if cmd != "SEND_REGION" and not args.force:
        held = archive.look(lambda a: a.product(pid))
        if held is not None:
            print(f"{pid} is already at the ground: {held['path']} (--force asks again)")
            return 0
    before = _roi_ids(archive, camera) if cmd == "SEND_REGION" and pid is None else set()
    deadline = time.monotonic() + args.wait_s
    ground = GroundClient(args)
    try:
        cid = ground.call("UPLINK", {"target": target, "cmd": cmd, "args_json": json.dumps(cmd_args)})["id"]
        print(f"queued as {cid} at {ground.name}: {target} {cmd} {json.dumps(cmd_args)}", flush=True)
        if not args.wait:
            return 0
        if follow_stages(ground, cid, args.wait_s) != 0:
            return 1
    finally:
        ground.close()
    return _await_arrival(archive, pid, camera, before, deadline)


def add_request_parser(sub: Any, default_config: str) -> None:
    """Add ``pdh request`` to the CLI's subcommands."""
    r = sub.add_parser("request", help="ask the lander for a full frame, a product or a region (through the uplink)")
    r.add_argument("what", choices=("full", "product", "region"))
    r.add_argument("id", nargs="?", default=None, help="full, product: the product id")
    r.add_argument("--camera", default=None)
    r.add_argument("--counter", type=int, default=None, help="the frame's counter")
    r.add_argument("--region", default=None, metavar="X,Y,W,H", help="region: the rectangle, in pixels")
    r.add_argument("--downlink", default=None, help="the lander's downlink process (default: the config's one)")
    r.add_argument("--wait", action="store_true",
                   help="print each stage, then wait until the product is at the ground (exit 0 once it is)")
    r.add_argument("--wait-s", type=float, default=600.0, help="with --wait: give up after this many seconds")
    r.add_argument("--force", action="store_true", help="ask for a full frame even if the ground holds it")
    add_ground_args(r, default_config)
    r.set_defaults(func=cmd_request)
