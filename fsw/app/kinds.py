"""Every kind of process lunar-pdh can run, declared as data.

A kind names its entry point (``module:function`` taking a
:class:`~fsw.app.process.ProcessContext`), the endpoint roles it needs (with
the scheme each must use) and its own config keys. :mod:`fsw.app.config`
validates a file against this table; the supervisor starts processes from it.
Wiring lives here and in ``configs/``, never inside a component.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Field", "KindSpec", "KINDS", "REQUIRED", "CAMERA_PROFILE_KEYS"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Field:
    """One config key: its type, default (or REQUIRED), and bounds."""

    type: type | tuple[type, ...]
    default: Any = REQUIRED
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    keys: dict[str, "Field"] | None = None
    endpoint_refs: str | None = None  # a mapping whose values name endpoints of this scheme
    doc: str = ""


@dataclass(frozen=True)
class KindSpec:
    entry: str
    endpoints: dict[str, str]
    keys: dict[str, Field] = field(default_factory=dict)
    doc: str = ""


# A camera model's datasheet (configs/cameras/*.yaml; drivers/camera/profile.py reads it). Inline in a
# process config the same keys override the profile file, so there every default is None ("from the file").
CAMERA_PROFILE_KEYS: dict[str, Field] = {
    "name": Field(str, "camera", doc="model name"),
    "description": Field(str, ""),
    # geometry and pixel format
    "width": Field(int, 2048, min=8, max=16384, doc="sensor columns"),
    "height": Field(int, 2048, min=8, max=16384, doc="sensor rows"),
    "bit_depth": Field(int, 12, choices=(8, 10, 12, 14, 16)),
    "pattern": Field(str, "mono", choices=("mono", "RGGB", "BGGR", "GRBG", "GBRG")),
    "pixel_pitch_um": Field(float, 5.5, min=0.5, max=100.0),
    "window": Field(list, [0, 0, 0, 0], doc="default readout region [x, y, width, height]; zeros: full sensor"),
    "binning": Field(int, 1, choices=(1, 2, 4), doc="default binning factor"),
    # sensor (EMVA 1288 quantities)
    "full_well_e": Field(float, 13_500.0, min=100.0),
    "read_noise_e": Field(float, 4.5, min=0.0, max=1000.0, doc="temporal dark noise, rms electrons"),
    "gain_dn_per_e": Field(float, 0.3, min=1e-4, max=100.0, doc="system gain K at analogue gain 1"),
    "black_level_dn": Field(int, 64, min=0, max=4096, doc="pedestal added before quantisation"),
    "dark_current_e_per_s": Field(float, 5.0, min=0.0, doc="mean dark current at dark_ref_temp_c"),
    "dark_ref_temp_c": Field(float, 20.0),
    "dark_doubling_c": Field(float, 6.5, min=1.0, max=30.0, doc="dark current doubles every this many kelvin"),
    "prnu": Field(float, 0.008, min=0.0, max=0.2, doc="photo-response non-uniformity, rms fraction"),
    "dsnu_e_per_s": Field(float, 1.0, min=0.0, doc="dark-signal non-uniformity, rms e-/s at the ref temperature"),
    "hot_pixel_fraction": Field(float, 2e-5, min=0.0, max=0.01),
    "hot_pixel_e_per_s": Field(float, 40_000.0, min=0.0),
    "dead_pixel_fraction": Field(float, 0.0, min=0.0, max=0.01, doc="pixels reading 0 DN from the start"),
    "flux_e_per_s": Field(float, 900_000.0, min=1.0, doc="photo-electrons per second at scene radiance 1.0"),
    "cfa_response": Field(dict, {"R": 0.85, "G": 1.0, "B": 0.7}, doc="filter response to grey regolith"),
    # timing
    "max_frame_rate_hz": Field(float, 5.0, min=0.01, max=1000.0),
    "readout_s": Field(float, 0.04, min=0.0, max=10.0, doc="full-sensor readout; a window reads its rows only"),
    "exposure_us": Field(int, 20_000, min=1, max=10_000_000, doc="exposure after power-on"),
    "boot_s": Field(float, 0.5, min=0.0, max=60.0, doc="power-on to ready"),
    # thermal
    "ambient_temp_c": Field(float, 18.0),
    "self_heating_c": Field(float, 13.0, min=0.0, doc="rise above ambient at 100% readout duty"),
    "thermal_tau_s": Field(float, 120.0, min=0.1, doc="time constant of the sensor temperature"),
    "max_temp_c": Field(float, 60.0, doc="above this the camera refuses to expose (over-temperature)"),
    # interface
    "interface": Field(str, "tcp", choices=("tcp", "serial")),
    "link_rate_bps": Field(float, 1e9, min=1200.0, doc="line rate: Ethernet speed, or the serial baud rate"),
}

_CAMERA_PROFILE_INLINE = {k: replace(f, default=None) for k, f in CAMERA_PROFILE_KEYS.items()}

_CONTACT_PLAN = {
    "relays": Field(list, [], doc="relay satellites: name, period_s, lander_windows_s, ground_windows_s, rate_bps "
                                  "(one or a list per pass), latency_ms, loss, corrupt, burst {enter, leave, loss}; "
                                  "empty: one relay always in contact (fsw/downlink/contacts.py)"),
    "time_scale": Field(float, 1.0, min=1e-6, doc="orbit seconds per wall second"),
    "epoch_s": Field(float, 0.0, min=0.0, doc="Unix time at which orbit time is zero"),
    "relays_file": Field(str, "", doc="a schedule file {time_scale, epoch_s, relays}; overrides the inline keys"),
}

KINDS: dict[str, KindSpec] = {
    "bus.broker": KindSpec(
        entry="fsw.bus.broker:run",
        endpoints={"xsub": "tcp|ipc", "xpub": "tcp|ipc"},
        doc="XSUB/XPUB proxy: the software bus.",
    ),
    "hil.camera": KindSpec(
        entry="hil.camera.emulator:run",
        endpoints={"link": "tcp", "control": "tcp"},
        keys={
            "camera": Field(str, doc="camera id, e.g. navcam"),
            "seed": Field(int, 1, min=0, doc="scene, fixed-pattern noise, temporal noise and faults"),
            "profile_file": Field(str, "", doc="camera profile: a name in configs/cameras/ or a path"),
            "profile": Field(dict, {}, keys=_CAMERA_PROFILE_INLINE, doc="profile keys that override the file"),
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
    ),
    "drivers.camera": KindSpec(
        entry="drivers.camera.driver:run",
        endpoints={"link": "tcp", "bus_pub": "tcp|ipc", "command": "tcp"},
        keys={
            "camera": Field(str),
            "profile_file": Field(str, "", doc="the camera's profile (interface, frame size, line rate)"),
            "profile": Field(dict, {}, keys=_CAMERA_PROFILE_INLINE),
            "serial_path": Field(str, "hil/{camera}.tty", doc="interface serial: the device to open, relative "
                                                              "to the output directory unless absolute"),
            "frame_rate_hz": Field(float, 1.0, min=0.01, max=1000.0, doc="streaming rate asked of the camera "
                                                                         "(it caps it at its own limit)"),
            "stream_on_start": Field(bool, True),
            "reply_timeout_s": Field(float, 5.0, min=0.1),
            "reconnect_max_s": Field(float, 5.0, min=0.1),
            "frame_timeout_s": Field(float, 0.0, min=0.0, doc="no byte this long while streaming is a stall; "
                                                              "0: two frame periods plus the line time plus 1 s"),
            "late_frame_s": Field(float, 0.0, min=0.0, doc="a frame this much later than its period is late; "
                                                           "0: half a period plus the line time"),
            "latch_timeout_s": Field(float, 10.0, min=0.5, doc="silent this long (streaming, or pings "
                                                                "unanswered): power-cycle the camera"),
            "ping_interval_s": Field(float, 2.0, min=0.1, doc="keep-alive while not streaming"),
            "power_cycle_on_latch": Field(bool, True),
            "max_temp_c": Field(float, None, doc="over-temperature event above this; default: the profile's"),
            "defect_check": Field(bool, True, doc="count dead (0 DN) and full-scale pixels in every frame"),
            "frame_transport": Field(str, "inline", choices=("inline", "shm"),
                                     doc="inline: pixels ride the bus as a buffer; shm: they stay in a shared-"
                                         "memory ring on this host and the bus carries a handle to them"),
            "shm_slots": Field(int, 8, min=2, max=256, doc="frame_transport shm: frames the ring holds before "
                                                            "the oldest is overwritten"),
            "shm_ring": Field(str, "", doc="frame_transport shm: ring name ([A-Za-z0-9_.-]); default "
                                           "'<process>-<hash of the output directory>', unique per run"),
        },
        doc="Camera driver: commands the camera, checks frames, publishes them.",
    ),
    "fsw.imaging": KindSpec(
        entry="fsw.imaging.core:run",
        endpoints={"bus_pub": "tcp|ipc", "bus_sub": "tcp|ipc", "products": "tcp", "command": "tcp"},
        keys={
            "cameras": Field(list, ["navcam"]),
            "thumbnail_px": Field(int, 256, min=16, max=1024),
            "lossless_codec": Field(str, "jpegls", choices=("jpegls", "jpegxl", "png", "aec", "zstd")),
            "lossless_params": Field(dict, {}, doc="codec parameters, e.g. {effort: 1} for jpegxl"),
            "workers": Field(int, 2, min=1, max=16, doc="threads encoding lossless products"),
            "queue_max": Field(int, 8, min=1, max=256, doc="frames waiting; beyond, frames keep only a thumbnail"),
            "recent_frames": Field(int, 4, min=1, max=64, doc="raw frames kept per camera for requests"),
            "thumbnail_only_rule": Field(dict, {}, keys={
                "max_saturated_frac": Field(float, 1.0, min=0.0, max=1.0),
                "max_dark_frac": Field(float, 1.0, min=0.0, max=1.0),
                "min_score": Field(float, 0.0, min=0.0, max=1.0),
                "min_sharpness": Field(float, 0.0, min=0.0),
            }),
            "autoexposure": Field(dict, {}, keys={
                "enabled": Field(bool, False),
                "target_frac": Field(float, 0.75, min=0.05, max=0.98),
                "k": Field(float, 0.6, min=0.05, max=1.0),
                "exposure_min_us": Field(int, 20, min=1),
                "exposure_max_us": Field(int, 200_000, min=1),
                "gain_max": Field(float, 8.0, min=1.0),
            }),
            "camera_commands": Field(dict, {}, endpoint_refs="tcp",
                                     doc="camera id -> the endpoint of its driver's command ROUTER"),
            "calibration_dir": Field(str, "calibration"),
        },
        doc="Imaging core: thumbnails and lossless products from frames.",
    ),
    "fsw.downlink": KindSpec(
        entry="fsw.downlink.service:run",
        endpoints={"bus_pub": "tcp|ipc", "products": "tcp", "radio": "udp", "relay": "udp", "command": "tcp"},
        keys={
            "store_dir": Field(str, "store"),
            "entity_id": Field(int, 1, min=1, max=65535),
            "ground_entity_id": Field(int, 2, min=1, max=65535),
            "rate_bps": Field(float, 8_000_000.0, min=1000.0, doc="send rate when the plan has no relays"),
            "max_packet_len": Field(int, 4096, min=256, max=65000),
            "ack_timer_s": Field(float, 1.0, min=0.01),
            "nak_timer_s": Field(float, 1.0, min=0.01),
            "inactivity_s": Field(float, 30.0, min=0.1, doc="counted in open-contact time only"),
            "max_in_flight": Field(int, 4, min=1, max=64, doc="CFDP transactions at once: the next product starts "
                                                             "while the last one's tail is recovered"),
            "quota_bytes": Field(int, 2_000_000_000, min=10_000, doc="store size; beyond it the eviction policy runs"),
            "priority": Field(list, ["alert", "thumbnail", "telemetry", "requested", "playback", "rest"],
                              doc="downlink classes, first sends first (fsw/downlink/policy.py)"),
            "age_weight_per_h": Field(float, 0.1, min=0.0, doc="'rest' goes by grade + weight * age in hours"),
            "telemetry": Field(dict, {}, keys={
                "enabled": Field(bool, True),
                "topics": Field(list, ["tlm.", "evt."]),
                "exclude_sources": Field(list, [], doc="bus sources that are not on the lander (e.g. the ground)"),
                "segment_s": Field(float, 2.0, min=0.05, doc="housekeeping batched into one file per period"),
                "alert_flush_s": Field(float, 0.5, min=0.01),
                "archive_dir": Field(str, "tlm_archive"),
                "archive_bytes": Field(int, 200_000_000, min=10_000, doc="recorded telemetry kept for re-requests"),
            }),
            "reencode": Field(dict, {}, keys={
                "enabled": Field(bool, True),
                "codec": Field(str, "jpegxl", choices=("jpegxl", "jpegls", "png", "aec", "zstd")),
                "params": Field(dict, {"effort": 7}),
                "nice": Field(int, 10, min=0, max=19),
            }),
            "links": Field(dict, {}, endpoint_refs="tcp",
                           doc="optional: bus_sub (telemetry recording), imaging_command (SEND_REGION forwarding)"),
            **_CONTACT_PLAN,
        },
        doc="Store and forward: products on disk, out by priority as CFDP class 2 over CCSDS.",
    ),
    "hil.relay": KindSpec(
        entry="hil.relay.relay:run",
        endpoints={"lander_in": "udp", "ground_in": "udp", "lander": "udp", "ground": "udp"},
        keys={
            "rate_bps": Field(float, 8_000_000.0, min=1000.0, doc="rate when the plan has no relays"),
            "latency_ms": Field(float, 50.0, min=0.0, max=60_000.0, doc="latency when a relay names none"),
            "loss": Field(float, 0.0, min=0.0, max=0.95, doc="random loss added to every relay's own"),
            "seed": Field(int, 1, min=0),
            "pcap": Field(str, "link/relay.pcap"),
            "queue_bytes": Field(int, 8_000_000, min=10_000),
            **_CONTACT_PLAN,
        },
        doc="Relay link emulator on UDP loopback: rate, latency, loss; records a pcap.",
    ),
    "fsw.ground": KindSpec(
        entry="fsw.ground.station:run",
        endpoints={"radio": "udp", "relay": "udp", "bus_pub": "tcp|ipc"},
        keys={
            "entity_id": Field(int, 2, min=1, max=65535),
            "lander_entity_id": Field(int, 1, min=1, max=65535),
            "out_subdir": Field(str, "ground"),
            "max_packet_len": Field(int, 4096, min=256, max=65000),
            "ack_timer_s": Field(float, 1.0, min=0.01),
            "nak_timer_s": Field(float, 1.0, min=0.01),
            "inactivity_s": Field(float, 30.0, min=0.1, doc="counted in open-contact time only"),
            **_CONTACT_PLAN,
        },
        doc="Ground station: reassembles and decodes products, writes images and sidecars.",
    ),
    "hil.deploy": KindSpec(
        entry="hil.deploy.emulator:run",
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
    ),
    "drivers.deploy": KindSpec(
        entry="drivers.deploy.driver:run",
        endpoints={"link": "tcp", "bus_pub": "tcp|ipc", "command": "tcp"},
        keys={
            "mechanism": Field(str, doc="the name operators ARM and FIRE"),
            "profile": Field(str),
            "profile_overrides": Field(dict, {}),
            "arm_window_s": Field(float, 10.0, min=0.1, max=600.0),
            "moving_rate_hz": Field(float, 10.0, min=10.0, max=200.0),
            "idle_rate_hz": Field(float, 1.0, min=0.1, max=10.0),
            "reply_timeout_s": Field(float, 1.0, min=0.05),
            "reconnect_max_s": Field(float, 2.0, min=0.1),
            "auth": Field(str, "curve", choices=("curve", "none"), doc="none refuses every hazardous command"),
            "keys_dir": Field(str, "keys", doc="pdh keys directory: service keypair and authorized/"),
            "confirm_camera": Field(str, "", doc="camera process for the confirmation frame (default: profile view)"),
            "state_file": Field(str, "", doc="fired and inhibited mechanisms survive restarts here"),
            "inhibited": Field(bool, False, doc="start with the mechanism inhibited"),
        },
        doc="Deploy driver: supervised deployments, verdicts, ARM/FIRE over CURVE.",
    ),
}
