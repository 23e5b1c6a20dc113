"""The mechanism emulator's interface, as data: its control-port commands, events, health channels and kind.

The control port keeps its upper-case command names on the wire (scenarios and
tests use them: ``INJECT {fault, ...}``, ``CLEAR_FAULTS``, ``SET_AMBIENT``,
``TRUTH``, ``RESET``). The table checks types, ranges, fault and switch names;
the handlers in :mod:`hil.deploy.commands` leave the rest to
:meth:`hil.deploy.mechanism.Mechanism.inject` (which arguments a fault takes,
limits that depend on the profile, such as the hard stop). Format:
:mod:`framework.interface`.
"""

from __future__ import annotations

from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from framework.kinds import Field, KindSpec
from drivers.deploy.profile import load_profile
from hil.deploy.mechanism import FAULTS

__all__ = ["KIND", "INTERFACE"]

_INJECT_ARGS = (
    Arg("fault", str, choices=FAULTS),
    Arg("angle_deg", float, 0.0, unit="deg", required=False),  # jam: up to the profile's hard stop
    Arg("factor", float, 1.0, 1000.0, required=False),  # slow (1..1000), over_current (1..100)
    Arg("switch", str, required=False, choices=("stowed", "deployed")),  # stuck_switch
    Arg("closed", bool, required=False),  # stuck_switch: the stuck reading
    Arg("active", bool, required=False),  # angle_dropout
    Arg("circuit", str, required=False),  # circuit_open, over_current: one of the profile's circuits
)

INTERFACE = Interface.build(
    "deploy_emulator",
    commands=(
        CommandSpec(0x02, "TRUTH", doc="The mechanism's noiseless state (for checks, and the camera scene) "
                                       "and its active faults."),
        CommandSpec(0x10, "INJECT", _INJECT_ARGS, doc="Inject a fault (hil/deploy/mechanism.py FAULTS)."),
        CommandSpec(0x11, "CLEAR_FAULTS", doc="Remove every injected fault."),
        CommandSpec(0x12, "SET_AMBIENT", (Arg("temp_c", float, -200.0, 200.0, "degC"),),
                    doc="The ambient temperature the mechanism relaxes toward."),
        CommandSpec(0x13, "RESET", doc="Restart the controller: the mechanism back to its initial state "
                                       "(faults, simulated time and ambient kept)."),
    ),
    events=(
        EventSpec(1, "fault_injected", "info", "A fault was injected through the control port."),
    ),
    telemetry=(
        ChannelSpec(1, "state", "", str, doc="stowed | armed | releasing | deploying | deployed | failed (truth)"),
        ChannelSpec(2, "angle_deg", "deg", float, doc="true angle"),
        ChannelSpec(3, "sim_t_s", "s", float, doc="simulated time"),
        ChannelSpec(4, "link_clients", "count", int, doc="connections accepted on the device port"),
        ChannelSpec(5, "link_connected", "", bool),
        ChannelSpec(6, "wire_errors", "count", int, high=0, doc="bad bytes or undecodable messages from the driver"),
        ChannelSpec(7, "device_commands", "count", int, doc="device commands answered"),
        ChannelSpec(8, "device_naks", "count", int),
        ChannelSpec(11, "physics_overruns", "count", int, high=0, doc="ticks that could not catch up"),
        ChannelSpec(12, "view_updates_sent", "count", int, doc="set_boom_angle sent to camera emulators"),
        ChannelSpec(13, "view_updates_unsent", "count", int, doc="a camera emulator was not connected"),
        ChannelSpec(14, "view_updates_rejected", "count", int, high=0),
    ),
)

KIND = KindSpec(
    interface=INTERFACE,
    name="hil.deploy",
    entry="hil.deploy.process:run",
    endpoints={"link": "tcp", "control": "tcp", "bus_pub": "tcp|ipc"},
    binds=("link", "control"),
    keys={
        "profile": Field(str, doc="mechanism profile: a name in configs/mechanisms/ or a path"),
        "profile_overrides": Field(dict, {}, doc="top-level profile keys to replace, sections merged"),
        "seed": Field(int, 1, min=0),
        "time_scale": Field(float, 1.0, min=0.01, max=1000.0, doc="simulated seconds per wall second"),
        "physics_hz": Field(float, 200.0, min=10.0, max=10000.0),
        "faults": Field(list, [], doc="faults active from the start: [{fault: jam, angle_deg: 40}, ...]"),
        "camera_controls": Field(dict, {}, endpoint_refs="tcp",
                                 doc="camera id -> its emulator's control endpoint: the scene shows the boom "
                                     "at its true angle (set_boom_angle, >0.5 deg moves, <=10 Hz)"),
    },
    doc="Mechanism emulator: physics, sensors and faults behind a TCP device port; fault control port; "
        "optionally drives the camera scenes' boom angle.",
    check=lambda file, s: load_profile(s["profile"], file, s["profile_overrides"]),  # the profile it emulates
)
