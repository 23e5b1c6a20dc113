"""The camera emulator's control-port handlers: faults, boom angle, scene, status.

Each handler gets its arguments already checked against
:data:`hil.camera.interface.INTERFACE` (registered with
:func:`framework.bus.commands.register_table`); what the table cannot say
(which arguments a given fault takes) is checked by the fault injector, which
raises CommandRejected naming it. The handlers touch only the emulator's
I/O-free parts (device, fault injector, scene) and its event reporter.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from framework.bus.commands import Handler
from framework.reporters import EventReporter
from hil.camera.device import CameraDevice
from hil.camera.faults import FaultInjector

__all__ = ["CameraEmulator", "handlers", "inject_fault"]


class CameraEmulator(Protocol):
    """What the handlers use of the emulator process (so this module never imports process.py)."""

    ctx: Any
    camera: str
    device: CameraDevice
    faults: FaultInjector
    events: EventReporter

    @property
    def connected(self) -> bool: ...

    def powered(self, now: float) -> bool: ...


def inject_fault(emu: CameraEmulator, args: dict[str, Any]) -> dict[str, Any]:
    """Arm one fault (control port, or the config's ``faults`` list at start-up); announce it."""
    rest = dict(args)
    name = rest.pop("fault")
    armed = emu.faults.inject(name, rest, emu.ctx.monotonic())
    emu.events.emit("fault_injected", {"fault": name, **armed})
    return {"fault": name, **armed}


def _clear_faults(emu: CameraEmulator) -> dict[str, Any]:
    emu.faults.clear()
    return {"cleared": True}


def _set_boom_angle(emu: CameraEmulator, args: dict[str, Any]) -> dict[str, Any]:
    scene = emu.device.set_scene(boom_angle_deg=round(args["deg"], 2))
    return {"boom_angle_deg": scene.boom_angle_deg}


def _set_scene(emu: CameraEmulator, args: dict[str, Any]) -> dict[str, Any]:
    return dataclasses.asdict(emu.device.set_scene(**args))


def _status(emu: CameraEmulator) -> dict[str, Any]:
    now = emu.ctx.monotonic()
    device = emu.device
    return {"camera": emu.camera, "connected": emu.connected, "powered": emu.powered(now),
            "latched": device.latched, "streaming": device.streaming, "temp_c": round(device.temp_c(now), 2),
            "frames_sent": device.frames_sent, "next_counter": device.next_counter,
            "boom_angle_deg": device.source.scene.boom_angle_deg,
            "faults_injected": {k: v for k, v in emu.faults.injected.items() if v}}


def handlers(emu: CameraEmulator) -> dict[str, Handler]:
    """One handler per control command of the table (NOOP and RESET_COUNTERS are the server's)."""
    return {
        "inject_fault": lambda args: inject_fault(emu, args),
        "clear_faults": lambda args: _clear_faults(emu),
        "set_boom_angle": lambda args: _set_boom_angle(emu, args),
        "set_scene": lambda args: _set_scene(emu, args),
        "status": lambda args: _status(emu),
    }
