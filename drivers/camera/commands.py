"""The camera driver's command handlers: every table command but NOOP and RESET_COUNTERS.

Each ground command becomes one camera wire message (:data:`MESSAGES`), sent
over the link; the handler completes with the camera's answer, and fails if
the camera refuses it (NAK) or does not answer in time. What a command changes
in the driver (the streaming rate, the settings re-sent to a camera that
rebooted, the priority tag of the next frame) is done here too; moving bytes
is left to the process (:class:`CameraPort`). The process registers
:func:`handlers` with :func:`framework.bus.commands.register_table`, which
checks every command's arguments against the table before its handler runs.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Protocol

from drivers.camera import protocol as p
from framework.bus.commands import Handler
from framework.errors import CommandRejected

__all__ = ["CameraPort", "MESSAGES", "SETTINGS", "handlers", "execute"]

MESSAGES: dict[str, Callable[[dict[str, Any]], p.Message]] = {
    "STREAM_START": lambda a: p.StreamStart(rate_hz=a["rate_hz"]),
    "STREAM_STOP": lambda a: p.StreamStop(),
    "CAPTURE": lambda a: p.Capture(),
    "SET_EXPOSURE": lambda a: p.SetExposure(exposure_us=a["exposure_us"]),
    "SET_GAIN": lambda a: p.SetGain(gain=a["gain"]),
    "STATUS": lambda a: p.StatusRequest(),
    "PING": lambda a: p.Ping(),
    "CAPTURE_BURST": lambda a: p.CaptureBurst(count=a["count"]),
    "SET_WINDOW": lambda a: p.SetWindow(**a),
    "SET_BINNING": lambda a: p.SetBinning(factor=a["factor"]),
    "POWER_CYCLE": lambda a: p.PowerCycle(),
    "SELF_TEST": lambda a: p.SelfTest(),
}
"""The wire message of each table command (arguments already checked against the table)."""

SETTINGS = ("SET_EXPOSURE", "SET_GAIN", "SET_WINDOW", "SET_BINNING")
"""Commands whose last message is sent again on every reconnect: a power-cycled camera forgot them."""

_STATUS_FIELDS = ("temp_c", "exposure_us", "gain", "frames_sent", "streaming", "rate_hz", "window_x", "window_y",
                  "width", "height", "binning", "flags", "boot_count")


class CameraPort(Protocol):
    """What the handlers need of the process: its link and streaming state, and one exchange with the camera."""

    connected: bool
    link_state: str
    want_streaming: bool
    rate_hz: float
    last_frame_at: float | None
    priority_from: tuple[str, float] | None
    settings_sent: dict[str, p.Message]
    power_cycles: int
    log: Any

    def exchange(self, msg: p.Message) -> p.Message:
        """Send ``msg`` and return the camera's reply; raise CommandRejected if the link is lost while
        sending, RuntimeError or TimeoutError if no reply comes."""

    def wall_time(self) -> float:
        """Now, on the clock frames are stamped with (``t_capture``)."""


def handlers(driver: CameraPort) -> dict[str, Handler]:
    """One handler per command of :data:`MESSAGES`, bound to ``driver``."""
    return {name: partial(execute, driver, name) for name in MESSAGES}


def execute(driver: CameraPort, name: str, args: dict[str, Any]) -> Any:
    """Carry out one command; return the completion's result."""
    if name == "STREAM_STOP":
        driver.want_streaming = False
        if not driver.connected:
            return {"link": "down", "note": "streaming will not start on reconnect"}
    if not driver.connected:
        raise CommandRejected(f"{name}: camera link is {driver.link_state}")
    if name == "CAPTURE" and args.get("priority", "normal") != "normal":
        driver.log.info("capture_requested", priority=args["priority"])
        driver.priority_from = (args["priority"], driver.wall_time())
    if name == "STREAM_START":
        driver.rate_hz = args["rate_hz"]
    msg = MESSAGES[name](args)
    reply = driver.exchange(msg)
    if isinstance(reply, p.Nak):
        raise RuntimeError(f"camera refused {name}: code {reply.code}: {reply.reason}")
    return _completed(driver, name, msg, reply)


def _completed(driver: CameraPort, name: str, msg: p.Message, reply: p.Message) -> Any:
    """The camera acknowledged ``msg``: note what it changed; the result says what the camera answered."""
    if name == "STREAM_START":
        driver.want_streaming = True
        driver.last_frame_at = None
    if name in SETTINGS:
        driver.settings_sent[name] = msg
    if name == "POWER_CYCLE":
        driver.power_cycles += 1
    if isinstance(reply, p.StatusReply):
        return {k: getattr(reply, k) for k in _STATUS_FIELDS}
    return {"camera_seq": reply.ref_seq, "note": getattr(reply, "reason", "")}
