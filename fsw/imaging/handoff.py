"""Products on their way to the downlink, kept until the downlink has stored them. No sockets.

The imaging core pushes each product to the downlink's PULL socket. A message in a
ZeroMQ queue dies with either end, so a product is kept here after the push until
the downlink announces it stored (its ``product_stored`` event, or a refusal that
says it is already stored). One not confirmed within ``timeout_s`` is pushed again
(the downlink refuses a duplicate, so a late confirmation costs only the copy). With
no downlink in the config to confirm (a bench, a test with a bare PULL), a product
counts as handed over once it is in the socket.

Memory is bounded: beyond ``max_held`` products the oldest full frame waiting is
given up (``on_dropped``; the core names its frame), never the process.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Handoff", "Outgoing"]


@dataclass
class Outgoing:
    """One product message: its id, kind, frame, and the two frames of the products message."""

    id: str
    kind: str
    camera: str
    counter: int
    head: bytes
    body: bytes
    sent_at: float = 0.0
    sends: int = 0


class Handoff:
    """``send(head, body) -> bool``: push without blocking (False: the socket is full, try later).
    ``acked``: whether the downlink confirms; ``on_stored(id)``: a product is handed over for good;
    ``on_dropped(outgoing)``: a product given up to stay within ``max_held``."""

    def __init__(self, send: Callable[[bytes, bytes], bool], monotonic: Callable[[], float], acked: bool,
                 on_stored: Callable[[str], Any], on_dropped: Callable[[Outgoing], Any],
                 timeout_s: float = 10.0, max_held: int = 64) -> None:
        self._send = send
        self._monotonic = monotonic
        self.acked = acked
        self._on_stored = on_stored
        self._on_dropped = on_dropped
        self.timeout_s = timeout_s
        self.max_held = max_held
        self.pending: collections.deque[Outgoing] = collections.deque()
        self.unacked: dict[str, Outgoing] = {}
        self.c = {"products_resent": 0, "products_dropped": 0}

    def offer(self, out: Outgoing) -> None:
        """A new product: queued behind the others, then pushed by :meth:`flush`."""
        self.pending.append(out)
        while len(self.pending) + len(self.unacked) > self.max_held:
            self._drop_one()
        self.flush()

    def flush(self) -> None:
        """Push what waits, in order, until the socket is full."""
        while self.pending:
            out = self.pending[0]
            if not self._send(out.head, out.body):
                return
            self.pending.popleft()
            out.sends += 1
            out.sent_at = self._monotonic()
            if self.acked:
                self.unacked[out.id] = out
            else:
                self._on_stored(out.id)

    def ack(self, pid: str) -> bool:
        """The downlink stored ``pid``; True if it was ours and waiting for that."""
        out = self.unacked.pop(pid, None)
        if out is None:
            for i, waiting in enumerate(self.pending):  # confirmed while queued for a resend
                if waiting.id == pid:
                    del self.pending[i]
                    out = waiting
                    break
        if out is None:
            return False
        self._on_stored(pid)
        return True

    def forget(self, pid: str) -> Outgoing | None:
        """The downlink refused ``pid`` for good (no room by its quota, a bad product): stop offering it."""
        out = self.unacked.pop(pid, None)
        if out is None:
            for i, waiting in enumerate(self.pending):
                if waiting.id == pid:
                    del self.pending[i]
                    return waiting
        return out

    def tick(self) -> None:
        """Products not confirmed within ``timeout_s`` go again, ahead of new ones (they are older)."""
        now = self._monotonic()
        late = [o for o in self.unacked.values() if now - o.sent_at >= self.timeout_s]
        for out in reversed(late):
            del self.unacked[out.id]
            self.pending.appendleft(out)
            self.c["products_resent"] += 1
        if late:
            self.flush()

    def _drop_one(self) -> None:
        held = [*self.pending, *self.unacked.values()]
        victim = next((o for o in held if o.kind == "full"), held[0])
        if victim.id in self.unacked:
            del self.unacked[victim.id]
        else:
            self.pending.remove(victim)
        self.c["products_dropped"] += 1
        self._on_dropped(victim)

    def held_ids(self) -> set[str]:
        return {o.id for o in self.pending} | set(self.unacked)

    def sample(self) -> dict[str, Any]:
        return {**self.c, "products_pending": len(self.pending), "products_unacked": len(self.unacked)}
