"""The re-encoder's decisions: the measured table, what fits a wait, how long an item waits by the plan."""

from __future__ import annotations

import math
from typing import Any

import pytest

from fsw.downlink.reencode_policy import (MIN_GAIN, SAFETY, budget_in_order, budget_s, choose, estimate,
                                          profile_for, settings_for, time_to_carry, top_two, waits)
from fsw.imaging.codec_table import TABLE
from link.contacts import plan_from_mapping


def _row(codec: str | None, params: dict[str, Any], bpp: float, enc: float, dec: float = 0.05) -> dict[str, Any]:
    tag = None if codec is None else codec + "".join(f":{k}={v}" for k, v in params.items())
    return {"label": tag or "foreign", "codec": codec, "params": params, "tag": tag, "bits_per_px": bpp,
            "enc_s_per_mpix": enc, "dec_s_per_mpix": dec}


TOY = {"cam": {"bit_depth": 12, "pattern": "mono", "rows": [
    _row("jpegxl", {"effort": 1}, 9.0, 0.002, 0.006),
    _row("jpegxl", {"effort": 3}, 8.24, 0.035, 0.03),
    _row("jpegxl", {"effort": 5}, 8.15, 0.2, 0.045),
    _row("jpegxl", {"effort": 7}, 8.17, 0.5, 0.07),  # larger and slower than effort 5: never the answer
    _row(None, {}, 8.0, 0.1),  # smallest, but the ground cannot decode it
]}, "colour": {"bit_depth": 8, "pattern": "RGGB", "rows": [_row("jpegxl", {"effort": 1}, 7.0, 0.003)]}}


def test_measured_table_covers_both_camera_profiles_and_every_jpegxl_effort() -> None:
    for name, bits, pattern in (("navcam", 12, "mono"), ("context", 8, "RGGB")):
        p = TABLE[name]
        assert (p["bit_depth"], p["pattern"]) == (bits, pattern)
        tags = {r["tag"] for r in p["rows"]}
        assert {f"jpegxl:effort={e}" for e in range(1, 10)} <= tags
        assert {"jpegls", "png:level=9"} <= tags
        assert all(r["bits_per_px"] > 0 and r["enc_s_per_mpix"] > 0 for r in p["rows"])


def test_only_ground_decodable_settings_on_the_pareto_front_are_offered() -> None:
    front = settings_for("cam", TOY)
    assert [s.tag for s in front] == ["jpegxl:effort=1", "jpegxl:effort=3", "jpegxl:effort=5"]
    for s in settings_for("navcam"):  # the real table: each slower one is smaller
        assert s.codec is not None
    bpps = [s.bits_per_px for s in settings_for("navcam")]
    assert bpps == sorted(bpps, reverse=True)


def test_a_product_maps_to_its_camera_or_the_nearest_profile_of_its_pattern() -> None:
    assert profile_for("cam", 12, "mono", TOY) == "cam"
    assert profile_for("monitor", 12, "mono", TOY) == "cam"
    assert profile_for("other", 8, "RGGB", TOY) == "colour"
    assert profile_for("monitor", 12, "mono") == "navcam"
    assert profile_for("context2", 8, "RGGB") == "context"


def test_a_long_wait_gets_the_smallest_setting_and_a_short_one_a_faster_one() -> None:
    long = choose("cam", "jpegxl:effort=1", 4.0, math.inf, 1.0, table=TOY)
    assert long.setting is not None and long.setting.tag == "jpegxl:effort=5"
    # effort 5 on 4 Mpix costs 4 x (0.006 + 0.2 + 0.045) = 1.0 s; effort 3 costs 0.26 s
    short = choose("cam", "jpegxl:effort=1", 4.0, 0.5, 1.0, table=TOY)
    assert short.setting is not None and short.setting.tag == "jpegxl:effort=3"
    assert short.predicted_s == pytest.approx(4.0 * (0.006 + 0.035 + 0.03))
    slow_machine = choose("cam", "jpegxl:effort=1", 4.0, 0.5, 10.0, table=TOY)
    assert slow_machine.setting is None and slow_machine.reason == "about_to_leave"


def test_a_product_already_at_the_smallest_setting_is_left_alone() -> None:
    assert choose("cam", "jpegxl:effort=5", 4.0, math.inf, 1.0, table=TOY).reason == "no_gain"
    # effort 3 -> 5 saves 1.1 %: above MIN_GAIN, taken
    assert (8.24 - 8.15) / 8.24 > MIN_GAIN
    assert choose("cam", "jpegxl:effort=3", 4.0, math.inf, 1.0, table=TOY).setting.tag == "jpegxl:effort=5"


def test_a_configured_codec_is_used_only_when_it_fits_the_wait() -> None:
    got = choose("cam", "jpegxl:effort=1", 1.0, 100.0, 1.0, fixed=("jpegxl", {"effort": 7}), table=TOY)
    assert got.setting is not None and got.setting.tag == "jpegxl:effort=7"
    late = choose("cam", "jpegxl:effort=1", 1.0, 0.01, 1.0, fixed=("jpegxl", {"effort": 7}), table=TOY)
    assert late.setting is None and late.reason == "about_to_leave"
    same = choose("cam", "jpegxl:effort=7", 1.0, 100.0, 1.0, fixed=("jpegxl", {"effort": 7}), table=TOY)
    assert same.reason == "no_gain"


def _plan(windows: list[list[float]], rate_bps: float = 8e6, period_s: float = 1000.0) -> Any:
    return plan_from_mapping({"time_scale": 1.0, "epoch_s": 0.0,
                              "relays": [{"name": "r", "period_s": period_s, "lander_windows_s": windows,
                                          "rate_bps": rate_bps, "latency_ms": 10}]}, "<test>")


def test_time_to_carry_waits_for_the_next_pass_and_spills_into_the_one_after() -> None:
    plan = _plan([[100.0, 110.0], [500.0, 600.0]])  # 10 MB in the first window at 8 Mbit/s
    assert time_to_carry(plan, 0.0, 1_000_000) == pytest.approx(101.0)
    assert time_to_carry(plan, 105.0, 1_000_000) == pytest.approx(1.0)  # open now
    assert time_to_carry(plan, 0.0, 12_000_000) == pytest.approx(502.0)  # 10 MB in the first, 2 MB in the next
    assert time_to_carry(plan, 0.0, 1_000_000, horizon_s=50.0) == math.inf


class _Item:
    def __init__(self, pid: str, size: int) -> None:
        self.id, self.size = pid, size


def test_each_candidate_waits_for_what_is_ahead_of_it_and_itself() -> None:
    order = [_Item("a", 100), _Item("b", 200), _Item("c", 300), _Item("d", 400)]
    got = waits(iter(order), {"b", "d"}, lambda n: n / 100.0)
    assert got == {"b": 3.0, "d": 10.0}
    # not met within the walk: at least what was walked
    assert waits(iter(order), {"zz"}, lambda n: n / 100.0, max_walk=2) == {"zz": 3.0}


def test_the_budget_is_a_fraction_of_the_wait_shared_by_the_backlog() -> None:
    assert budget_s(10.0, 1) == pytest.approx(10.0 / SAFETY)
    assert budget_s(10.0, 10) == pytest.approx(1.0)
    assert budget_s(math.inf, 100) == math.inf
    assert budget_s(0.0, 1) == 0.0


def test_with_room_for_both_the_tables_two_smallest_are_tried_else_the_smallest_that_fits() -> None:
    # effort 7 is off the Pareto front (larger and slower than effort 5 on average) but second smallest:
    # on one frame it may be the smaller, so with room for both the worker tries both
    assert [s.tag for s in top_two("cam", "jpegxl:effort=1", TOY)] == ["jpegxl:effort=5", "jpegxl:effort=7"]
    both = choose("cam", "jpegxl:effort=1", 1.0, math.inf, 1.0, table=TOY)
    assert [s.tag for s in both.settings] == ["jpegxl:effort=5", "jpegxl:effort=7"]
    # decode the stored bytes once, encode both, decode the kept one to prove it
    assert both.predicted_s == pytest.approx(0.006 + 0.2 + 0.5 + 0.07)
    one = choose("cam", "jpegxl:effort=1", 1.0, 0.5, 1.0, table=TOY)
    assert [s.tag for s in one.settings] == ["jpegxl:effort=5"]
    # the smallest does not fit: a faster one alone, never a pair below the best
    short = choose("cam", "jpegxl:effort=1", 1.0, 0.1, 1.0, table=TOY)
    assert [s.tag for s in short.settings] == ["jpegxl:effort=3"]
    assert top_two("cam", "jpegxl:effort=5", TOY) == []  # nothing gains over the smallest


def test_an_items_cost_is_estimated_from_its_camera_codec_and_size() -> None:
    # 1 Mpix at effort 1 (9 bits/px) is 1.125 MB: undo 0.006, cheapest effort 3 (0.065), smallest effort 5 (0.245)
    e = estimate("cam", "jpegxl:effort=1", 1_125_000, 1.0, TOY)
    assert e.cheapest_s == pytest.approx(0.006 + 0.035 + 0.03)
    assert e.best_s == pytest.approx(0.006 + 0.2 + 0.045)
    assert estimate("cam", "jpegxl:effort=1", 1_125_000, 3.0, TOY).best_s == pytest.approx(3 * e.best_s)
    assert estimate("cam", "jpegxl:effort=5", 1_125_000, 1.0, TOY).cheapest_s == math.inf  # nothing gains
    # a camera the table lacks: the dearer profile
    assert estimate("other", "jpegxl:effort=1", 1_125_000, 1.0, TOY).best_s >= e.best_s


def test_in_sending_order_the_first_leaves_every_later_item_its_own_time() -> None:
    # alone, or with later items that have room: 1/SAFETY of its own wait
    assert budget_in_order([10.0], [1.0]) == pytest.approx(10.0 / SAFETY)
    assert budget_in_order([10.0, 100.0], [1.0, 1.0]) == pytest.approx(10.0 / SAFETY)
    # the second must be done by 20 / SAFETY and needs 8: the first (needing 1) may take the rest
    assert budget_in_order([10.0, 20.0], [1.0, 8.0]) == pytest.approx(20.0 / SAFETY - 8.0)
    # an item that could not have its cost even alone reserves nothing
    assert budget_in_order([10.0, 20.0], [1.0, 50.0]) == pytest.approx(10.0 / SAFETY)
    # not both can have their smallest setting (6.5 + 8 > 16 / SAFETY): an equal share of the time to each deadline
    assert budget_in_order([10.0, 16.0], [6.5, 8.0]) == pytest.approx(16.0 / SAFETY / 2)
    assert budget_in_order([10.0, 12.0, 14.0], [6.0, 6.0, 6.0]) == pytest.approx(14.0 / SAFETY / 3)
    assert budget_in_order([math.inf, math.inf], [5.0, 5.0]) == math.inf
    assert budget_in_order([10.0, math.inf], [1.0, 1e9]) == pytest.approx(10.0 / SAFETY)
    assert budget_in_order([0.0, 1.0], [0.1, 0.1]) == pytest.approx(0.0)
