"""Dynamics of deployable mechanisms: pure functions of state, parameters and a time step.

Three models, all in SI units with angles in radians inside:

- a release element (frangibolt collar, burn wire, pin-puller fuse): a lumped
  thermal mass heated by ``I**2 R`` and cooled through a thermal resistance;
- a spring-driven hinge: ``J w' = k (theta_free - theta) - c w - friction``,
  integrated semi-implicitly (stable for the stiff damper at the emulator's step);
- a geared DC motor: the electrical and mechanical time constants are far
  shorter than a deployment, so speed and current are solved quasi-statically
  from ``N kt i = c w + friction`` and ``i = (V - N ke w) / R``.

Coulomb friction rises in the cold (lubricant stiffens): ``f = f0 (1 + a max(0, T_ref - T))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["friction_nm", "heater_current_a", "heater_step", "SpringState", "spring_step", "motor_operating_point"]


def friction_nm(friction: dict[str, float], temp_c: float) -> float:
    """Coulomb friction torque at ``temp_c``."""
    cold_k = max(0.0, friction["ref_temp_c"] - temp_c)
    return friction["friction_nm"] * (1.0 + friction["cold_coeff_per_k"] * cold_k)


def heater_current_a(release: dict[str, float]) -> float:
    """Nominal current through the release element when its circuit is closed."""
    return release["supply_v"] / release["heater_ohm"]


def heater_step(temp_c: float, current_a: float, release: dict[str, float], ambient_c: float, dt_s: float) -> float:
    """Element temperature after ``dt_s`` with ``current_a`` flowing (exact for a constant current)."""
    power_w = current_a * current_a * release["heater_ohm"]
    r_th = release["thermal_resistance_k_per_w"]
    tau_s = release["heat_capacity_j_per_k"] * r_th
    target_c = ambient_c + power_w * r_th
    return target_c + (temp_c - target_c) * math.exp(-dt_s / tau_s)


@dataclass(frozen=True)
class SpringState:
    angle_rad: float
    omega_rad_s: float


def spring_step(s: SpringState, spring: dict[str, float], friction_torque_nm: float, damping_scale: float,
                dt_s: float) -> SpringState:
    """One semi-implicit Euler step of the spring hinge (no end stops: the caller applies them)."""
    j = spring["inertia_kg_m2"]
    c = spring["damping_nms_per_rad"] * damping_scale
    drive = spring["spring_k_nm_per_rad"] * (math.radians(spring["spring_free_deg"]) - s.angle_rad)
    if abs(s.omega_rad_s) < 1e-9 and abs(drive) <= friction_torque_nm:
        return SpringState(s.angle_rad, 0.0)  # static friction holds
    direction = math.copysign(1.0, s.omega_rad_s if abs(s.omega_rad_s) >= 1e-9 else drive)
    net = drive - friction_torque_nm * direction
    # Damping treated implicitly: w' = (net - c w') / j solved for the new w.
    omega = (s.omega_rad_s + dt_s * net / j) / (1.0 + dt_s * c / j)
    if s.omega_rad_s != 0.0 and omega * s.omega_rad_s < 0.0:
        omega = 0.0  # friction stops motion; it never reverses it
    return SpringState(s.angle_rad + omega * dt_s, omega)


def motor_operating_point(motor: dict[str, float], friction_torque_nm: float, damping_scale: float,
                          volts: float, stalled: bool) -> tuple[float, float]:
    """Output speed (rad/s) and winding current (A) of the geared motor at ``volts``.

    ``stalled`` holds the output still (an end stop or a jam): the full stall current flows.
    """
    r = motor["winding_ohm"]
    n = motor["gear_ratio"]
    kt = motor["kt_nm_per_a"]
    ke = motor["ke_v_s_per_rad"]
    c = motor["damping_nms_per_rad"] * damping_scale
    stall_torque = n * kt * volts / r
    if stalled or stall_torque <= friction_torque_nm:
        return 0.0, volts / r
    omega = (stall_torque - friction_torque_nm) / (n * n * kt * ke / r + c)
    current = (volts - n * ke * omega) / r
    return omega, current
