"""Publisher and subscriber on the bus broker: the only bus code that imports zmq.

Every socket here has a MAXMSGSIZE (a larger message part costs the sender its connection, not
us the memory), no send waits (PUB drops at its high-water mark; the subscriber sees the ``seq``
gap), and :meth:`Subscriber.recv` does a bounded amount of work per call.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Sequence

import zmq

from framework.bus.message import (
    MAX_HEADER_BYTES, MAX_PART_BYTES, GapCounter, Header, Message, decode_message, encode_header,
)
from framework.counters import saturating_add
from framework.errors import BusError

__all__ = ["Publisher", "NullPublisher", "Subscriber"]


class Publisher:
    """Publishes ``[topic, header, *buffers]`` to the broker's XSUB side.

    Buffers go with ``copy=False``. At the high-water mark PUB drops: the
    subscriber sees the ``seq`` gap and counts it.
    """

    def __init__(self, ctx: zmq.Context, endpoint: str, src: str, sndhwm: int = 1000,
                 clock: Callable[[], float] = time.time) -> None:
        self.src = src
        self._clock = clock
        self._seq: dict[str, int] = {}
        self.sock = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        self.sock.setsockopt(zmq.LINGER, 500)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_HEADER_BYTES)  # what a PUB receives: subscriptions
        self.sock.connect(endpoint)

    def publish(self, topic: str, kind: str, fields: dict[str, Any] | None = None,
                buffers: Sequence[Any] = (), t: float | None = None) -> int:
        """Send one message; return its seq (counted per topic, so a subscriber to some topics sees no false gaps).

        Raises BusError, sending nothing, if the header cannot be encoded. Never waits: PUB drops
        at its high-water mark (the subscriber counts the gap)."""
        seq = self._seq.get(topic, 0)
        header = Header(src=self.src, seq=seq, t=self._clock() if t is None else t, kind=kind,
                        fields=dict(fields or {}))
        parts: list[Any] = [topic.encode(), encode_header(header), *buffers]
        self._seq[topic] = seq + 1
        self.sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
        return seq

    def close(self) -> None:
        self.sock.close()


class NullPublisher:
    """Takes what a :class:`Publisher` takes and sends nothing: the publisher of a process whose
    config gives it no bus (an emulator on a bench without a broker). Its events still reach the
    process log through the :class:`~framework.reporters.EventReporter`; no health is published."""

    def publish(self, topic: str, kind: str, fields: dict[str, Any] | None = None,
                buffers: Sequence[Any] = (), t: float | None = None) -> int:
        return 0

    def close(self) -> None:
        return None


class Subscriber:
    """Subscribes to topic prefixes on the broker's XPUB side; counts seq gaps.

    ``max_part_bytes``: the socket's MAXMSGSIZE (default :data:`~framework.bus.message.MAX_PART_BYTES`).
    """

    MAX_SKIPPED_PER_RECV = 256
    """Messages one :meth:`recv` looks at most before it returns None (a flood of malformed ones
    cannot keep the caller's loop from its other work)."""

    def __init__(self, ctx: zmq.Context, endpoint: str | Sequence[str], topics: Iterable[str],
                 rcvhwm: int = 1000, max_part_bytes: int = MAX_PART_BYTES) -> None:
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, max_part_bytes)
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        for address in [endpoint] if isinstance(endpoint, str) else endpoint:  # several buses: fair-queued
            self.sock.connect(address)
        self.gaps = GapCounter()
        self.malformed = 0

    def recv(self, timeout_ms: int = 100) -> Message | None:
        """Next well-formed message, or None after ``timeout_ms`` (or after skipping
        :data:`MAX_SKIPPED_PER_RECV` malformed ones).

        Malformed messages are counted in ``malformed`` and skipped; the
        caller learns of them through that counter, never by an exception.
        """
        deadline = time.monotonic() + timeout_ms / 1000
        for _ in range(self.MAX_SKIPPED_PER_RECV):
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            if not self.sock.poll(remaining):
                return None
            frames = self.sock.recv_multipart(copy=False)
            try:
                msg = decode_message(frames)
            except BusError:
                self.malformed = saturating_add(self.malformed, 1)
                continue
            self.gaps.observe(f"{msg.header.src}|{msg.topic}", msg.header.seq)
            return msg
        return None

    def close(self) -> None:
        self.sock.close()
