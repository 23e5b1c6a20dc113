"""In-memory stand-ins for what the I/O-free link users are given: a radio, a bus publisher, a log."""

from __future__ import annotations

from typing import Any, Callable


class Radio:
    """Keeps every datagram sent; never full."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, datagram: bytes) -> bool:
        self.sent.append(datagram)
        return True


class Bus:
    """A publisher that keeps the bodies published (events, for an EventReporter)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def publish(self, topic: str, kind: str, body: dict[str, Any]) -> None:
        self.events.append(body)

    def names(self) -> list[str]:
        return [e["name"] for e in self.events]


class Log:
    """Takes any structlog-style call and drops it."""

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda *args, **kw: None
