"""The mechanism emulator in-process: control commands checked by its table, the fault event and its health."""

from __future__ import annotations

import time
from typing import Any

import zmq

from framework.bus.commands import CommandClient, CommandReply
from hil.deploy.interface import INTERFACE
from hil.deploy.process import MechanismEmulator
from tests.conftest import free_port
from tests.unit.hil.conftest import BusTap


def _call(emu: MechanismEmulator, client: CommandClient, cmd: str, args: dict[str, Any] | None = None) -> CommandReply:
    cid = client.send(cmd, args)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        emu.control.poll(0)
        reply = client.recv(0.01)
        if reply is not None and reply.id == cid and reply.status != "accepted":
            return reply
    raise AssertionError(f"no final reply to {cmd}")


def test_inject_is_checked_announced_and_counted_in_declared_health(emulator_ctx: Any, zctx: zmq.Context) -> None:
    eps = {n: f"tcp://127.0.0.1:{free_port()}" for n in ("link", "control", "bus")}
    ctx = emulator_ctx("boom_emu", {"kind": "hil.deploy", "profile": "spring_boom",
                                    "endpoints": {"link": "link", "control": "control", "bus_pub": "bus"}}, eps)
    tap = BusTap(zctx, eps["bus"])
    emu = MechanismEmulator(ctx)
    client = CommandClient(zctx, eps["control"])
    try:
        tap.wait(lambda: emu.health.tick(force=True), lambda m: m.header.kind == "health")  # the bus is connected
        done = _call(emu, client, "INJECT", {"fault": "jam", "angle_deg": 40})
        assert done.status == "completed" and done.result["faults"]["jam_deg"] == 40.0
        evt = tap.wait(lambda: None, lambda m: m.topic == "evt.boom_emu" and m.header.fields["name"] == "fault_injected")
        assert evt.header.fields["fault"] == "jam" and evt.header.fields["severity"] == "info"

        assert _call(emu, client, "INJECT", {"fault": "meteor"}).status == "rejected"  # the table's fault names
        assert _call(emu, client, "INJECT", {"fault": "jam", "angle_deg": 1e6}).status == "rejected"  # the hard stop
        assert _call(emu, client, "SET_AMBIENT", {"temp_c": 500}).status == "rejected"
        assert _call(emu, client, "SET_AMBIENT", {"temp_c": -40}).status == "completed"
        assert emu.core.mech.ambient_c == -40.0
        assert _call(emu, client, "CLEAR_FAULTS").result["faults"]["jam_deg"] is None
        rejected = tap.wait(lambda: None, lambda m: m.topic == "evt.boom_emu"
                            and m.header.fields["name"] == "command_rejected")
        assert rejected.header.fields["event_id"] == INTERFACE.events["command_rejected"].id

        health = tap.wait(lambda: emu.health.tick(force=True),
                          lambda m: m.topic == "tlm.boom_emu" and m.header.kind == "health")
        assert set(health.header.fields) == {"uptime_s", *INTERFACE.telemetry}
        assert health.header.fields["commands_rejected"] == 3

        assert _call(emu, client, "RESET_COUNTERS").status == "completed"
        after = tap.wait(lambda: emu.health.tick(force=True),  # the standard counters come with health
                         lambda m: m.topic == "tlm.boom_emu" and m.header.kind == "health")
        assert after.header.fields["commands_rejected"] == 0
    finally:
        client.close()
        emu.close()
        tap.close()
