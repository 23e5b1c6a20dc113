"""One emulated mechanism: its state machine, physics, sensors and injected faults. Pure: no I/O, no clock.

States: ``stowed -> armed -> releasing -> deploying -> deployed``, or
``failed`` with a reason. The owner calls :meth:`Mechanism.step` with a fixed
time step and feeds it commands; :meth:`Mechanism.sample` reads the sensors
with noise drawn from a seeded generator, so a run is repeatable.

- ``releasing``: current flows through the release element on the fired
  circuit until it reaches its release temperature.
- ``deploying``: the spring (boom) or the motor (deployer) moves the
  mechanism until the latch or the deployed limit switch ends it. A hold-down
  goes straight from ``releasing`` to ``deployed``.

Faults (:data:`FAULTS`) change the physics or the sensors, never the state
machine's rules, so the driver must find them from what it measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivers.deploy.profile import MechanismProfile
from framework.errors import CommandRejected
from hil.deploy import physics

__all__ = ["STATES", "FAULTS", "Faults", "Sample", "Mechanism"]

STATES = ("stowed", "armed", "releasing", "deploying", "deployed", "failed")
FAULTS = ("jam", "slow", "stuck_switch", "angle_dropout", "circuit_open", "over_current")
_JAM_DETECT_S = 2.0  # the truth model calls a still, unlatched boom jammed after this long


@dataclass
class Faults:
    """Active faults. Each one models a physical failure, not a software flag the driver can read."""

    jam_deg: float | None = None
    slow_factor: float = 1.0
    stuck_switches: dict[str, bool] = field(default_factory=dict)  # switch -> stuck reading
    angle_dropout: bool = False
    open_circuits: set[str] = field(default_factory=set)
    short_circuits: dict[str, float] = field(default_factory=dict)  # circuit -> current factor


@dataclass(frozen=True)
class Sample:
    """What the mechanism's sensors read at one instant."""

    t_s: float
    state: str
    reason: str
    circuit: str  # "" when no circuit is powered
    released: bool
    angle_deg: float
    angle_valid: bool
    current_a: float
    temp_c: float
    element_temp_c: float
    stowed_switch: bool
    deployed_switch: bool


def _arg_float(args: dict[str, Any], name: str, default: float | None = None, lo: float = -math.inf,
               hi: float = math.inf) -> float:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CommandRejected(f"fault argument '{name}' must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise CommandRejected(f"fault argument '{name}'={value} is outside [{lo}, {hi}]")
    return float(value)


class Mechanism:
    """The truth model of one mechanism: step it, command it, read its sensors."""

    def __init__(self, profile: MechanismProfile, seed: int = 1) -> None:
        self.profile = profile
        self._rng = np.random.default_rng(seed)
        self.faults = Faults()
        self.ambient_c = profile.ambient_temp_c
        self.t_s = 0.0
        self.state = "stowed"
        self.reason = ""
        self.circuit = ""
        self.released = False
        self.element_temp_c = self.ambient_c
        self.angle_rad = 0.0
        self.omega_rad_s = 0.0
        self.current_a = 0.0
        self._still_s = 0.0

    # --- commands ---------------------------------------------------------------------------

    def command(self, name: str, circuit: str = "") -> str:
        """Apply a device command; return a note (may be empty). Raise CommandRejected if not allowed now."""
        handler = {"ARM": self._arm, "DISARM": self._disarm, "FIRE": self._fire, "STOP": self._stop}.get(name)
        if handler is None:
            raise CommandRejected(f"unknown device command {name!r}")
        return handler(circuit)

    def _arm(self, _circuit: str) -> str:
        if self.state in ("stowed", "armed"):
            self.state = "armed"
            return ""
        if self.state == "failed" and not self.profile.one_shot and self.reason.startswith("stopped"):
            self.state, self.reason = "armed", ""
            return "re-armed after a stop"
        raise CommandRejected(f"cannot arm in state {self.state}")

    def _disarm(self, _circuit: str) -> str:
        if self.state == "stowed":
            return "already safe"
        if self.state != "armed":
            raise CommandRejected(f"cannot disarm in state {self.state}")
        if self.released:
            self._fail(f"halted at {self.angle_deg:.1f} deg")
        else:
            self.state = "stowed"
        return ""

    def _fire(self, circuit: str) -> str:
        if circuit not in self.profile.circuits:
            raise CommandRejected(f"no circuit {circuit!r}; this mechanism has {list(self.profile.circuits)}")
        if self.state != "armed":
            if self.profile.one_shot and self.released:
                raise CommandRejected("one-shot mechanism already fired")
            raise CommandRejected(f"cannot fire in state {self.state}: arm first")
        self.circuit = circuit
        self.state = "deploying" if self.released else "releasing"
        self._still_s = 0.0
        return ""

    def _stop(self, _circuit: str) -> str:
        if self.state == "releasing":
            self.circuit, self.state = "", "armed"
            return "release power cut"
        if self.state == "deploying" and self.profile.type == "motor_deployer":
            self.circuit = ""
            self._fail(f"stopped at {self.angle_deg:.1f} deg")
            return "motor stopped"
        if self.state == "deploying":
            return "passive deployment cannot be stopped"
        self.circuit = ""
        return "nothing powered"

    def _fail(self, reason: str) -> None:
        self.state, self.reason, self.circuit = "failed", reason, ""

    # --- faults -----------------------------------------------------------------------------

    def inject(self, fault: str, args: dict[str, Any] | None = None) -> None:
        """Inject one fault (see :data:`FAULTS`); raise CommandRejected on a bad name or argument."""
        args = args or {}
        f = self.faults
        if fault == "jam":
            self._need_motion(fault)
            f.jam_deg = _arg_float(args, "angle_deg", None, 0.0, self.profile.hard_stop_deg)
        elif fault == "slow":
            self._need_motion(fault)
            f.slow_factor = _arg_float(args, "factor", 3.0, 1.0, 1000.0)
        elif fault == "stuck_switch":
            switch, closed = args.get("switch", "deployed"), args.get("closed", False)
            if switch not in ("stowed", "deployed") or not isinstance(closed, bool):
                raise CommandRejected("stuck_switch needs switch in (stowed, deployed) and closed a bool")
            f.stuck_switches[switch] = closed
        elif fault == "angle_dropout":
            self._need_motion(fault)
            f.angle_dropout = bool(args.get("active", True))
        elif fault == "circuit_open":
            f.open_circuits.add(self._circuit_arg(args))
        elif fault == "over_current":
            f.short_circuits[self._circuit_arg(args)] = _arg_float(args, "factor", 2.5, 1.0, 100.0)
        else:
            raise CommandRejected(f"unknown fault {fault!r}; known: {list(FAULTS)}")

    def clear_faults(self) -> None:
        self.faults = Faults()

    def _need_motion(self, fault: str) -> None:
        if not self.profile.moves:
            raise CommandRejected(f"fault {fault!r} needs a moving mechanism; {self.profile.name} only releases")

    def _circuit_arg(self, args: dict[str, Any]) -> str:
        circuit = args.get("circuit", "primary")
        if circuit not in self.profile.circuits:
            raise CommandRejected(f"no circuit {circuit!r}; this mechanism has {list(self.profile.circuits)}")
        return circuit

    # --- physics ----------------------------------------------------------------------------

    @property
    def angle_deg(self) -> float:
        return math.degrees(self.angle_rad)

    def _circuit_current(self, nominal_a: float) -> tuple[float, bool]:
        """Current drawn on the powered circuit and whether it does useful work."""
        if not self.circuit or self.circuit in self.faults.open_circuits:
            return 0.0, False
        short = self.faults.short_circuits.get(self.circuit)
        if short is not None:
            return nominal_a * short, False  # a short bypasses the load
        return nominal_a, True

    def step(self, dt_s: float) -> None:
        """Advance the truth model by ``dt_s`` seconds."""
        self.t_s += dt_s
        self.current_a = 0.0
        heating_a = 0.0
        if self.state == "releasing":
            self.current_a, works = self._circuit_current(physics.heater_current_a(self.profile.release))
            heating_a = self.current_a if works else 0.0
        self.element_temp_c = physics.heater_step(self.element_temp_c, heating_a, self.profile.release,
                                                  self.ambient_c, dt_s)
        if self.state == "releasing" and self.element_temp_c >= self.profile.release["release_temp_c"]:
            self._on_release()
        elif self.state == "deploying":
            if self.profile.type == "spring_boom":
                self._step_spring(dt_s)
            else:
                self._step_motor(dt_s)

    def _on_release(self) -> None:
        self.released = True
        if self.profile.type != "motor_deployer":
            self.current_a = 0.0  # the element is spent; its circuit opens
        if self.profile.type == "holddown":
            self.state, self.circuit = "deployed", ""
        elif self.profile.type == "spring_boom":
            self.state, self.circuit = "deploying", ""  # the spring takes over; the burn wire is spent
        else:
            self.state = "deploying"  # the motor runs on the same circuit
        self._still_s = 0.0

    def _friction(self) -> float:
        return physics.friction_nm(self.profile.friction, self.ambient_c) * self.faults.slow_factor

    def _end_stop_rad(self) -> float:
        stop_deg = self.profile.hard_stop_deg
        if self.faults.jam_deg is not None:
            stop_deg = min(stop_deg, self.faults.jam_deg)
        return math.radians(stop_deg)

    def _step_spring(self, dt_s: float) -> None:
        s = physics.spring_step(physics.SpringState(self.angle_rad, self.omega_rad_s), self.profile.spring,
                                self._friction(), self.faults.slow_factor, dt_s)
        self.angle_rad, self.omega_rad_s = s.angle_rad, s.omega_rad_s
        latch = math.radians(self.profile.deployed_deg)
        stop = self._end_stop_rad()
        if self.angle_rad >= latch and stop >= latch:
            self.angle_rad, self.omega_rad_s = latch, 0.0
            self.state = "deployed"
            return
        if self.angle_rad >= stop:
            self.angle_rad, self.omega_rad_s = stop, 0.0
        self._watch_still(dt_s, f"jammed at {self.angle_deg:.1f} deg")

    def _step_motor(self, dt_s: float) -> None:
        stop = self._end_stop_rad()
        stalled = self.angle_rad >= stop - 1e-9
        nominal_a = self.profile.motor["drive_v"] / self.profile.motor["winding_ohm"]  # only for shorts
        drawn_a, works = self._circuit_current(nominal_a)
        if works:
            omega, self.current_a = physics.motor_operating_point(self.profile.motor, self._friction(),
                                                                  self.faults.slow_factor,
                                                                  self.profile.motor["drive_v"], stalled)
        else:
            omega, self.current_a = 0.0, drawn_a
        self.omega_rad_s = omega
        self.angle_rad = min(self.angle_rad + omega * dt_s, stop)
        if self._switch("deployed"):
            self.state, self.circuit, self.omega_rad_s = "deployed", "", 0.0  # the switch cuts the motor

    def _watch_still(self, dt_s: float, reason: str) -> None:
        self._still_s = self._still_s + dt_s if self.omega_rad_s == 0.0 else 0.0
        if self._still_s >= _JAM_DETECT_S:
            self._fail(reason)

    # --- sensors ----------------------------------------------------------------------------

    def _switch(self, name: str) -> bool:
        stuck = self.faults.stuck_switches.get(name)
        if stuck is not None:
            return stuck
        if not self.profile.moves:
            return self.released if name == "deployed" else not self.released
        if name == "deployed":
            return self.angle_deg >= self.profile.sensors["deployed_switch_above_deg"]
        return self.angle_deg < self.profile.sensors["stowed_switch_below_deg"]

    def _noise(self, sigma: float) -> float:
        return float(self._rng.normal(0.0, sigma)) if sigma > 0 else 0.0

    def sample(self) -> Sample:
        """Read every sensor once, with noise."""
        s = self.profile.sensors
        valid = self.profile.moves and not self.faults.angle_dropout
        angle = self.angle_deg + self._noise(s["angle_noise_deg"]) if valid else 0.0
        return Sample(
            t_s=self.t_s, state=self.state, reason=self.reason, circuit=self.circuit, released=self.released,
            angle_deg=angle, angle_valid=valid,
            current_a=max(0.0, self.current_a + self._noise(s["current_noise_a"])),
            temp_c=self.ambient_c + self._noise(s["temp_noise_c"]),
            element_temp_c=self.element_temp_c + self._noise(s["temp_noise_c"]),
            stowed_switch=self._switch("stowed"), deployed_switch=self._switch("deployed"),
        )

    def truth(self) -> dict[str, Any]:
        """The noiseless state, for the control socket and the camera scene."""
        return {"t_s": self.t_s, "state": self.state, "reason": self.reason, "circuit": self.circuit,
                "released": self.released, "angle_deg": self.angle_deg, "omega_deg_s": math.degrees(self.omega_rad_s),
                "current_a": self.current_a, "element_temp_c": self.element_temp_c, "ambient_c": self.ambient_c}
