"""What the console shows, fed bus messages and a clock: telemetry with limits, events, products, commands.

No sockets and no HTTP: :meth:`ConsoleModel.take` is given each ground bus message (the ground's
own ``tlm.*``/``evt.*`` and the lander's ``lander.tlm.*``/``lander.evt.*`` that the ground
publishes as it decodes TM packets); the model keeps the latest value of every channel (with its
limit state from the channel's table entry), a bounded history per numeric channel, the last
events, the product cards (from the archive, :mod:`ground.console.archive_view`) and every
command's stages. Each change is also put on the
:class:`Feed` as one small update, which the HTTP side streams to pages (server-sent events);
a page that fell behind the feed's ring starts again from :meth:`ConsoleModel.snapshot`.

The model is written by the process's loop and read by the HTTP server's thread: one lock
guards it, held only for dictionary work.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from framework.interface import ChannelSpec, Interface

__all__ = ["Feed", "ConsoleModel", "limit_state", "LANDER_PREFIX", "SUBSCRIPTIONS"]

LANDER_PREFIX = "lander."
"""Topics the ground publishes for the lander's decoded TM packets: ``lander.tlm.<process>``, ``lander.evt.<process>``."""
SUBSCRIPTIONS = ("tlm.", "evt.", LANDER_PREFIX)
"""The ground bus topics the console follows."""
_FEED_KEPT = 4096


def limit_state(spec: ChannelSpec | None, value: Any) -> str | None:
    """``low``/``high`` when a number is outside its channel's limits, ``ok`` inside, None when the
    channel has no limits or the value is not a number (a string channel, a bool)."""
    if spec is None or (spec.low is None and spec.high is None):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if spec.low is not None and value < spec.low:
        return "low"
    if spec.high is not None and value > spec.high:
        return "high"
    return "ok"


class Feed:
    """A ring of numbered updates. Writers :meth:`put`; each reader keeps its own cursor and asks
    :meth:`since`; one that fell more than the ring behind is told so (``lost``) and reloads."""

    def __init__(self, kept: int = _FEED_KEPT) -> None:
        self._items: deque[tuple[int, dict[str, Any]]] = deque(maxlen=kept)
        self._next = 1
        self._lock = threading.Lock()

    def put(self, update: dict[str, Any]) -> int:
        with self._lock:
            seq = self._next
            self._next += 1
            self._items.append((seq, update))
            return seq

    @property
    def head(self) -> int:
        """The number the next update will get (a new reader starts here)."""
        with self._lock:
            return self._next

    def since(self, cursor: int) -> tuple[list[dict[str, Any]], int, bool]:
        """Updates numbered ``cursor`` and later, the next cursor, and whether some were lost to the ring."""
        with self._lock:
            oldest = self._items[0][0] if self._items else self._next
            lost = cursor < oldest
            items = [u for s, u in self._items if s >= cursor]
            return items, self._next, lost


@dataclass
class _Series:
    """One numeric channel's recent samples (t, value), bounded."""

    points: deque[tuple[float, float]]


class ConsoleModel:
    """``tables``: every process's interface table by process name (limits, units, event severities);
    ``lander``: the names of the lander's processes (their telemetry arrives as TM packets)."""

    def __init__(self, tables: Mapping[str, Interface], lander: set[str], feed: Feed, *,
                 history_points: int = 600, events_kept: int = 1000,
                 on_product: Callable[[str], dict[str, Any] | None] = lambda pid: None) -> None:
        self.tables = dict(tables)
        self.lander = set(lander)
        self.feed = feed
        self.history_points = history_points
        self.on_product = on_product
        self._lock = threading.Lock()
        self.latest: dict[str, dict[str, dict[str, Any]]] = {}
        self.series: dict[tuple[str, str], _Series] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=events_kept)
        self.products: dict[str, dict[str, Any]] = {}
        self.commands: dict[int, dict[str, Any]] = {}
        self.c = {"bus_messages": 0, "updates": 0}

    # -- input ---------------------------------------------------------------------------------
    def take(self, topic: str, src: str, t: float, fields: Mapping[str, Any]) -> None:
        """One ground bus message. Topics other than telemetry and events are ignored."""
        self.c["bus_messages"] += 1
        origin = "ground"
        if topic.startswith(LANDER_PREFIX):
            origin, topic = "lander", topic[len(LANDER_PREFIX):]
        what, _, process = topic.partition(".")
        process = process or src
        if what == "tlm":
            self.telemetry(process, t, fields, origin)
        elif what == "evt":
            self.event(process, t, fields, origin)

    def telemetry(self, process: str, t: float, fields: Mapping[str, Any], origin: str = "ground") -> None:
        """One housekeeping sample: each channel's latest value with its limit state, and its history."""
        channels = self.tables[process].telemetry if process in self.tables else {}
        values: dict[str, dict[str, Any]] = {}
        with self._lock:
            have = self.latest.setdefault(process, {})
            for name, value in fields.items():
                spec = channels.get(name)
                entry = {"v": _plain(value), "t": t, "limit": limit_state(spec, value)}
                have[name] = entry
                values[name] = entry
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    key = (process, name)
                    series = self.series.get(key)
                    if series is None:
                        series = self.series[key] = _Series(deque(maxlen=self.history_points))
                    series.points.append((t, float(value)))
        self._put({"type": "tlm", "process": process, "origin": origin, "t": t, "values": values})

    def event(self, process: str, t: float, fields: Mapping[str, Any], origin: str = "ground") -> None:
        """One event: kept in the log; ``product_received`` and ``command_stage`` also update their panels."""
        body = {k: _plain(v) for k, v in fields.items()}
        entry = {"t": t, "process": process, "origin": origin, "name": str(body.pop("name", "?")),
                 "severity": str(body.pop("severity", "info")), "id": body.pop("event_id", None), "fields": body}
        with self._lock:
            self.events.append(entry)
        self._put({"type": "evt", **entry})
        if origin != "ground":
            return
        if entry["name"] == "product_received" and body.get("ok", True) and isinstance(body.get("id"), str):
            card = self.on_product(body["id"])
            if card is not None:
                self.product(card)
        elif entry["name"] == "command_stage" and isinstance(body.get("id"), int):
            self.stage(body["id"], str(body.get("stage", "?")), t, str(body.get("reason", "")),
                       target=body.get("target"), cmd=body.get("cmd"))

    def product(self, card: dict[str, Any]) -> None:
        """A product the ground wrote (its archive row as a card, :func:`ground.console.archive_view.card_of`)."""
        with self._lock:
            self.products[card["id"]] = card
        self._put({"type": "product", "card": card})

    def command(self, cid: int, target: str, cmd: str, args: Mapping[str, Any], hazardous: bool = False,
                stages: list[dict[str, Any]] | None = None, state: str | None = None) -> None:
        """A command the ground's queue holds (sent from this console, or as the archive has it)."""
        with self._lock:
            have = self.commands.get(cid)
            entry = {"id": cid, "target": target, "cmd": cmd, "args": dict(args), "hazardous": hazardous,
                     "stages": list(stages) if stages is not None else (have["stages"] if have else []),
                     "state": state or (have["state"] if have else "queued")}
            self.commands[cid] = entry
            out = dict(entry)
        self._put({"type": "command", "command": out})

    def stage(self, cid: int, stage: str, t: float, detail: str = "", *, target: Any = None, cmd: Any = None) -> None:
        """A stage of command ``cid`` (a ``command_stage`` event), once even if the event comes twice."""
        with self._lock:
            entry = self.commands.setdefault(cid, {"id": cid, "target": str(target or "?"), "cmd": str(cmd or "?"),
                                                   "args": {}, "hazardous": False, "stages": [], "state": "queued"})
            if any(s["stage"] == stage for s in entry["stages"]):
                return
            entry["stages"].append({"stage": stage, "t": t, "detail": detail})
            entry["state"] = stage.split("#")[0]
            out = {**entry, "stages": list(entry["stages"])}
        self._put({"type": "command", "command": out})

    def _put(self, update: dict[str, Any]) -> None:
        self.feed.put(update)
        self.c["updates"] += 1

    # -- output --------------------------------------------------------------------------------
    def history(self, process: str, channel: str) -> list[tuple[float, float]]:
        with self._lock:
            series = self.series.get((process, channel))
            return list(series.points) if series else []

    def snapshot(self) -> dict[str, Any]:
        """Everything a page needs to start (then it follows the feed from ``cursor``)."""
        cursor = self.feed.head
        with self._lock:
            return {
                "cursor": cursor,
                "telemetry": {p: dict(v) for p, v in self.latest.items()},
                "history": {f"{p}/{c}": list(s.points) for (p, c), s in self.series.items()},
                "events": list(self.events),
                "products": sorted(self.products.values(), key=lambda c: (c.get("t_capture") or 0, c["id"])),
                "commands": [{**c, "stages": list(c["stages"])} for _, c in sorted(self.commands.items())],
            }

    def snapshot_events(self) -> list[dict[str, Any]]:
        """The events taken from the bus so far (the newest ``events_kept``), oldest first."""
        with self._lock:
            return list(self.events)

    def channels(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every process's channels with unit and limits (the page colours and charts with them)."""
        return {p: {c.name: {"unit": c.unit, "low": c.low, "high": c.high, "doc": c.doc}
                    for c in t.telemetry.values()} for p, t in self.tables.items()}

    def sample(self) -> dict[str, Any]:
        with self._lock:
            return {**self.c, "products_known": len(self.products)}


def _plain(value: Any) -> Any:
    """A value the page can take as JSON: bytes as hex, non-finite floats as strings, containers kept."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
