"""The logical model of a scenario: its steps and their actions, as frozen dataclasses.

:mod:`pdh.scenario.spec` builds these from a file; the engine runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdh.scenario.expect import Condition, Predicate

__all__ = ["Scenario", "Step", "CommandAction", "InjectAction", "ControlAction", "LinkAction", "SignalAction",
           "RestartAction", "ClockAction", "DiskAction", "DatagramAction", "UplinkAction", "ExpectAction", "FramesAction", "ProductAction",
           "WaitAction", "Action", "UPLINK_FINAL"]

UPLINK_FINAL = ("completed", "failed", "rejected", "not_delivered", "cancelled")
"""A ground command's stages after which nothing more comes (as ``pdh uplink --wait``)."""


@dataclass(frozen=True)
class CommandAction:
    process: str
    cmd: str
    args: dict[str, Any]
    expect: str = "completed"
    wait: str = "final"  # "final" | "accepted"
    timeout_s: float = 10.0
    curve: bool = False
    keys_dir: Path | None = None
    result: tuple[tuple[str, Predicate], ...] = ()
    reason: Predicate | None = None


@dataclass(frozen=True)
class InjectAction:
    process: str
    fault: str
    params: dict[str, Any]
    expect: str = "completed"
    timeout_s: float = 5.0


@dataclass(frozen=True)
class ControlAction:
    process: str
    cmd: str
    args: dict[str, Any]
    expect: str = "completed"
    timeout_s: float = 5.0
    result: tuple[tuple[str, Predicate], ...] = ()


@dataclass(frozen=True)
class LinkAction(ControlAction):
    """``link``: a relay emulator's control command (WINDOW, RELAY_OUT, SET_LINK, STEP_CLOCK, ...) on its
    ``command`` port; built by the parser from the step's friendlier keys."""

    role: str = "command"


@dataclass(frozen=True)
class SignalAction:
    """``signal``: a signal to a process (KILL, STOP, CONT, TERM); STOP with ``hold_s`` is a hang that the
    runner ends with CONT ``hold_s`` later."""

    process: str
    signal: str
    hold_s: float | None = None


@dataclass(frozen=True)
class RestartAction:
    process: str


@dataclass(frozen=True)
class ClockAction:
    """``clock``: step a process's wall clock by ``step_s`` seconds (cumulative; framework.clock.StepClock reads
    the run's ``OUT/clock/<process>.offset_s``); ``process`` "all" steps every started process."""

    process: str
    step_s: float


@dataclass(frozen=True)
class DiskAction:
    """``disk``: a full disk for one process (its file-size limit, RLIMIT_FSIZE, set on the running process:
    ``limit_bytes``; None lifts it), or a ballast file of ``ballast_bytes`` in its store directory (0 removes)."""

    process: str
    limit_bytes: int | None = None
    lift: bool = False
    ballast_bytes: int | None = None


@dataclass(frozen=True)
class DatagramAction:
    """``datagram``: a forged or replayed uplink datagram (``pdh.scenario.forge``) sent ``count`` times by the
    runner to the relay's ground side, as a transmitter in its beam that is not the ground would."""

    process: str
    forge: str
    target: str = ""
    cmd: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    spi: int = 1
    count: int = 1


@dataclass(frozen=True)
class UplinkAction:
    """``uplink`` (and ``request``): UPLINK through a ground station's command port; judged on the command's
    verification stages (``command_stage`` events of the ground) until a final one."""

    ground: str
    target: str
    cmd: str
    args: dict[str, Any]
    expect: str = "completed"
    wait: str = "final"  # "final" | "queued"
    timeout_s: float = 60.0
    spi: int | None = None


@dataclass(frozen=True)
class ExpectAction:
    condition: Condition
    within_s: float = 10.0
    since: str = "start"  # "start" | "step" | a step id
    count: int = 1
    absent: bool = False
    during_s: float | None = None  # every message on the topic for this long satisfies the condition
    unique: str | None = None  # no two matching messages share this field's value
    before: Condition | None = None  # the first `count` matches came before the first message matching this


@dataclass(frozen=True)
class ProductAction:
    """``expect: {product: {camera, counter, kind}}``: the product at the ground, a full frame bit-exact to the
    camera emulator's manifest, within ``within_s`` (``counter`` left out: any frame of the camera)."""

    camera: str
    counter: int | None = None
    kind: str = "full"
    within_s: float = 60.0


@dataclass(frozen=True)
class FramesAction:
    """``expect: {frames: accounted}``: every frame of the camera emulators' manifest is at the ground
    bit-exact (or thumbnail-only by policy) or named by an event, within ``within_s``."""

    within_s: float = 60.0
    min_frames: int = 1


@dataclass(frozen=True)
class WaitAction:
    duration_s: float


Action = (CommandAction | InjectAction | ControlAction | LinkAction | SignalAction | RestartAction | ClockAction
          | DiskAction
          | DatagramAction | UplinkAction | ExpectAction | FramesAction | ProductAction | WaitAction)


@dataclass(frozen=True)
class Step:
    index: int
    id: str
    at_s: float | None
    after_s: float
    action: Action
    note: str = ""

    @property
    def kind(self) -> str:
        return {CommandAction: "command", InjectAction: "inject", ControlAction: "control", LinkAction: "link",
                SignalAction: "signal", RestartAction: "restart", ClockAction: "clock", DiskAction: "disk",
                UplinkAction: "uplink",
                DatagramAction: "datagram",
                ExpectAction: "expect", FramesAction: "expect", ProductAction: "expect",
                WaitAction: "wait"}[type(self.action)]


@dataclass(frozen=True)
class Scenario:
    name: str
    file: str
    description: str
    config_path: Path | None  # None: inline
    config: dict[str, Any]  # the raw config with overrides merged (ports not yet freed)
    start: tuple[str, ...] | None
    free_ports: bool
    keys_dir: Path | None
    operator: str
    ready_timeout_s: float
    timeout_s: float
    allow_restarts: bool
    steps: tuple[Step, ...]
    contact_epoch_s: float | None = None  # orbit time zero of every inline contact plan, on the timeline
    startup_s: float = 10.0  # the processes' start is given this long before the timeline (contact_epoch)

    def uses_curve(self) -> bool:
        return any(isinstance(s.action, CommandAction) and s.action.curve and s.action.keys_dir is None
                   for s in self.steps)
