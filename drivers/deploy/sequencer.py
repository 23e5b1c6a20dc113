"""Runs one deployment and judges it: samples in, device commands, events and a verdict out. Pure.

Time is the device's own (``Sample.t_s``), so the profile's limits hold at
any emulator time scale. The driver executes the returned device commands in
order (each acknowledged) before it asks for the next sample.

Fault detection and recovery, per attempt on one circuit:

- over-current: ``over_current_samples`` samples above ``over_current_a`` cut
  the circuit (STOP); at the deployed end stop that is the end of travel,
  elsewhere the next circuit is tried.
- open circuit: still releasing after ``circuit_check_s`` with less than
  ``min_current_a`` flowing: STOP, next circuit.
- release timeout: not released after ``release_timeout_s``: STOP, next circuit.
- stall: no motion of more than 0.5 deg for ``stall_s`` while deploying: STOP.
- deployment timeout: not done ``deploy_timeout_s`` after release: STOP.
- soft limit (motor): past ``deployed_deg + soft_limit_margin_deg`` with the
  motor still powered (the deployed switch did not cut it): STOP.

The verdict weighs the angle sensor against the limit switch and says which
evidence it used; disagreement raises ``limit_switch_disagrees``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from drivers.deploy.profile import MechanismProfile
from drivers.deploy.protocol import Sample

__all__ = ["DeviceCmd", "Event", "Verdict", "Action", "Sequencer"]

_MOTION_DEG = 0.5


@dataclass(frozen=True)
class DeviceCmd:
    name: str  # ARM | DISARM | FIRE | STOP
    circuit: str = ""


@dataclass(frozen=True)
class Event:
    name: str
    severity: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    outcome: str  # deployed | partial | failed
    angle_deg: float | None
    text: str
    evidence: dict[str, Any]

    def as_fields(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "angle_deg": self.angle_deg, "text": self.text, "evidence": self.evidence}


Action = Union[DeviceCmd, Event, Verdict]


@dataclass
class _Attempt:
    circuit: str
    t0_s: float | None = None
    over_samples: int = 0
    outcome: str = "running"


class Sequencer:
    """Watches every sample; while a deployment runs, drives it to a verdict."""

    def __init__(self, profile: MechanismProfile) -> None:
        self.p = profile
        self.lim = profile.limits
        self.active = False
        self.last: Sample | None = None
        self.verdict: Verdict | None = None
        self._attempts: list[_Attempt] = []
        self._released_t: float | None = None
        self._motion_t: float | None = None
        self._motion_deg = 0.0
        self._events: list[str] = []
        self._angle_ok_reported = True

    # --- inputs -----------------------------------------------------------------------------

    def start(self, circuits: tuple[str, ...] | None = None) -> list[Action]:
        """Begin a deployment on the first of ``circuits`` (default: the profile's order)."""
        order = circuits or self.p.circuits
        self.active, self.verdict = True, None
        self._attempts = [_Attempt(order[0])]
        self._order = list(order)
        self._released_t = None
        self._motion_t = None
        self._events = []
        return self._note([Event("deployment_started", "info", {"circuit": order[0]}),
                           DeviceCmd("ARM"), DeviceCmd("FIRE", order[0])])

    def on_nak(self, cmd: DeviceCmd, reason: str) -> list[Action]:
        """The device refused one of our commands: the deployment cannot go on."""
        if not self.active:
            return []
        return self._note([Event("device_nak", "error", {"cmd": cmd.name, "reason": reason}),
                           *self._finish(f"device refused {cmd.name}: {reason}")])

    def abort(self, reason: str) -> list[Action]:
        """The link or the operator ended the deployment."""
        if not self.active:
            return []
        return self._note([DeviceCmd("STOP"), *self._finish(reason)])

    def on_sample(self, s: Sample) -> list[Action]:
        """One sample; returns the events of every change and, while active, the next steps."""
        prev, self.last = self.last, s
        out: list[Action] = []
        if prev is None or (prev.state, prev.reason) != (s.state, s.reason):
            out.append(Event("state_changed", "error" if s.state == "failed" else "info",
                             {"from": prev.state if prev else "", "to": s.state, "reason": s.reason,
                              "angle_deg": round(s.angle_deg, 2) if s.angle_valid else None}))
        if self.p.moves and s.angle_valid != self._angle_ok_reported:
            self._angle_ok_reported = s.angle_valid
            out.append(Event("angle_sensor_restored", "info") if s.angle_valid
                       else Event("angle_sensor_invalid", "warning", {"t_s": s.t_s}))
        if self.active:
            out.extend(self._supervise(s))
        return self._note(out)

    def _note(self, actions: list[Action]) -> list[Action]:
        self._events.extend(a.name for a in actions if isinstance(a, Event))
        return actions

    # --- supervision ------------------------------------------------------------------------

    def _supervise(self, s: Sample) -> list[Action]:
        a = self._attempts[-1]
        if a.t0_s is None:
            a.t0_s = s.t_s
        if s.released and self._released_t is None:
            self._released_t = s.t_s
            self._motion_t, self._motion_deg = s.t_s, s.angle_deg
        a.over_samples = a.over_samples + 1 if s.current_a > self.lim["over_current_a"] else 0
        if a.over_samples >= self.lim["over_current_samples"]:
            return self._over_current(s, a)
        if s.state == "deployed" or s.state == "failed":
            return self._finish(s.reason or s.state)
        if s.state in ("releasing", "armed"):
            return self._check_release(s, a)
        if s.state == "deploying":
            return self._check_travel(s)
        return []

    def _over_current(self, s: Sample, a: _Attempt) -> list[Action]:
        ev = Event("over_current", "warning", {"circuit": a.circuit, "current_a": round(s.current_a, 3),
                                               "limit_a": self.lim["over_current_a"]})
        if self._angle_ok(s):
            return [ev, DeviceCmd("STOP"), *self._finish("stopped at the end stop")]
        return [ev, DeviceCmd("STOP"), *self._retry(a, "over_current")]

    def _check_release(self, s: Sample, a: _Attempt) -> list[Action]:
        assert a.t0_s is not None
        elapsed = s.t_s - a.t0_s
        if s.state == "releasing" and elapsed >= self.lim["circuit_check_s"] and s.current_a < self.lim["min_current_a"]:
            return [Event("circuit_no_current", "warning", {"circuit": a.circuit, "current_a": round(s.current_a, 3)}),
                    DeviceCmd("STOP"), *self._retry(a, "no_current")]
        if elapsed > self.lim["release_timeout_s"]:
            return [Event("release_timeout", "warning", {"circuit": a.circuit, "elapsed_s": round(elapsed, 2)}),
                    DeviceCmd("STOP"), *self._retry(a, "release_timeout")]
        return []

    def _check_travel(self, s: Sample) -> list[Action]:
        t_rel = self._released_t if self._released_t is not None else s.t_s
        stop = [DeviceCmd("STOP")] if self.p.type == "motor_deployer" else []
        if s.angle_valid and self._motion_t is not None:
            if abs(s.angle_deg - self._motion_deg) > _MOTION_DEG:
                self._motion_t, self._motion_deg = s.t_s, s.angle_deg
            elif s.t_s - self._motion_t >= self.lim["stall_s"]:
                return [Event("deployment_stalled", "warning", {"angle_deg": round(s.angle_deg, 2),
                                                                "still_s": round(s.t_s - self._motion_t, 2)}),
                        *stop, *self._finish("stalled")]
        soft = self.p.deployed_deg + self.lim["soft_limit_margin_deg"]
        if self.p.type == "motor_deployer" and s.angle_valid and s.angle_deg >= soft and s.circuit:
            return [Event("soft_limit_stop", "warning", {"angle_deg": round(s.angle_deg, 2), "limit_deg": soft}),
                    *stop, *self._finish("soft limit")]
        if s.t_s - t_rel > self.lim["deploy_timeout_s"]:
            return [Event("deployment_timeout", "warning", {"elapsed_s": round(s.t_s - t_rel, 2)}),
                    *stop, *self._finish("timeout")]
        return []

    def _retry(self, a: _Attempt, reason: str) -> list[Action]:
        a.outcome = reason
        used = [x.circuit for x in self._attempts]
        rest = [c for c in self._order if c not in used]
        if not rest:
            return self._finish(f"{reason} on every circuit")
        nxt = rest[0]
        self._attempts.append(_Attempt(nxt))
        if self._motion_t is not None and self.last is not None:
            self._motion_t = self.last.t_s  # the new circuit gets a full stall interval
        return [Event("circuit_switch", "warning", {"from": a.circuit, "to": nxt, "reason": reason}),
                DeviceCmd("ARM"), DeviceCmd("FIRE", nxt)]

    # --- verdict ----------------------------------------------------------------------------

    def _angle_ok(self, s: Sample) -> bool:
        return (self.p.moves and s.angle_valid
                and abs(s.angle_deg - self.p.deployed_deg) <= self.lim["angle_tolerance_deg"])

    def _finish(self, reason: str) -> list[Action]:
        s = self.last
        self.active = False
        if self._attempts and self._attempts[-1].outcome == "running":
            self._attempts[-1].outcome = reason
        out: list[Action] = []
        if s is None:
            v = Verdict("failed", None, f"failed: {reason}", self._evidence(None, reason, "no sample"))
        else:
            v, extra = self._judge(s, reason)
            out.extend(extra)
        self.verdict = v
        out.append(Event("deployment_verdict", {"deployed": "info", "partial": "warning"}.get(v.outcome, "error"),
                         v.as_fields()))
        out.append(v)
        return out

    def _judge(self, s: Sample, reason: str) -> tuple[Verdict, list[Action]]:
        extra: list[Action] = []
        switch, angle_ok = s.deployed_switch, self._angle_ok(s)
        if not self.p.moves:
            basis = "release switch closed" if switch else "release switch open"
            outcome = "deployed" if switch else "failed"
        elif switch and angle_ok:
            basis, outcome = "deployed switch closed and angle within tolerance", "deployed"
        elif switch and not s.angle_valid:
            basis, outcome = "deployed switch closed; angle sensor invalid", "deployed"
        elif angle_ok:
            basis, outcome = "angle within tolerance; deployed switch open", "deployed"
            extra.append(Event("limit_switch_disagrees", "warning",
                               {"switch": "deployed", "reads": "open", "angle_deg": round(s.angle_deg, 2)}))
        elif s.angle_valid and s.angle_deg > self.p.sensors["stowed_switch_below_deg"]:
            basis, outcome = f"angle {s.angle_deg:.1f} deg short of {self.p.deployed_deg:g}", "partial"
            if switch:
                extra.append(Event("limit_switch_disagrees", "warning",
                                   {"switch": "deployed", "reads": "closed", "angle_deg": round(s.angle_deg, 2)}))
        else:
            basis, outcome = "no deployment seen by the angle sensor or the limit switch", "failed"
        if outcome == "deployed" and self.p.moves and s.stowed_switch:
            extra.append(Event("limit_switch_disagrees", "warning", {"switch": "stowed", "reads": "closed"}))
        if outcome == "deployed" and self._released_t is not None:
            took = s.t_s - self._released_t
            if self.p.moves and took > 1.5 * self.lim["nominal_deploy_s"]:
                extra.append(Event("deployment_slow", "warning",
                                   {"duration_s": round(took, 2), "nominal_s": self.lim["nominal_deploy_s"]}))
        angle = round(s.angle_deg, 2) if self.p.moves and s.angle_valid else None
        text = {"deployed": "deployed",
                "partial": f"partially deployed at {s.angle_deg:.1f} deg",
                "failed": f"failed: {reason}"}[outcome]
        return Verdict(outcome, angle, text, self._evidence(s, reason, basis)), extra

    def _evidence(self, s: Sample | None, reason: str, basis: str) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "basis": basis, "end_reason": reason,
            "attempts": [{"circuit": a.circuit, "outcome": a.outcome} for a in self._attempts],
            "events": list(dict.fromkeys(self._events)),
        }
        if s is not None:
            ev.update({"t_s": round(s.t_s, 3), "device_state": s.state, "device_reason": s.reason,
                       "angle_deg": round(s.angle_deg, 2), "angle_valid": s.angle_valid,
                       "deployed_switch": s.deployed_switch, "stowed_switch": s.stowed_switch,
                       "current_a": round(s.current_a, 3), "released": s.released})
            if self._released_t is not None:
                ev["deploy_s"] = round(s.t_s - self._released_t, 3)
        return ev
