"""What waits for the store while it refuses writes, and whether it does. No sockets, no store calls.

A full (or read-only, or failing) disk must cost the downlink neither its life nor anything it was
given. While the store refuses (:class:`~fsw.downlink.store.StoreUnavailable`) the downlink keeps
here what it could not write: the product it took (and takes no more: the imaging core's bounded
queue holds or drops by its own policy, back-pressure), the ground's confirmations it could not
record yet (those products are not sent again), and recorded telemetry segments (bounded: the oldest
goes first beyond :data:`MAX_SEGMENTS`). :class:`Backlog` says when to try again
(every :data:`RETRY_S`), reports the first fault and then at most one ``store_unavailable`` per
rate-limit period (with the count), and ``store_available`` once, when everything it held is written.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from framework.reporters import EventReporter
from fsw.downlink.recorder import Segment

__all__ = ["Backlog", "RETRY_S", "MAX_SEGMENTS"]

RETRY_S = 0.5
"""How often a refusing store is tried again."""
MAX_SEGMENTS = 256
"""Telemetry segments held at most while the store refuses (about 8 minutes of 2 s housekeeping)."""
_COUNT_MAX = 2**63 - 1


class Backlog:
    def __init__(self, events: EventReporter, monotonic: Callable[[], float]) -> None:
        self.events = events
        self.monotonic = monotonic
        self.ok = True
        self.faults = 0
        self.products: list[dict[str, Any]] = []  # ProductStore.add arguments of products not stored yet
        self.confirmations: dict[str, int] = {}  # product id -> the transaction the ground confirmed it by
        self.segments: deque[Segment] = deque()
        self._down_since = 0.0
        self._next_try = 0.0

    @property
    def empty(self) -> bool:
        return not self.products and not self.confirmations and not self.segments

    def fault(self, op: str, exc: Exception) -> None:
        """The store refused ``op``: count, report (rate-limited), try again in :data:`RETRY_S`."""
        self.faults = min(self.faults + 1, _COUNT_MAX)
        now = self.monotonic()
        if self.ok:
            self.ok, self._down_since = False, now
        self._next_try = now + RETRY_S
        self.events.limited("store_unavailable", {"op": op, "reason": str(exc), **self.figures()})

    def due(self) -> bool:
        """Time to try the store again."""
        return not self.ok and self.monotonic() >= self._next_try

    def recovered(self) -> None:
        """Everything held is written and the store takes writes again."""
        if self.ok:
            return
        self.ok = True
        self.events.emit("store_available", {"down_s": round(self.monotonic() - self._down_since, 3),
                                             "faults": self.faults})

    def keep_segment(self, seg: Segment) -> Segment | None:
        """Hold a segment; return the oldest one dropped to make room, if any."""
        self.segments.append(seg)
        return self.segments.popleft() if len(self.segments) > MAX_SEGMENTS else None

    def figures(self) -> dict[str, int]:
        return {"products_held": len(self.products), "confirmations_held": len(self.confirmations),
                "segments_held": len(self.segments)}
