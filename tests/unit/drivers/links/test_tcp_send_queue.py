"""SendQueue: messages as pieces go out whole and in order through a real socket pair, callbacks after each."""

from __future__ import annotations

import socket

import numpy as np

from drivers.links.tcp import SendQueue


def drain(sock: socket.socket) -> bytes:
    out = bytearray()
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return bytes(out)
        out += chunk


def test_pieced_messages_arrive_whole_in_order_with_callbacks_after_their_last_byte() -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # force many partial sends
    pixels = np.arange(300_000, dtype=np.uint16).reshape(500, 600)
    sent: list[str] = []
    q = SendQueue()
    q.push([b"head", memoryview(pixels), b"", b"tail"], lambda: sent.append("frame"))
    q.push(b"ack", lambda: sent.append("ack"))
    received = bytearray()
    try:
        while len(q):
            q.pump(a)
            received += drain(b)
        received += drain(b)
    finally:
        a.close()
        b.close()
    assert bytes(received) == b"head" + pixels.tobytes() + b"tail" + b"ack"
    assert sent == ["frame", "ack"] and q.bytes_sent == len(received)


def test_clear_drops_unsent_messages_without_their_callbacks() -> None:
    q = SendQueue()
    called: list[int] = []
    q.push([b"x", b"y"], lambda: called.append(1))
    assert q.clear() == 1 and len(q) == 0 and called == []
