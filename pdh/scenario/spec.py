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
      - link: {window: closed, duration_s: 10}          # the relay's control port (also relay_out, relay_in,
      - link: {set: {loss: 0.2}, relay: relay_a}         #   set, clock_step_s, clear, status)
      - signal: {process: downlink, signal: STOP, hold_s: 5}   # KILL, STOP (+hold_s: CONT after), CONT, TERM
      - restart: {process: ground}
      - disk: {process: downlink, limit_bytes: 4096}     # or lift: true, or ballast_bytes: N (0 removes)
      - uplink: {target: broker, cmd: NOOP, expect: completed, wait: queued}   # through the ground's queue
      - request: {frame: full, camera: navcam, counter: 3}   # or region: [x, y, w, h]: SEND_FULL / SEND_REGION
      - expect: {product: {camera: navcam, counter: 3}, within_s: 60}   # at the ground, bit-exact
      - expect: {telemetry: downlink, channel: store_fill, value: {lt: 0.9}, during_s: 30}
      - expect: {event: product_received, from: ground, unique: id}
      - expect: {event: product_received, from: ground, fields: {product_kind: thumbnail}, count: 8, since: burst,
                 before: {product_kind: full}}   # the first 8 matches came before any full one (priority order)
    contact_epoch: {at_s: 12, startup_s: 10}   # top level: orbit time zero of the inline plans at t=12 s

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

from framework.clock import MAX_OFFSET_S
from framework.errors import ConfigError
from pdh.scenario.expect import Condition, Predicate, parse_predicate
from pdh.scenario.model import (UPLINK_FINAL, Action, CommandAction, ControlAction, DatagramAction, DiskAction,
                                ExpectAction,
                                FramesAction, InjectAction, LinkAction, ProductAction, RestartAction, ClockAction, Scenario,
                                SignalAction, Step, UplinkAction, WaitAction)

__all__ = ["Scenario", "Step", "CommandAction", "InjectAction", "ControlAction", "ExpectAction", "FramesAction",
           "WaitAction", "Action", "load_scenario", "parse_scenario", "merge_overrides", "ACTIONS", "STATUSES"]

ACTIONS = ("command", "inject", "control", "link", "signal", "restart", "clock", "disk", "datagram", "uplink", "request", "expect",
           "wait")
SIGNALS = ("KILL", "STOP", "CONT", "TERM")
_MAX_BALLAST = 4 << 30  # a ballast file is never larger (and never more than half the free space, at run time)
STATUSES = ("completed", "rejected", "failed")
_STEP_KEYS = ("id", "at", "after", "note", *ACTIONS)
_TOP_KEYS = ("scenario", "description", "config", "start", "overrides", "free_ports", "keys", "ready_timeout_s",
             "timeout_s", "allow_restarts", "contact_epoch", "steps")


class _Ctx:
    """The file being parsed, for error messages."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.procs: dict[str, Any] = {}  # the config's processes (with overrides), once read
        self.started: set[str] = set()

    def one_of_kind(self, key: str, given: Any, kind: str, role: str) -> str:
        """``given`` (a process name), or when left out the config's one started process of ``kind`` with a
        ``role`` endpoint."""
        if given is not None:
            return self.string(key, given)
        have = sorted(n for n in self.started if isinstance(self.procs.get(n), dict)
                      and self.procs[n].get("kind") == kind and role in (self.procs[n].get("endpoints") or {}))
        if len(have) != 1:
            raise self.fail(key, f"the process (the scenario starts {len(have)} {kind} with a '{role}' endpoint: "
                                 f"{have}; name one)", "missing")
        return have[0]

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
    c.procs, c.started = procs, set(start) if start is not None else set(procs)
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
        **_contact_epoch(c, top.get("contact_epoch")),
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


def _parse_product(c: _Ctx, key: str, m: dict[str, Any]) -> ProductAction:
    c.mapping(key, m, ("product", "within_s"))
    p = c.mapping(f"{key}.product", m["product"], ("camera", "counter", "kind"))
    if "camera" not in p:
        raise c.fail(f"{key}.product.camera", "the camera whose frame it is (required, missing)")
    n = p.get("counter")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise c.fail(f"{key}.product.counter", "a frame counter (an integer >= 0), or left out: any frame", n)
    kind = p.get("kind", "full")
    if kind not in ("full", "thumbnail"):
        raise c.fail(f"{key}.product.kind", "full or thumbnail", kind)
    return ProductAction(c.string(f"{key}.product.camera", p["camera"]), n, kind,
                         c.number(f"{key}.within_s", m.get("within_s", 60.0), 0.0, 86_400.0))


def _parse_expect(c: _Ctx, key: str, v: Any, ids: set[str]) -> ExpectAction | FramesAction | ProductAction:
    if isinstance(v, dict) and "frames" in v:
        return _parse_frames(c, key, v)
    if isinstance(v, dict) and "product" in v:
        return _parse_product(c, key, v)
    m = c.mapping(key, v, ("event", "from", "telemetry", "channel", "value", "topic", "kind", "fields", "within_s",
                           "since", "count", "absent", "during_s", "unique", "before"))
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
    absent = c.boolean(f"{key}.absent", m.get("absent", False))
    during = None if "during_s" not in m else c.number(f"{key}.during_s", m["during_s"], 0.01, 86_400.0)
    unique = None if "unique" not in m else c.string(f"{key}.unique", m["unique"])
    before = _parse_before(c, key, m, cond)
    modes = [k for k, on in (("absent", absent), ("during_s", during is not None), ("unique", unique is not None),
                             ("before", before is not None)) if on]
    if len(modes) > 1:
        raise c.fail(key, "at most one of absent, during_s, unique", modes)
    if (during is not None or unique is not None or before is not None) and "within_s" in m:
        raise c.fail(f"{key}.within_s", f"no within_s with {modes[0]} (it watches for during_s / within the "
                                        f"run so far)", m["within_s"])
    if during is not None and "telemetry" not in m:
        raise c.fail(f"{key}.during_s", "during_s only with telemetry (every sample of the channel holds)", during)
    within = c.number(f"{key}.within_s", m.get("within_s", 10.0), 0.0, 86_400.0)
    return ExpectAction(condition=cond, within_s=during if during is not None else within, since=since, count=count,
                        absent=absent, during_s=during, unique=unique, before=before)


def _parse_before(c: _Ctx, key: str, m: dict[str, Any], cond: Condition) -> Condition | None:
    """``before: {fields}`` (with ``event`` or ``topic``): the messages of the same event or topic whose fields
    match these predicates must all come after the first ``count`` matches (priority order: thumbnails before
    full frames)."""
    if "before" not in m:
        return None
    if "telemetry" in m:
        raise c.fail(f"{key}.before", "before only with event or topic (an order of messages)", m["before"])
    preds = c.predicates(f"{key}.before", m["before"])
    if not preds:
        raise c.fail(f"{key}.before", "at least one field predicate (what must come later)", m["before"])
    base = cond.fields[:1] if cond.kind == "evt" else ()
    return Condition(cond.topic, (*base, *preds), kind=cond.kind)


def _parse_wait(c: _Ctx, key: str, v: Any, ids: set[str]) -> WaitAction:
    return WaitAction(c.number(key, v, 0.0, 86_400.0))


def _contact_epoch(c: _Ctx, v: Any) -> dict[str, Any]:
    if v is None:
        return {}
    m = c.mapping("contact_epoch", v, ("at_s", "startup_s"))
    if "at_s" not in m:
        raise c.fail("contact_epoch.at_s", "a number of seconds on the timeline (required, missing)")
    return {"contact_epoch_s": c.number("contact_epoch.at_s", m["at_s"], 0.0, 86_400.0),
            "startup_s": c.number("contact_epoch.startup_s", m.get("startup_s", 10.0), 0.0, 600.0)}


_LINK_FORMS = ("window", "relay_out", "relay_in", "set", "clock_step_s", "clear", "status")
_SET_KEYS = ("loss", "corrupt", "rate_bps", "burst_enter", "burst_leave", "burst_loss")


def _parse_link(c: _Ctx, key: str, v: Any, ids: set[str]) -> LinkAction:
    """``link``: one of window / relay_out / relay_in / set / clock_step_s / clear / status, as the relay's
    command (the process: ``process``, or the config's one relay emulator, found in check_against_config)."""
    m = c.mapping(key, v, ("process", *_LINK_FORMS, "relay", "duration_s", "expect", "timeout_s", "result"))
    forms = [f for f in _LINK_FORMS if f in m]
    if len(forms) != 1:
        raise c.fail(key, f"exactly one of {list(_LINK_FORMS)}", sorted(m))
    form, relay = forms[0], m.get("relay")
    args: dict[str, Any] = {}
    if relay is not None:
        args["relay"] = c.string(f"{key}.relay", relay)
    if "duration_s" in m:
        if form not in ("window", "relay_out"):
            raise c.fail(f"{key}.duration_s", "duration_s only with window or relay_out", m["duration_s"])
        args["duration_s"] = c.number(f"{key}.duration_s", m["duration_s"], 0.0, 1e9)
    if form == "window":
        if m["window"] not in ("open", "closed", "plan"):
            raise c.fail(f"{key}.window", "open, closed or plan", m["window"])
        cmd = "WINDOW"
        args["state"] = m["window"]
    elif form in ("relay_out", "relay_in"):
        if relay is not None:
            raise c.fail(f"{key}.relay", f"the relay given as {form}'s value, not as 'relay'", relay)
        cmd = form.upper()
        args["relay"] = c.string(f"{key}.{form}", m[form])
    elif form == "set":
        changes = c.mapping(f"{key}.set", m["set"], _SET_KEYS)
        if not changes:
            raise c.fail(f"{key}.set", f"at least one of {list(_SET_KEYS)}", changes)
        for k, x in changes.items():
            lo, hi = {"rate_bps": (1000.0, 1e12), "loss": (0.0, 0.95), "burst_leave": (1e-6, 1.0)}.get(k, (0.0, 1.0))
            args[k] = c.number(f"{key}.set.{k}", x, lo, hi)
        cmd = "SET_LINK"
    elif form == "clock_step_s":
        cmd = "STEP_CLOCK"
        args["seconds"] = c.number(f"{key}.clock_step_s", m["clock_step_s"], -1e9, 1e9)
    else:
        if m[form] is not True:
            raise c.fail(f"{key}.{form}", "true", m[form])
        cmd = "CLEAR_OVERRIDES" if form == "clear" else "LINK_STATUS"
    if form not in ("window", "set", "relay_out", "relay_in") and relay is not None:
        raise c.fail(f"{key}.relay", f"no relay with {form}", relay)
    return LinkAction(process=c.one_of_kind(f"{key}.process", m.get("process"), "hil.relay", "command"), cmd=cmd,
                      args=args,
                      expect=_status(c, f"{key}.expect", m.get("expect", "completed")),
                      timeout_s=c.number(f"{key}.timeout_s", m.get("timeout_s", 5.0), 0.05, 600.0),
                      result=c.predicates(f"{key}.result", m.get("result", {})))


def _parse_signal(c: _Ctx, key: str, v: Any, ids: set[str]) -> SignalAction:
    m = c.mapping(key, v, ("process", "signal", "hold_s"))
    for req in ("process", "signal"):
        if req not in m:
            raise c.fail(f"{key}.{req}", "a string (required, missing)")
    sig = str(m["signal"]).upper().removeprefix("SIG")
    if sig not in SIGNALS:
        raise c.fail(f"{key}.signal", f"one of {list(SIGNALS)}", m["signal"])
    hold = None
    if "hold_s" in m:
        if sig != "STOP":
            raise c.fail(f"{key}.hold_s", "hold_s only with signal STOP (a hang, ended by CONT)", m["hold_s"])
        hold = c.number(f"{key}.hold_s", m["hold_s"], 0.0, 86_400.0)
    return SignalAction(c.string(f"{key}.process", m["process"]), sig, hold)


def _parse_restart(c: _Ctx, key: str, v: Any, ids: set[str]) -> RestartAction:
    m = c.mapping(key, v, ("process",))
    if "process" not in m:
        raise c.fail(f"{key}.process", "a string (required, missing)")
    return RestartAction(c.string(f"{key}.process", m["process"]))


def _parse_clock(c: _Ctx, key: str, v: Any, ids: set[str]) -> ClockAction:
    """``clock: {process: NAME | all, step_s: S}``: the process's wall clock jumps by S seconds (either way)."""
    m = c.mapping(key, v, ("process", "step_s"))
    for k in ("process", "step_s"):
        if k not in m:
            raise c.fail(f"{key}.{k}", "required, missing")
    step = c.number(f"{key}.step_s", m["step_s"], -MAX_OFFSET_S, MAX_OFFSET_S)
    return ClockAction(c.string(f"{key}.process", m["process"]), float(step))


def _bytes(c: _Ctx, key: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise c.fail(key, f"an integer number of bytes in [{lo}, {hi}]", v)
    return v


def _parse_disk(c: _Ctx, key: str, v: Any, ids: set[str]) -> DiskAction:
    m = c.mapping(key, v, ("process", "limit_bytes", "lift", "ballast_bytes"))
    if "process" not in m:
        raise c.fail(f"{key}.process", "a string (required, missing)")
    forms = [f for f in ("limit_bytes", "lift", "ballast_bytes") if f in m]
    if len(forms) != 1:
        raise c.fail(key, "exactly one of limit_bytes (a full disk), lift: true, ballast_bytes", sorted(m))
    proc = c.string(f"{key}.process", m["process"])
    if forms[0] == "lift":
        if m["lift"] is not True:
            raise c.fail(f"{key}.lift", "true", m["lift"])
        return DiskAction(proc, lift=True)
    if forms[0] == "limit_bytes":
        return DiskAction(proc, limit_bytes=_bytes(c, f"{key}.limit_bytes", m["limit_bytes"], 1, 1 << 40))
    return DiskAction(proc, ballast_bytes=_bytes(c, f"{key}.ballast_bytes", m["ballast_bytes"], 0, _MAX_BALLAST))


def _parse_datagram(c: _Ctx, key: str, v: Any, ids: set[str]) -> DatagramAction:
    """``datagram: {process: relay, forge: replay|tampered|bad_mac|unknown_spi|garbage, target, cmd, args, spi,
    count}`` (pdh.scenario.forge); ``target`` and ``cmd`` are needed to forge a command (bad_mac, unknown_spi)."""
    from pdh.scenario.forge import FORGES

    m = c.mapping(key, v, ("process", "forge", "target", "cmd", "args", "spi", "count"))
    for req in ("process", "forge"):
        if req not in m:
            raise c.fail(f"{key}.{req}", "a string (required, missing)")
    form = m["forge"]
    if form not in FORGES:
        raise c.fail(f"{key}.forge", f"one of {list(FORGES)}", form)
    if form in ("bad_mac", "unknown_spi"):
        for req in ("target", "cmd"):
            if req not in m:
                raise c.fail(f"{key}.{req}", f"a string (required to forge {form}, missing)")
    count = m.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
        raise c.fail(f"{key}.count", "an integer in [1, 100]", count)
    spi = m.get("spi", 1)
    if isinstance(spi, bool) or not isinstance(spi, int) or not 1 <= spi <= 0xFFFF:
        raise c.fail(f"{key}.spi", "an SPI in [1, 65535]", spi)
    return DatagramAction(c.string(f"{key}.process", m["process"]), form,
                          c.string(f"{key}.target", m["target"]) if "target" in m else "",
                          c.string(f"{key}.cmd", m["cmd"]) if "cmd" in m else "",
                          dict(c.mapping(f"{key}.args", m.get("args", {}))), spi, count)


def _parse_uplink(c: _Ctx, key: str, v: Any, ids: set[str]) -> UplinkAction:
    m = c.mapping(key, v, ("ground", "target", "cmd", "args", "expect", "wait", "timeout_s", "spi"))
    for req in ("target", "cmd"):
        if req not in m:
            raise c.fail(f"{key}.{req}", "a string (required, missing)")
    return _uplink(c, key, m, c.string(f"{key}.target", m["target"]), c.string(f"{key}.cmd", m["cmd"]),
                   dict(c.mapping(f"{key}.args", m.get("args", {}))))


def _uplink(c: _Ctx, key: str, m: dict[str, Any], target: str, cmd: str, args: dict[str, Any]) -> UplinkAction:
    expect = m.get("expect", "completed")
    if expect not in UPLINK_FINAL:
        raise c.fail(f"{key}.expect", f"one of {list(UPLINK_FINAL)}", expect)
    wait = m.get("wait", "final")
    if wait not in ("final", "queued"):
        raise c.fail(f"{key}.wait", "final or queued", wait)
    spi = m.get("spi")
    if spi is not None and (isinstance(spi, bool) or not isinstance(spi, int) or not 0 <= spi <= 0xFFFF):
        raise c.fail(f"{key}.spi", "an SPI in [0, 65535]", spi)
    ground = c.one_of_kind(f"{key}.ground", m.get("ground"), "ground.station", "command")
    return UplinkAction(ground=ground, target=target, cmd=cmd, args=args,
                        expect=expect, wait=wait,
                        timeout_s=c.number(f"{key}.timeout_s", m.get("timeout_s", 60.0), 0.05, 86_400.0), spi=spi)


def _parse_request(c: _Ctx, key: str, v: Any, ids: set[str]) -> UplinkAction:
    """``request``: the ground asks the downlink for a frame's full product (SEND_FULL) or a region
    (SEND_REGION), uplinked like any command."""
    m = c.mapping(key, v, ("frame", "region", "camera", "counter", "id", "target", "ground", "expect", "wait",
                           "timeout_s", "spi"))
    forms = [f for f in ("frame", "region") if f in m]
    if len(forms) != 1:
        raise c.fail(key, "exactly one of frame: full, region: [x, y, width, height]", sorted(m))
    args: dict[str, Any] = {}
    if "counter" in m:
        n = m["counter"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise c.fail(f"{key}.counter", "a frame counter (an integer >= 0)", n)
        args["counter"] = n
    if forms[0] == "frame":
        if m["frame"] != "full":
            raise c.fail(f"{key}.frame", "full", m["frame"])
        if "id" in m:
            args["id"] = c.string(f"{key}.id", m["id"])
        elif "camera" not in m or "counter" not in m:
            raise c.fail(key, "'id', or 'camera' and 'counter', with frame: full", sorted(m))
        cmd = "SEND_FULL"
    else:
        region = m["region"]
        if (not isinstance(region, list) or len(region) != 4
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in region)):
            raise c.fail(f"{key}.region", "[x, y, width, height] in pixels (integers >= 0)", region)
        if "camera" not in m:
            raise c.fail(f"{key}.camera", "the camera (required with region, missing)")
        args["region"] = list(region)
        cmd = "SEND_REGION"
    if "camera" in m:
        args["camera"] = c.string(f"{key}.camera", m["camera"])
    target = c.one_of_kind(f"{key}.target", m.get("target"), "fsw.downlink", "command")
    return _uplink(c, key, m, target, cmd, args)


_PARSERS = {"command": _parse_command, "inject": _parse_inject, "control": _parse_control, "link": _parse_link,
            "signal": _parse_signal, "restart": _parse_restart, "clock": _parse_clock, "disk": _parse_disk, "datagram": _parse_datagram,
            "uplink": _parse_uplink,
            "request": _parse_request, "expect": _parse_expect, "wait": _parse_wait}


def check_against_config(sc: Scenario) -> None:
    """Every step's process exists, is started, and has the endpoint role the step needs."""
    from pdh.scenario.adapters import adapter_for

    c = _Ctx(sc.file)
    procs = sc.config["processes"]
    started = set(sc.start) if sc.start is not None else set(procs)
    for step in sc.steps:
        a = step.action
        if isinstance(a, ClockAction) and a.process == "all":
            continue
        if isinstance(a, (SignalAction, RestartAction, ClockAction, DiskAction, UplinkAction, DatagramAction)):
            _check_process_step(c, step, procs, started)
            continue
        if isinstance(a, ProductAction):
            a = FramesAction()  # the same need: a camera emulator's manifest
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
        if isinstance(a, LinkAction):
            if kind != "hil.relay" or "command" not in roles:
                raise c.fail(key, "a relay emulator (hil.relay) with a 'command' endpoint", f"{a.process} ({kind})")
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


def _check_process_step(c: _Ctx, step: Step, procs: dict[str, Any], started: set[str]) -> None:
    """A signal, restart, disk or uplink step names started processes of the right kind."""
    a = step.action
    base = f"steps[{step.index}].{step.kind}"
    names = [("ground", a.ground), ("target", a.target)] if isinstance(a, UplinkAction) else [("process", a.process)]
    for field, name in names:
        if not isinstance(procs.get(name), dict):
            raise c.fail(f"{base}.{field}", f"a process of the config {sorted(procs)}", name)
        if field != "target" and name not in started:
            raise c.fail(f"{base}.{field}", f"a process in 'start' {sorted(started)}", name)
    if isinstance(a, DatagramAction):
        roles = procs[a.process].get("endpoints") if isinstance(procs[a.process].get("endpoints"), dict) else {}
        if procs[a.process].get("kind") != "hil.relay" or "ground_in" not in roles:
            raise c.fail(f"{base}.process", "a relay emulator (hil.relay; the datagram goes to its ground_in)",
                         a.process)
        if a.target and not isinstance(procs.get(a.target), dict):
            raise c.fail(f"{base}.target", f"a process of the config {sorted(procs)}", a.target)
    if isinstance(a, DiskAction) and a.ballast_bytes is not None and not procs[a.process].get("store_dir"):
        raise c.fail(f"{base}.process", "a process with a store_dir (the ballast file goes there)", a.process)
    if isinstance(a, UplinkAction):
        ground = procs[a.ground]
        roles = ground.get("endpoints") if isinstance(ground.get("endpoints"), dict) else {}
        if ground.get("kind") != "ground.station" or "command" not in roles or "bus_pub" not in roles:
            raise c.fail(f"{base}.ground", "a ground station (ground.station) with 'command' and 'bus_pub' endpoints "
                                           "(its command_stage events judge the step)", a.ground)
