"""The mechanism emulator's interface, as data: its process kind."""

from __future__ import annotations

from framework.kinds import Field, KindSpec

__all__ = ["KIND"]

KIND = KindSpec(
    name="hil.deploy",
    entry="hil.deploy.process:run",
    endpoints={"link": "tcp", "control": "tcp", "bus_pub": "tcp|ipc"},
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
)
