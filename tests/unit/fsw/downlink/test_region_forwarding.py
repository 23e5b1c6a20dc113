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
