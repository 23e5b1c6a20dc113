"""The logical model of a scenario: its steps and their actions, as frozen dataclasses.

:mod:`pdh.scenario.spec` builds these from a file; the engine runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdh.scenario.expect import Condition, Predicate

__all__ = ["Scenario", "Step", "CommandAction", "InjectAction", "ControlAction", "ExpectAction", "FramesAction",
           "WaitAction", "Action"]


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
class ExpectAction:
    condition: Condition
    within_s: float = 10.0
    since: str = "start"  # "start" | "step" | a step id
    count: int = 1
    absent: bool = False


@dataclass(frozen=True)
class FramesAction:
    """``expect: {frames: accounted}``: every frame of the camera emulators' manifest is at the ground
    bit-exact (or thumbnail-only by policy) or named by an event, within ``within_s``."""

    within_s: float = 60.0
    min_frames: int = 1


@dataclass(frozen=True)
class WaitAction:
    duration_s: float


Action = CommandAction | InjectAction | ControlAction | ExpectAction | FramesAction | WaitAction


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
        return {CommandAction: "command", InjectAction: "inject", ControlAction: "control", ExpectAction: "expect",
                FramesAction: "expect", WaitAction: "wait"}[type(self.action)]


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

    def uses_curve(self) -> bool:
        return any(isinstance(s.action, CommandAction) and s.action.curve and s.action.keys_dir is None
                   for s in self.steps)
