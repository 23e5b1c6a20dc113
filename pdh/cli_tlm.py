"""``pdh tlm`` and ``pdh events``: live telemetry and events of a running system, lander and ground.

    pdh tlm [--process P ...] [--channel GLOB ...] [--via bus|tm] [--json] [--count N] [--duration S]
    pdh events [--severity MIN] [--source P ...] [--name GLOB ...] [--since T] [--limit N] [--json]
               [--follow [--via bus|tm] [--count N] [--duration S]]

Both read every bus of the config (:class:`pdh.monitor.BusWatch`: the lander's broker and the
ground's, found with ``--out`` as ``pdh cmd`` finds them): the lander's processes publish
``tlm.<process>`` / ``evt.<process>`` on the lander's bus, and the ground republishes what it
decodes from the lander's TM packets as ``lander.tlm.<process>`` / ``lander.evt.<process>`` on its
own. Each line says which way it came (``bus`` or ``tm``); where only the ground's bus is reachable
(an operator at the ground), everything of the lander is ``tm``. ``--json``: one JSON object per line.

``pdh events`` without ``--follow`` prints the ground archive's events (the last ``--limit``, or all
since ``--since``) and exits; with ``--follow`` it prints those, then every new one as it comes
(the lander's, seen on both buses, once). Ctrl-C ends a tail with status 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from framework.config import Config, find_config, load_config
from framework.errors import PdhError
from pdh.live import (LIVE_TOPICS, VIA, Event, EventFilter, Sample, Seen, TlmFilter, archive_event, event_json,
                      event_line, from_message, parse_since, sample_json, sample_line)

__all__ = ["add_tlm_parsers", "cmd_tlm", "cmd_events", "run_config", "reachable_buses", "channel_specs"]

_POLL_MS = 200


def _where(p: argparse.ArgumentParser, default_config: str) -> None:
    p.add_argument("--out", default="OUT", help="the run's output directory (ipc endpoints live there; default OUT)")
    p.add_argument("--config", default=default_config, help="the run's config (default the demo's)")


def _tail_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--via", choices=VIA[:2], default=None,
                   help="only what came this way: bus (the process's own bus) or tm (decoded at the ground)")
    p.add_argument("--count", type=int, default=None, help="stop after this many lines")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")


def add_tlm_parsers(sub: Any, default_config: str) -> None:
    """Add ``pdh tlm`` and ``pdh events`` to the CLI's subcommands."""
    t = sub.add_parser("tlm", help="live telemetry of a running system (lander and ground), filtered")
    t.add_argument("--process", action="append", default=[], help="only this process (repeat for more)")
    t.add_argument("--channel", action="append", default=[],
                   help="only channels matching this glob, e.g. store_fill or 'queue_*' (repeat for more)")
    t.add_argument("--json", action="store_true", help="one JSON object per line")
    _tail_args(t)
    _where(t, default_config)
    t.set_defaults(func=cmd_tlm)
    e = sub.add_parser("events", help="events from the ground's archive, or live with --follow")
    e.add_argument("--severity", choices=("info", "warning", "error"), default=None, help="this severity and above")
    e.add_argument("--source", action="append", default=[], help="only this process's events (repeat for more)")
    e.add_argument("--name", action="append", default=[], help="only events whose name matches this glob")
    e.add_argument("--since", default=None, help="from this time: 30s, 10m, 2h, 1d, Unix seconds or ISO 8601")
    e.add_argument("--limit", type=int, default=None,
                   help="the archive's last N (default 50; with --follow 20; with --since all of them)")
    e.add_argument("--follow", action="store_true", help="then print new events live as they come")
    e.add_argument("--json", action="store_true", help="one JSON object per line")
    e.add_argument("--ground", default=None, help="the ground station whose archive to read (default: the only one)")
    e.add_argument("--archive", default=None, help="archive URL (default: the ground station's archive.url)")
    _tail_args(e)
    _where(e, default_config)
    e.set_defaults(func=cmd_events)


def run_config(args: argparse.Namespace) -> Config:
    """The config as the run of ``--out`` resolved it (its ipc sockets under OUT/ipc)."""
    return load_config(find_config(args.config)).for_run(args.out)


def reachable_buses(config: Config, out: str | Path) -> tuple[list[str], list[str]]:
    """The brokers a tool can subscribe to now, and why each other one cannot be (nothing listens)."""
    from pdh.cli_command import _probe

    up, down = [], []
    for broker in config.processes_of_kind("bus.broker"):
        why = _probe(config.reach(broker, "xpub"))
        if why:
            down.append(f"bus {broker}: {why} (is the run whose --out is {out} up?)")
        else:
            up.append(broker)
    return up, down


def channel_specs(config: Config) -> dict[str, dict[str, Any]]:
    """Every process's telemetry channels (units, limits) by process name, from the interface tables."""
    import pdh.topology  # noqa: F401  (registers every kind)
    from framework.kinds import KINDS

    out: dict[str, dict[str, Any]] = {}
    for name, p in config.processes.items():
        spec = KINDS.get(p["kind"])
        if spec is not None and spec.interface is not None:
            out[name] = dict(spec.interface.telemetry)
    return out


def bus_records(config: Config, topics: list[str], deadline: float | None,
                clock: Callable[[], float] = time.monotonic) -> Iterator[Sample | Event]:
    """Every sample or event on the config's buses, as it comes, until ``deadline`` (None: until stopped)."""
    import zmq

    from pdh.monitor import BusWatch

    zctx = zmq.Context()
    watch = BusWatch(zctx, config, topics)
    try:
        while deadline is None or clock() < deadline:
            for msg in watch.drain(_POLL_MS):
                got = from_message(msg.topic, msg.header.src, msg.header.t, msg.header.fields)
                if got is not None:
                    yield got
    finally:
        watch.close()
        zctx.destroy(linger=0)


def _deadline(duration: float | None) -> float | None:
    if duration is not None and not duration > 0:
        raise SystemExit(f"--duration: expected seconds above 0, got {duration:g}")
    return None if duration is None else time.monotonic() + duration


def _say(line: str) -> None:
    print(line, flush=True)


def _live_or_exit(config: Config, out: str) -> None:
    """Note each bus that cannot be reached; exit 1 if none can."""
    up, down = reachable_buses(config, out)
    for why in down:
        print(why, file=sys.stderr)
    if not up:
        raise SystemExit(1)


def cmd_tlm(args: argparse.Namespace) -> int:
    config = run_config(args)
    unknown = [p for p in args.process if p not in config.processes]
    if unknown:
        raise SystemExit(f"{config.file}: no process {', '.join(unknown)}; "
                         f"its processes: {', '.join(config.processes)}")
    deadline = _deadline(args.duration)
    _live_or_exit(config, args.out)
    specs = channel_specs(config)
    wanted = TlmFilter(frozenset(args.process), tuple(args.channel), args.via)
    shown = 0
    try:
        for got in bus_records(config, LIVE_TOPICS["tlm"], deadline):
            s = wanted.apply(got) if isinstance(got, Sample) else None
            if s is None:
                continue
            _say(sample_json(s, specs.get(s.process)) if args.json else sample_line(s, specs.get(s.process)))
            shown += 1
            if args.count is not None and shown >= args.count:
                break
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    return 0


def _archived(args: argparse.Namespace, config: Config, wanted: EventFilter, since: float | None) -> list[Event]:
    """The archive's events the filter keeps, oldest first (the last ``--limit`` unless ``--since``)."""
    from ground.archive import Archive

    url = args.archive or _archive_url(config, args.ground)
    limit = args.limit if args.limit is not None else (None if since is not None else (20 if args.follow else 50))
    try:
        with Archive(url, Path(args.out), readonly=True) as archive:
            rows = archive.events(min_severity=wanted.min_severity, sources=sorted(wanted.sources) or None,
                                  t0=since, newest_first=True).dicts()
    except PdhError as exc:
        if args.follow:
            print(f"cannot read the archive ({exc}); live events only", file=sys.stderr)
            return []
        raise SystemExit(f"cannot read the archive: {exc}") from None
    kept = [e for e in map(archive_event, rows) if EventFilter(names=wanted.names).keeps(e)]
    return list(reversed(kept if limit is None else kept[:limit]))


def _archive_url(config: Config, ground: str | None) -> str:
    from ground.station import archive_url

    grounds = config.processes_of_kind("ground.station")
    name = ground or (grounds[0] if len(grounds) == 1 else None)
    if name not in grounds:
        raise SystemExit(f"{config.file}: name one ground station with --ground (have: {grounds})")
    return archive_url(config, name)


def cmd_events(args: argparse.Namespace) -> int:
    config = run_config(args)
    try:
        since = None if args.since is None else parse_since(args.since, time.time())
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    wanted = EventFilter(args.severity, frozenset(args.source), tuple(args.name), args.via)
    show = event_json if args.json else event_line
    seen = Seen()
    shown = 0
    deadline = _deadline(args.duration) if args.follow else None
    if args.follow:
        _live_or_exit(config, args.out)
    try:
        for e in _archived(args, config, EventFilter(args.severity, frozenset(args.source), tuple(args.name)), since):
            seen.first(e)
            _say(show(e))
        if not args.follow:
            return 0
        for got in bus_records(config, LIVE_TOPICS["evt"], deadline):
            if not isinstance(got, Event) or not wanted.keeps(got) or not seen.first(got):
                continue
            _say(show(got))
            shown += 1
            if args.count is not None and shown >= args.count:
                break
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    return 0
