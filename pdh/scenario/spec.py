"""A scenario file: the config to run, and a timeline of steps with expectations. Pure: parsing only.

Schema (``configs/scenarios/*.yaml``; every error is a ConfigError naming the file and key)::

    scenario: boom_jam                 # name (default: the file's stem)
    description: ...
    config: ../demo.yaml               # a config file (relative to this file), or an inline config mapping
    start: [broker, boom_emulator, boom_driver]   # processes to start (default: all)
    overrides:                         # merged into the config's process sections (mappings merge, values replace);
      boom_emulator: {time_scale: 5}   # a name not in the config adds a process (give its kind)
    free_ports: true                   # give every loopback endpoint a free port (default true)
    keys: {dir: null, operator: operator}   # CURVE keys for `curve: true` commands; no dir: generated in OUT/keys
    ready_timeout_s: 30                # every process on the bus publishes health before the timeline starts
    timeout_s: 300                     # the whole timeline
    allow_restarts: false              # a process that dies fails the scenario
    steps:
      - id: arm                        # optional; `since` refers to it
        at: 0                          # seconds from the start of the timeline, or
        after: 0.5                     #   seconds after the previous step finished (default 0)
        command: {process: boom_driver, cmd: ARM, args: {mechanism: boom}, curve: true,
                  expect: completed, wait: final, timeout_s: 10, result: {...}, reason: {...}}
      - inject: {process: boom_emulator, fault: jam, params: {angle_deg: 40}}
      - control: {process: navcam_emulator, cmd: status, result: {boom_angle_deg: {approx: 40, tol: 1}}}
      - expect: {event: deployment_verdict, from: boom_driver, fields: {outcome: partial}, within_s: 30}
      - expect: {telemetry: boom_driver, channel: angle_deg, value: {gt: 80}, within_s: 10}
      - expect: {topic: frame.navcam, fields: {...}, count: 2, within_s: 10, since: start, absent: false}
      - expect: {frames: accounted, within_s: 60, min_frames: 1}
      - wait: 2.0

Steps run one after another. ``command`` with ``wait: accepted`` finishes once
accepted; its final reply is still judged when it arrives (a FIRE in the background
while later steps inject a jam). ``control`` sends any command to an emulator's
control port (``set_boom_angle``, ``SET_AMBIENT``, ``status``, ``TRUTH``) and may check
its result. An expectation looks at every message heard since the runner began
listening (``since: start``, the default: startup events such as ``link_up`` count),
since its own step began (``since: step``), or since a named step began (``since: <id>``).
Predicates: :mod:`pdh.scenario.expect`. ``expect: {frames: accounted}`` counts against the camera
emulators' manifest (``OUT/hil/manifest.jsonl``): it holds once every frame in it (at least
``min_frames``) is at the ground bit-exact, or thumbnail-only by policy, or named by an event
(received by the ground, or heard on the bus), and fails naming the frames that are not.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from framework.errors import ConfigError
from pdh.scenario.expect import Condition, Predicate, parse_predicate
from pdh.scenario.model import (Action, CommandAction, ControlAction, ExpectAction, FramesAction, InjectAction,
                                Scenario, Step, WaitAction)

__all__ = ["Scenario", "Step", "CommandAction", "InjectAction", "ControlAction", "ExpectAction", "FramesAction",
           "WaitAction", "Action", "load_scenario", "parse_scenario", "merge_overrides", "ACTIONS", "STATUSES"]

ACTIONS = ("command", "inject", "control", "expect", "wait")
STATUSES = ("completed", "rejected", "failed")
_STEP_KEYS = ("id", "at", "after", "note", *ACTIONS)
_TOP_KEYS = ("scenario", "description", "config", "start", "overrides", "free_ports", "keys", "ready_timeout_s",
             "timeout_s", "allow_restarts", "steps")


class _Ctx:
    """The file being parsed, for error messages."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, expected: str, got: Any = None) -> ConfigError:
        return ConfigError(self.file, key, expected, got)

    def mapping(self, key: str, value: Any, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "a mapping", value)
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    raise self.fail(f"{key}.{k}" if key else str(k), f"one of the known keys {list(allowed)}",
                                    "unknown key")
        return value

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, "a non-empty string", value)
        return value

    def number(self, key: str, value: Any, lo: float = 0.0, hi: float = 1e6) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise self.fail(key, f"a number in [{lo:g}, {hi:g}]", value)
        return float(value)

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def predicate(self, key: str, value: Any) -> Predicate:
        pred, why = parse_predicate(value)
        if pred is None:
            raise self.fail(key, why, value)
        return pred

    def predicates(self, key: str, value: Any) -> tuple[tuple[str, Predicate], ...]:
        m = self.mapping(key, value)
        return tuple((str(k), self.predicate(f"{key}.{k}", v)) for k, v in m.items())


def merge_overrides(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in: mappings merge recursively, anything else replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_overrides(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file; raise ConfigError on the first fault."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(str(path), "<file>", "a readable scenario file", str(exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "<file>", "valid YAML", str(exc).replace("\n", " ")) from None
    return parse_scenario(data, str(path))


def _load_config(c: _Ctx, value: Any) -> tuple[Path | None, dict[str, Any]]:
    if isinstance(value, dict):
        return None, copy.deepcopy(value)
    ref = c.string("config", value)
    p = Path(ref)
    if not p.is_absolute():
        here = Path(c.file).resolve().parent / p
        p = here if here.exists() or not Path(ref).exists() else Path(ref).resolve()
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise c.fail("config", "a readable config file (relative to the scenario file)", str(exc)) from None
    except yaml.YAMLError as exc:
        raise c.fail("config", f"a config file of valid YAML ({p})", str(exc).replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise c.fail("config", f"a config mapping in {p}", raw)
    return p.resolve(), raw


def parse_scenario(data: Any, file: str = "<scenario>") -> Scenario:
    """Validate a parsed scenario mapping (see the module docstring)."""
    c = _Ctx(file)
    top = c.mapping("", data, _TOP_KEYS)
    if "config" not in top:
        raise c.fail("config", "a config file or an inline config mapping (required, missing)")
    config_path, raw = _load_config(c, top["config"])
    overrides = c.mapping("overrides", top.get("overrides", {}))
    procs = raw.get("processes")
    if not isinstance(procs, dict):
        raise c.fail("config", "a config with a 'processes' mapping", type(procs).__name__)
    for name, over in overrides.items():
        c.mapping(f"overrides.{name}", over)
        if name not in procs and "kind" not in over:
            raise c.fail(f"overrides.{name}", f"a process of the config {sorted(procs)} (or a new one with 'kind')",
                         name)
        procs[name] = merge_overrides(procs.get(name, {}), over)
    start = top.get("start")
    if start is not None:
        if not isinstance(start, list) or not start:
            raise c.fail("start", "a non-empty list of process names", start)
        for i, n in enumerate(start):
            if n not in procs:
                raise c.fail(f"start[{i}]", f"a process of the config {sorted(procs)}", n)
    keys = c.mapping("keys", top.get("keys", {}), ("dir", "operator"))
    keys_dir = None if keys.get("dir") is None else _rel(file, c.string("keys.dir", keys["dir"]))
    steps_raw = top.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise c.fail("steps", "a non-empty list of steps", steps_raw)
    steps = _parse_steps(c, steps_raw)
    sc = Scenario(
        name=c.string("scenario", top.get("scenario", Path(file).stem)),
        file=file,
        description=str(top.get("description", "")),
        config_path=config_path,
        config=raw,
        start=None if start is None else tuple(start),
        free_ports=c.boolean("free_ports", top.get("free_ports", True)),
        keys_dir=keys_dir,
        operator=c.string("keys.operator", keys.get("operator", "operator")),
        ready_timeout_s=c.number("ready_timeout_s", top.get("ready_timeout_s", 30.0), 0.0, 600.0),
        timeout_s=c.number("timeout_s", top.get("timeout_s", 300.0), 0.1, 86_400.0),
        allow_restarts=c.boolean("allow_restarts", top.get("allow_restarts", False)),
        steps=steps,
    )
    check_against_config(sc)
    return sc


def _rel(file: str, ref: str) -> Path:
    p = Path(ref)
    return p if p.is_absolute() else Path(file).resolve().parent / p


def _parse_steps(c: _Ctx, steps_raw: list[Any]) -> tuple[Step, ...]:
    steps: list[Step] = []
    ids: set[str] = set()
    last_at = 0.0
    for i, s in enumerate(steps_raw):
        key = f"steps[{i}]"
        m = c.mapping(key, s, _STEP_KEYS)
        acts = [a for a in ACTIONS if a in m]
        if len(acts) != 1:
            raise c.fail(key, f"exactly one of {list(ACTIONS)}", sorted(m))
        sid = c.string(f"{key}.id", m.get("id", f"{i + 1}"))
        if sid in ids or sid in ("start", "step"):
            raise c.fail(f"{key}.id", "a step id used once (not 'start' or 'step')", sid)
        if "at" in m and "after" in m:
            raise c.fail(key, "either 'at' or 'after', not both", sorted(m))
        at = None if "at" not in m else c.number(f"{key}.at", m["at"], 0.0, 86_400.0)
        if at is not None:
            if at < last_at:
                raise c.fail(f"{key}.at", f"a time >= the previous 'at' ({last_at:g} s): steps run in order", at)
            last_at = at
        after = c.number(f"{key}.after", m.get("after", 0.0), 0.0, 86_400.0)
        action = _PARSERS[acts[0]](c, f"{key}.{acts[0]}", m[acts[0]], ids)
        steps.append(Step(index=i, id=sid, at_s=at, after_s=after, action=action, note=str(m.get("note", ""))))
        ids.add(sid)
    return tuple(steps)


def _status(c: _Ctx, key: str, value: Any) -> str:
    if value not in STATUSES:
        raise c.fail(key, f"one of {list(STATUSES)}", value)
    return value


def _parse_command(c: _Ctx, key: str, v: Any, ids: set[str]) -> CommandAction:
    m = c.mapping(key, v, ("process", "cmd", "args", "expect", "wait", "timeout_s", "curve", "keys", "result",
                           "reason"))
    for req in ("process", "cmd"):
        if req not in m:
            raise c.fail(f"{key}.{req}", "a string (required, missing)")
    wait = m.get("wait", "final")
    if wait not in ("final", "accepted"):
        raise c.fail(f"{key}.wait", "final or accepted", wait)
    keys_dir = None if m.get("keys") is None else _rel(c.file, c.string(f"{key}.keys", m["keys"]))
    return CommandAction(
        process=c.string(f"{key}.process", m["process"]), cmd=c.string(f"{key}.cmd", m["cmd"]),
        args=dict(c.mapping(f"{key}.args", m.get("args", {}))),
        expect=_status(c, f"{key}.expect", m.get("expect", "completed")), wait=wait,
        timeout_s=c.number(f"{key}.timeout_s", m.get("timeout_s", 10.0), 0.05, 86_400.0),
        curve=c.boolean(f"{key}.curve", m.get("curve", keys_dir is not None)) or keys_dir is not None,
        keys_dir=keys_dir,
        result=c.predicates(f"{key}.result", m.get("result", {})),
        reason=None if "reason" not in m else c.predicate(f"{key}.reason", m["reason"]),
    )


def _parse_inject(c: _Ctx, key: str, v: Any, ids: set[str]) -> InjectAction:
    m = c.mapping(key, v, ("process", "fault", "params", "expect", "timeout_s"))
    for req in ("process", "fault"):
        if req not in m:
            raise c.fail(f"{key}.{req}", "a string (required, missing)")
    return InjectAction(process=c.string(f"{key}.process", m["process"]), fault=c.string(f"{key}.fault", m["fault"]),
                        params=dict(c.mapping(f"{key}.params", m.get("params", {}))),
                        expect=_status(c, f"{key}.expect", m.get("expect", "completed")),
                        timeout_s=c.number(f"{key}.timeout_s", m.get("timeout_s", 5.0), 0.05, 600.0))


def _parse_control(c: _Ctx, key: str, v: Any, ids: set[str]) -> ControlAction:
    m = c.mapping(key, v, ("process", "cmd", "args", "expect", "timeout_s", "result"))
    for req in ("process", "cmd"):
        if req not in m:
            raise c.fail(f"{key}.{req}", "a string (required, missing)")
    return ControlAction(process=c.string(f"{key}.process", m["process"]), cmd=c.string(f"{key}.cmd", m["cmd"]),
                         args=dict(c.mapping(f"{key}.args", m.get("args", {}))),
                         expect=_status(c, f"{key}.expect", m.get("expect", "completed")),
                         timeout_s=c.number(f"{key}.timeout_s", m.get("timeout_s", 5.0), 0.05, 600.0),
                         result=c.predicates(f"{key}.result", m.get("result", {})))


def _parse_frames(c: _Ctx, key: str, m: dict[str, Any]) -> FramesAction:
    c.mapping(key, m, ("frames", "within_s", "min_frames"))
    if m["frames"] != "accounted":
        raise c.fail(f"{key}.frames", "accounted", m["frames"])
    n = m.get("min_frames", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise c.fail(f"{key}.min_frames", "an integer >= 1", n)
    return FramesAction(within_s=c.number(f"{key}.within_s", m.get("within_s", 60.0), 0.0, 86_400.0), min_frames=n)


def _parse_expect(c: _Ctx, key: str, v: Any, ids: set[str]) -> ExpectAction | FramesAction:
    if isinstance(v, dict) and "frames" in v:
        return _parse_frames(c, key, v)
    m = c.mapping(key, v, ("event", "from", "telemetry", "channel", "value", "topic", "kind", "fields", "within_s",
                           "since", "count", "absent"))
    selectors = [s for s in ("event", "telemetry", "topic") if s in m]
    if len(selectors) != 1:
        raise c.fail(key, "exactly one of event (with from), telemetry (with channel), topic", sorted(m))
    extra = c.predicates(f"{key}.fields", m.get("fields", {}))
    if "event" in m:
        if "from" not in m:
            raise c.fail(f"{key}.from", "the process that raises the event (required, missing)")
        name = c.string(f"{key}.event", m["event"])
        src = c.string(f"{key}.from", m["from"])
        cond = Condition(f"evt.{src}", (("name", Predicate((("eq", name),))), *extra), kind="evt")
    elif "telemetry" in m:
        src = c.string(f"{key}.telemetry", m["telemetry"])
        if "channel" not in m or "value" not in m:
            raise c.fail(key, "'channel' and 'value' with 'telemetry'", sorted(m))
        channel = c.string(f"{key}.channel", m["channel"])
        pred = c.predicate(f"{key}.value", m["value"])
        kind = None if "kind" not in m else c.string(f"{key}.kind", m["kind"])
        cond = Condition(f"tlm.{src}", ((channel, pred), *extra), kind=kind)
    else:
        kind = None if "kind" not in m else c.string(f"{key}.kind", m["kind"])
        cond = Condition(c.string(f"{key}.topic", m["topic"]), extra, kind=kind)
    since = m.get("since", "start")
    if since not in ("start", "step") and since not in ids:
        raise c.fail(f"{key}.since", f"start, step, or the id of an earlier step {sorted(ids)}", since)
    count = m.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise c.fail(f"{key}.count", "an integer >= 1", count)
    return ExpectAction(condition=cond, within_s=c.number(f"{key}.within_s", m.get("within_s", 10.0), 0.0, 86_400.0),
                        since=since, count=count, absent=c.boolean(f"{key}.absent", m.get("absent", False)))


def _parse_wait(c: _Ctx, key: str, v: Any, ids: set[str]) -> WaitAction:
    return WaitAction(c.number(key, v, 0.0, 86_400.0))


_PARSERS = {"command": _parse_command, "inject": _parse_inject, "control": _parse_control, "expect": _parse_expect,
            "wait": _parse_wait}


def check_against_config(sc: Scenario) -> None:
    """Every step's process exists, is started, and has the endpoint role the step needs."""
    from pdh.scenario.adapters import adapter_for

    c = _Ctx(sc.file)
    procs = sc.config["processes"]
    started = set(sc.start) if sc.start is not None else set(procs)
    for step in sc.steps:
        a = step.action
        if isinstance(a, FramesAction):
            cams = [n for n in started if isinstance(procs.get(n), dict) and procs[n].get("kind") == "hil.camera"]
            if not cams:
                raise c.fail(f"steps[{step.index}].expect.frames",
                             "a scenario that starts a camera emulator (hil.camera: its manifest is the count)",
                             "none started")
            continue
        if isinstance(a, (ExpectAction, WaitAction)):
            continue
        key = f"steps[{step.index}].{step.kind}.process"
        p = procs.get(a.process)
        if not isinstance(p, dict):
            raise c.fail(key, f"a process of the config {sorted(procs)}", a.process)
        if a.process not in started:
            raise c.fail(key, f"a process in 'start' {sorted(started)}", a.process)
        roles = p.get("endpoints") if isinstance(p.get("endpoints"), dict) else {}
        kind = p.get("kind")
        if isinstance(a, CommandAction):
            if "command" not in roles:
                raise c.fail(key, "a process with a 'command' endpoint", f"{a.process} ({kind})")
            continue
        if "control" not in roles:
            raise c.fail(key, "an emulator with a 'control' endpoint", f"{a.process} ({kind})")
        if isinstance(a, InjectAction):
            adapter = adapter_for(str(kind))
            if adapter is None:
                raise c.fail(key, "an emulator whose faults the runner knows (hil.deploy, hil.camera)",
                             f"{a.process} ({kind})")
            if a.fault not in adapter.known_faults():
                raise c.fail(f"steps[{step.index}].inject.fault", f"one of {list(adapter.known_faults())}", a.fault)
