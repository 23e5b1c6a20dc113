"""The camera driver's interface, declared as data: commands, events, telemetry.

The driver validates command arguments against :data:`COMMANDS`, raises
events listed in :data:`EVENTS` and publishes the channels in
:data:`TELEMETRY`; the ground, CLI, docs and tests read these tables.
The format is :mod:`framework.interface`, shared by every component.
"""

from __future__ import annotations

from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from framework.kinds import Field, KindSpec
from drivers.camera.profile import PROFILE_INLINE_KEYS, profile_for_process

__all__ = ["KIND", "INTERFACE", "COMMANDS", "EVENTS", "TELEMETRY"]

INTERFACE = Interface.build(
    "camera",
    commands=(
        CommandSpec(0x10, "STREAM_START", (Arg("rate_hz", float, 0.01, 100.0, "Hz"),),
                    doc="Start streaming frames at rate_hz (the camera may cap it)."),
        CommandSpec(0x11, "STREAM_STOP", doc="Stop streaming; completes once the camera acknowledges, "
                                             "after which no more frames are published."),
        CommandSpec(0x12, "CAPTURE", (Arg("priority", str, required=False, choices=("normal", "confirmation")),),
                    doc="Capture and publish one frame; priority confirmation tags the first frame exposed "
                        "after the command."),
        CommandSpec(0x13, "SET_EXPOSURE", (Arg("exposure_us", int, 1, 10_000_000, "us"),),
                    doc="Set the exposure time."),
        CommandSpec(0x14, "SET_GAIN", (Arg("gain", float, 0.1, 64.0, "DN/e- relative to unity"),),
                    doc="Set the analogue gain."),
        CommandSpec(0x15, "STATUS", doc="Ask the camera for its status; the result holds it."),
        CommandSpec(0x16, "PING", doc="Ask the camera for an ACK."),
        CommandSpec(0x17, "CAPTURE_BURST", (Arg("count", int, 1, 1000),),
                    doc="Capture count frames back to back."),
        CommandSpec(0x18, "SET_WINDOW", (Arg("x", int, 0, 16384, "px"), Arg("y", int, 0, 16384, "px"),
                                         Arg("width", int, 0, 16384, "px"), Arg("height", int, 0, 16384, "px")),
                    doc="Read out only this region of the sensor; all zero for the full sensor."),
        CommandSpec(0x19, "SET_BINNING", (Arg("factor", int, 1, 4),), doc="Bin factor x factor pixels (1, 2, 4)."),
        CommandSpec(0x1A, "POWER_CYCLE", doc="Power the camera off and on; the link drops and comes back."),
        CommandSpec(0x1B, "SELF_TEST", doc="Run the camera's self-test; fails naming what is wrong."),
    ),
    events=(
        EventSpec(1, "link_up", "info", "Connected to the camera."),
        EventSpec(2, "link_down", "warning", "Lost the camera link; reconnecting with backoff."),
        EventSpec(3, "frame_crc_error", "warning", "A message failed its CRC-32C and was dropped."),
        EventSpec(4, "frame_truncated", "warning", "The link ended inside a message."),
        EventSpec(5, "link_garbage", "warning", "Bytes that were not a message were skipped."),
        EventSpec(6, "protocol_error", "warning", "A malformed or unknown message from the camera."),
        EventSpec(7, "frame_counter_gap", "warning", "Frames are missing between two counters."),
        EventSpec(8, "frame_counter_reset", "info", "The frame counter went backwards (camera restart)."),
        EventSpec(9, "camera_nak", "warning", "The camera refused a command."),
        EventSpec(12, "reply_timeout", "warning", "The camera did not answer a command in time."),
        EventSpec(13, "frame_timeout", "warning", "Streaming, but nothing arrived from the camera in time (a stall)."),
        EventSpec(14, "frame_late", "warning", "A streamed frame arrived later than its period allows."),
        EventSpec(15, "camera_power_cycled", "warning", "The driver power-cycled a silent (latched-up) camera."),
        EventSpec(16, "over_temperature", "error", "The sensor temperature is above its limit."),
        EventSpec(17, "temperature_nominal", "info", "The sensor temperature is back below its limit."),
        EventSpec(18, "pixel_defects", "warning", "More dead (0 DN) or stuck (full-scale) pixels than before."),
    ),
    telemetry=(
        ChannelSpec(1, "link_state", "", str, doc="down | connecting | up"),
        ChannelSpec(2, "frames_good", "count", int),
        ChannelSpec(3, "frames_bad", "count", int, doc="messages dropped for CRC, truncation or bad payload"),
        ChannelSpec(4, "counter_gaps", "count", int, high=0),
        ChannelSpec(5, "frames_missing", "count", int, high=0),
        ChannelSpec(6, "bytes_skipped", "bytes", int, high=0),
        ChannelSpec(7, "last_error", "", str),
        ChannelSpec(8, "temp_c", "degC", float, low=-20.0, high=60.0),
        ChannelSpec(11, "camera_naks", "count", int),
        ChannelSpec(12, "reconnects", "count", int),
        ChannelSpec(13, "streaming", "", bool),
        ChannelSpec(14, "last_counter", "count", int),
        ChannelSpec(15, "frames_truncated", "count", int, high=0),
        ChannelSpec(16, "crc_errors", "count", int, high=0),
        ChannelSpec(17, "timeouts", "count", int, high=0),
        ChannelSpec(18, "late_frames", "count", int, high=0),
        ChannelSpec(19, "power_cycles", "count", int),
        ChannelSpec(20, "dead_pixels", "count", int),
        ChannelSpec(21, "stuck_pixels", "count", int),
        ChannelSpec(22, "interface", "", str, doc="tcp | serial"),
    ),
)

COMMANDS = INTERFACE.commands
EVENTS = INTERFACE.events
TELEMETRY = INTERFACE.telemetry

KIND = KindSpec(
    interface=INTERFACE,
    name="drivers.camera",
    entry="drivers.camera.process:run",
    endpoints={"link": "tcp", "bus_pub": "tcp|ipc", "command": "tcp|ipc"},
    binds=("command",),
    keys={
        "camera": Field(str, pattern=r"[A-Za-z0-9][A-Za-z0-9_]{0,63}", doc="camera id: the bus topic frame.<camera>"),
        "profile_file": Field(str, "", doc="the camera's profile (interface, frame size, line rate)"),
        "profile": Field(dict, {}, keys=PROFILE_INLINE_KEYS),
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
        "shm_ring": Field(str, "", pattern=r"([A-Za-z0-9][A-Za-z0-9_.-]{0,127})?",
                          doc="frame_transport shm: ring name ([A-Za-z0-9_.-]); default "
                                       "'<process>-<hash of the output directory>', unique per run"),
    },
    doc="Camera driver: commands the camera, checks frames, publishes them.",
    check=lambda file, s: profile_for_process(s, file),  # the profile it will run with
)
