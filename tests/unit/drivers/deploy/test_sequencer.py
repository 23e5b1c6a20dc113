"""The deployment sequencer against the in-process truth model: every fault, verdict and event, no sockets."""

from __future__ import annotations

import pytest

from drivers.deploy import protocol as p
from drivers.deploy.profile import load_profile
from drivers.deploy.sequencer import DeviceCmd, Event, Sequencer, Verdict
from framework.errors import CommandRejected
from hil.deploy.mechanism import Mechanism

DT = 0.005


def _to_wire(m: Mechanism) -> p.Sample:
    s = m.sample()
    return p.Sample(ref_seq=0, **{k: v for k, v in s.__dict__.items()})


def _deploy(profile: str, sample_every_s: float = 0.25, limit_s: float = 200.0, **faults: dict):
    """Run one supervised deployment; return (verdict, event names, device commands sent)."""
    prof = load_profile(profile)
    mech = Mechanism(prof, seed=5)
    for fault, args in faults.items():
        mech.inject(fault, args)
    seq = Sequencer(prof)
    events: list[Event] = []
    sent: list[DeviceCmd] = []

    def execute(actions) -> None:
        for a in actions:
            if isinstance(a, Event):
                events.append(a)
            elif isinstance(a, DeviceCmd):
                sent.append(a)
                try:
                    mech.command(a.name, a.circuit)
                except CommandRejected as exc:
                    execute(seq.on_nak(a, str(exc)))
                    return

    execute(seq.on_sample(_to_wire(mech)))
    execute(seq.start())
    while seq.active and mech.t_s < limit_s:
        for _ in range(round(sample_every_s / DT)):
            mech.step(DT)
        execute(seq.on_sample(_to_wire(mech)))
    assert seq.verdict is not None, "the sequencer always reaches a verdict"
    return seq.verdict, [e.name for e in events], sent, events


@pytest.mark.parametrize("profile", ["holddown_release", "spring_boom", "motor_deployer"])
def test_nominal_deployment_is_judged_deployed_on_the_primary_circuit(profile: str) -> None:
    v, names, sent, _ = _deploy(profile)
    assert v.outcome == "deployed" and v.text == "deployed"
    assert [a["circuit"] for a in v.evidence["attempts"]] == ["primary"]
    assert "deployment_verdict" in names and "state_changed" in names
    assert DeviceCmd("FIRE", "secondary") not in sent


def test_jammed_boom_is_partially_deployed_at_the_jam_angle() -> None:
    v, names, _, _ = _deploy("spring_boom", jam={"angle_deg": 47.0})
    assert v.outcome == "partial" and v.angle_deg == pytest.approx(47.0, abs=1.0)
    assert v.text.startswith("partially deployed at 4")


def test_slow_boom_deploys_with_a_slow_warning() -> None:
    v, names, _, _ = _deploy("spring_boom", slow={"factor": 3.0})
    assert v.outcome == "deployed" and "deployment_slow" in names


def test_angle_dropout_is_reported_and_the_switch_decides() -> None:
    v, names, _, _ = _deploy("spring_boom", angle_dropout={})
    assert v.outcome == "deployed" and v.angle_deg is None
    assert "angle_sensor_invalid" in names and "angle sensor invalid" in v.evidence["basis"]


def test_open_primary_circuit_is_detected_and_the_secondary_releases() -> None:
    v, names, sent, _ = _deploy("holddown_release", sample_every_s=0.5, circuit_open={"circuit": "primary"})
    assert v.outcome == "deployed"
    assert "circuit_no_current" in names and "circuit_switch" in names
    assert [a["circuit"] for a in v.evidence["attempts"]] == ["primary", "secondary"]
    assert DeviceCmd("STOP") in sent and DeviceCmd("FIRE", "secondary") in sent


def test_over_current_cuts_the_primary_and_the_secondary_releases() -> None:
    v, names, sent, events = _deploy("holddown_release", sample_every_s=0.5, over_current={"circuit": "primary"})
    assert v.outcome == "deployed" and "over_current" in names
    oc = next(e for e in events if e.name == "over_current")
    assert oc.fields["circuit"] == "primary" and oc.fields["current_a"] > 3.0
    assert v.evidence["attempts"][0]["outcome"] == "over_current"


def test_over_current_on_both_circuits_fails_the_release() -> None:
    v, names, _, _ = _deploy("holddown_release", sample_every_s=0.5, over_current={"circuit": "primary"})
    v2, names2, _, _ = _deploy("holddown_release", sample_every_s=0.5,
                               circuit_open={"circuit": "primary"}, over_current={"circuit": "secondary"})
    assert v2.outcome == "failed" and "every circuit" in v2.text


def test_jammed_motor_is_cut_retried_on_the_secondary_and_judged_partial() -> None:
    v, names, sent, _ = _deploy("motor_deployer", jam={"angle_deg": 60.0})
    assert v.outcome == "partial" and v.angle_deg == pytest.approx(60.0, abs=1.0)
    assert names.count("over_current") == 2 and "circuit_switch" in names
    assert sent.count(DeviceCmd("STOP")) == 2


def test_stuck_open_deployed_switch_is_deployed_by_angle_with_a_disagreement_event() -> None:
    v, names, _, _ = _deploy("motor_deployer", stuck_switch={"switch": "deployed", "closed": False})
    assert v.outcome == "deployed" and "limit_switch_disagrees" in names
    assert "deployed switch open" in v.evidence["basis"]


def test_device_refusal_ends_the_deployment_with_a_failed_verdict() -> None:
    prof = load_profile("spring_boom")
    seq = Sequencer(prof)
    seq.start()
    out = seq.on_nak(DeviceCmd("FIRE", "primary"), "cannot fire in state failed")
    verdict = [a for a in out if isinstance(a, Verdict)][0]
    assert verdict.outcome == "failed" and "refused FIRE" in verdict.text and not seq.active
