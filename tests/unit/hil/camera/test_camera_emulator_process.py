"""The camera emulator in-process: its control port checks commands against the table; with a bus it
publishes its events and health (every channel declared); without one its events still reach the log."""

from __future__ import annotations

import time
from typing import Any, Callable

import zmq

from framework.bus.commands import CommandClient, CommandReply
from hil.camera.interface import INTERFACE
from hil.camera.process import CameraEmulator
from tests.conftest import free_port
from tests.unit.hil.conftest import BusTap

_PROFILE = {"width": 64, "height": 48}


def _emulator(emulator_ctx: Callable[..., Any], bus: bool) -> tuple[Any, dict[str, str]]:
    eps = {n: f"tcp://127.0.0.1:{free_port()}" for n in ("link", "control", "bus")}
    roles = {"link": "link", "control": "control", **({"bus_pub": "bus"} if bus else {})}
    ctx = emulator_ctx("cam_emu", {"kind": "hil.camera", "endpoints": roles, "camera": "navcam",
                                   "profile_file": "navcam", "profile": _PROFILE,
                                   "faults": [{"fault": "corrupt", "count": 2}]}, eps)
    return ctx, eps


def _call(emu: CameraEmulator, client: CommandClient, cmd: str, args: dict[str, Any] | None = None) -> CommandReply:
    cid = client.send(cmd, args)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        emu.step()
        reply = client.recv(0.01)
        if reply is not None and reply.id == cid and reply.status != "accepted":
            return reply
    raise AssertionError(f"no final reply to {cmd}")


def test_control_commands_are_checked_by_the_table_and_events_and_health_go_to_the_bus(
        emulator_ctx: Any, zctx: zmq.Context) -> None:
    ctx, eps = _emulator(emulator_ctx, bus=True)
    tap = BusTap(zctx, eps["bus"])
    emu = CameraEmulator(ctx)
    client = CommandClient(zctx, eps["control"])
    try:
        assert emu.faults.corrupt == 2  # the config's faults, armed at start
        tap.wait(lambda: emu.health.tick(force=True), lambda m: m.header.kind == "health")  # the bus is connected

        done = _call(emu, client, "inject_fault", {"fault": "late", "count": 1, "delay_s": 0.25})
        assert done.status == "completed" and done.result == {"fault": "late", "count": 1.0, "delay_s": 0.25}
        evt = tap.wait(emu.step, lambda m: m.topic == "evt.cam_emu" and m.header.fields["name"] == "fault_injected"
                       and m.header.fields["fault"] == "late")
        assert evt.header.fields["event_id"] == INTERFACE.events["fault_injected"].id

        refused = _call(emu, client, "inject_fault", {"fault": "stall", "count": 3})
        assert refused.status == "rejected" and "count" in refused.reason  # the injector: stall takes duration_s
        assert _call(emu, client, "set_scene", {"dust": 2.0}).status == "rejected"  # the table: dust is 0..1
        assert _call(emu, client, "set_scene", {"dust": 0.25, "footpad": False}).result["dust"] == 0.25
        assert _call(emu, client, "set_boom_angle", {"deg": 45}).result == {"boom_angle_deg": 45.0}
        status = _call(emu, client, "status").result
        assert status["boom_angle_deg"] == 45.0 and status["faults_injected"] == {"corrupt": 1, "late": 1}

        health = tap.wait(lambda: emu.health.tick(force=True),
                          lambda m: m.topic == "tlm.cam_emu" and m.header.kind == "health")
        assert set(health.header.fields) == {"uptime_s", *INTERFACE.telemetry}
        assert health.header.fields["boom_angle_deg"] == 45.0 and health.header.fields["commands_rejected"] == 2
    finally:
        client.close()
        emu.close()
        tap.close()


def test_without_a_bus_the_emulator_publishes_nothing_and_logs_its_events(emulator_ctx: Any,
                                                                          zctx: zmq.Context) -> None:
    ctx, eps = _emulator(emulator_ctx, bus=False)
    emu = CameraEmulator(ctx)
    client = CommandClient(zctx, eps["control"])
    try:
        assert emu.health is None
        assert _call(emu, client, "clear_faults").status == "completed"
        assert _call(emu, client, "inject_fault", {"fault": "meteor"}).status == "rejected"
        assert [e["fault"] for e in ctx.log.events("fault_injected")] == ["corrupt"]
        assert ctx.log.events("command_rejected")
    finally:
        client.close()
        emu.close()
