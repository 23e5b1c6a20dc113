"""The camera emulator's interface, as data: its control-port commands, events, health channels and kind.

The control port keeps its lower-case command names on the wire (scenarios, the
mechanism emulator's ``set_boom_angle`` and the tests use them). The table checks
what it can say (types, ranges, fault names, scene option limits, the same limits
as the ``scene:`` config keys); the handlers in :mod:`hil.camera.commands` check
the rest (which arguments a given fault takes). Format: :mod:`framework.interface`.
"""

from __future__ import annotations

from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from framework.kinds import Field, KindSpec
from drivers.camera.profile import PROFILE_INLINE_KEYS, profile_for_process
from hil.camera.faults import FAULTS

__all__ = ["KIND", "INTERFACE", "SCENE_KEYS"]

SCENE_KEYS: dict[str, Field] = {
    "kind": Field(str, "lunar", choices=("lunar", "flat"), doc="flat: uniform field (photon transfer)"),
    "flat_level": Field(float, 0.5, min=0.0, max=1.0, doc="radiance of the flat field"),
    "pointing_azimuth_deg": Field(float, 0.0, doc="camera azimuth: turns the scene and the sun"),
    "pointing_elevation_deg": Field(float, -90.0, min=-90.0, max=-5.0,
                                    doc="-90 looks straight down; higher tilts toward the horizon"),
    "sun_elevation_deg": Field(float, None, min=0.5, max=90.0, doc="default: from the seed"),
    "sun_azimuth_deg": Field(float, None, doc="default: from the seed"),
    "dust": Field(float, 0.0, min=0.0, max=1.0, doc="dust on the optics: motes and veiling glare"),
    "footpad": Field(bool, True, doc="the lander's footpad in view"),
    "boom": Field(bool, True, doc="the deployable boom, in view once it swings out"),
    "boom_angle_deg": Field(float, 0.0, min=0.0, max=180.0, doc="0 stowed, 90 deployed"),
}
"""Scene options: the ``scene:`` config keys and, with the same limits, the ``set_scene`` arguments."""


def _unit(name: str) -> str:
    return "deg" if name.endswith("_deg") else "s" if name.endswith("_s") else "degC" if name.endswith("_c") else ""


def _fault_args() -> tuple[Arg, ...]:
    """``fault`` (a name from FAULTS) and every argument any fault takes, each optional: the handler
    (:meth:`hil.camera.faults.FaultInjector.parse`) refuses an argument the named fault does not take."""
    names = sorted({key for defaults, _ in FAULTS.values() for key in defaults})
    return (Arg("fault", str, choices=tuple(FAULTS)),
            *(Arg(n, float, 0.0, unit=_unit(n), required=False) for n in names))


def _scene_args() -> tuple[Arg, ...]:
    return tuple(Arg(name, f.type, f.min, f.max, _unit(name), required=False, choices=f.choices or ())
                 for name, f in SCENE_KEYS.items())


INTERFACE = Interface.build(
    "camera_emulator",
    commands=(
        CommandSpec(0x02, "status", doc="The emulator's state: link, streaming, temperature, faults injected."),
        CommandSpec(0x10, "inject_fault", _fault_args(), doc="Arm a fault (hil/camera/faults.py FAULTS)."),
        CommandSpec(0x11, "clear_faults", doc="Disarm pending link faults (pixel defects and over-temperature stay)."),
        CommandSpec(0x12, "set_boom_angle", (Arg("deg", float, 0.0, 180.0, "deg"),),
                    doc="The boom's angle in the scene: 0 stowed .. 90 deployed (the mechanism emulator sends it)."),
        CommandSpec(0x13, "set_scene", _scene_args(),
                    doc="Change scene options (dust, pointing_azimuth_deg, flat_level, kind, ...)."),
    ),
    events=(
        EventSpec(1, "client_connected", "info", "A driver connected to the TCP device link."),
        EventSpec(2, "client_dropped", "info", "The device link was lost or closed; streaming stopped."),
        EventSpec(3, "fault_injected", "warning", "A fault was armed (control port or config)."),
        EventSpec(4, "frame_dropped_by_fault", "warning", "A frame was read out but not sent (drop_frame)."),
        EventSpec(5, "command_bytes_rejected", "warning", "Bad bytes from the driver (rate-limited, with count)."),
        EventSpec(6, "camera_power_cycled", "warning", "POWER_CYCLE: the link is down for the profile's boot time."),
    ),
    telemetry=(
        ChannelSpec(1, "connected", "", bool, doc="a driver holds the device link"),
        ChannelSpec(2, "powered", "", bool, doc="false while rebooting after a power cycle"),
        ChannelSpec(3, "latched", "", bool, doc="latched up: silent until POWER_CYCLE"),
        ChannelSpec(4, "streaming", "", bool),
        ChannelSpec(5, "temp_c", "degC", float),
        ChannelSpec(6, "frames_sent", "count", int, doc="frames whose last byte left (each in the manifest)"),
        ChannelSpec(7, "next_counter", "", int),
        ChannelSpec(8, "frames_in_flight", "count", int, doc="frames queued on the link"),
        ChannelSpec(9, "frames_held", "count", int, doc="frames held back by the late fault"),
        ChannelSpec(10, "boom_angle_deg", "deg", float, 0.0, 180.0),
        ChannelSpec(11, "faults_injected", "count", int),
        ChannelSpec(12, "link_clients", "count", int, doc="connections accepted on the TCP device link"),
        ChannelSpec(13, "wire_errors", "count", int, high=0, doc="bad bytes or malformed commands from the driver"),
    ),
)

KIND = KindSpec(
    interface=INTERFACE,
    name="hil.camera",
    entry="hil.camera.process:run",
    endpoints={"link": "tcp", "control": "tcp", "bus_pub": "tcp|ipc?"},
    binds=("link", "control"),
    keys={
        "camera": Field(str, pattern=r"[A-Za-z0-9][A-Za-z0-9_]{0,63}", doc="camera id, e.g. navcam"),
        "seed": Field(int, 1, min=0, doc="scene, fixed-pattern noise, temporal noise and faults"),
        "profile_file": Field(str, "", doc="camera profile: a name in configs/cameras/ or a path"),
        "profile": Field(dict, {}, keys=PROFILE_INLINE_KEYS, doc="profile keys that override the file"),
        "max_frame_rate_hz": Field(float, None, min=0.01, max=1000.0, doc="overrides the profile's limit"),
        "serial_path": Field(str, "hil/{camera}.tty", doc="interface serial: symlink to the pty the driver "
                                                          "opens, relative to the output directory"),
        "scene": Field(dict, {}, keys=SCENE_KEYS),
        "faults": Field(list, [], doc="faults active from the start: [{fault: corrupt, count: 2}, ...]"),
        "frame_cache": Field(int, 0, min=0, max=64, doc="benchmarks: cycle N rendered frames' pixels "
                                                        "instead of exposing each frame (noise repeats)"),
    },
    doc="Camera emulator: sensor, scene, timing and faults behind the camera wire protocol (TCP or a "
        "paced pseudo-terminal); a control port injects faults and moves the boom; with a bus_pub "
        "endpoint it publishes its health and events.",
    check=lambda file, s: profile_for_process(s, file),  # the profile it will emulate
)
