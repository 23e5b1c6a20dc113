"""The relay link model: rate, latency, random loss, a bounded queue. Pure: clock and RNG injected.

Each direction is one :class:`LinkModel`. A packet offered at time ``t``
waits behind the bytes already queued, takes ``size * 8 / rate_bps`` to
serialise, then ``latency_ms`` to arrive, unless it is lost (probability
``loss``) or the queue is full (tail drop). Both are counted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["LinkModel", "LinkStats"]


@dataclass
class LinkStats:
    offered: int = 0
    offered_bytes: int = 0
    delivered: int = 0
    lost: int = 0
    tail_dropped: int = 0


class LinkModel:
    """One direction of the relay link."""

    def __init__(self, rate_bps: float, latency_ms: float, loss: float, queue_bytes: int,
                 rng: random.Random) -> None:
        if rate_bps <= 0:
            raise ValueError("rate_bps must be positive")
        if not 0.0 <= loss < 1.0:
            raise ValueError("loss must be in [0, 1)")
        self.rate_bps = float(rate_bps)
        self.latency_s = latency_ms / 1000.0
        self.loss = float(loss)
        self.queue_bytes = int(queue_bytes)
        self.rng = rng
        self.stats = LinkStats()
        self._busy_until = float("-inf")

    def backlog_bytes(self, now: float) -> float:
        """Bytes still waiting to be serialised at ``now``."""
        return max(0.0, self._busy_until - now) * self.rate_bps / 8.0

    def offer(self, size: int, now: float) -> float | None:
        """Offer a packet of ``size`` bytes at ``now``; return its arrival time, or None if dropped."""
        self.stats.offered += 1
        self.stats.offered_bytes += size
        if self.backlog_bytes(now) + size > self.queue_bytes:
            self.stats.tail_dropped += 1
            return None
        start = max(now, self._busy_until)
        self._busy_until = start + size * 8.0 / self.rate_bps
        if self.loss and self.rng.random() < self.loss:
            self.stats.lost += 1
            return None
        self.stats.delivered += 1
        return self._busy_until + self.latency_s
