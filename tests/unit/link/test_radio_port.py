"""The lander's radio port reads only its relay's datagrams: any other sender is dropped, counted and
reported (real UDP sockets on loopback)."""

from __future__ import annotations

import socket
import time
from typing import Any

from link.radio import RadioPort
from tests.conftest import free_port


def _recv_all(port: RadioPort, want: int, timeout_s: float = 5.0) -> list[tuple[bytes, Any]]:
    got: list[tuple[bytes, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        item = port.recv()
        if item is None:
            time.sleep(0.005)
            continue
        got.append(item)
    return got


def test_only_the_relays_datagrams_are_read_and_others_are_counted_and_reported() -> None:
    relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    relay.bind(("127.0.0.1", 0))
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    reports: list[tuple[str, dict[str, Any]]] = []
    port = RadioPort(f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
                     f"udp://localhost:{relay.getsockname()[1]}", only_from_peer=True,
                     reject=lambda name, fields: reports.append((name, fields)))
    try:
        for i in range(3):
            stranger.sendto(b"forged %d" % i, port.address)
            relay.sendto(b"real %d" % i, port.address)
        got = _recv_all(port, 3)
        assert [d for d, _ in got] == [b"real 0", b"real 1", b"real 2"]
        deadline = time.monotonic() + 2
        while port.refused < 3 and time.monotonic() < deadline:
            port.recv()
        assert port.refused == 3
        assert reports and reports[0][0] == "datagram_rejected" and "not the peer" in reports[0][1]["reason"]
    finally:
        port.close()
        relay.close()
        stranger.close()


def test_a_port_without_the_filter_reads_every_sender() -> None:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = RadioPort(f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}")
    try:
        a.sendto(b"x", port.address)
        assert [d for d, _ in _recv_all(port, 1)] == [b"x"]
        assert port.refused == 0
    finally:
        port.close()
        a.close()
