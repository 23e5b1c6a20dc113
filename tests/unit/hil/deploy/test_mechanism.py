"""The mechanism truth model and its physics, stepped with a fixed time step (no wall clock)."""

from __future__ import annotations

import math

import pytest

from drivers.deploy.profile import load_profile, profile_from_dict
from framework.errors import CommandRejected, ConfigError
from hil.deploy import physics
from hil.deploy.mechanism import Mechanism

DT = 0.005


def _run(m: Mechanism, until_s: float, stop_states: tuple[str, ...] = ("deployed", "failed")) -> Mechanism:
    end = m.t_s + until_s
    while m.t_s < end and m.state not in stop_states:
        m.step(DT)
    return m


def _fired(name: str, **faults: dict) -> Mechanism:
    m = Mechanism(load_profile(name), seed=3)
    for fault, args in faults.items():
        m.inject(fault, args)
    m.command("ARM")
    m.command("FIRE", "primary")
    return m


def test_friction_rises_in_the_cold_and_not_in_the_warm() -> None:
    f = {"friction_nm": 1.0, "cold_coeff_per_k": 0.01, "ref_temp_c": 20.0}
    assert physics.friction_nm(f, -30.0) == pytest.approx(1.5)
    assert physics.friction_nm(f, 40.0) == pytest.approx(1.0)


def test_heater_approaches_its_equilibrium_temperature() -> None:
    rel = {"supply_v": 28.0, "heater_ohm": 14.0, "heat_capacity_j_per_k": 1.0, "thermal_resistance_k_per_w": 1.0,
           "release_temp_c": 100.0}
    t = physics.heater_step(0.0, 2.0, rel, 0.0, 100.0)
    assert t == pytest.approx(56.0, rel=1e-6)


def test_motor_draws_stall_current_when_held() -> None:
    motor = load_profile("motor_deployer").motor
    omega, current = physics.motor_operating_point(motor, 10.0, 1.0, motor["drive_v"], stalled=True)
    assert omega == 0.0 and current == pytest.approx(motor["drive_v"] / motor["winding_ohm"])
    omega, running = physics.motor_operating_point(motor, 10.0, 1.0, motor["drive_v"], stalled=False)
    assert omega > 0 and running < current


@pytest.mark.parametrize("name", ["holddown_release", "spring_boom", "motor_deployer"])
def test_nominal_profile_deploys_and_closes_its_deployed_switch(name: str) -> None:
    m = _run(_fired(name), 120.0)
    assert m.state == "deployed" and m.released
    assert m.sample().deployed_switch


def test_fire_without_arm_is_refused() -> None:
    m = Mechanism(load_profile("spring_boom"))
    with pytest.raises(CommandRejected, match="arm first"):
        m.command("FIRE", "primary")
    assert m.state == "stowed"


def test_one_shot_release_cannot_be_fired_twice() -> None:
    m = _run(_fired("holddown_release"), 120.0)
    with pytest.raises(CommandRejected):
        m.command("ARM")
    with pytest.raises(CommandRejected, match="already fired"):
        m.command("FIRE", "primary")


def test_jam_stops_the_boom_at_the_jam_angle_and_fails_it() -> None:
    m = _run(_fired("spring_boom", jam={"angle_deg": 47.0}), 60.0)
    assert m.state == "failed" and "jammed at 47.0" in m.reason
    assert m.angle_deg == pytest.approx(47.0)


def test_slow_fault_makes_the_boom_take_longer() -> None:
    nominal = _run(_fired("spring_boom"), 120.0).t_s
    slow = _run(_fired("spring_boom", slow={"factor": 3.0}), 120.0)
    assert slow.state == "deployed" and slow.t_s > 2 * nominal


def test_open_primary_circuit_draws_nothing_and_secondary_still_releases() -> None:
    m = _run(_fired("holddown_release", circuit_open={"circuit": "primary"}), 5.0)
    assert m.state == "releasing" and m.current_a == 0.0
    m.command("STOP")
    assert m.state == "armed"
    m.command("FIRE", "secondary")
    assert _run(m, 120.0).state == "deployed"


def test_over_current_on_a_circuit_draws_more_and_does_not_heat() -> None:
    m = _run(_fired("holddown_release", over_current={"circuit": "primary", "factor": 2.5}), 60.0)
    assert m.state == "releasing" and m.current_a == pytest.approx(5.0)


def test_stuck_open_deployed_switch_lets_the_motor_reach_the_hard_stop() -> None:
    m = _run(_fired("motor_deployer", stuck_switch={"switch": "deployed", "closed": False}), 40.0)
    assert m.state == "deploying" and m.angle_deg == pytest.approx(93.0)
    assert not m.sample().deployed_switch


def test_angle_dropout_reports_an_invalid_angle() -> None:
    m = _fired("spring_boom", angle_dropout={})
    m.step(DT)
    assert not m.sample().angle_valid


def test_stopped_motor_can_be_rearmed_and_driven_on_the_other_circuit() -> None:
    m = _run(_fired("motor_deployer"), 8.0)
    assert m.state == "deploying"
    m.command("STOP")
    assert m.state == "failed" and m.reason.startswith("stopped")
    m.command("ARM")
    m.command("FIRE", "secondary")
    assert _run(m, 60.0).state == "deployed"


@pytest.mark.parametrize("fault,args", [("jam", {}), ("slow", {"factor": "x"}), ("nonsense", {}),
                                        ("stuck_switch", {"switch": "middle"}), ("circuit_open", {"circuit": "c"})])
def test_bad_fault_is_refused_with_a_reason(fault: str, args: dict) -> None:
    m = Mechanism(load_profile("spring_boom"))
    with pytest.raises(CommandRejected):
        m.inject(fault, args)


def test_sensor_noise_is_repeatable_from_the_seed() -> None:
    a, b = Mechanism(load_profile("spring_boom"), 9), Mechanism(load_profile("spring_boom"), 9)
    assert [a.sample().angle_deg for _ in range(5)] == [b.sample().angle_deg for _ in range(5)]
    assert not math.isclose(a.sample().angle_deg, 0.0, abs_tol=1e-12)


def test_profile_with_unknown_key_names_the_key() -> None:
    with pytest.raises(ConfigError, match="profile.wings"):
        profile_from_dict({"name": "x", "type": "spring_boom", "wings": 2})
    with pytest.raises(ConfigError, match="circuits"):
        profile_from_dict({"name": "x", "type": "spring_boom", "circuits": ["tertiary"]})
