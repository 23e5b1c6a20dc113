"""The mechanism emulator's control-port handlers: faults, ambient temperature, truth, reset.

Each handler gets its arguments already checked against
:data:`hil.deploy.interface.INTERFACE` (registered with
:func:`framework.bus.commands.register_table`); what depends on the profile
(the hard stop, the circuits, whether the mechanism moves at all) is checked by
:meth:`hil.deploy.mechanism.Mechanism.inject`, which raises CommandRejected
naming it. The handlers touch only the I/O-free device core and the event reporter.
"""

from __future__ import annotations

from typing import Any, Protocol

from framework.bus.commands import Handler
from framework.reporters import EventReporter
from hil.deploy.device import DeviceCore

__all__ = ["MechanismEmulator", "handlers", "faults_of"]


class MechanismEmulator(Protocol):
    """What the handlers use of the emulator process (so this module never imports process.py)."""

    core: DeviceCore
    events: EventReporter


def faults_of(core: DeviceCore) -> dict[str, Any]:
    """The active faults, as the control port reports them."""
    f = core.mech.faults
    return {"jam_deg": f.jam_deg, "slow_factor": f.slow_factor, "stuck_switches": dict(f.stuck_switches),
            "angle_dropout": f.angle_dropout, "open_circuits": sorted(f.open_circuits),
            "short_circuits": dict(f.short_circuits)}


def _inject(emu: MechanismEmulator, args: dict[str, Any]) -> dict[str, Any]:
    rest = dict(args)
    fault = rest.pop("fault")
    emu.core.mech.inject(fault, rest)
    emu.events.emit("fault_injected", dict(args))
    return {"faults": faults_of(emu.core)}


def _clear_faults(emu: MechanismEmulator) -> dict[str, Any]:
    emu.core.mech.clear_faults()
    return {"faults": faults_of(emu.core)}


def _set_ambient(emu: MechanismEmulator, args: dict[str, Any]) -> None:
    emu.core.mech.ambient_c = args["temp_c"]


def _truth(emu: MechanismEmulator) -> dict[str, Any]:
    return {**emu.core.mech.truth(), "faults": faults_of(emu.core)}


def _reset(emu: MechanismEmulator) -> None:
    emu.core.reset()


def handlers(emu: MechanismEmulator) -> dict[str, Handler]:
    """One handler per control command of the table (NOOP and RESET_COUNTERS are the server's)."""
    return {
        "INJECT": lambda args: _inject(emu, args),
        "CLEAR_FAULTS": lambda args: _clear_faults(emu),
        "SET_AMBIENT": lambda args: _set_ambient(emu, args),
        "TRUTH": lambda args: _truth(emu),
        "RESET": lambda args: _reset(emu),
    }
