"""SEND_REGION forwarding never blocks the downlink: with imaging down its command port refuses at once
(a rejection, not a wait), and requests imaging never answers cannot grow without end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import zmq

from framework.bus.commands import CommandClient, CommandServer, register_table
from framework.config import check_mapping
from framework.reporters import EventReporter
from fsw.downlink import forwarder as forwarder_module
from fsw.downlink.commands import handlers
from fsw.downlink.forwarder import Forwarder
from fsw.downlink.interface import INTERFACE, KIND
from tests.conftest import free_port
from tests.unit.link.fakes import Bus, Log, Radio

REGION = {"camera": "navcam", "counter": 3, "region": [0, 0, 8, 8]}


def make(tmp_path: Path, bus: Bus, imaging: Any) -> Forwarder:
    settings = check_mapping("<test>", "downlink", KIND.keys, {"reencode": {"enabled": False}})
    events = EventReporter(INTERFACE, bus, "evt.downlink", Log(), time.monotonic)
    return Forwarder(settings, tmp_path, "<test>", "downlink", Radio(), events, Log(), time.time, time.monotonic,
                     imaging=imaging)


@pytest.fixture()
def zctx() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def final_status(server: CommandServer, operator: CommandClient, cmd: str, args: dict[str, Any]) -> str:
    """Send one command to the downlink's port, serve it, return its final status."""
    cid = operator.send(cmd, args)
    server.poll(1000)
    while True:
        reply = operator.recv(2.0)
        assert reply is not None, "no reply"
        if reply.id == cid and reply.status != "accepted":
            return reply.status


def test_with_imaging_down_region_requests_are_rejected_once_its_queue_is_full(tmp_path: Path,
                                                                               zctx: zmq.Context) -> None:
    imaging = CommandClient(zctx, f"tcp://127.0.0.1:{free_port()}", sndhwm=50)  # nobody listens there
    fwd = make(tmp_path, Bus(), imaging)
    server = CommandServer(zctx, "inproc://downlink-cmd")
    register_table(server, INTERFACE, handlers(fwd))
    operator = CommandClient(zctx, "inproc://downlink-cmd")
    statuses = [final_status(server, operator, "SEND_REGION", REGION) for _ in range(1000)]
    assert "rejected" in statuses and "failed" not in statuses
    assert imaging.unsent == statuses.count("rejected")
    assert len(fwd.forwarded) <= forwarder_module.MAX_REGION_REQUESTS
    fwd.store.close()


class SilentImaging:
    """Takes every command and never answers."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, cmd: str, args: dict[str, Any] | None = None) -> int:
        self.sent += 1
        return self.sent


def test_requests_imaging_never_answers_are_given_up_oldest_first_with_an_event(tmp_path: Path) -> None:
    bus = Bus()
    fwd = make(tmp_path, bus, SilentImaging())
    for _ in range(forwarder_module.MAX_REGION_REQUESTS + 10):
        fwd.forward_region(dict(REGION))
    assert len(fwd.forwarded) == forwarder_module.MAX_REGION_REQUESTS
    assert bus.names().count("region_request_failed") == 10
    assert min(fwd.forwarded) == 11  # the ten oldest were given up
    fwd.store.close()


def test_the_products_port_and_command_port_have_message_size_limits(tmp_path: Path, write_config: Any) -> None:
    import socket

    from framework.config import load_config
    from framework.process import ProcessContext
    from fsw.downlink.process import DownlinkProcess
    from fsw.imaging.product import MAX_PRODUCT_BYTES
    from tests.unit.link.fakes import Log as QuietLog

    tcp = {n: f"tcp://127.0.0.1:{free_port()}" for n in ("bus_pub", "products", "downlink_cmd")}
    udp = {n: f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}" for n in ("radio", "relay")}
    path = write_config({"version": 1, "endpoints": {**tcp, **udp}, "processes": {"downlink": {
        "kind": "fsw.downlink", "reencode": {"enabled": False}, "quota_bytes": 50_000_000,
        "endpoints": {"products": "products", "radio": "radio", "relay": "relay", "command": "downlink_cmd",
                      "bus_pub": "bus_pub"}}}})
    ctx = ProcessContext(name="downlink", config=load_config(path), out_dir=tmp_path / "out", log=QuietLog())
    process = DownlinkProcess(ctx)
    try:
        assert process.pull.getsockopt(zmq.MAXMSGSIZE) == min(MAX_PRODUCT_BYTES, 50_000_000)
        assert 0 < process.commands.sock.getsockopt(zmq.MAXMSGSIZE) <= 1 << 20
    finally:
        process.close()
        ctx.zmq.destroy(linger=0)
