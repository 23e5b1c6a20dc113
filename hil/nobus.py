"""The publisher of an emulator whose config gives it no bus.

The camera and relay emulators take ``bus_pub`` as an optional role: a bench
that runs no broker still runs them. Their events go through the one
:class:`framework.reporters.EventReporter` either way; without a bus it is
handed a :class:`NoBus`, so the events reach the process log only, as they
did before the emulators had a bus, and no health is published.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NoBus", "publisher"]


class NoBus:
    """Takes what a :class:`~framework.bus.client.Publisher` takes, and sends nothing."""

    def publish(self, topic: str, kind: str, fields: dict[str, Any] | None = None, *args: Any, **kw: Any) -> None:
        return None

    def close(self) -> None:
        return None


def publisher(ctx: Any) -> Any:
    """The process's bus publisher if its config gives it ``bus_pub``, else a :class:`NoBus`."""
    return ctx.publisher() if ctx.has_endpoint("bus_pub") else NoBus()
