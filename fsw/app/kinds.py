"""Every kind of process lunar-pdh can run, declared as data.

A kind names its entry point (``module:function`` taking a
:class:`~fsw.app.process.ProcessContext`), the endpoint roles it needs (with
the scheme each must use) and its own config keys. :mod:`fsw.app.config`
validates a file against this table; the supervisor starts processes from it.
Wiring lives here and in ``configs/``, never inside a component.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Field", "KindSpec", "KINDS", "REQUIRED"]


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


_CAMERA_PROFILE = {
    "width": Field(int, 2048, min=8, max=16384),
    "height": Field(int, 2048, min=8, max=16384),
    "bit_depth": Field(int, 12, choices=(8, 10, 12, 14, 16)),
    "pattern": Field(str, "mono", choices=("mono", "RGGB", "BGGR", "GRBG", "GBRG")),
}

KINDS: dict[str, KindSpec] = {
    "bus.broker": KindSpec(
        entry="fsw.bus.broker:run",
        endpoints={"xsub": "tcp", "xpub": "tcp"},
        doc="XSUB/XPUB proxy: the software bus.",
    ),
    "hil.camera": KindSpec(
        entry="hil.camera.emulator:run",
        endpoints={"link": "tcp"},
        keys={
            "camera": Field(str, doc="camera id, e.g. navcam"),
            "seed": Field(int, 1, min=0),
            "profile": Field(dict, {}, keys=_CAMERA_PROFILE),
            "max_frame_rate_hz": Field(float, 10.0, min=0.01, max=1000.0),
        },
        doc="Camera emulator: a TCP server speaking the camera wire protocol.",
    ),
    "drivers.camera": KindSpec(
        entry="drivers.camera.driver:run",
        endpoints={"link": "tcp", "bus_pub": "tcp", "command": "tcp"},
        keys={
            "camera": Field(str),
            "frame_rate_hz": Field(float, 1.0, min=0.01, max=100.0),
            "stream_on_start": Field(bool, True),
            "reply_timeout_s": Field(float, 5.0, min=0.1),
            "reconnect_max_s": Field(float, 5.0, min=0.1),
        },
        doc="Camera driver: commands the camera, checks frames, publishes them.",
    ),
    "fsw.imaging": KindSpec(
        entry="fsw.imaging.core:run",
        endpoints={"bus_pub": "tcp", "bus_sub": "tcp", "products": "tcp", "command": "tcp"},
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
        endpoints={"bus_pub": "tcp", "products": "tcp", "radio": "udp", "relay": "udp", "command": "tcp"},
        keys={
            "store_dir": Field(str, "store"),
            "entity_id": Field(int, 1, min=1, max=65535),
            "ground_entity_id": Field(int, 2, min=1, max=65535),
            "rate_bps": Field(float, 8_000_000.0, min=1000.0),
            "max_packet_len": Field(int, 4096, min=256, max=65000),
            "ack_timer_s": Field(float, 1.0, min=0.01),
            "nak_timer_s": Field(float, 1.0, min=0.01),
            "inactivity_s": Field(float, 30.0, min=0.1),
        },
        doc="Store and forward: products on disk, out by priority as CFDP class 2 over CCSDS.",
    ),
    "hil.relay": KindSpec(
        entry="hil.relay.relay:run",
        endpoints={"lander_in": "udp", "ground_in": "udp", "lander": "udp", "ground": "udp"},
        keys={
            "rate_bps": Field(float, 8_000_000.0, min=1000.0),
            "latency_ms": Field(float, 50.0, min=0.0, max=60_000.0),
            "loss": Field(float, 0.0, min=0.0, max=0.95),
            "seed": Field(int, 1, min=0),
            "pcap": Field(str, "link/relay.pcap"),
            "queue_bytes": Field(int, 8_000_000, min=10_000),
        },
        doc="Relay link emulator on UDP loopback: rate, latency, loss; records a pcap.",
    ),
    "fsw.ground": KindSpec(
        entry="fsw.ground.station:run",
        endpoints={"radio": "udp", "relay": "udp", "bus_pub": "tcp"},
        keys={
            "entity_id": Field(int, 2, min=1, max=65535),
            "lander_entity_id": Field(int, 1, min=1, max=65535),
            "out_subdir": Field(str, "ground"),
            "max_packet_len": Field(int, 4096, min=256, max=65000),
            "ack_timer_s": Field(float, 1.0, min=0.01),
            "nak_timer_s": Field(float, 1.0, min=0.01),
            "inactivity_s": Field(float, 30.0, min=0.1),
        },
        doc="Ground station: reassembles and decodes products, writes images and sidecars.",
    ),
    "hil.deploy": KindSpec(
        entry="hil.deploy.emulator:run",
        endpoints={"link": "tcp", "control": "tcp", "bus_pub": "tcp"},
        keys={
            "profile": Field(str, doc="mechanism profile: a name in configs/mechanisms/ or a path"),
            "profile_overrides": Field(dict, {}, doc="top-level profile keys to replace, sections merged"),
            "seed": Field(int, 1, min=0),
            "time_scale": Field(float, 1.0, min=0.01, max=1000.0, doc="simulated seconds per wall second"),
            "physics_hz": Field(float, 200.0, min=10.0, max=10000.0),
            "faults": Field(list, [], doc="faults active from the start: [{fault: jam, angle_deg: 40}, ...]"),
        },
        doc="Mechanism emulator: physics, sensors and faults behind a TCP device port; fault control port.",
    ),
    "drivers.deploy": KindSpec(
        entry="drivers.deploy.driver:run",
        endpoints={"link": "tcp", "bus_pub": "tcp", "command": "tcp"},
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
