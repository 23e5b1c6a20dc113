"""The relay emulator in-process: datagrams cross it; with a bus it reports health, with a command port it answers."""

from __future__ import annotations

import socket
import time
from typing import Any, Callable

import zmq

from framework.bus.commands import CommandClient, CommandReply
from hil.relay.interface import INTERFACE
from hil.relay.process import RelayEmulator
from tests.conftest import free_port
from tests.unit.hil.conftest import BusTap


def _udp() -> tuple[socket.socket, str]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0)
    return s, f"udp://127.0.0.1:{s.getsockname()[1]}"


def _config(ground: str, lander: str, **extra: str) -> dict[str, str]:
    eps = {"relay_lander": f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
           "relay_ground": f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}", "lander": lander, "ground": ground}
    return {**eps, **extra}


def _relay(emulator_ctx: Callable[..., Any], endpoints: dict[str, str], roles: dict[str, str]) -> Any:
    return emulator_ctx("relay", {"kind": "hil.relay", "latency_ms": 1.0,
                                  "endpoints": {"lander_in": "relay_lander", "ground_in": "relay_ground",
                                                "lander": "lander", "ground": "ground", **roles}}, endpoints)


def _through(relay: RelayEmulator, sender: socket.socket, receiver: socket.socket, payload: bytes) -> bytes:
    sender.sendto(payload, _addr(relay.ctx.endpoint("lander_in")))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        relay.step()
        try:
            return receiver.recv(65536)
        except BlockingIOError:
            continue
    raise AssertionError("the datagram never crossed the relay")


def _addr(endpoint: str) -> tuple[str, int]:
    host, port = endpoint.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def _command(relay: RelayEmulator, client: CommandClient, cmd: str) -> CommandReply:
    cid = client.send(cmd)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        relay.step()
        reply = client.recv(0.01)
        if reply is not None and reply.id == cid and reply.status != "accepted":
            return reply
    raise AssertionError(f"no final reply to {cmd}")


def test_without_bus_or_command_endpoints_the_relay_carries_datagrams_and_needs_no_zmq(emulator_ctx: Any) -> None:
    ground, ground_ep = _udp()
    lander, lander_ep = _udp()
    ctx = _relay(emulator_ctx, _config(ground_ep, lander_ep), {})
    relay = RelayEmulator(ctx)
    try:
        assert _through(relay, lander, ground, b"\x07\xfd hello") == b"\x07\xfd hello"
        assert relay.sample()["down_delivered"] == 1 and relay.health is None and relay.commands is None
        assert ctx._zmq is None  # no bus, no command port: no zmq context at all
        [opened] = ctx.log.events("contact_changed")
        assert opened["relay"] is not None
    finally:
        relay.close()
        ground.close()
        lander.close()


def test_with_a_bus_and_a_command_port_health_is_declared_and_reset_counters_zeroes_the_directions(
        emulator_ctx: Any, zctx: zmq.Context) -> None:
    ground, ground_ep = _udp()
    lander, lander_ep = _udp()
    bus, cmd = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    ctx = _relay(emulator_ctx, _config(ground_ep, lander_ep, bus=bus, cmd=cmd), {"bus_pub": "bus", "command": "cmd"})
    tap = BusTap(zctx, bus)
    relay = RelayEmulator(ctx)
    client = CommandClient(zctx, cmd)
    try:
        _through(relay, lander, ground, b"x" * 100)
        noop = _command(relay, client, "NOOP")
        assert noop.status == "completed" and "version" in noop.result
        health = tap.wait(lambda: relay.health.tick(force=True),
                          lambda m: m.topic == "tlm.relay" and m.header.kind == "health")
        assert set(health.header.fields) == {"uptime_s", *INTERFACE.telemetry}
        assert health.header.fields["down_offered"] == 1 and health.header.fields["down_offered_bytes"] == 100
        assert health.header.fields["commands_accepted"] == 1

        assert _command(relay, client, "RESET_COUNTERS").status == "completed"
        after = tap.wait(lambda: relay.health.tick(force=True),  # the standard counters come with health
                         lambda m: m.topic == "tlm.relay" and m.header.kind == "health").header.fields
        assert after["down_offered"] == 0 and after["down_delivered"] == 0
        assert after["commands_accepted"] == 1  # the reset itself

        assert _command(relay, client, "FLY_AWAY").status == "rejected"
        rejected = tap.wait(relay.step, lambda m: m.topic == "evt.relay" and m.header.fields["name"] == "command_rejected")
        assert rejected.header.fields["event_id"] == INTERFACE.events["command_rejected"].id
    finally:
        client.close()
        relay.close()
        tap.close()
        ground.close()
        lander.close()
