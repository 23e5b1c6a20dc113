"""How long a frame used in place has before its ring slot is written again. Pure: handles and a clock in.

A camera driver's ring (:mod:`framework.bus.frames_shm`) writes its slots in turn,
and every write raises that slot's generation by two, from one base shared by all
slots. So the handles the bus carries number the writes: ``write = (generation // 2)
* slots + slot`` grows by one per frame the driver puts in the ring (up to a constant).
The newest handle seen of a ring is the writer's head as far as this core knows, and
a frame ``lag`` writes behind it has ``slots - 1 - lag`` writes to go before the
writer claims its slot again (the writer claims a slot as it starts receiving the
frame that fills it, about one frame time before it publishes that one).

:class:`RingWatch` keeps, per ring, the newest write and the rate the writer goes at
(over the last handles), and turns a frame's lease into seconds left
(:meth:`RingWatch.seconds_left`). The rate is measured on the frames' capture times (the
camera's clock), not on when their handles arrived: the bus may bring several at once. The imaging core compares that with what the
frame's work costs, and keeps only a thumbnail of a frame whose full product could
not be done before its slot is rewritten: degraded by policy, said by an event,
instead of lost mid-work.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field

__all__ = ["RingWatch", "write_number"]

_RATE_WINDOW = 4  # handles per ring the writer's rate is measured over (the last ones: a burst counts at once)
_STOPPED_WRITES = 2.0
"""A writer that published nothing for this many of its write times has stopped or slowed (a burst on command
ended, or a camera triggered by its reader waits for it): its rate says nothing about the next rewrite."""


def write_number(slot: int, generation: int, slots: int) -> int:
    """The rank of the write a handle names among all writes of its ring (up to a constant per ring)."""
    return (generation // 2) * slots + slot


@dataclass
class _Ring:
    slots: int
    newest: int
    arrived: float  # when the newest handle arrived (this core's clock)
    seen: collections.deque[tuple[float, int]] = field(default_factory=lambda: collections.deque(maxlen=_RATE_WINDOW))

    def rate_hz(self) -> float:
        """Writes per second over the last handles seen (capture time, write); 0 until :data:`_RATE_WINDOW`
        of them: a camera taking single frames on command is not a stream that will come round its ring
        (the time between two commands is no rate), and its frames are never given up for it."""
        if len(self.seen) < _RATE_WINDOW:
            return 0.0
        (t0, w0), (t1, w1) = self.seen[0], self.seen[-1]
        return (w1 - w0) / (t1 - t0) if t1 > t0 and w1 > w0 else 0.0


class RingWatch:
    """The writer's head and rate per ring, from the handles of frames as they arrive."""

    def __init__(self) -> None:
        self.rings: dict[str, _Ring] = {}

    def seen(self, name: str, slot: int, generation: int, slots: int, t_capture: float, now: float) -> None:
        """A frame's handle (captured at ``t_capture`` by the camera's clock) arrived at ``now``. A write
        number far below the head (a restarted writer starts its generations from the clock, so they only
        grow) or a capture time going back starts the ring's record afresh."""
        w = write_number(slot, generation, slots)
        ring = self.rings.get(name)
        if (ring is None or ring.slots != slots or w < ring.newest - 4 * slots
                or (ring.seen and w > ring.newest and t_capture < ring.seen[-1][0])):
            ring = self.rings[name] = _Ring(slots, w, now)
        if w >= ring.newest:
            ring.newest, ring.arrived = w, now
            ring.seen.append((t_capture, w))

    def lag(self, name: str, slot: int, generation: int, slots: int) -> int:
        """Writes the ring has published since this handle's (0: it is the newest seen)."""
        ring = self.rings.get(name)
        return 0 if ring is None else max(0, ring.newest - write_number(slot, generation, slots))

    def writes_left(self, name: str, slot: int, generation: int, slots: int) -> int:
        """Writes the ring can publish before the writer claims this handle's slot again."""
        return slots - 1 - self.lag(name, slot, generation, slots)

    def seconds_left(self, name: str, slot: int, generation: int, slots: int, now: float) -> float:
        """About how long until the writer claims this handle's slot again: the writes left at the
        writer's rate, less the time since the newest handle (the writer has gone on since), but at most
        one write's time. inf while the rate is not known yet (fewer than :data:`_RATE_WINDOW` handles) and
        once the writer is overdue by :data:`_STOPPED_WRITES` write times: a writer that published nothing
        for that long has slowed or stopped (a burst ended, the stream stopped), and a frame is not given up
        for a rewrite that is not coming."""
        ring = self.rings.get(name)
        rate = ring.rate_hz() if ring is not None else 0.0
        if ring is None or rate <= 0.0:
            return math.inf
        since = max(now - ring.arrived, 0.0)
        if since > _STOPPED_WRITES / rate:  # overdue: a burst that ended, or a writer held back by its reader
            return math.inf
        return self.writes_left(name, slot, generation, slots) / rate - min(since, 1.0 / rate)
