"""Mechanism profiles: dynamics, sensors and limits of one deployable, read from ``configs/mechanisms/``.

The emulator (``hil/deploy``) takes the dynamics and sensor noise from a
profile; the driver takes its limits (currents, timeouts, tolerances) from the
same file, so the two can never disagree about the hardware. A profile is
validated completely on load; the first wrong key raises
:class:`~framework.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from framework.config import check_mapping, config_dir
from framework.kinds import Field
from framework.errors import ConfigError

__all__ = ["MECHANISM_TYPES", "CIRCUITS", "MechanismProfile", "load_profile", "profile_from_dict",
           "resolve_profile_path", "PROFILE_DIR"]

MECHANISM_TYPES = ("holddown", "spring_boom", "motor_deployer")
CIRCUITS = ("primary", "secondary")
PROFILE_DIR = config_dir() / "mechanisms"  # shipped in the distribution (package data)

_RELEASE = {
    "supply_v": Field(float, 28.0, min=1.0, max=100.0, doc="bus voltage on a firing circuit"),
    "heater_ohm": Field(float, 14.0, min=0.1, max=1000.0, doc="release element resistance"),
    "heat_capacity_j_per_k": Field(float, 2.0, min=0.001, doc="thermal mass of the release element"),
    "thermal_resistance_k_per_w": Field(float, 10.0, min=0.01, doc="element to structure"),
    "release_temp_c": Field(float, 120.0, min=-100.0, max=1000.0, doc="element releases at this temperature"),
}
_SPRING = {
    "inertia_kg_m2": Field(float, 0.8, min=1e-4),
    "spring_k_nm_per_rad": Field(float, 3.0, min=0.0),
    "spring_free_deg": Field(float, 200.0, doc="angle where the spring torque would reach zero"),
    "damping_nms_per_rad": Field(float, 20.0, min=0.0, doc="viscous damper"),
}
_MOTOR = {
    "winding_ohm": Field(float, 14.0, min=0.1),
    "kt_nm_per_a": Field(float, 0.05, min=1e-5),
    "ke_v_s_per_rad": Field(float, 0.05, min=1e-5),
    "gear_ratio": Field(float, 2000.0, min=1.0),
    "drive_v": Field(float, 12.0, min=0.1, max=100.0),
    "damping_nms_per_rad": Field(float, 5.0, min=0.0),
}
_FRICTION = {
    "friction_nm": Field(float, 0.2, min=0.0, doc="Coulomb friction at the reference temperature"),
    "cold_coeff_per_k": Field(float, 0.01, min=0.0, doc="relative friction rise per kelvin below reference"),
    "ref_temp_c": Field(float, 20.0),
}
_SENSORS = {
    "angle_noise_deg": Field(float, 0.1, min=0.0),
    "current_noise_a": Field(float, 0.01, min=0.0),
    "temp_noise_c": Field(float, 0.2, min=0.0),
    "stowed_switch_below_deg": Field(float, 2.0),
    "deployed_switch_above_deg": Field(float, 89.5),
}
_LIMITS = {
    "over_current_a": Field(float, 3.0, min=0.0, doc="driver cuts a circuit above this"),
    "over_current_samples": Field(int, 2, min=1, max=100, doc="consecutive samples above the limit before cut-off"),
    "min_current_a": Field(float, 0.3, min=0.0, doc="a fired circuit drawing less than this is open"),
    "circuit_check_s": Field(float, 1.0, min=0.0, doc="time after firing before the current is judged"),
    "release_timeout_s": Field(float, 30.0, min=0.1),
    "deploy_timeout_s": Field(float, 40.0, min=0.1),
    "nominal_deploy_s": Field(float, 10.0, min=0.0, doc="slower than 1.5x this raises deployment_slow"),
    "angle_tolerance_deg": Field(float, 2.0, min=0.0),
    "stall_s": Field(float, 3.0, min=0.1, doc="no motion for this long while deploying is a stall"),
    "soft_limit_margin_deg": Field(float, 1.5, min=0.0, doc="driver stops a motor this far past deployed"),
}
_VIEW = {
    "camera": Field(str, "", doc="camera process whose field of view holds the mechanism"),
}
_TOP = {
    "name": Field(str),
    "type": Field(str, choices=MECHANISM_TYPES),
    "description": Field(str, ""),
    "one_shot": Field(bool, True),
    "circuits": Field(list, list(CIRCUITS)),
    "deployed_deg": Field(float, 90.0, min=0.0, max=360.0),
    "hard_stop_deg": Field(float, 93.0, min=0.0, max=360.0),
    "ambient_temp_c": Field(float, 20.0, min=-200.0, max=200.0),
    "release": Field(dict, {}, keys=_RELEASE),
    "spring": Field(dict, {}, keys=_SPRING),
    "motor": Field(dict, {}, keys=_MOTOR),
    "friction": Field(dict, {}, keys=_FRICTION),
    "sensors": Field(dict, {}, keys=_SENSORS),
    "limits": Field(dict, {}, keys=_LIMITS),
    "view": Field(dict, {}, keys=_VIEW),
}


@dataclass(frozen=True)
class MechanismProfile:
    """One validated mechanism profile; the nested sections stay plain dicts of floats."""

    name: str
    type: str
    description: str
    one_shot: bool
    circuits: tuple[str, ...]
    deployed_deg: float
    hard_stop_deg: float
    ambient_temp_c: float
    release: dict[str, float]
    spring: dict[str, float]
    motor: dict[str, float]
    friction: dict[str, float]
    sensors: dict[str, float]
    limits: dict[str, Any]
    view: dict[str, str]
    file: str = "<profile>"

    @property
    def moves(self) -> bool:
        """Whether the mechanism has an angle to deploy through (a hold-down only releases)."""
        return self.type != "holddown"


def profile_from_dict(data: Any, file: str = "<profile>", overrides: dict[str, Any] | None = None) -> MechanismProfile:
    """Validate a parsed profile mapping (plus top-level ``overrides``) into a MechanismProfile."""
    if not isinstance(data, dict):
        raise ConfigError(file, "<top>", "a mapping", data)
    data = dict(data)
    for k, v in (overrides or {}).items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    d = check_mapping(file, "profile", _TOP, data)
    circuits = d["circuits"]
    if not circuits or any(c not in CIRCUITS for c in circuits) or len(set(circuits)) != len(circuits):
        raise ConfigError(file, "profile.circuits", f"a non-empty list of distinct circuits from {list(CIRCUITS)}",
                          circuits)
    if d["type"] != "holddown" and d["hard_stop_deg"] < d["deployed_deg"]:
        raise ConfigError(file, "profile.hard_stop_deg", f"a value >= deployed_deg ({d['deployed_deg']})",
                          d["hard_stop_deg"])
    return MechanismProfile(
        name=d["name"], type=d["type"], description=d["description"], one_shot=d["one_shot"],
        circuits=tuple(circuits), deployed_deg=d["deployed_deg"], hard_stop_deg=d["hard_stop_deg"],
        ambient_temp_c=d["ambient_temp_c"], release=d["release"], spring=d["spring"], motor=d["motor"],
        friction=d["friction"], sensors=d["sensors"], limits=d["limits"], view=d["view"], file=file,
    )


def resolve_profile_path(ref: str, config_file: str | Path | None = None) -> Path:
    """A profile reference: a path (absolute, or relative to the config file or the working
    directory), or the bare name of a profile in ``configs/mechanisms/``."""
    p = Path(ref)
    candidates = [p] if p.is_absolute() else []
    if not p.is_absolute():
        if config_file is not None:
            candidates.append(Path(config_file).resolve().parent / p)
        candidates.append(Path.cwd() / p)
        candidates.append(PROFILE_DIR / p)
        candidates.append(PROFILE_DIR / f"{ref}.yaml")
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(str(config_file or "<config>"), "profile",
                      f"a profile file or one of {sorted(x.stem for x in PROFILE_DIR.glob('*.yaml'))}", ref)


def load_profile(ref: str, config_file: str | Path | None = None,
                 overrides: dict[str, Any] | None = None) -> MechanismProfile:
    """Find, read and validate a profile; raise ConfigError on the first fault."""
    path = resolve_profile_path(ref, config_file)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), "<file>", "a readable YAML profile", str(exc).replace("\n", " ")) from None
    return profile_from_dict(data, str(path), overrides)
