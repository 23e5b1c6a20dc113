"""The bench's override layer over a contact plan, and the relay's link changes: pure, on given times."""

from __future__ import annotations

import pytest

from hil.relay.link import Constellation, Direction
from link.contacts import PlanOverrides, plan_from_mapping

PLAN = plan_from_mapping({"time_scale": 1.0, "epoch_s": 0.0, "relays": [
    {"name": "a", "period_s": 100, "lander_windows_s": [[0, 40]], "rate_bps": 1e6, "latency_ms": 10},
    {"name": "b", "period_s": 100, "lander_windows_s": [[20, 60]], "rate_bps": 2e6, "latency_ms": 20}]}, "t")
SETTINGS = {"loss": 0.0, "queue_bytes": 10**6, "seed": 1}


def test_without_overrides_it_answers_as_the_plan() -> None:
    ov = PlanOverrides(PLAN)
    for t in (5.0, 30.0, 50.0, 70.0):
        assert ov.contact(t) == PLAN.contact(t)


def test_a_window_forced_closed_closes_every_relay_until_it_expires() -> None:
    ov = PlanOverrides(PLAN)
    ov.force("closed", now=5.0, duration_s=10.0)
    assert ov.contact(6.0) is None and not ov.is_open(14.9)
    assert ov.contact(15.0) == PLAN.contact(15.0) and ov.forced is None


def test_a_window_forced_open_outside_the_plan_goes_through_the_named_relay() -> None:
    ov = PlanOverrides(PLAN)
    assert PLAN.contact(70.0) is None
    ov.force("open", now=70.0, duration_s=None, relay="b")
    c = ov.contact(75.0)
    assert c is not None and c.relay == "b" and c.rate_bps == 2e6 and c.opened_at == 70.0
    ov.forced = None
    assert ov.contact(75.0) is None


def test_a_relay_out_hands_the_traffic_to_the_next_in_contact_until_it_is_back() -> None:
    ov = PlanOverrides(PLAN)
    assert ov.contact(30.0).relay == "a"
    ov.take_out("a", now=30.0, duration_s=20.0)
    assert ov.contact(31.0).relay == "b"
    assert ov.contact(10.0) is None or ov.contact(10.0).relay != "a"
    assert ov.contact(50.0).relay == "b" and "a" not in ov.out  # expired at 50
    ov.take_out("b", now=50.0, duration_s=None)
    assert ov.contact(55.0) is None
    ov.put_back("b")
    assert ov.contact(55.0).relay == "b"


def test_a_clock_step_reads_the_plan_at_the_stepped_time() -> None:
    ov = PlanOverrides(PLAN)
    ov.step_clock(30.0)
    assert ov.contact(35.0) == PLAN.contact(65.0) is None
    assert ov.state(35.0)["clock_offset_s"] == 30.0
    ov.clear()
    assert ov.contact(35.0) == PLAN.contact(35.0)


def test_unknown_relays_and_states_are_refused() -> None:
    ov = PlanOverrides(PLAN)
    with pytest.raises(KeyError):
        ov.take_out("z", 0.0, 1.0)
    with pytest.raises(ValueError):
        ov.force("ajar", 0.0, 1.0)


def test_set_link_changes_loss_corruption_and_rate_and_clear_restores_the_plan() -> None:
    net = Constellation(PlanOverrides(PLAN), SETTINGS)
    down = Direction("down", ("127.0.0.1", 1), net.models("down"))
    up = Direction("up", ("127.0.0.1", 2), net.models("up"))
    net.set_link([down, up], 0, loss=0.5, corrupt=0.25, rate_bps=5e5)
    assert down.models[0].loss == 0.5 and up.models[0].corrupt_p == 0.25 and down.models[1].loss == 0.0
    net.route(down, b"x" * 100, 1.0, 1.0)
    assert down.models[0].rate_bps == 5e5
    assert net.link_state(down)[0]["rate_bps"] == 5e5
    net.clear_link([down, up])
    assert down.models[0].loss == 0.0 and up.models[0].corrupt_p == 0.0 and not net.rate_override
    with pytest.raises(ValueError):
        net.set_link([down], None, loss=1.5)
