"""The broker's forwarding logic, free of sockets: how much moves per wake-up, and what it counts.

The process adapter (:mod:`fsw.broker.process`) owns the XSUB and XPUB sockets; for
each direction it hands :class:`Forwarder` a ``take`` (the next waiting message, or
None when none waits) and a ``give`` (send it on). The forwarder moves at most
``batch_max`` messages per call, so that under a flood of frames the loop still
turns: subscriptions travel, commands are answered, health goes out and a stop is
seen. It counts what it moved; a test drives it with lists.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Sized

__all__ = ["Forwarder", "Message", "Take", "Give", "BATCH_MAX"]

Message = Sequence[Sized]
"""A multipart message as the sockets hand it over: its frames (zmq Frames or bytes), each with a length."""
Take = Callable[[], Optional[Message]]
Give = Callable[[Message], None]

BATCH_MAX = 256
"""Messages moved per direction per call: the bound that keeps the loop turning under load."""


class Forwarder:
    """Moves messages downstream (publishers -> subscribers) and subscriptions upstream, counting both."""

    def __init__(self, batch_max: int = BATCH_MAX) -> None:
        if batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, got {batch_max}")
        self.batch_max = batch_max
        self.messages = 0
        self.bytes = 0
        self.subscription_changes = 0

    def forward(self, take: Take, give: Give) -> int:
        """Publishers -> subscribers: move what waits, at most ``batch_max``; count messages and bytes.
        Return how many moved."""
        return self._move(take, give, self._count_message)

    def subscriptions(self, take: Take, give: Give) -> int:
        """Subscribers -> publishers: pass (un)subscriptions upstream, at most ``batch_max``. Return how many."""
        return self._move(take, give, self._count_subscription)

    def _move(self, take: Take, give: Give, count: Callable[[Message], None]) -> int:
        for n in range(self.batch_max):
            message = take()
            if message is None:
                return n
            give(message)
            count(message)
        return self.batch_max

    def _count_message(self, message: Message) -> None:
        self.messages += 1
        self.bytes += sum(len(frame) for frame in message)

    def _count_subscription(self, message: Message) -> None:
        self.subscription_changes += 1

    def counters(self) -> dict[str, int]:
        return {"messages": self.messages, "bytes": self.bytes, "subscription_changes": self.subscription_changes}

    def reset(self) -> None:
        self.messages = self.bytes = self.subscription_changes = 0
