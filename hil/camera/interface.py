"""The camera emulator's interface, as data: its process kind."""

from __future__ import annotations

from framework.kinds import Field, KindSpec
from drivers.camera.profile import PROFILE_INLINE_KEYS

__all__ = ["KIND"]

KIND = KindSpec(
    name="hil.camera",
    entry="hil.camera.process:run",
    endpoints={"link": "tcp", "control": "tcp"},
    keys={
        "camera": Field(str, doc="camera id, e.g. navcam"),
        "seed": Field(int, 1, min=0, doc="scene, fixed-pattern noise, temporal noise and faults"),
        "profile_file": Field(str, "", doc="camera profile: a name in configs/cameras/ or a path"),
        "profile": Field(dict, {}, keys=PROFILE_INLINE_KEYS, doc="profile keys that override the file"),
        "max_frame_rate_hz": Field(float, None, min=0.01, max=1000.0, doc="overrides the profile's limit"),
        "serial_path": Field(str, "hil/{camera}.tty", doc="interface serial: symlink to the pty the driver "
                                                          "opens, relative to the output directory"),
        "scene": Field(dict, {}, keys={
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
        }),
        "faults": Field(list, [], doc="faults active from the start: [{fault: corrupt, count: 2}, ...]"),
        "frame_cache": Field(int, 0, min=0, max=64, doc="benchmarks: cycle N rendered frames' pixels "
                                                        "instead of exposing each frame (noise repeats)"),
    },
    doc="Camera emulator: sensor, scene, timing and faults behind the camera wire protocol (TCP or a "
        "paced pseudo-terminal); a control port injects faults and moves the boom.",
)
