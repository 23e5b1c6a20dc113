"""The mechanism emulator's device link never waits on its driver: replies go out on a non-blocking
socket through a bounded queue, and a driver that sends but never reads is dropped."""

from __future__ import annotations

import socket
import time
from typing import Any

from drivers.deploy import protocol as p
from hil.deploy import process as emulator_process
from hil.deploy.process import MechanismEmulator
from tests.conftest import free_port


def test_a_driver_that_never_reads_is_dropped_and_the_link_never_waits(emulator_ctx: Any) -> None:
    eps = {n: f"tcp://127.0.0.1:{free_port()}" for n in ("link", "control", "bus")}
    ctx = emulator_ctx("boom_emu", {"kind": "hil.deploy", "profile": "spring_boom",
                                    "endpoints": {"link": "link", "control": "control", "bus_pub": "bus"}}, eps)
    emu = MechanismEmulator(ctx)
    host, port = eps["link"].removeprefix("tcp://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    requests = b"".join(p.encode(p.StatusRequest(seq=n + 1)) for n in range(2000))
    try:
        end = time.monotonic() + 5
        while emu.link.client is None and time.monotonic() < end:
            emu.link.poll(0.01, emu.core)
        assert emu.link.client is not None and emu.link.client.gettimeout() == 0.0  # never a blocking send
        most_queued = 0
        end = time.monotonic() + 60
        while emu.link.client is not None and time.monotonic() < end:
            try:
                sock.send(requests)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                break
            emu.link.poll(0.001, emu.core)
            most_queued = max(most_queued, len(emu.link.queue))
        assert emu.link.client is None, "replies kept queueing for a driver that does not read"
        assert most_queued <= emulator_process.MAX_QUEUED
    finally:
        sock.close()
        emu.close()
