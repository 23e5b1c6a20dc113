"""A radio port: one non-blocking UDP socket on loopback with generous kernel buffers.

The lander's downlink, the ground station and the relay all speak datagrams;
this is the one place their socket options live.
"""

from __future__ import annotations

import socket
from typing import Protocol

from framework.config import ALL_INTERFACES, parse_endpoint

__all__ = ["Radio", "RadioPort", "udp_address"]

BUFFER_BYTES = 16 * 1024 * 1024
MAX_DATAGRAM = 65535


def udp_address(endpoint: str, bind: bool = False) -> tuple[str, int]:
    """``udp://host:port`` -> ``(host, port)`` for a socket. ``*`` binds every interface (0.0.0.0);
    a peer at ``*`` is no address to send to (the config refuses it; here it is a ValueError)."""
    scheme, host, port = parse_endpoint(endpoint)
    if scheme != "udp":
        raise ValueError(f"{endpoint} is not a udp endpoint")
    if host == ALL_INTERFACES and not bind:
        raise ValueError(f"{endpoint}: * binds every interface; a peer needs its host's address")
    return ("127.0.0.1" if host == "localhost" else host), port


class Radio(Protocol):
    """What the I/O-free senders (the lander's transmitter, the ground station) need of a radio:
    send one datagram, False when it cannot go now. :class:`RadioPort` is the real one."""

    def send(self, datagram: bytes) -> bool: ...


class RadioPort:
    """Bound to ``bind``; sends to a default ``peer`` unless told otherwise."""

    def __init__(self, bind: str, peer: str | None = None, buffer_bytes: int = BUFFER_BYTES) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, buffer_bytes)
            except OSError:
                pass  # the kernel caps it; what it grants is read back below
        self.sock.bind(udp_address(bind, bind=True))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self.peer = udp_address(peer) if peer else None
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.sndbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, datagram: bytes, peer: tuple[str, int] | None = None) -> bool:
        """Send one datagram; False if the socket buffer is full (try again later)."""
        target = peer or self.peer
        assert target is not None, "no peer to send to"
        try:
            self.sock.sendto(datagram, target)
        except (BlockingIOError, InterruptedError):
            return False
        except ConnectionRefusedError:
            return True  # ICMP from an earlier datagram: the peer is not up yet; UDP drops it
        return True

    def recv(self) -> tuple[bytes, tuple[str, int]] | None:
        """One waiting datagram and its sender, or None."""
        while True:
            try:
                return self.sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return None
            except ConnectionRefusedError:
                continue  # a stale ICMP error, not a datagram

    def close(self) -> None:
        self.sock.close()
