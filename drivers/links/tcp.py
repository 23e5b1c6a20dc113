"""TCP link helpers shared by drivers and emulators: backoff, connect, listen, a send queue.

Only byte moving lives here; framing belongs to each device's protocol module.
"""

from __future__ import annotations

import socket
from collections import deque
from typing import Callable, Sequence

__all__ = ["Backoff", "connect_tcp", "listen_tcp", "Buffer", "as_views", "SendQueue", "TcpLink"]


class Backoff:
    """Exponential reconnect delay: initial_s, doubling, capped at max_s; reset on success."""

    def __init__(self, initial_s: float = 0.1, max_s: float = 5.0, factor: float = 2.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self._next = initial_s

    def next_delay(self) -> float:
        delay = min(self._next, self.max_s)
        self._next = min(self._next * self.factor, self.max_s)
        return delay

    def reset(self) -> None:
        self._next = self.initial_s


def connect_tcp(host: str, port: int, timeout_s: float = 1.0) -> socket.socket:
    """A connected TCP socket with Nagle off and a send/receive timeout; raises OSError."""
    sock = socket.create_connection((host, port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def listen_tcp(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket (SO_REUSEADDR, so a restarted server can bind at once)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1)
    sock.setblocking(False)
    return sock


Buffer = bytes | bytearray | memoryview


def as_views(data: Buffer | Sequence[Buffer]) -> list[memoryview]:
    """One buffer or a sequence of buffers (a message's pieces) as non-empty byte views, nothing copied."""
    parts = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    views = [memoryview(part).cast("B") for part in parts]
    return [v for v in views if v.nbytes]


class SendQueue:
    """Outgoing messages for a non-blocking socket; a callback runs when a message's last byte is sent.

    A message may be several buffers (header, pixels, trailer): they go out
    with one ``sendmsg`` (scatter-gather), never concatenated. The buffers
    must stay unchanged until the callback has run.
    """

    def __init__(self) -> None:
        self._items: deque[tuple[list[memoryview], Callable[[], None] | None]] = deque()
        self.bytes_sent = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, data: Buffer | Sequence[Buffer], on_sent: Callable[[], None] | None = None) -> None:
        self._items.append((as_views(data), on_sent))

    def pump(self, sock: socket.socket) -> None:
        """Send as much as the socket takes now; raises OSError if the peer is gone."""
        while self._items:
            views, on_sent = self._items[0]
            if views:
                try:
                    n = sock.sendmsg(views) if len(views) > 1 else sock.send(views[0])
                except (BlockingIOError, InterruptedError):
                    return
                self.bytes_sent += n
                _consume(views, n)
                if views:
                    return  # the socket is full
            self._items.popleft()
            if on_sent is not None:
                on_sent()

    def clear(self) -> int:
        """Drop everything unsent; return how many messages were dropped."""
        n = len(self._items)
        self._items.clear()
        return n


def _consume(views: list[memoryview], n: int) -> None:
    """Drop the first n bytes from a list of views, in place."""
    while n and views:
        if n >= views[0].nbytes:
            n -= views.pop(0).nbytes
        else:
            views[0] = views[0][n:]
            n = 0


class TcpLink:
    """The driver's end of a TCP device link: connect, read, write, close."""

    kind = "tcp"

    def __init__(self, host: str, port: int, timeout_s: float = 1.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.sock: socket.socket | None = None

    def open(self) -> None:
        """Connect; raises OSError."""
        self.sock = connect_tcp(self.host, self.port, timeout_s=self.timeout_s)

    def fileno(self) -> int:
        assert self.sock is not None
        return self.sock.fileno()

    def read_into(self, buf: bytearray | memoryview) -> int:
        """Bytes read into the start of ``buf`` (at most its length); 0 means the peer closed; -1 nothing now.
        Raises OSError on a broken link."""
        assert self.sock is not None
        try:
            return self.sock.recv_into(buf)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return -1

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def describe(self) -> dict[str, object]:
        return {"interface": "tcp", "host": self.host, "port": self.port}
