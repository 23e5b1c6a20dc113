"""The contact plan: windows from relay orbits, the first relay wins, rates per pass, a clock that pauses."""

from __future__ import annotations

import pytest
import yaml

from link.contacts import ContactClock, load_plan, plan_from_mapping
from framework.errors import ConfigError

TWO = {"time_scale": 10.0, "epoch_s": 1000.0, "relays": [
    {"name": "a", "period_s": 100, "lander_windows_s": [[0, 40]], "ground_windows_s": [[10, 100]],
     "rate_bps": [1000, 2000], "latency_ms": 1290},
    {"name": "b", "period_s": 100, "lander_windows_s": [[30, 80]], "rate_bps": 5000, "latency_ms": 1310},
]}


def wall(orbit_s: float) -> float:
    return 1000.0 + orbit_s / 10.0


def test_a_relay_carries_only_while_it_sees_both_lander_and_ground() -> None:
    plan = plan_from_mapping(TWO, "t")
    assert plan.relays[0].windows() == ((10.0, 40.0),)
    assert plan.contact(wall(5)) is None
    assert plan.contact(wall(15)).relay == "a"
    assert plan.contact(wall(85)) is None and plan.contact(wall(95)) is None


def test_the_first_listed_relay_wins_an_overlap_and_the_other_takes_over_after() -> None:
    plan = plan_from_mapping(TWO, "t")
    assert plan.contact(wall(35)).relay == "a"
    c = plan.contact(wall(45))
    assert c.relay == "b" and c.rate_bps == 5000 and c.latency_ms == 1310
    assert c.closes_at == pytest.approx(wall(80))


def test_the_rate_cycles_per_pass() -> None:
    plan = plan_from_mapping(TWO, "t")
    assert plan.contact(wall(15)).rate_bps == 1000
    assert plan.contact(wall(115)).rate_bps == 2000
    assert plan.contact(wall(215)).rate_bps == 1000


def test_next_open_finds_the_next_window() -> None:
    plan = plan_from_mapping(TWO, "t")
    assert plan.next_open(wall(85)) == pytest.approx(wall(110))
    assert plan.next_open(wall(15)) == wall(15)


def test_no_relays_means_always_open_at_the_process_rate() -> None:
    plan = load_plan({"rate_bps": 123000.0, "relays": []})
    assert plan.always_open and plan.contact(12345.6).rate_bps == 123000.0


def test_a_schedule_file_overrides_inline_keys(tmp_path) -> None:
    f = tmp_path / "relays.yaml"
    f.write_text(yaml.safe_dump(TWO))
    plan = load_plan({"relays_file": str(f), "relays": []})
    assert [r.name for r in plan.relays] == ["a", "b"] and plan.time_scale == 10.0


@pytest.mark.parametrize("bad", [
    {"relays": [{"name": "a", "lander_windows_s": [[50, 10]], "period_s": 100}]},
    {"relays": [{"name": "a", "rate_bps": 10}]},
    {"relays": [{"name": "a"}, {"name": "a"}]},
    {"relays": [{"name": "a", "colour": "red"}]},
    {"relays": "a"},
])
def test_bad_plans_raise_config_errors(bad: dict) -> None:
    with pytest.raises(ConfigError):
        plan_from_mapping(bad, "t")


def test_the_repo_schedule_file_loads() -> None:
    plan = load_plan({"relays_file": "configs/relays.yaml"})
    assert len(plan.relays) == 2 and not plan.always_open


def test_the_contact_clock_counts_only_open_contact_time() -> None:
    plan = plan_from_mapping(TWO, "t")
    now = [wall(0)]
    clock = ContactClock(plan, lambda: now[0])
    for k in range(1, 1001):  # one orbit (100 orbit s = 10 wall s), sampled every 0.01 wall s
        now[0] = wall(0) + k * 0.01
        clock()
    assert clock() == pytest.approx(7.0, abs=0.02)  # open from orbit 10 to 80 (a, then b)
