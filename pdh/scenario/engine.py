"""The timeline engine: steps in order, on an injected clock, against a recording. Pure: no sockets.

The runner owns the sockets. It gives the engine a clock, the :class:`Recording`
of bus messages it keeps filling, and a :class:`ScenarioIO` that sends a command to
a process's endpoint and hands back the replies that have arrived. The runner calls
:meth:`Engine.tick` often; the engine starts each step when its time comes, judges
it from replies or recorded messages, and keeps a :class:`StepResult` for each.
Unit tests drive it with a fake clock and a fake IO.

``expect: {frames: accounted}`` is judged by the injected ``frames`` callable (the runner's:
:func:`pdh.verify.judge_frames` on the run's output), asked at most once a second until the
verdict holds or the step's time is up; ``expect: {product: ...}`` likewise by ``product``.

``signal``, ``restart`` and ``disk`` steps are done by :meth:`ScenarioIO.act` at once (a STOP with
``hold_s`` gets its CONT from the engine's timer). ``link`` steps are commands to the relay's command
port. ``uplink`` (and ``request``) steps send UPLINK to a ground station, then follow the queued
command's ``command_stage`` events in the recording until a final stage (``wait: queued`` follows
them in the background, as ``wait: accepted`` does a command's final reply).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from pdh.scenario.adapters import adapter_for
from pdh.scenario.expect import MISSING, Recording, Record, explain, find_matches, field_value
from pdh.scenario.model import (UPLINK_FINAL, CommandAction, ControlAction, DatagramAction, DiskAction, ExpectAction,
                                FramesAction,
                                InjectAction, LinkAction, ProductAction, RestartAction, ClockAction, Scenario, SignalAction,
                                Step,
                                UplinkAction, WaitAction)

__all__ = ["Reply", "ScenarioIO", "StepResult", "Engine", "describe_step"]

_FINAL = ("rejected", "completed", "failed")
_DETAIL_CHARS = 300
_FRAMES_EVERY_S = 1.0  # how often the frames verdict (files on disk) is asked for


class FramesVerdict(Protocol):
    """What the engine reads of :class:`pdh.verify.FramesCheck`."""

    frames: int
    spoilt: list[str]

    @property
    def ok(self) -> bool: ...

    def failure(self) -> str: ...

    def summary(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Reply:
    status: str
    reason: str = ""
    result: Any = None


class ScenarioIO(Protocol):
    def request(self, process: str, role: str, cmd: str, args: dict[str, Any], keys_dir: Path | None) -> int:
        """Send a command to ``process``'s ``role`` endpoint; return a token for its replies."""

    def replies(self, token: int) -> list[Reply]:
        """Replies to ``token`` that arrived since the last call (never blocks)."""

    def act(self, process: str, what: str, params: dict[str, Any]) -> tuple[bool, str]:
        """Do ``what`` to ``process`` now: ``signal`` {signal: KILL|STOP|CONT|TERM}, ``restart`` {},
        ``disk`` {limit_bytes | lift | ballast_bytes}; (done, what happened or why not)."""


@dataclass
class StepResult:
    index: int
    id: str
    kind: str
    what: str
    ok: bool | None = None  # None: not run, or still waiting for its final reply
    started_s: float | None = None
    finished_s: float | None = None
    late_s: float = 0.0
    detail: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _short(x: Any) -> str:
    s = json.dumps(x, default=str, separators=(",", ":")) if not isinstance(x, str) else x
    return s if len(s) <= _DETAIL_CHARS else s[:_DETAIL_CHARS] + "..."


def _where(result: tuple[tuple[str, Any], ...]) -> str:
    if not result:
        return ""
    return " where result {" + ", ".join(f"{k}: {p.describe()}" for k, p in result) + "}"


def describe_step(step: Step) -> str:
    a = step.action
    if isinstance(a, LinkAction):
        return f"link {a.process} {a.cmd} {_short(a.args) if a.args else ''}".rstrip() + _where(a.result)
    if isinstance(a, SignalAction):
        hold = f" for {a.hold_s:g} s, then CONT" if a.hold_s is not None else ""
        return f"signal {a.process} SIG{a.signal}{hold}"
    if isinstance(a, RestartAction):
        return f"restart {a.process}"
    if isinstance(a, ClockAction):
        return f"clock {a.process}: wall clock steps {a.step_s:+g} s"
    if isinstance(a, DiskAction):
        if a.lift:
            return f"disk {a.process}: file-size limit lifted"
        if a.limit_bytes is not None:
            return f"disk {a.process}: full (file-size limit {a.limit_bytes} bytes)"
        return f"disk {a.process}: ballast file of {a.ballast_bytes} bytes in its store"
    if isinstance(a, DatagramAction):
        what = f" {a.target} {a.cmd} {_short(a.args) if a.args else ''}".rstrip() if a.cmd else ""
        return f"datagram to {a.process}'s ground side: {a.forge}{what}" + (f" x{a.count}" if a.count > 1 else "")
    if isinstance(a, UplinkAction):
        return (f"uplink via {a.ground}: {a.target} {a.cmd} {_short(a.args) if a.args else ''}".rstrip()
                + f" -> {a.expect}")
    if isinstance(a, ProductAction):
        which = f"frame {a.counter}" if a.counter is not None else "a frame"
        exact = " bit-exact" if a.kind == "full" else ""
        return f"expect {a.camera} {which}'s {a.kind} at the ground{exact} within {a.within_s:g} s"
    if isinstance(a, CommandAction):
        return (f"command {a.process} {a.cmd} {_short(a.args) if a.args else ''}".rstrip() + f" -> {a.expect}"
                + _where(a.result))
    if isinstance(a, InjectAction):
        return f"inject {a.process} {a.fault} {_short(a.params) if a.params else ''}".rstrip()
    if isinstance(a, ControlAction):
        return f"control {a.process} {a.cmd} {_short(a.args) if a.args else ''}".rstrip() + _where(a.result)
    if isinstance(a, FramesAction):
        return (f"expect every frame of the manifest (at least {a.min_frames}) at the ground or named by an event "
                f"within {a.within_s:g} s")
    if isinstance(a, ExpectAction):
        n = f" x{a.count}" if a.count > 1 else ""
        if a.during_s is not None:
            return f"expect every {a.condition.describe()} for {a.during_s:g} s"
        if a.unique is not None:
            return f"expect {a.condition.describe()}{n} with no {a.unique} repeated"
        if a.before is not None:
            return f"expect {a.condition.describe()}{n} before any {a.before.describe()}"
        return f"expect {'no ' if a.absent else ''}{a.condition.describe()}{n} within {a.within_s:g} s"
    assert isinstance(a, WaitAction)
    return f"wait {a.duration_s:g} s"


@dataclass
class _Pending:
    """A request waiting for its replies."""

    step: Step
    result: StepResult
    token: int
    expect: str
    timeout_s: float
    sent_at: float
    wait: str = "final"
    replies: list[Reply] = field(default_factory=list)


@dataclass
class _Uplink:
    """An UPLINK sent to a ground: its reply gives the queue id, then its stages are followed on the bus."""

    step: Step
    action: UplinkAction
    result: StepResult
    token: int
    sent_at: float
    id: int | None = None
    replies: list[Reply] = field(default_factory=list)


def _record_summary(r: Record, t0: float) -> dict[str, Any]:
    return {"t_s": round(r.t - t0, 3), "topic": r.topic, "kind": r.kind,
            "fields": {k: v for k, v in r.fields.items() if not isinstance(v, (bytes, bytearray))}}


class Engine:
    """Runs a scenario's steps one after another; call :meth:`tick` until it returns True."""

    def __init__(self, scenario: Scenario, io: ScenarioIO, recording: Recording, clock: Callable[[], float],
                 keys_dir: Path | None = None, frames: Callable[[], FramesVerdict] | None = None,
                 product: Callable[[str, int | None, str], tuple[bool, str]] | None = None) -> None:
        self.sc = scenario
        self.frames = frames
        self.product = product
        self._uplinks: list[_Uplink] = []  # followed in the background (wait: queued)
        self._timers: list[tuple[float, str]] = []  # (due, process): a CONT that ends a hang
        self._frames_asked = float("-inf")
        self.io = io
        self.rec = recording
        self.clock = clock
        self.keys_dir = keys_dir
        self.results = [StepResult(s.index, s.id, s.kind, describe_step(s)) for s in scenario.steps]
        self.t0: float | None = None
        self._next = 0
        self._current: _Pending | _Uplink | Step | None = None
        self._prev_finish = 0.0
        self._background: list[_Pending] = []
        self._starts: dict[str, float] = {}
        self.timed_out = False

    # --- driving ------------------------------------------------------------------------------

    def start(self) -> None:
        self.t0 = self.clock()

    @property
    def done(self) -> bool:
        return self.timed_out or (self._next >= len(self.sc.steps) and self._current is None
                                  and not self._background and not self._uplinks)

    @property
    def held(self) -> list[str]:
        """Processes held by a STOP whose CONT is still due (the runner continues them before it stops)."""
        return [p for _, p in self._timers]

    def tick(self) -> bool:
        """Advance the timeline to now; True once every step (and background reply) is judged."""
        if self.t0 is None:
            self.start()
        assert self.t0 is not None
        now = self.clock() - self.t0
        self._poll_background(now)
        self._poll_timers(now)
        while not self.done:
            if self._current is None and not self._begin_next(now):
                break
            if not self._progress(now):
                break
        if not self.done and now >= self.sc.timeout_s:
            self._time_out(now)
        return self.done

    def _begin_next(self, now: float) -> bool:
        if self._next >= len(self.sc.steps):
            return False
        step = self.sc.steps[self._next]
        due = step.at_s if step.at_s is not None else self._prev_finish + step.after_s
        if now < due:
            return False
        res = self.results[step.index]
        res.started_s = round(now, 3)
        res.late_s = round(max(0.0, now - due), 3)
        self._starts[step.id] = now
        self._current = self._send(step, res, now)
        return True

    def _finish(self, res: StepResult, now: float, ok: bool | None, detail: str) -> None:
        res.finished_s = round(now, 3)
        res.ok = ok
        res.detail = detail
        self._current = None
        self._prev_finish = now
        self._next += 1

    # --- requests (command, inject, control) ----------------------------------------------------

    def _send(self, step: Step, res: StepResult, now: float) -> _Pending | _Uplink | Step:
        a = step.action
        if isinstance(a, (ExpectAction, FramesAction, ProductAction, WaitAction, SignalAction, RestartAction,
                          ClockAction, DiskAction, DatagramAction)):
            return step
        if isinstance(a, UplinkAction):
            args: dict[str, Any] = {"target": a.target, "cmd": a.cmd, "args_json": json.dumps(a.args)}
            if a.spi is not None:
                args["spi"] = a.spi
            return _Uplink(step, a, res, self.io.request(a.ground, "command", "UPLINK", args, None), now)
        if isinstance(a, CommandAction):
            keys = (a.keys_dir or self.keys_dir) if a.curve else None
            token = self.io.request(a.process, "command", a.cmd, dict(a.args), keys)
            return _Pending(step, res, token, a.expect, a.timeout_s, now, a.wait)
        if isinstance(a, InjectAction):
            kind = str(self.sc.config["processes"][a.process]["kind"])
            adapter = adapter_for(kind)
            assert adapter is not None  # checked when the scenario was parsed
            cmd, args = adapter.request(a.fault, a.params)
            token = self.io.request(a.process, adapter.role, cmd, args, None)
            return _Pending(step, res, token, a.expect, a.timeout_s, now)
        assert isinstance(a, ControlAction)
        role = a.role if isinstance(a, LinkAction) else "control"
        token = self.io.request(a.process, role, a.cmd, dict(a.args), None)
        return _Pending(step, res, token, a.expect, a.timeout_s, now)

    def _judge(self, p: _Pending, now: float) -> tuple[bool, str] | None:
        """The verdict on a request once its final reply (or its timeout) is in; None while waiting."""
        p.replies.extend(self.io.replies(p.token))
        final = next((r for r in p.replies if r.status in _FINAL), None)
        took = f"{now - p.sent_at:.2f} s"
        if final is None:
            if now - p.sent_at < p.timeout_s:
                return None
            last = p.replies[-1].status if p.replies else "none"
            return False, f"no final reply within {p.timeout_s:g} s (last reply: {last})"
        p.result.seen = [{"status": r.status, "reason": r.reason, "result": r.result} for r in p.replies]
        text = f"{final.status} (expected {p.expect}) after {took}"
        if final.reason:
            text += f": {_short(final.reason)}"
        if final.status != p.expect:
            return False, text
        problems = self._check_result(p.step, final)
        return (not problems), text + ("; " + "; ".join(problems) if problems else "")

    @staticmethod
    def _check_result(step: Step, final: Reply) -> list[str]:
        a = step.action
        if not isinstance(a, (CommandAction, ControlAction)):
            return []
        problems = []
        result = final.result if isinstance(final.result, dict) else {}
        for path, pred in a.result:
            v = field_value(result, path)
            if not pred.holds(v):
                problems.append(f"result.{path}={_short(v)} does not satisfy {pred.describe()}")
        if isinstance(a, CommandAction) and a.reason is not None and not a.reason.holds(final.reason):
            problems.append(f"reason does not satisfy {a.reason.describe()}")
        return problems

    def _poll_timers(self, now: float) -> None:
        assert self.t0 is not None
        for due, process in [t for t in self._timers if t[0] <= now]:
            self._timers.remove((due, process))
            self.io.act(process, "signal", {"signal": "CONT"})

    def _do(self, step: Step, res: StepResult, now: float) -> bool:
        """A signal, restart or disk step: done at once by the IO."""
        a = step.action
        if isinstance(a, SignalAction):
            ok, detail = self.io.act(a.process, "signal", {"signal": a.signal})
            if ok and a.hold_s is not None:
                self._timers.append((now + a.hold_s, a.process))
                detail += f"; CONT due at t={now + a.hold_s:.2f} s"
        elif isinstance(a, RestartAction):
            ok, detail = self.io.act(a.process, "restart", {})
        elif isinstance(a, ClockAction):
            ok, detail = self.io.act(a.process, "clock", {"step_s": a.step_s})
        elif isinstance(a, DatagramAction):
            ok, detail = self.io.act(a.process, "datagram", {"forge": a.forge, "target": a.target, "cmd": a.cmd,
                                                            "args": a.args, "spi": a.spi, "count": a.count})
        else:
            assert isinstance(a, DiskAction)
            params: dict[str, Any] = ({"lift": True} if a.lift else {"limit_bytes": a.limit_bytes}
                                      if a.limit_bytes is not None else {"ballast_bytes": a.ballast_bytes})
            ok, detail = self.io.act(a.process, "disk", params)
        self._finish(res, now, ok, detail)
        return True

    # --- uplink: UPLINK's reply, then the command's stages at the ground --------------------------

    def _stages(self, u: _Uplink) -> list[Record]:
        assert u.id is not None
        return [r for r in self.rec.by_topic.get(f"evt.{u.action.ground}", ())
                if r.fields.get("name") == "command_stage" and r.fields.get("id") == u.id]

    def _follow_uplink(self, u: _Uplink, now: float, background: bool) -> bool:
        """Advance an uplink; True once its verdict is in (or, for ``wait: queued`` in the foreground, once
        it is queued and goes on in the background)."""
        assert self.t0 is not None
        a, res = u.action, u.result
        if u.id is None:
            u.replies.extend(self.io.replies(u.token))
            final = next((r for r in u.replies if r.status in _FINAL), None)
            if final is None:
                if now - u.sent_at < min(a.timeout_s, 10.0):
                    return False
                self._verdict(u, now, False, "no reply from the ground to UPLINK within "
                                             f"{min(a.timeout_s, 10.0):g} s", background)
                return True
            got = final.result.get("id") if isinstance(final.result, dict) else None
            if final.status != "completed" or not isinstance(got, int):
                self._verdict(u, now, False, f"UPLINK {final.status} at the ground: {_short(final.reason)}",
                              background)
                return True
            u.id = got
            if a.wait == "queued" and not background:
                self._uplinks.append(u)
                self._finish(res, now, None, f"queued as {got} at {a.ground}; stages pending")
                return True
        stages = self._stages(u)
        res.seen = [{"t_s": round(r.t - self.t0, 3), "stage": r.fields.get("stage"),
                     "reason": r.fields.get("reason", "")} for r in stages]
        trail = " > ".join(f"{x['stage']}@{x['t_s']:.2f}" for x in res.seen)
        final_stage = next((r for r in stages if r.fields.get("stage") in UPLINK_FINAL), None)
        if final_stage is not None:
            stage = final_stage.fields.get("stage")
            why = final_stage.fields.get("reason")
            text = f"{stage} (expected {a.expect}) as {u.id} after {now - u.sent_at:.2f} s: {trail}"
            self._verdict(u, now, stage == a.expect, text + (f" ({_short(why)})" if why else ""), background)
            return True
        if now - u.sent_at < a.timeout_s:
            return False
        self._verdict(u, now, False, f"no final stage within {a.timeout_s:g} s (command {u.id}): "
                                     f"{trail or 'no command_stage event heard'}", background)
        return True

    def _verdict(self, u: _Uplink, now: float, ok: bool, detail: str, background: bool) -> None:
        if background:
            u.result.ok, u.result.detail = ok, detail + f" (final stage at t={now:.2f} s)"
        else:
            self._finish(u.result, now, ok, detail)

    def _poll_background(self, now: float) -> None:
        for u in list(self._uplinks):
            if self._follow_uplink(u, now, background=True):
                self._uplinks.remove(u)
        for p in list(self._background):
            verdict = self._judge(p, now)
            if verdict is not None:
                self._background.remove(p)
                p.result.ok, p.result.detail = verdict
                p.result.detail += f" (final reply at t={now:.2f} s)"

    # --- progress of the current step -------------------------------------------------------------

    def _progress(self, now: float) -> bool:
        """Advance the current step; True when it finished (the next may start at once)."""
        cur = self._current
        if isinstance(cur, _Uplink):
            return self._follow_uplink(cur, now, background=False)
        if isinstance(cur, Step) and isinstance(cur.action, (SignalAction, RestartAction, ClockAction, DiskAction,
                                                             DatagramAction)):
            return self._do(cur, self.results[cur.index], now)
        if isinstance(cur, _Pending):
            if cur.wait == "accepted" and cur.expect != "rejected":
                cur.replies.extend(self.io.replies(cur.token))
                if any(r.status == "accepted" for r in cur.replies):
                    self._background.append(cur)
                    self._finish(cur.result, now, None, "accepted; final reply pending")
                    self._poll_background(now)
                    return True
            verdict = self._judge(cur, now)
            if verdict is None:
                return False
            self._finish(cur.result, now, *verdict)
            return True
        assert isinstance(cur, Step)
        res = self.results[cur.index]
        started = self._starts[cur.id]
        if isinstance(cur.action, WaitAction):
            if now - started < cur.action.duration_s:
                return False
            self._finish(res, now, True, f"waited {now - started:.2f} s")
            return True
        if isinstance(cur.action, FramesAction):
            return self._progress_frames(cur.action, res, started, now)
        if isinstance(cur.action, ProductAction):
            return self._progress_product(cur.action, res, started, now)
        return self._progress_expect(cur, cur.action, res, started, now)

    def _progress_frames(self, a: FramesAction, res: StepResult, started: float, now: float) -> bool:
        """Ask for the frames verdict (at most once a second); pass when it holds, fail naming the frames
        once ``within_s`` is up."""
        elapsed = now - started
        last_chance = elapsed >= a.within_s
        if self.frames is None:
            self._finish(res, now, False, "the runner gives no frames verdict (no output directory)")
            return True
        if not last_chance and now - self._frames_asked < _FRAMES_EVERY_S:
            return False
        self._frames_asked = now
        v = self.frames()
        sound = v.frames - len(v.spoilt)
        summary = v.summary()
        res.seen = [summary]
        figures = (f"{sound} sound frames: {summary.get('frames_at_ground', 0)} at the ground, "
                   f"{summary.get('frames_thumbnail_only', 0)} thumbnail-only, {summary.get('frames_named', 0)} named")
        if v.ok and sound >= a.min_frames:
            self._finish(res, now, True, f"{figures} (after {elapsed:.2f} s)")
            return True
        if not last_chance:
            return False
        why = v.failure() or f"only {sound} sound frames in the manifest, expected at least {a.min_frames}"
        self._finish(res, now, False, f"not within {a.within_s:g} s: {why[:2000]}; {figures}")
        return True

    def _progress_product(self, a: ProductAction, res: StepResult, started: float, now: float) -> bool:
        """Ask whether the product is at the ground (at most once a second) until it is or time is up."""
        elapsed = now - started
        last_chance = elapsed >= a.within_s
        if self.product is None:
            self._finish(res, now, False, "the runner gives no product check (no output directory)")
            return True
        if not last_chance and now - self._frames_asked < _FRAMES_EVERY_S:
            return False
        self._frames_asked = now
        ok, detail = self.product(a.camera, a.counter, a.kind)
        if ok:
            self._finish(res, now, True, f"{detail} (after {elapsed:.2f} s)")
            return True
        if not last_chance:
            return False
        self._finish(res, now, False, f"not within {a.within_s:g} s: {detail}")
        return True

    def _progress_during(self, a: ExpectAction, res: StepResult, t_from: float, started: float, now: float) -> bool:
        """Every sample of the channel (messages on the topic that carry it) holds until ``during_s`` is up."""
        assert self.t0 is not None and a.during_s is not None
        channel = a.condition.fields[0][0]
        samples = [r for r in self.rec.on_topic(a.condition.topic, t_from, self.t0 + now)
                   if (a.condition.kind is None or r.kind == a.condition.kind)
                   and field_value(r.fields, channel) is not MISSING]
        bad = next((r for r in samples if not a.condition.matches(r)), None)
        if bad is not None:
            res.seen = [_record_summary(bad, self.t0)]
            self._finish(res, now, False, f"at t={bad.t - self.t0:.2f} s {channel}="
                                          f"{_short(field_value(bad.fields, channel))} (of {len(samples)} samples)")
            return True
        if now - started < a.during_s:
            return False
        if not samples:
            self._finish(res, now, False, f"no sample of {channel} in {now - started:.2f} s: "
                                          + explain(a.condition, self.rec, t_from, self.t0 + now, t0=self.t0))
            return True
        res.seen = [_record_summary(samples[-1], self.t0)]
        self._finish(res, now, True, f"{len(samples)} samples, all holding, over {now - started:.2f} s")
        return True

    def _progress_unique(self, a: ExpectAction, res: StepResult, t_from: float, now: float) -> bool:
        """No two matching messages so far share the ``unique`` field's value (and at least ``count`` match)."""
        assert self.t0 is not None and a.unique is not None
        matches = find_matches(a.condition, self.rec, t_from, self.t0 + now)
        seen: dict[Any, Record] = {}
        for r in matches:
            key = json.dumps(field_value(r.fields, a.unique), default=str, sort_keys=True)
            if key in seen:
                res.seen = [_record_summary(seen[key], self.t0), _record_summary(r, self.t0)]
                self._finish(res, now, False, f"{a.unique}={key} twice: at t={seen[key].t - self.t0:.2f} s and "
                                              f"t={r.t - self.t0:.2f} s")
                return True
            seen[key] = r
        if len(matches) < a.count:
            self._finish(res, now, False, f"{len(matches)} of {a.count} matching: "
                                          + explain(a.condition, self.rec, t_from, self.t0 + now, t0=self.t0))
            return True
        self._finish(res, now, True, f"{len(matches)} matching, each {a.unique} once")
        return True

    def _progress_before(self, a: ExpectAction, res: StepResult, t_from: float, now: float) -> bool:
        """The first ``count`` matching messages since ``t_from`` came before any message matching ``before``
        (judged at once: put it after what it orders)."""
        assert self.t0 is not None and a.before is not None
        matches = find_matches(a.condition, self.rec, t_from, self.t0 + now)
        later = find_matches(a.before, self.rec, t_from, self.t0 + now)
        if len(matches) < a.count:
            self._finish(res, now, False, f"{len(matches)} of {a.count} matching: "
                                          + explain(a.condition, self.rec, t_from, self.t0 + now, t0=self.t0))
            return True
        last = matches[a.count - 1]
        early = [r for r in later if r.t <= last.t]
        if early:
            res.seen = [_record_summary(early[0], self.t0), _record_summary(last, self.t0)]
            self._finish(res, now, False, f"out of order: {a.before.describe()} at t={early[0].t - self.t0:.2f} s, "
                                          f"before match {a.count} of {a.count} at t={last.t - self.t0:.2f} s")
            return True
        res.seen = [_record_summary(last, self.t0)]
        self._finish(res, now, True, f"{a.count} matching by t={last.t - self.t0:.2f} s, "
                                     f"{len(later)} later ones after them")
        return True

    def _progress_expect(self, step: Step, a: ExpectAction, res: StepResult, started: float, now: float) -> bool:
        assert self.t0 is not None
        # "start": everything heard since the runner began listening (startup events such as link_up too)
        t_from = {"start": float("-inf"), "step": self.t0 + started}.get(a.since)
        if t_from is None:
            t_from = self.t0 + self._starts.get(a.since, 0.0)
        if a.during_s is not None:
            return self._progress_during(a, res, t_from, started, now)
        if a.unique is not None:
            return self._progress_unique(a, res, t_from, now)
        if a.before is not None:
            return self._progress_before(a, res, t_from, now)
        matches = find_matches(a.condition, self.rec, t_from, self.t0 + now)
        elapsed = now - started
        if a.absent:
            if matches:
                res.seen = [_record_summary(r, self.t0) for r in matches[:3]]
                self._finish(res, now, False, f"seen at t={matches[0].t - self.t0:.2f} s, expected none")
                return True
            if elapsed < a.within_s:
                return False
            self._finish(res, now, True, f"none in {elapsed:.2f} s")
            return True
        if len(matches) >= a.count:
            res.seen = [_record_summary(r, self.t0) for r in matches[:a.count][-3:]]
            t_match = matches[a.count - 1].t - self.t0
            self._finish(res, now, True, f"seen at t={t_match:.2f} s ({len(matches)} matching)")
            return True
        if elapsed < a.within_s:
            return False
        what = explain(a.condition, self.rec, t_from, self.t0 + now, t0=self.t0)
        got = f"{len(matches)} of {a.count} matching; " if matches else ""
        self._finish(res, now, False, f"not seen within {a.within_s:g} s: {got}{what}")
        return True

    def _time_out(self, now: float) -> None:
        self.timed_out = True
        reason = f"scenario timeout ({self.sc.timeout_s:g} s)"
        if isinstance(self._current, (_Pending, _Uplink)):
            self._current.result.ok, self._current.result.detail = False, reason
        elif isinstance(self._current, Step):
            self.results[self._current.index].ok = False
            self.results[self._current.index].detail = reason
        for p in self._background:
            p.result.ok, p.result.detail = False, f"{reason}: no final reply"
        self._background.clear()
        for u in self._uplinks:
            u.result.ok, u.result.detail = False, f"{reason}: no final stage of command {u.id}"
        self._uplinks.clear()
        for r in self.results:
            if r.started_s is None:
                r.detail = "not run: " + reason

    # --- outcome ----------------------------------------------------------------------------------

    def ok(self) -> bool:
        return self.done and not self.timed_out and all(r.ok is True for r in self.results)
