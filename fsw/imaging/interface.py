"""The imaging core's interface, as data: commands, events, telemetry channels (format: :mod:`framework.interface`).

Every command's arguments are checked against this table before its handler
runs (handlers in :mod:`fsw.imaging.commands`, registered with
:func:`framework.bus.commands.register_table`); the handlers then check what the
table cannot say (the camera is configured, the frame is held, the region fits).
"""

from __future__ import annotations

from typing import Any

from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from framework.kinds import Field, KindSpec

__all__ = ["KIND", "INTERFACE", "COMMANDS", "EVENTS", "TELEMETRY"]

_CAMERA = Arg("camera", str)  # one of the configured cameras, checked by the handler
_COUNTER = Arg("counter", int, 0, 2**64 - 1, required=False)  # omitted: the newest held frame of the camera
_REGION = Arg("region", list, unit="[x, y, width, height] px")

INTERFACE = Interface.build(
    "imaging",
    commands=(
        CommandSpec(0x0210, "MAKE_LOSSY",
                    (_CAMERA, _COUNTER, Arg("budget_bytes", int, 1000, 64 * 1024 * 1024, "bytes"),
                     Arg("region", list, unit="[x, y, width, height] px", required=False),
                     Arg("pick", str, choices=("newest", "best"), required=False)),
                    doc="lossy product of a held frame to a byte budget (within 5 %); pick=best: the held "
                        "frame of the camera with the best grade score (not with counter)"),
        CommandSpec(0x0211, "MAKE_ROI", (_CAMERA, _COUNTER, _REGION), doc="lossless region of a held frame"),
        CommandSpec(0x0212, "MAKE_PREVIEW", (_CAMERA, _COUNTER, Arg("factor", int, 2, 64)),
                    doc="binned lossless preview of a held frame"),
        CommandSpec(0x0213, "MAKE_NEAR_LOSSLESS",
                    (_CAMERA, _COUNTER, Arg("max_error", int, 1, 255, "DN"),
                     Arg("region", list, unit="[x, y, width, height] px", required=False),
                     Arg("pick", str, choices=("newest", "best"), required=False)),
                    doc="near-lossless product of a held frame (raw, Bayer stays mosaicked): every pixel "
                        "within max_error DN, checked on board by decoding before it counts; pick=best as "
                        "MAKE_LOSSY"),
        CommandSpec(0x0220, "AE_ENABLE", (_CAMERA,), doc="auto-exposure on"),
        CommandSpec(0x0221, "AE_DISABLE", (_CAMERA,), doc="auto-exposure off"),
        CommandSpec(0x0230, "CAL_COLLECT",
                    (_CAMERA, Arg("role", str, choices=("dark", "flat")), Arg("count", int, 2, 64)),
                    doc="collect the next frames as darks or flats"),
        CommandSpec(0x0231, "CAL_BUILD", (_CAMERA,), doc="build and activate a calibration set"),
        CommandSpec(0x0232, "CAL_CLEAR", (_CAMERA,), doc="deactivate the camera's calibration"),
    ),
    events=(
        EventSpec(0x01, "frame_rejected", "warning",
                  "a frame message failed validation (rate-limited, with count); reason names why"),
        EventSpec(0x02, "frame_gap", "warning",
                  "messages missing on the bus (seq gap) on the topics this core reads; frames among them are "
                  "named by frames_lost"),
        EventSpec(0x03, "product_failed", "error",
                  "a product could not be made: camera, counter, products (a report, sent until heard back)"),
        EventSpec(0x06, "frames_thumbnail_only", "warning",
                  "frames that kept only a thumbnail by the policy (a report): reason queue_full, rule (the "
                  "grade rule), falling_behind (the ring slot would be rewritten before the full product is "
                  "done), store_full (the downlink's store refused the full product by its quota)"),
        EventSpec(0x07, "ae_command_refused", "warning", "the camera refused an exposure command"),
        EventSpec(0x08, "frames_lost", "warning",
                  "frames that will not reach the ground: camera, ranges [[first, last]], reason, products "
                  "(a report: journalled, sent again until heard back on the bus)"),
        EventSpec(0x09, "journal_failed", "error", "the frame journal could not be written (rate-limited)"),
        EventSpec(0x0A, "capture_degraded", "warning",
                  "the capture path keeps only thumbnails of some frames (rate-limited, with count): camera, "
                  "reason (as frames_thumbnail_only), thumbnail_only_by (frames so far per reason)"),
    ),
    telemetry=(
        ChannelSpec(0x01, "frames_in", "count", int),
        ChannelSpec(0x02, "frames_rejected", "count", int),
        ChannelSpec(0x03, "products_made", "count", int),
        ChannelSpec(0x04, "products_pending", "count", int, doc="products made, not yet taken by the downlink"),
        ChannelSpec(0x05, "queue_depth", "count", int, doc="frames waiting to be processed"),
        ChannelSpec(0x06, "oldest_waiting_s", "s", float, doc="age of the oldest waiting frame"),
        ChannelSpec(0x07, "frames_thumbnail_only", "count", int),
        ChannelSpec(0x08, "ae_commands", "count", int),
        ChannelSpec(0x09, "bus_gaps", "count", int),
        ChannelSpec(0x0A, "stage_ms", "ms", dict, doc="last time of each stage: grade, thumbnail, lossless"),
        ChannelSpec(0x0B, "last_error", "", str),
        ChannelSpec(0x0E, "frames_accepted", "count", int, doc="frames that passed validation"),
        ChannelSpec(0x0F, "products_failed", "count", int, high=0),
        ChannelSpec(0x10, "encoding", "count", int, doc="frames with their lossless product being made"),
        ChannelSpec(0x11, "bus_malformed", "count", int, high=0, doc="bus messages that did not parse"),
        ChannelSpec(0x12, "autoexposure", "", dict, doc="per camera: auto-exposure on"),
        ChannelSpec(0x13, "calibration", "", dict, doc="per camera: the active calibration set, or none"),
        ChannelSpec(0x14, "frames_lost", "count", int, doc="frames named lost (never received, or not re-made)"),
        ChannelSpec(0x15, "frames_open", "count", int, doc="frames taken whose products are not all stored or named"),
        ChannelSpec(0x16, "products_unacked", "count", int,
                    doc="products pushed, not yet confirmed stored by the downlink"),
        ChannelSpec(0x17, "products_resent", "count", int, doc="products pushed again, unconfirmed in time"),
        ChannelSpec(0x18, "products_dropped", "count", int, high=0, doc="products given up over the hand-off bound"),
        ChannelSpec(0x19, "reports_unechoed", "count", int, doc="frame-naming events not yet heard back"),
        ChannelSpec(0x1A, "journal_commit_us", "us", float, doc="last journal commit (write and fsync)"),
        ChannelSpec(0x1B, "journal_errors", "count", int, high=0),
        ChannelSpec(0x1C, "frames_duplicate", "count", int, doc="frame messages for a counter already taken"),
        ChannelSpec(0x1D, "frames_remade", "count", int, doc="frames taken again from the ring after a restart"),
        ChannelSpec(0x1E, "thumbnail_only_by", "count", dict,
                    doc="frames kept as thumbnail only, per reason (queue_full, rule, falling_behind, store_full)"),
        ChannelSpec(0x1F, "frames_copied_out", "count", int,
                    doc="frames used in place copied out of a ring slot due too soon (their full product kept)"),
    ),
)

COMMANDS = INTERFACE.commands
EVENTS = INTERFACE.events
TELEMETRY = INTERFACE.telemetry


def _camera_commands(name: str, processes: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Camera id -> its driver's command endpoint, for each camera this core serves that a
    ``drivers.camera`` process of the config drives: the routing of AE and exposure commands
    when the config does not spell it out."""
    served = set(processes[name]["cameras"])
    return {p["camera"]: p["endpoints"]["command"] for p in processes.values()
            if p["kind"] == "drivers.camera" and p.get("camera") in served and "command" in p["endpoints"]}


KIND = KindSpec(
    interface=INTERFACE,
    name="fsw.imaging",
    entry="fsw.imaging.process:run",
    endpoints={"bus_pub": "tcp|ipc", "bus_sub": "tcp|ipc", "products": "tcp|ipc", "command": "tcp|ipc"},
    binds=("command",),
    keys={
        "cameras": Field(list, ["navcam"], item=Field(str, pattern=r"[A-Za-z0-9][A-Za-z0-9_]{0,63}"), unique=True),
        "thumbnail_px": Field(int, 256, min=16, max=1024),
        "lossless_codec": Field(str, "jpegls", choices=("jpegls", "jpegxl", "png", "aec", "zstd")),
        "lossless_params": Field(dict, {}, doc="codec parameters, e.g. {effort: 1} for jpegxl"),
        "near_lossless_max_error": Field(int, 0, min=0, max=255,
                                         doc="0: full frames lossless; k > 0: full frames near-lossless, "
                                             "every pixel within k DN (JPEG-LS NEAR when lossless_codec is "
                                             "jpegls, else quantised JPEG XL at lossless_params' effort)"),
        "workers": Field(int, 2, min=1, max=16, doc="threads encoding lossless products"),
        "queue_max": Field(int, 8, min=1, max=256, doc="frames waiting (per camera for frames used in place, "
                                                        "and no more than its ring holds); beyond, frames keep "
                                                        "only a thumbnail"),
        "ring_margin": Field(float, 1.5, min=0.0, max=100.0,
                             doc="a frame used in place whose ring slot is due to be rewritten sooner than this "
                                 "times its camera's recent work time is copied out of the ring (ring_copies) "
                                 "or else keeps only a thumbnail (0: never)"),
        "ring_copies": Field(int, 4, min=0, max=64,
                             doc="frames copied out of their ring slot at once at most (in the queue and at "
                                 "work), each costing one frame of memory; beyond, a frame due too soon keeps "
                                 "only a thumbnail (0: never copy)"),
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
        "camera_commands": Field(dict, {}, endpoint_refs="tcp|ipc", derive=_camera_commands,
                                 doc="camera id -> the endpoint of its driver's command ROUTER "
                                     "(left out: every configured camera driver's command endpoint)"),
        "calibration_dir": Field(str, "calibration", path="dir", doc="relative to the output directory"),
        "journal_dir": Field(str, "imaging", path="dir", doc="directory (in the run's output) of the frame journal "
                                                 "<process>.journal"),
        "handoff_timeout_s": Field(float, 10.0, min=0.5, max=3600.0,
                                   doc="a product the downlink has not confirmed stored in this time is pushed again"),
        "handoff_max": Field(int, 64, min=4, max=4096,
                             doc="products held until confirmed; beyond, the oldest full frame is given up, named"),
        "report_retry_s": Field(float, 2.0, min=0.1, max=60.0,
                                doc="a frame-naming event not heard back on the bus goes again after this "
                                    "(doubling, up to 30 s)"),
        "tail_grace_s": Field(float, 3.0, min=0.1, max=600.0,
                              doc="a driver's last_counter ahead of every frame received this long: the frames "
                                  "between are named lost"),
    },
    doc="Imaging core: thumbnails and lossless products from frames.",
)
