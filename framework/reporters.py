"""The two reporters every process uses: health telemetry and events.

:class:`HealthReporter` publishes ``tlm.<process>`` (kind ``health``) at a fixed
period; :class:`EventReporter` publishes ``evt.<process>`` (kind ``evt``) with
the id and severity from the component's interface table, rate-limits the
events a flood of bad input would raise, and never lets a publishing failure
end the process. Components hold one of each; none writes its own.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from framework.bus.message import RESERVED_KEYS
from framework.counters import clamp_fields
from framework.errors import BusError
from framework.interface import Interface
from framework.logs import lines_dropped

__all__ = ["HealthReporter", "EventReporter", "LIMIT_PERIOD_S", "MAX_LIMITED_NAMES"]

LIMIT_PERIOD_S = 1.0
"""A rate-limited event goes out at most once per this period per name, carrying how many it folds."""
MAX_LIMITED_NAMES = 256
"""Rate-limit state is kept per event name (names come from the table, so this bound is never reached
in practice); beyond it the oldest entries are dropped rather than the table growing."""


class HealthReporter:
    """Publishes ``tlm.<process>`` with kind ``health`` at a fixed period.

    Call :meth:`tick` from the process's main loop; it publishes when due.
    ``sample`` returns the process's counters and state as a flat dict.
    ``channels``: the component's declared telemetry channels (its interface table); a sampled
    key the table does not declare is still published, and logged once as ``undeclared_channel``
    (a programming error the tests look for).
    The standard channels every table declares are filled here, not by each component: the log's
    ``log_lines_dropped``, the ``events`` reporter's counters, and the ``commands`` server's
    ``commands_accepted``/``commands_rejected`` (0 for a process whose config gives it no command port).
    """

    def __init__(self, ctx: Any, publisher: Any, sample: Callable[[], dict[str, Any]],
                 period_s: float = 1.0, channels: Iterable[str] | None = None,
                 events: "EventReporter | None" = None, commands: Any = None) -> None:
        self._ctx = ctx
        self._pub = publisher
        self._sample = sample
        self._events = events
        self._commands = commands
        self._period = period_s
        self._next = ctx.monotonic()
        self._start = ctx.monotonic()
        self._channels = None if channels is None else {"uptime_s", *channels}
        self._reported: set[str] = set()

    def tick(self, force: bool = False) -> None:
        now = self._ctx.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self._period
        fields = {"uptime_s": round(now - self._start, 3)}
        if self._channels is None or "log_lines_dropped" in self._channels:
            fields["log_lines_dropped"] = lines_dropped()
        if self._commands is not None or (self._channels is not None and "commands_accepted" in self._channels):
            fields["commands_accepted"] = 0 if self._commands is None else self._commands.accepted
            fields["commands_rejected"] = 0 if self._commands is None else self._commands.rejected
        if self._events is not None:
            fields.update(self._events.counters())
        fields.update(clamp_fields(self._sample()))  # a runaway counter reads as saturated, never unencodable
        if self._channels is not None:
            undeclared = set(fields) - self._channels - self._reported
            if undeclared:
                self._reported |= undeclared
                self._ctx.log.error("undeclared_channel", channels=sorted(undeclared))
        self._pub.publish(f"tlm.{self._ctx.name}", "health", fields)


class EventReporter:
    """Publishes a component's events, with id and severity from its interface table.

    ``publisher``: a :class:`~framework.bus.client.Publisher` (or anything with its ``publish``).
    ``fixed``: fields added to every event (the deploy driver's ``mechanism``).
    Detail keys that collide with the bus header's reserved keys get a trailing underscore
    (``kind`` -> ``kind_``) instead of failing the publish. Every event is also logged,
    ``info`` events at info level and the rest at warning.
    """

    def __init__(self, interface: Interface, publisher: Any, topic: str, log: Any,
                 monotonic: Callable[[], float], fixed: dict[str, Any] | None = None,
                 period_s: float = LIMIT_PERIOD_S) -> None:
        self.interface = interface
        self._pub = publisher
        self._topic = topic
        self._log = log
        self._monotonic = monotonic
        self._fixed = dict(fixed or {})
        self._period = period_s
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = {}
        self.published = 0
        self.unpublished = 0
        self.suppressed = 0

    def emit(self, name: str, fields: dict[str, Any] | None = None, severity: str | None = None,
             log_exclude: Iterable[str] = ()) -> dict[str, Any]:
        """Publish one event now; return its body. ``severity`` overrides the table's for an event
        whose severity depends on the occurrence (a verdict). Never raises for a bus failure: the
        event is logged as ``event_not_published`` and counted."""
        details = {(f"{k}_" if k in RESERVED_KEYS else k): v for k, v in {**self._fixed, **(fields or {})}.items()}
        body = self.interface.event_fields(name, details, severity, self._log)
        try:
            self._pub.publish(self._topic, "evt", body)
            self.published += 1
        except BusError as exc:  # a bad event must not end the process; the log keeps it
            self.unpublished += 1
            self._log.error("event_not_published", event_name=name, reason=str(exc))
        skip = set(log_exclude)
        logged = {k: v for k, v in details.items() if k not in skip}
        (self._log.info if body["severity"] == "info" else self._log.warning)(name, **logged)
        return body

    def limited(self, name: str, fields: dict[str, Any] | None = None, severity: str | None = None) -> bool:
        """At most one ``name`` event per period; the one that goes out carries ``count``, the number
        of occurrences it stands for. Return True if an event was published now."""
        now = self._monotonic()
        self._folded[name] = min(self._folded.get(name, 0) + 1, 1 << 62)
        if now - self._last.get(name, -math.inf) < self._period:
            self.suppressed += 1
            return False
        if name not in self._last and len(self._last) >= MAX_LIMITED_NAMES:
            oldest = next(iter(self._last))
            self._last.pop(oldest)
            self._folded.pop(oldest, None)
        self._last[name] = now
        self.emit(name, {**(fields or {}), "count": self._folded.pop(name)}, severity)
        return True

    def reset(self) -> None:
        """RESET_COUNTERS: zero the counts (rate-limit timing is kept, so a reset opens no flood)."""
        self.published = self.unpublished = self.suppressed = 0

    def counters(self) -> dict[str, int]:
        return {"events_published": self.published, "events_unpublished": self.unpublished,
                "events_suppressed": self.suppressed}
