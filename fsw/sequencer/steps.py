"""A stored sequence as data: its steps, how they are written (JSON), checked, and timed. Pure.

A sequence is a name, a ``late`` policy, an ``on_error`` policy and up to
:data:`MAX_STEPS` steps. A step names its timing (exactly one of ``abs``,
``rel``, ``pass_end``), a target process, a command of that process's interface
table and its arguments::

    {"late": "run", "on_error": "stop", "steps": [
      {"pass_end": 600, "target": "navcam_driver", "cmd": "CAPTURE_BURST", "args": {"count": 5}},
      {"rel": 30, "target": "imaging", "cmd": "MAKE_LOSSY",
       "args": {"camera": "navcam", "pick": "best", "budget_bytes": 200000}}]}

(a bare list of steps means the default policies). A step may also be written
compactly, so that more of a sequence fits in one uplinked string (255 bytes):
``[timing, offset, target, cmd]`` or ``[timing, offset, target, cmd, args]``,
timing ``"a"``, ``"r"`` or ``"p"`` (or the long name), args a map or a list in
the order of the command's table entry (``null`` or left off: not given)::

    [["p",600,"navcam_driver","CAPTURE_BURST",[5]],
     ["r",30,"imaging","MAKE_LOSSY",["navcam",null,200000,null,"best"]]]

:func:`parse_sequence` (SEQ_LOAD) and :func:`parse_append` (SEQ_APPEND: more
steps for a sequence already loaded) refuse the whole document, naming the step
(by its index in the sequence) and the reason, if any step is wrong: its target
and arguments are checked by a :data:`StepCheck` (the process builds one from
the dictionary of the config, :func:`step_checker`), so a sequence that loads
can only send commands its targets' tables accept.

Timing (:func:`due_time`): ``abs`` is a Unix time; ``rel`` is an offset after the
reference, which is the sequence's start for its first step and the moment the
previous step was dispatched for the others; ``pass_end`` is an offset after the
end of the lander's contact that is open at the reference, or, if none is, of
the next one (the contact plan of :mod:`link.contacts`). Offsets are mission
seconds: the contact plan's orbit time, ``time_scale`` times faster than the
wall clock (:func:`offset_wall_s`), so "pass end + 600" is ten minutes of the
same clock the passes run on, in a demo played 360 times fast as in flight.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping

from framework.errors import CommandRejected
from framework.interface import Arg, Interface
from link.contacts import ContactPlan

__all__ = ["Step", "Sequence", "StepCheck", "TIMINGS", "SHORT_TIMINGS", "LATE_POLICIES", "ERROR_POLICIES",
           "MAX_STEPS", "MAX_STEPS_JSON_BYTES", "MAX_OFFSET_S", "NAME_PATTERN", "parse_sequence", "parse_append",
           "check_name", "step_checker", "due_time", "pass_end_after", "offset_wall_s"]

TIMINGS = ("abs", "rel", "pass_end")
SHORT_TIMINGS = {"a": "abs", "r": "rel", "p": "pass_end"}
"""The compact step form's timing letters."""
LATE_POLICIES = ("run", "skip")
ERROR_POLICIES = ("stop", "continue")
MAX_STEPS = 64
MAX_STEPS_JSON_BYTES = 16 * 1024
"""The largest ``steps_json`` a SEQ_LOAD or SEQ_APPEND takes (an uplinked TC string holds at most 255 bytes)."""
MAX_OFFSET_S = 1e7
"""The longest ``rel`` or ``pass_end`` offset, mission seconds (about 116 days)."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_STEP_KEYS = frozenset({"target", "cmd", "args", *TIMINGS})
_SEQUENCE_KEYS = frozenset({"steps", "late", "on_error"})
_APPEND_KEYS = frozenset({"steps", "at"})
_PASS_END_SEARCHES = 16  # contacts of several relays joined end to end: at most this many looked at
_EDGE_S = 1e-3
"""Contacts less than this apart (wall seconds) are one pass; also the probe just inside a window's
start, where wall -> orbit time rounding could put the start a hair outside it."""

StepCheck = Callable[[str, str, Mapping[str, Any] | list[Any]], dict[str, Any]]
"""(target process, command, arguments by name, or a list in the table's order) -> the arguments by name,
coerced to their types, or CommandRejected."""


@dataclass(frozen=True)
class Step:
    """One stored command and when it goes."""

    timing: str  # one of TIMINGS
    at_s: float  # abs: Unix time; rel and pass_end: mission seconds after the reference
    target: str
    cmd: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {self.timing: self.at_s, "target": self.target, "cmd": self.cmd, "args": self.args}


@dataclass(frozen=True)
class Sequence:
    name: str
    steps: tuple[Step, ...]
    late: str = "run"  # a step reached after its time: run it at once, or skip it (both with an event)
    on_error: str = "stop"  # a step rejected, failed or not sent: stop the sequence there, or go on

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "late": self.late, "on_error": self.on_error,
                "steps": [s.to_json() for s in self.steps]}


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise CommandRejected(f"sequence name must match {NAME_PATTERN.pattern}, got {name!r:.60}")
    return name


def _number(where: str, key: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CommandRejected(f"{where}: '{key}' must be a finite number, got {value!r:.60}")
    if not lo <= value <= hi:
        raise CommandRejected(f"{where}: '{key}'={value} is not within [{lo:g}, {hi:g}]")
    return float(value)


def _long_form(where: str, raw: list[Any]) -> dict[str, Any]:
    """A compact step ``[timing, offset, target, cmd(, args)]`` as the map it stands for."""
    if not 4 <= len(raw) <= 5:
        raise CommandRejected(f"{where}: a compact step is [timing, offset, target, cmd] or [..., args], "
                              f"got {len(raw)} items")
    timing = SHORT_TIMINGS.get(raw[0], raw[0]) if isinstance(raw[0], str) else None
    if timing not in TIMINGS:
        raise CommandRejected(f"{where}: a compact step's timing is one of {sorted(SHORT_TIMINGS)} or "
                              f"{list(TIMINGS)}, got {raw[0]!r:.40}")
    out = {timing: raw[1], "target": raw[2], "cmd": raw[3]}
    if len(raw) == 5:
        out["args"] = raw[4]
    return out


def _step(i: int, raw: Any, check: StepCheck, plan: ContactPlan | None) -> Step:
    where = f"step {i}"
    if isinstance(raw, list):
        raw = _long_form(where, raw)
    if not isinstance(raw, dict):
        raise CommandRejected(f"{where}: must be a map or a compact list, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in _STEP_KEYS)
    if unknown:
        raise CommandRejected(f"{where}: unknown key(s) {unknown}; takes {sorted(_STEP_KEYS)}")
    timings = [t for t in TIMINGS if t in raw]
    if len(timings) != 1:
        raise CommandRejected(f"{where}: give exactly one of {list(TIMINGS)}, got {timings}")
    timing = timings[0]
    at = _number(where, timing, raw[timing], 1.0 if timing == "abs" else 0.0,
                 1e12 if timing == "abs" else MAX_OFFSET_S)
    if timing == "pass_end" and (plan is None or plan.always_open):
        raise CommandRejected(f"{where}: 'pass_end' needs a contact plan with passes (this one is always open)")
    target, cmd, args = raw.get("target"), raw.get("cmd"), raw.get("args", {})
    if not isinstance(target, str) or not isinstance(cmd, str):
        raise CommandRejected(f"{where}: 'target' and 'cmd' must be strings")
    if not (isinstance(args, list) or isinstance(args, dict) and all(isinstance(k, str) for k in args)):
        raise CommandRejected(f"{where}: 'args' must be a map of names to values, or a list in the table's order")
    try:
        checked = check(target, cmd, args)
    except CommandRejected as exc:
        raise CommandRejected(f"{where} ({target} {cmd}): {exc}") from None
    return Step(timing, at, target, cmd, checked)


def _steps(raw: Any, first: int, room: int, check: StepCheck, plan: ContactPlan | None) -> tuple[Step, ...]:
    """Steps ``first``, ``first + 1``... of a sequence, at most ``room`` of them, each checked."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= room:
        raise CommandRejected(f"'steps' must be a list of 1 to {room} steps"
                              + (f" ({first} already loaded, {MAX_STEPS} at most)" if first else ""))
    return tuple(_step(first + i, s, check, plan) for i, s in enumerate(raw))


def _document(steps_json: str) -> Any:
    if len(steps_json.encode()) > MAX_STEPS_JSON_BYTES:
        raise CommandRejected(f"steps_json is over {MAX_STEPS_JSON_BYTES} bytes")
    try:
        return json.loads(steps_json)
    except (ValueError, RecursionError) as exc:
        raise CommandRejected(f"steps_json is not JSON: {str(exc)[:120]}") from None


def parse_sequence(name: str, steps_json: str, check: StepCheck, plan: ContactPlan | None) -> Sequence:
    """The sequence ``steps_json`` describes, every step checked; CommandRejected naming the first wrong
    step (its index, target and command) and why, so nothing of a bad sequence is kept."""
    check_name(name)
    raw = _document(steps_json)
    if isinstance(raw, list):
        raw = {"steps": raw}
    if not isinstance(raw, dict):
        raise CommandRejected("steps_json must be a list of steps or a map with 'steps'")
    unknown = sorted(str(k) for k in raw if k not in _SEQUENCE_KEYS)
    if unknown:
        raise CommandRejected(f"unknown key(s) {unknown}; takes {sorted(_SEQUENCE_KEYS)}")
    late, on_error = raw.get("late", "run"), raw.get("on_error", "stop")
    if late not in LATE_POLICIES:
        raise CommandRejected(f"'late' must be one of {list(LATE_POLICIES)}, got {late!r:.60}")
    if on_error not in ERROR_POLICIES:
        raise CommandRejected(f"'on_error' must be one of {list(ERROR_POLICIES)}, got {on_error!r:.60}")
    return Sequence(name, _steps(raw.get("steps"), 0, MAX_STEPS, check, plan), late, on_error)


def parse_append(steps_json: str, have: int, check: StepCheck, plan: ContactPlan | None) -> tuple[Step, ...]:
    """The steps ``steps_json`` adds to a sequence of ``have`` steps: a list of steps, or ``{"at": N,
    "steps": [...]}``, refused unless the sequence holds exactly N steps (so an append sent again after an
    uncertain outcome cannot add its steps twice). Steps are named by the index they would get."""
    raw = _document(steps_json)
    if isinstance(raw, list):
        raw = {"steps": raw}
    if not isinstance(raw, dict):
        raise CommandRejected("steps_json must be a list of steps or a map with 'steps' (and 'at')")
    unknown = sorted(str(k) for k in raw if k not in _APPEND_KEYS)
    if unknown:
        raise CommandRejected(f"unknown key(s) {unknown}; an append takes {sorted(_APPEND_KEYS)} (the "
                              "policies are the load's)")
    at = raw.get("at", have)
    if isinstance(at, bool) or not isinstance(at, int) or at != have:
        raise CommandRejected(f"'at' is {at!r:.20} but the sequence has {have} steps: this append was made "
                              "already, or one before it is missing")
    if have >= MAX_STEPS:
        raise CommandRejected(f"the sequence has {have} steps, the most it may hold")
    return _steps(raw.get("steps"), have, MAX_STEPS - have, check, plan)


def step_checker(interfaces: Mapping[str, Interface], commandable: Collection[str], own_name: str) -> StepCheck:
    """A :data:`StepCheck` over the config's processes: ``interfaces`` (process -> its table), the
    processes with a command port (``commandable``). Refused: an unknown process, the sequencer itself
    (a sequence does not steer sequences), a process with no command port, a hazardous command (ARM
    and FIRE keep their two-step rule with an operator), and arguments the target's table refuses."""

    def check(target: str, cmd: str, args: Mapping[str, Any] | list[Any]) -> dict[str, Any]:
        interface = interfaces.get(target)
        if interface is None:
            raise CommandRejected(f"no process '{target}' in the config; known: {sorted(interfaces)}")
        if target == own_name:
            raise CommandRejected("a sequence cannot command the sequencer")
        if target not in commandable:
            raise CommandRejected(f"process '{target}' has no command port")
        spec = interface.commands.get(cmd)
        if spec is not None and spec.hazardous:
            raise CommandRejected(f"{cmd} is hazardous: it is never stored (two-step rule, operator present)")
        if isinstance(args, list):
            if spec is None:
                return interface.validate_args(cmd, {})  # refuses, naming the unknown command
            args = _by_name(cmd, spec.args, args)
        return interface.validate_args(cmd, args)

    return check


def _by_name(cmd: str, specs: Collection[Arg], values: list[Any]) -> dict[str, Any]:
    """Positional arguments (the compact form) by the names of the table entry's arguments, in order;
    ``None`` stands for an argument not given."""
    names = [a.name for a in specs]
    if len(values) > len(names):
        raise CommandRejected(f"{cmd}: takes at most {len(names)} argument(s) {names}, got {len(values)}")
    return {n: v for n, v in zip(names, values) if v is not None}


def offset_wall_s(offset_s: float, plan: ContactPlan | None) -> float:
    """Wall seconds of a ``rel`` or ``pass_end`` offset given in mission seconds: the plan's orbit time
    runs ``time_scale`` times faster than the wall clock (1 without a plan: the same)."""
    return offset_s if plan is None else offset_s / plan.time_scale


def pass_end_after(plan: ContactPlan, t: float) -> float | None:
    """The wall time at which the contact open at ``t`` ends, or, if none is open, the next one's end;
    contacts of several relays that follow each other without a gap count as one. None: no contact ahead."""
    start = plan.next_open(t)
    if start is None:
        return None
    contact = plan.contact(start) or plan.contact(start + _EDGE_S)
    if contact is None:
        return None
    end = contact.closes_at
    for _ in range(_PASS_END_SEARCHES):
        nxt = plan.contact(end + _EDGE_S)
        if nxt is None or nxt.closes_at <= end:
            break
        end = nxt.closes_at
    return end


def due_time(step: Step, ref_t: float, plan: ContactPlan | None) -> float | None:
    """The wall time ``step`` is due, given its reference time (the start, or the previous step's
    dispatch; wall); None for a ``pass_end`` step with no contact ahead. Offsets are mission seconds."""
    if step.timing == "abs":
        return step.at_s
    if step.timing == "rel":
        return ref_t + offset_wall_s(step.at_s, plan)
    end = None if plan is None else pass_end_after(plan, ref_t)
    return None if end is None else end + offset_wall_s(step.at_s, plan)
