"""A radio port: one non-blocking UDP socket on loopback with generous kernel buffers.

The lander's downlink, the ground station and the relay all speak datagrams;
this is the one place their socket options live. A port told to
(``only_from_peer``) takes datagrams only from its configured peer's address
and port (the lander's from its relay): any other sender's datagram is dropped
unread, counted in :attr:`RadioPort.refused` and reported through ``reject``
(the process's rate-limited ``datagram_rejected`` event). Who may speak is a
property of the address until ground PDUs are authenticated with the uplink.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, Protocol

from framework.config import ALL_INTERFACES, parse_endpoint

__all__ = ["Radio", "RadioPort", "udp_address"]

BUFFER_BYTES = 16 * 1024 * 1024
MAX_DATAGRAM = 65535
_REFUSED_PER_RECV = 512  # foreign datagrams dropped in one recv() before it returns (a flood must not hold the loop)


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


def _numeric(address: tuple[str, int]) -> tuple[str, int]:
    """A peer address as ``recvfrom`` reports its datagrams' sender: the host's IPv4 address."""
    host, port = address
    try:
        return socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4][:2]
    except (socket.gaierror, IndexError):
        return address


class RadioPort:
    """Bound to ``bind``; sends to a default ``peer`` unless told otherwise.

    ``only_from_peer``: receive only the peer's datagrams (the lander's radio, whose one peer is the
    relay); ``reject(name, fields)`` reports each one refused."""

    def __init__(self, bind: str, peer: str | None = None, buffer_bytes: int = BUFFER_BYTES,
                 only_from_peer: bool = False, reject: Callable[[str, dict[str, Any]], Any] | None = None) -> None:
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
        if only_from_peer and self.peer is None:
            raise ValueError("only_from_peer needs a peer")
        self.accept_from = _numeric(self.peer) if only_from_peer and self.peer else None
        self.refused = 0
        self._reject = reject or (lambda name, fields: None)
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
        """One waiting datagram (from the peer, with ``only_from_peer``) and its sender, or None."""
        for _ in range(_REFUSED_PER_RECV):
            try:
                data, sender = self.sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return None
            except ConnectionRefusedError:
                continue  # a stale ICMP error, not a datagram
            if self.accept_from is None or tuple(sender[:2]) == self.accept_from:
                return data, sender
            self.refused += 1
            self._reject("datagram_rejected", {"reason": f"sender {sender[0]}:{sender[1]} is not the peer "
                                               f"{self.accept_from[0]}:{self.accept_from[1]}", "bytes": len(data)})
        return None

    def close(self) -> None:
        self.sock.close()
