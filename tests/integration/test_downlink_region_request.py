"""SEND_REGION on the downlink is forwarded to the imaging core's MAKE_ROI, and imaging's answer is reported."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
import zmq

from framework.bus.commands import CommandClient, CommandServer
from framework.bus.client import Subscriber
from tests.conftest import Processes, free_port

pytestmark = pytest.mark.integration


def test_send_region_reaches_imaging_as_make_roi_and_its_reply_becomes_an_event(
        tmp_path: Path, write_config: Any, processes: Processes) -> None:
    tcp = {n: f"tcp://127.0.0.1:{free_port()}" for n in ("bus_pub", "bus_sub", "products", "cmd", "imaging_cmd")}
    udp = {n: f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}" for n in ("radio", "relay")}
    cfg = write_config({
        "version": 1, "security": {"curve": False},  # plain command ports: not about keys
        "endpoints": {**tcp, **udp}, "bus": {"sndhwm": 100, "rcvhwm": 100},
        "processes": {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
            "downlink": {"kind": "fsw.downlink",
                         "endpoints": {"bus_pub": "bus_pub", "products": "products", "radio": "radio",
                                       "relay": "relay", "command": "cmd"},
                         "links": {"imaging_command": "imaging_cmd"}, "reencode": {"enabled": False}},
        },
    })
    endpoints = yaml.safe_load(cfg.read_text())["endpoints"]
    zctx = zmq.Context()
    asked: list[dict[str, Any]] = []
    imaging = CommandServer(zctx, endpoints["imaging_cmd"])
    imaging.register("MAKE_ROI", lambda args: asked.append(args) or {"id": "navcam-00000003-roi"})
    sub = Subscriber(zctx, endpoints["bus_sub"], ["evt.downlink", "tlm.downlink"])
    for name in ("broker", "downlink"):
        processes.start(cfg, name)
    client = CommandClient(zctx, endpoints["cmd"])
    try:
        assert client.call("NOOP", {}, timeout_s=10.0)[-1].status == "completed"
        # The subscription has reached the downlink once its health arrives (it was sent with evt.downlink's);
        # before that, an event it publishes is dropped by its PUB socket.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = sub.recv(200)
            if msg is not None and msg.topic == "tlm.downlink":
                break
        reply = client.call("SEND_REGION", {"camera": "navcam", "counter": 3, "region": [8, 16, 64, 32]},
                            timeout_s=5.0)[-1]
        assert reply.status == "completed" and reply.result["forwarded"] == "MAKE_ROI"
        deadline = time.monotonic() + 10
        while not asked and time.monotonic() < deadline:
            imaging.poll(100)
        assert asked == [{"camera": "navcam", "counter": 3, "region": [8, 16, 64, 32]}]
        done = None
        deadline = time.monotonic() + 20
        while done is None and time.monotonic() < deadline:
            msg = sub.recv(200)
            if msg is not None and msg.header.fields.get("name") == "region_request_done":
                done = msg.header.fields
        assert done is not None and done["result"] == {"id": "navcam-00000003-roi"}
    finally:
        client.close()
        sub.close()
        imaging.close()
        zctx.term()
