"""The camera emulator's device link cannot be made to hang or bloat it: a driver that sends commands and
never reads the replies is dropped once a bounded queue is full; a flood of garbage is worked off in
bounded steps while the control port keeps answering."""

from __future__ import annotations

import socket
import time
from typing import Any, Callable

import zmq

from drivers.camera import protocol as p
from framework.bus.commands import CommandClient
from hil.camera import process as emulator_process
from hil.camera.process import CameraEmulator
from tests.conftest import free_port

_PROFILE = {"width": 64, "height": 48}


def _emulator(emulator_ctx: Callable[..., Any]) -> tuple[CameraEmulator, dict[str, str]]:
    eps = {n: f"tcp://127.0.0.1:{free_port()}" for n in ("link", "control")}
    ctx = emulator_ctx("cam_emu", {"kind": "hil.camera", "endpoints": {"link": "link", "control": "control"},
                                   "camera": "navcam", "profile_file": "navcam", "profile": _PROFILE}, eps)
    return CameraEmulator(ctx), eps


def _connect(emu: CameraEmulator, eps: dict[str, str]) -> socket.socket:
    host, port = eps["link"].removeprefix("tcp://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    end = time.monotonic() + 5
    while emu.session is None and time.monotonic() < end:
        emu.step()
    assert emu.session is not None
    return sock


def test_a_driver_that_never_reads_its_replies_is_dropped_not_queued_for(emulator_ctx: Any) -> None:
    emu, eps = _emulator(emulator_ctx)
    sock = _connect(emu, eps)
    pings = b"".join(p.encode(p.Ping(seq=n + 1)) for n in range(2000))
    most_queued = 0
    try:
        end = time.monotonic() + 60
        while emu.session is not None and time.monotonic() < end:
            try:
                sock.send(pings)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                break  # dropped
            emu.step()
            if emu.session is not None:
                most_queued = max(most_queued, emu.session.pending())
        assert most_queued <= emulator_process.MAX_QUEUED
        assert emu.session is None, "the emulator kept queueing replies for a driver that does not read"
        assert any(f.get("reason") == "peer not reading" for f in emu.ctx.log.events("client_dropped"))
    finally:
        sock.close()
        emu.close()


def test_a_flood_of_false_syncs_is_worked_off_while_the_control_port_answers(emulator_ctx: Any,
                                                                              zctx: zmq.Context) -> None:
    emu, eps = _emulator(emulator_ctx)
    sock = _connect(emu, eps)
    client = CommandClient(zctx, eps["control"])
    try:
        sock.setblocking(True)
        sock.sendall((p.SYNC + b"\xff" * 20) * 20_000 + p.encode(p.Ping(seq=1)))
        cid = client.send("status")
        done = None
        end = time.monotonic() + 30
        while done is None and time.monotonic() < end:
            emu.step()
            reply = client.recv(0)
            if reply is not None and reply.id == cid and reply.status == "completed":
                done = reply
        assert done is not None and done.result["camera"] == "navcam"
        assert emu.wire_errors > 0
    finally:
        client.close()
        sock.close()
        emu.close()
