"""The relay link model: rate, latency, random and burst loss, bit corruption, a bounded queue. Pure.

Each direction of each relay is one :class:`LinkModel`, with the clock and the
RNG injected. A packet offered at time ``t`` waits behind the bytes already
queued, takes ``size * 8 / rate_bps`` to serialise, then ``latency_ms`` to
arrive, unless the queue is full (tail drop), it is lost at random
(probability ``loss``), or lost in a burst (a Gilbert-Elliott chain: enter the
bad state with ``burst.enter`` per packet, leave with ``burst.leave``, lose
``burst.loss`` of the packets sent in it). A delivered packet has one random
bit flipped with probability ``corrupt``. Everything is counted.

:class:`Constellation` routes each datagram of a :class:`Direction` (lander to
ground, or back) through the relay the contact plan says is in contact, on
that relay's own model; a datagram sent while none is in contact is lost, as
in space. The process adapter (:mod:`hil.relay.process`) owns the sockets and
the clocks and passes the times in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from typing import Any

from link.contacts import Burst, ContactPlan, PlanOverrides

__all__ = ["LinkModel", "LinkStats", "Direction", "Constellation", "DIRECTION_COUNTERS"]


@dataclass
class LinkStats:
    offered: int = 0
    offered_bytes: int = 0
    delivered: int = 0
    lost: int = 0
    burst_lost: int = 0
    tail_dropped: int = 0
    corrupted: int = 0
    outside_window: int = 0


class LinkModel:
    """One direction of one relay."""

    def __init__(self, rate_bps: float, latency_ms: float, loss: float, queue_bytes: int,
                 rng: random.Random, burst: Burst | None = None, corrupt: float = 0.0) -> None:
        if rate_bps <= 0:
            raise ValueError("rate_bps must be positive")
        if not 0.0 <= loss < 1.0:
            raise ValueError("loss must be in [0, 1)")
        if not 0.0 <= corrupt <= 1.0:
            raise ValueError("corrupt must be in [0, 1]")
        self.rate_bps = float(rate_bps)
        self.latency_s = latency_ms / 1000.0
        self.loss = float(loss)
        self.queue_bytes = int(queue_bytes)
        self.rng = rng
        self.burst = burst or Burst()
        self.corrupt_p = float(corrupt)
        self.in_burst = False
        self.stats = LinkStats()
        self._busy_until = float("-inf")

    def set_rate(self, rate_bps: float) -> None:
        """A new pass may run at another rate; bytes already queued keep their times."""
        if rate_bps <= 0:
            raise ValueError("rate_bps must be positive")
        self.rate_bps = float(rate_bps)

    def configure(self, loss: float | None = None, corrupt: float | None = None, burst: Burst | None = None) -> None:
        """Change the loss, the corruption or the burst chain from the next packet on (a bench's command)."""
        if loss is not None and not 0.0 <= loss < 1.0:
            raise ValueError("loss must be in [0, 1)")
        if corrupt is not None and not 0.0 <= corrupt <= 1.0:
            raise ValueError("corrupt must be in [0, 1]")
        if loss is not None:
            self.loss = float(loss)
        if corrupt is not None:
            self.corrupt_p = float(corrupt)
        if burst is not None:
            self.burst = burst
            self.in_burst = False

    def backlog_bytes(self, now: float) -> float:
        """Bytes still waiting to be serialised at ``now``."""
        return max(0.0, self._busy_until - now) * self.rate_bps / 8.0

    def _burst_step(self) -> bool:
        """Advance the Gilbert-Elliott chain one packet; True if this packet is lost to it."""
        b = self.burst
        if b.enter <= 0.0:
            return False
        if self.in_burst:
            if self.rng.random() < b.leave:
                self.in_burst = False
        elif self.rng.random() < b.enter:
            self.in_burst = True
        return self.in_burst and self.rng.random() < b.loss

    def offer(self, size: int, now: float) -> float | None:
        """Offer a packet of ``size`` bytes at ``now``; return its arrival time, or None if dropped."""
        self.stats.offered += 1
        self.stats.offered_bytes += size
        if self.backlog_bytes(now) + size > self.queue_bytes:
            self.stats.tail_dropped += 1
            return None
        start = max(now, self._busy_until)
        self._busy_until = start + size * 8.0 / self.rate_bps
        if self._burst_step():
            self.stats.burst_lost += 1
            return None
        if self.loss and self.rng.random() < self.loss:
            self.stats.lost += 1
            return None
        self.stats.delivered += 1
        return self._busy_until + self.latency_s

    def outside_window(self) -> None:
        """Count a packet sent while this relay had no contact (lost, as in space)."""
        self.stats.offered += 1
        self.stats.outside_window += 1

    def corrupt(self, data: bytes) -> bytes:
        """``data``, or a copy with one random bit flipped (probability ``corrupt``)."""
        if not data or self.corrupt_p <= 0.0 or self.rng.random() >= self.corrupt_p:
            return data
        self.stats.corrupted += 1
        bit = self.rng.randrange(len(data) * 8)
        out = bytearray(data)
        out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out)


DIRECTION_COUNTERS: tuple[str, ...] = (*(f.name for f in fields(LinkStats)), "send_failures")
"""The counters of one direction, summed over its relays (its health channels, prefixed)."""


@dataclass
class Direction:
    """One way through the constellation: where it delivers, a model per relay, and its counters."""

    name: str
    dest: tuple[str, int]
    models: list[LinkModel]
    send_failures: int = 0
    outside_window: int = 0
    by_relay: dict[str, int] = field(default_factory=dict)

    def counters(self) -> dict[str, int]:
        """Every counter of :data:`DIRECTION_COUNTERS`, summed over the relays."""
        total = dict.fromkeys(DIRECTION_COUNTERS, 0)
        for m in self.models:
            for k, v in vars(m.stats).items():
                total[k] += v
        total["outside_window"] = self.outside_window
        total["send_failures"] = self.send_failures
        return total

    def stats(self) -> dict[str, Any]:
        """The counters and the datagrams each relay carried (for the log)."""
        return {**self.counters(), "by_relay": dict(self.by_relay)}

    def reset_counters(self) -> None:
        for m in self.models:
            m.stats = LinkStats()
        self.send_failures = 0
        self.outside_window = 0
        self.by_relay.clear()


class Constellation:
    """Routes one datagram through the relay in contact. Pure: times are passed in.

    ``plan`` is a :class:`~link.contacts.ContactPlan` or the bench's :class:`~link.contacts.PlanOverrides`
    over one. :meth:`set_link` changes a relay's loss, corruption, burst chain or rate while it runs; a
    rate set so holds for every pass of that relay until :meth:`clear_link`.
    """

    def __init__(self, plan: ContactPlan | PlanOverrides, settings: dict[str, Any]) -> None:
        self.plan = plan
        self.settings = settings
        self.rate_override: dict[int, float] = {}

    def set_link(self, directions: list[Direction], relay: int | None, loss: float | None = None,
                 corrupt: float | None = None, burst: Burst | None = None, rate_bps: float | None = None) -> None:
        """Change relay ``relay`` (an index; None: every relay) on ``directions`` from the next datagram on."""
        if rate_bps is not None and rate_bps <= 0:
            raise ValueError("rate_bps must be positive")
        indices = range(len(self.plan.relays)) if relay is None else (relay,)
        for d in directions:
            for i in indices:
                d.models[i].configure(loss, corrupt, burst)
        if rate_bps is not None:
            for i in indices:
                self.rate_override[i] = float(rate_bps)

    def clear_link(self, directions: list[Direction]) -> None:
        """Every relay's loss, corruption, burst and rate as the plan (and the process's ``loss``) say."""
        s = self.settings
        for d in directions:
            for r, m in zip(self.plan.relays, d.models):
                m.configure(min(0.95, r.loss + s["loss"]), r.corrupt, r.burst)
        self.rate_override.clear()

    def link_state(self, d: Direction) -> list[dict[str, Any]]:
        """Each relay's loss, corruption, burst and rate as they are now on ``d``."""
        return [{"relay": r.name, "loss": m.loss, "corrupt": m.corrupt_p,
                 "burst": {"enter": m.burst.enter, "leave": m.burst.leave, "loss": m.burst.loss},
                 "rate_bps": self.rate_override.get(i)}
                for i, (r, m) in enumerate(zip(self.plan.relays, d.models))]

    def models(self, tag: str) -> list[LinkModel]:
        """A seeded model per relay for the direction ``tag`` (the same seed gives the same losses)."""
        s = self.settings
        return [LinkModel(r.rate_bps[0], r.latency_ms, min(0.95, r.loss + s["loss"]), s["queue_bytes"],
                          random.Random(f"{s['seed']}:{r.name}:{tag}"), r.burst, r.corrupt)
                for r in self.plan.relays]

    def route(self, d: Direction, data: bytes, t_wall: float, t_mono: float) -> tuple[float, bytes] | None:
        """(arrival time on the monotonic clock, bytes as they arrive), or None if lost."""
        contact = self.plan.contact(t_wall)
        if contact is None:
            d.outside_window += 1
            return None
        model = d.models[contact.index]
        model.set_rate(self.rate_override.get(contact.index, contact.rate_bps))
        arrival = model.offer(len(data), t_mono)
        if arrival is None:
            return None
        d.by_relay[contact.relay] = d.by_relay.get(contact.relay, 0) + 1
        return arrival, model.corrupt(data)
