"""``pdh status``: one screen of a running system: processes, link, passes, store, last events.

    pdh status [--out DIR] [--config FILE] [--listen S] [--events N] [--json] [--watch S]

Where each part comes from, so the screen can be trusted:

* processes: the run's supervisor (``OUT/supervisor.json``, :func:`pdh.supervisor.read_state`), each
  pid checked alive, and the health each process published on the buses while the tool listened
  (``--listen`` seconds; health goes out every second);
* link: the contact plan the relay, downlink and ground share (the one open now, the next window),
  and the downlink's health (in contact, transactions and bytes in flight, send rate) and the ground's;
* passes: the passes the ground's archive recorded, and the next windows of the plan;
* store: the lander store's fill and queues from the downlink's health: live from the lander's bus,
  else as the ground decoded it from TM, else the archive's last values; and the products the ground holds;
* events: the last ones, from the archive and from the buses.

Each value says which way it came (``bus``, ``tm``, ``archive``) and how old it is. The exit status is
0 when every process the supervisor runs is running, 1 otherwise. The config defaults to the one the
run's supervisor was started with.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from framework.config import Config, config_dir, find_config, load_config
from framework.errors import PdhError
from pdh.live import LIVE_TOPICS, Event, Sample, Seen, event_line, when
from pdh.supervisor import read_state

__all__ = ["add_status_parser", "cmd_status", "Live", "build_status", "render", "process_rows"]

DOWNLINK_CHANNELS = ("contact", "contact_rate_bps", "in_flight", "bytes_in_flight", "send_rate_bps", "store_fill",
                     "store_bytes", "store_ok", "queue_depth", "queue_alert", "queue_thumbnail", "queue_telemetry",
                     "queue_requested", "queue_playback", "queue_rest", "oldest_unconfirmed_s", "products_evicted")
"""The downlink's channels the link and store parts show."""
GROUND_CHANNELS = ("contact", "receive_rate_bps", "active_transactions", "products_received", "uplink_waiting",
                   "uplink_in_flight")
_ARCHIVE_LOOKBACK_S = 600.0
_PASSES_SHOWN = 3


@dataclass
class Live:
    """What the buses said while the tool listened: the latest sample per (process, via), the events."""

    samples: dict[tuple[str, str], Sample] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    buses_down: list[str] = field(default_factory=list)

    def take(self, got: Sample | Event) -> None:
        if isinstance(got, Sample):
            old = self.samples.get((got.process, got.via))
            if old is None or got.t >= old.t:
                self.samples[(got.process, got.via)] = got
        else:
            self.events.append(got)

    def latest(self, process: str) -> Sample | None:
        """The process's newest sample, straight from its bus before a decoded TM one."""
        return self.samples.get((process, "bus")) or self.samples.get((process, "tm"))


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _expects_health(settings: Mapping[str, Any]) -> bool:
    """Whether a process publishes health on a bus (it has a bus publisher, or is a broker)."""
    return "bus_pub" in settings.get("endpoints", {}) or settings.get("kind") == "bus.broker"


def process_rows(config: Config, sup: Mapping[str, Any], live: Live, now: float,
                 alive: Callable[[Any], bool] = pid_alive) -> list[dict[str, Any]]:
    """One row per process of the config: the supervisor's state (``dead`` where it says running but the
    pid is gone; None where this run's supervisor does not run it) and the health last seen."""
    known = sup.get("processes", {}) if isinstance(sup.get("processes"), dict) else {}
    rows = []
    for name, settings in config.processes.items():
        rec = known.get(name) or {}
        state = rec.get("state")
        if state == "running" and not alive(rec.get("pid")):
            state = "dead"
        s = live.latest(name)
        rows.append({"name": name, "kind": settings["kind"], "host": settings.get("host"), "state": state,
                     "pid": rec.get("pid"), "starts": rec.get("starts"), "gave_up": rec.get("gave_up"),
                     "health": None if s is None else {"via": s.via, "age_s": round(now - s.t, 3)},
                     "expects_health": _expects_health(settings)})
    return rows


def channel_values(process: str | None, channels: tuple[str, ...], live: Live,
                   archived: Mapping[str, tuple[float, Any]], now: float) -> dict[str, Any]:
    """The process's ``channels``: from its bus, else from TM at the ground, else the archive's last values.
    ``{"via", "age_s", "values"}``; via None when nothing was found."""
    s = live.latest(process) if process else None
    if s is not None:
        return {"via": s.via, "age_s": round(now - s.t, 3), "values": {c: s.channels.get(c) for c in channels}}
    if archived:
        t = max(t for t, _ in archived.values())
        return {"via": "archive", "age_s": round(now - t, 3), "values": {c: archived.get(c, (0, None))[1]
                                                                        for c in channels}}
    return {"via": None, "age_s": None, "values": {c: None for c in channels}}


def build_status(config: Config, out: Path, sup: Mapping[str, Any], live: Live, windows: Mapping[str, Any],
                 archive: Mapping[str, Any], now: float, alive: Callable[[Any], bool] = pid_alive,
                 events_shown: int = 8) -> dict[str, Any]:
    """The whole screen as data (what ``--json`` prints and :func:`render` draws)."""
    downlink = next(iter(config.processes_of_kind("fsw.downlink")), None)
    ground = next(iter(config.processes_of_kind("ground.station")), None)
    rows = process_rows(config, sup, live, now, alive)
    dl = channel_values(downlink, DOWNLINK_CHANNELS, live, archive.get("downlink_values", {}), now)
    gr = channel_values(ground, GROUND_CHANNELS, live, {}, now)
    seen = Seen()
    events = [e for e in sorted([*archive.get("events", []), *live.events], key=lambda e: e.t) if seen.first(e)]
    quota = config.processes[downlink].get("quota_bytes") if downlink else None
    supervised = [r for r in rows if r["state"] is not None]
    return {
        "t": now, "config": str(config.file), "out": str(out),
        "supervisor": {"pid": sup.get("pid"), "alive": alive(sup.get("pid")) if sup else False,
                       "host": sup.get("host")},
        "processes": rows,
        "ok": bool(supervised) and all(r["state"] == "running" for r in supervised),
        "link": {"current": windows.get("current"), "next": (windows.get("windows") or [None])[0]
                 if windows.get("current") is None else _after_current(windows),
                 "downlink": downlink, "downlink_health": dl, "ground": ground, "ground_health": gr},
        "passes": {"recorded": archive.get("passes", [])[-_PASSES_SHOWN:],
                   "upcoming": [w for w in windows.get("windows", []) if w["opens"] > now][:_PASSES_SHOWN]},
        "store": {"lander": dl, "quota_bytes": quota, "ground_products": archive.get("products")},
        "events": [{"t": e.t, "source": e.source, "name": e.name, "severity": e.severity, "via": e.via,
                    "fields": e.fields} for e in events[-events_shown:]],
        "notes": [*live.buses_down, *archive.get("notes", [])],
    }


def _after_current(windows: Mapping[str, Any]) -> dict[str, Any] | None:
    cur = windows["current"]
    return next((w for w in windows.get("windows", []) if w["opens"] >= cur["closes"] - 1e-6), None)


# -- drawing ------------------------------------------------------------------------------------------
def _bytes(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _rate(bps: Any) -> str:
    return f"{bps / 1e6:.1f} Mbit/s" if isinstance(bps, (int, float)) else "-"


def _ago(s: Any) -> str:
    return "-" if s is None else f"{s:.1f} s ago"


def _source(v: Mapping[str, Any]) -> str:
    return f"({v['via']}, {_ago(v['age_s'])})"


def _v(x: Any) -> str:
    """A value on screen: '-' for one not known."""
    return "-" if x is None else str(x)


_UNSEEN = "no health seen (not on its bus, nor from TM at the ground, nor in the archive)"


def _process_lines(rows: list[dict[str, Any]], supervised: bool) -> list[str]:
    lines = [f"  {'process':<18}{'kind':<16}{'host':<10}{'state':<11}{'pid':>8}{'starts':>7}  health"]
    for r in rows:
        h = r["health"]
        health = f"tlm {_ago(h['age_s'])} ({h['via']})" if h else ("NONE SEEN" if r["expects_health"] else "-")
        state = r["state"] or ("(elsewhere)" if supervised else "unknown")
        line = (f"  {r['name']:<18}{r['kind']:<16}{str(r['host'] or '-'):<10}{state:<11}"
                f"{str(r['pid'] or '-'):>8}{str(r['starts'] or '-'):>7}  {health}")
        if r["gave_up"]:
            line += f"  last error: {r['gave_up']}"
        lines.append(line)
    return lines


def _window(w: Mapping[str, Any] | None, now: float) -> str:
    if not w:
        return "none in the plan's horizon"
    return (f"{w['relay']} pass {w['pass']} opens {when(w['opens'])} (in {w['opens'] - now:.1f} s) for "
            f"{w['closes'] - w['opens']:.1f} s at {_rate(w['rate_bps'])}")


def _link_lines(link: Mapping[str, Any], now: float) -> list[str]:
    cur = link["current"]
    if cur:
        lines = [f"  contact   {cur['relay']} pass {cur['pass']}, closes in {cur['closes'] - now:.1f} s "
                 f"({_rate(cur['rate_bps'])}, {cur['latency_ms']:.0f} ms one way)",
                 f"  next      {_window(link['next'], now)}"]
    else:
        lines = ["  contact   none now", f"  next      {_window(link['next'], now)}"]
    d = link["downlink_health"]
    if link["downlink"] and d["via"] is None:
        lines.append(f"  {link['downlink']:<9} {_UNSEEN}")
    elif link["downlink"]:
        v = d["values"]
        ids = [i for i in str(v.get("in_flight") or "").split(",") if i]
        lines.append(f"  {link['downlink']:<9} contact {v.get('contact') or 'none'}, {len(ids)} in flight "
                     f"({_bytes(v.get('bytes_in_flight'))}), sending {_rate(v.get('send_rate_bps'))}  {_source(d)}")
    g = link["ground_health"]
    if link["ground"] and g["via"] is None:
        lines.append(f"  {link['ground']:<9} no health seen on its bus")
    elif link["ground"]:
        v = g["values"]
        lines.append(f"  {link['ground']:<9} contact {v.get('contact') or 'none'}, receiving "
                     f"{_rate(v.get('receive_rate_bps'))}, {_v(v.get('active_transactions'))} transactions open, "
                     f"uplink {_v(v.get('uplink_waiting'))} waiting / {_v(v.get('uplink_in_flight'))} in flight  "
                     f"{_source(g)}")
    return lines


def _pass_lines(passes: Mapping[str, Any], now: float) -> list[str]:
    lines = []
    for p in passes["recorded"]:
        end = (f"closed {when(p['t_closed'])}" if p.get("t_closed")
               else f"open, planned to close {when(p['t_close_planned'])}")
        lines.append(f"  {p['relay']} pass {p['pass_number']}: opened {when(p['t_open'])}, {end}")
    if not passes["recorded"]:
        lines.append("  none recorded in the archive")
    lines += [f"  next: {_window(w, now)}" for w in passes["upcoming"]]
    return lines


def _store_lines(store: Mapping[str, Any]) -> list[str]:
    d = store["lander"]
    v = d["values"]
    fill = v.get("store_fill")
    queues = " ".join(f"{k[len('queue_'):]} {_v(v.get(k))}" for k in DOWNLINK_CHANNELS
                      if k.startswith("queue_") and k != "queue_depth")
    fill_text = "-" if not isinstance(fill, (int, float)) else f"{fill * 100:.1f}%"
    oldest = v.get("oldest_unconfirmed_s")
    lines = [f"  lander    {_UNSEEN}" if d["via"] is None else
             f"  lander    fill {fill_text} ({_bytes(v.get('store_bytes'))} of {_bytes(store['quota_bytes'])}), "
             f"{_v(v.get('queue_depth'))} queued: {queues}; oldest "
             f"{'-' if not isinstance(oldest, (int, float)) else f'{oldest:.0f}'} s, evicted "
             f"{_v(v.get('products_evicted'))}{'' if v.get('store_ok') != 0 else ', WRITES REFUSED'}  {_source(d)}"]
    got = store["ground_products"]
    if got is None:
        lines.append("  ground    archive not readable")
    else:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(got.items())) or "none yet"
        lines.append(f"  ground    {sum(got.values())} products: {kinds}  (archive; pdh missing: what is not)")
    return lines


def render(view: Mapping[str, Any]) -> str:
    """The screen as text."""
    now = view["t"]
    sup = view["supervisor"]
    head = (f"lunar-pdh status {when(now)} UTC  config {view['config']}  out {view['out']}\n"
            f"supervisor pid {sup['pid'] or '-'} ({'running' if sup['alive'] else 'NOT RUNNING'})"
            f"{'' if view['ok'] else '  -- NOT EVERY PROCESS IS RUNNING'}")
    parts = [head, "PROCESSES", *_process_lines(view["processes"], bool(sup["pid"])),
             "LINK", *_link_lines(view["link"], now), "PASSES", *_pass_lines(view["passes"], now), "STORE", *_store_lines(view["store"]),
             f"EVENTS (last {len(view['events'])})"]
    parts += [f"  {event_line(Event(e['t'], e['source'], e['name'], e['severity'], e['via'], e['fields']))}"
              for e in view["events"]] or ["  none"]
    if view["notes"]:
        parts += ["NOTES", *(f"  {n}" for n in view["notes"])]
    return "\n".join(parts)


# -- gathering ----------------------------------------------------------------------------------------
def _listen(config: Config, out: str, seconds: float) -> Live:
    from pdh.cli_tlm import bus_records, reachable_buses

    live = Live()
    up, live.buses_down = reachable_buses(config, out)
    if up and seconds > 0:
        for got in bus_records(config, [*LIVE_TOPICS["tlm"], *LIVE_TOPICS["evt"]], time.monotonic() + seconds):
            live.take(got)
    return live


def _from_archive(config: Config, out: Path, downlink: str | None, now: float, events: int) -> dict[str, Any]:
    """Passes, products by kind, the last events and the downlink's last archived values; notes on failure."""
    from ground.archive import Archive
    from ground.station import archive_url
    from pdh.live import archive_event

    grounds = config.processes_of_kind("ground.station")
    if not grounds:
        return {"notes": ["no ground station in the config: no archive"]}
    try:
        with Archive(archive_url(config, grounds[0]), out, readonly=True) as a:
            got: dict[str, Any] = {
                "passes": a.contacts().dicts(),
                "products": a.count_products(),
                "events": [archive_event(r) for r in reversed(a.events(newest_first=True, limit=events).dicts())],
            }
            values: dict[str, tuple[float, Any]] = {}
            for ch in DOWNLINK_CHANNELS if downlink else ():
                rows = a.parameter(downlink, ch, t0=now - _ARCHIVE_LOOKBACK_S).dicts()
                if rows:
                    values[ch] = (float(rows[-1]["t"]), rows[-1]["value"])
            got["downlink_values"] = values
            return got
    except PdhError as exc:
        return {"notes": [f"archive: cannot read it ({exc})"]}


def _windows(config: Config, now: float) -> dict[str, Any]:
    from ground.console.linkview import windows
    from link.contacts import load_plan

    planners = [*config.processes_of_kind("ground.station"), *config.processes_of_kind("fsw.downlink")]
    if not planners:
        return {"now": now, "current": None, "windows": []}
    return windows(load_plan(config.processes[planners[0]], str(config.file)), now, 3600.0)


def _config_path(args: argparse.Namespace, sup: Mapping[str, Any]) -> Path:
    if args.config:
        return find_config(args.config)
    if sup.get("config"):
        return Path(str(sup["config"]))
    return config_dir() / "demo.yaml"


def snapshot(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    sup = read_state(out)
    config = load_config(_config_path(args, sup)).for_run(out)
    live = _listen(config, args.out, args.listen)
    now = time.time()
    downlink = next(iter(config.processes_of_kind("fsw.downlink")), None)
    view = build_status(config, out, sup, live, _windows(config, now), _from_archive(config, out, downlink, now,
                                                                                      args.events),
                        now, events_shown=args.events)
    if not sup:
        view["notes"].insert(0, f"no supervisor state in {out} (no run there, or pdh run --out was another directory)")
    return view


def cmd_status(args: argparse.Namespace) -> int:
    if not args.listen >= 0:
        raise SystemExit(f"--listen: expected seconds, 0 or more, got {args.listen:g}")
    try:
        while True:
            view = snapshot(args)
            text = json.dumps(view, default=str) if args.json else render(view)
            if args.watch:
                sys.stdout.write("\x1b[H\x1b[2J")
            print(text, flush=True)
            if not args.watch:
                return 0 if view["ok"] else 1
            time.sleep(args.watch)
    except (KeyboardInterrupt, BrokenPipeError):
        return 0


def add_status_parser(sub: Any) -> None:
    """Add ``pdh status`` to the CLI's subcommands."""
    s = sub.add_parser("status", help="one screen of a running system: processes, link, passes, store, events")
    s.add_argument("--out", default="OUT", help="the run's output directory (default OUT)")
    s.add_argument("--config", default=None, help="the run's config (default: the one its supervisor started)")
    s.add_argument("--listen", type=float, default=2.5,
                   help="seconds to listen to the buses for health and events (default 2.5)")
    s.add_argument("--events", type=int, default=8, help="how many of the last events to show (default 8)")
    s.add_argument("--json", action="store_true", help="the screen as one JSON object")
    s.add_argument("--watch", type=float, default=None, metavar="S", help="draw it again every S seconds")
    s.set_defaults(func=cmd_status)
