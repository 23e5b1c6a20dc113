"""What the operator's live tools (``pdh tlm``, ``pdh events``, ``pdh status``) read from the buses. No sockets.

A bus message becomes a :class:`Sample` (one housekeeping message: ``tlm.<process>``) or an
:class:`Event` (``evt.<process>``). Each says how it came (``via``): ``bus`` straight from the
process's own bus (the lander's broker, or the ground's), ``tm`` decoded at the ground from the
lander's TM packets and republished there as ``lander.tlm.<process>`` / ``lander.evt.<process>``
(:mod:`ground.telemetry`), ``archive`` read back from the ground's archive. A tool that reaches both
buses sees each lander event twice (at once, and after the link): :class:`Seen` shows it once.

Filters (:class:`TlmFilter`, :class:`EventFilter`), the printed line and the ``--json`` object of
each, and :func:`parse_since` (``--since``) live here so they are tested without a running system.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from framework.interface import SEVERITIES, ChannelSpec
from ground.console.model import limit_state

__all__ = ["Sample", "Event", "from_message", "TlmFilter", "EventFilter", "Seen", "when", "sample_line",
           "sample_json", "event_line", "event_json", "parse_since", "archive_event", "severity_rank", "VIA",
           "LIVE_TOPICS"]

LANDER_PREFIX = "lander."
"""The ground republishes the lander's decoded TM packets under this prefix (:mod:`ground.telemetry`)."""
VIA = ("bus", "tm", "archive")
LIVE_TOPICS = {"tlm": ["tlm.", LANDER_PREFIX + "tlm."], "evt": ["evt.", LANDER_PREFIX + "evt."]}
"""The bus topics of housekeeping and of events, both ways they travel."""
_SEEN_PER_SOURCE = 256


@dataclass(frozen=True)
class Sample:
    """One housekeeping message of ``process``: its channels' values at ``t`` (the sender's clock)."""

    t: float
    process: str
    via: str
    channels: dict[str, Any]


@dataclass(frozen=True)
class Event:
    t: float
    source: str
    name: str
    severity: str
    via: str
    fields: dict[str, Any] = field(default_factory=dict)


def from_message(topic: str, src: str, t: float, fields: Mapping[str, Any]) -> Sample | Event | None:
    """The sample or event a bus message carries; None for any other topic (products, frames)."""
    via = "bus"
    if topic.startswith(LANDER_PREFIX):
        via, topic = "tm", topic[len(LANDER_PREFIX):]
    what, _, process = topic.partition(".")
    process = process or src
    if what == "tlm":
        return Sample(float(t), process, via, dict(fields))
    if what == "evt":
        body = dict(fields)
        name = str(body.pop("name", "?"))
        severity = str(body.pop("severity", "info"))
        body.pop("event_id", None)
        return Event(float(t), process, name, severity, via, body)
    return None


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass(frozen=True)
class TlmFilter:
    """Which samples and channels to show: ``processes`` (empty: all), ``channels`` (glob patterns such as
    ``queue_*``; empty: all), ``via`` (``bus`` or ``tm``; None: both)."""

    processes: frozenset[str] = frozenset()
    channels: tuple[str, ...] = ()
    via: str | None = None

    def apply(self, s: Sample) -> Sample | None:
        """The sample narrowed to the wanted channels, or None if nothing of it is wanted."""
        if (self.processes and s.process not in self.processes) or (self.via and s.via != self.via):
            return None
        if not self.channels:
            return s
        kept = {k: v for k, v in s.channels.items() if _matches(k, self.channels)}
        return replace(s, channels=kept) if kept else None


def severity_rank(severity: str) -> int:
    """Position in :data:`framework.interface.SEVERITIES`; an unknown severity ranks above them all."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


@dataclass(frozen=True)
class EventFilter:
    """``min_severity`` (None: all), ``sources`` (process names; empty: all), ``names`` (glob patterns),
    ``via`` (None: any)."""

    min_severity: str | None = None
    sources: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()
    via: str | None = None

    def keeps(self, e: Event) -> bool:
        if self.min_severity is not None and severity_rank(e.severity) < severity_rank(self.min_severity):
            return False
        if self.sources and e.source not in self.sources:
            return False
        if self.names and not _matches(e.name, self.names):
            return False
        return not (self.via and e.via != self.via)


class Seen:
    """The events already shown, so one that arrives both ways (the lander's bus at once, the ground's
    after the link; or the archive, then live) is shown once. Same source, name and time within
    ``tolerance_s`` (a TM packet carries time in 1/65536 s) is the same event."""

    def __init__(self, tolerance_s: float = 0.001, kept: int = _SEEN_PER_SOURCE) -> None:
        self.tolerance_s = tolerance_s
        self.kept = kept
        self._times: dict[tuple[str, str], deque[float]] = {}

    def first(self, e: Event) -> bool:
        """True the first time an event is seen (and remembers it); False for a repeat."""
        times = self._times.setdefault((e.source, e.name), deque(maxlen=self.kept))
        if any(abs(t - e.t) <= self.tolerance_s for t in times):
            return False
        times.append(e.t)
        return True


def when(t: float) -> str:
    """A time as the lines show it: UTC, to the millisecond."""
    try:
        return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    except (OverflowError, OSError, ValueError):
        return f"t={t!r}"


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"), default=str)
    return str(v)


def _out_of_limits(s: Sample, specs: Mapping[str, ChannelSpec]) -> dict[str, str]:
    got = {k: limit_state(specs.get(k), v) for k, v in s.channels.items()}
    return {k: state for k, state in got.items() if state in ("low", "high")}


def sample_line(s: Sample, specs: Mapping[str, ChannelSpec] | None = None) -> str:
    """``HH:MM:SS.mmm  process  via  name=value ...``; a value outside its limits is marked ``!low``/``!high``."""
    bad = _out_of_limits(s, specs or {})
    values = " ".join(f"{k}={_value(v)}{'!' + bad[k] if k in bad else ''}" for k, v in sorted(s.channels.items()))
    return f"{when(s.t)}  {s.process:<16} {s.via:<3}  {values}"


def sample_json(s: Sample, specs: Mapping[str, ChannelSpec] | None = None) -> str:
    """One JSON object (one line): t, process, via, channels, and the channels out of limits."""
    return json.dumps({"t": s.t, "process": s.process, "via": s.via, "channels": s.channels,
                       "out_of_limits": _out_of_limits(s, specs or {})}, default=str, separators=(",", ":"))


def event_line(e: Event) -> str:
    details = " ".join(f"{k}={_value(v)}" for k, v in e.fields.items())
    return f"{when(e.t)}  {e.severity:<7} {e.source:<16} {e.via:<7} {e.name}  {details}".rstrip()


def event_json(e: Event) -> str:
    return json.dumps({"t": e.t, "source": e.source, "name": e.name, "severity": e.severity, "via": e.via,
                       "fields": e.fields}, default=str, separators=(",", ":"))


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_since(text: str, now: float) -> float:
    """``--since`` as Unix seconds: ``90s``, ``10m``, ``2h``, ``1d`` (that long before ``now``), a plain
    number (Unix seconds, as ``pdh products --since``), or an ISO 8601 time (UTC unless it says otherwise).
    ValueError saying what is accepted."""
    m = _RELATIVE.match(text)
    if m:
        return now - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            return value
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: expected 30s, 10m, 2h, 1d, Unix seconds or an ISO 8601 time "
                         "(2026-01-02T03:04:05)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def archive_event(row: Mapping[str, Any]) -> Event:
    """An event row of the archive (:meth:`ground.archive.Archive.events`) as the tools show events."""
    fields = {k: v for k, v in dict(row.get("fields") or {}).items() if k not in ("name", "severity", "event_id")}
    return Event(float(row["t"]), str(row["source"]), str(row["name"]), str(row["severity"]), "archive", fields)
