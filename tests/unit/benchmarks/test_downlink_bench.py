"""Smoke tests of benchmarks/downlink.py: well-formed tables at toy sizes. No timing assertions."""

from __future__ import annotations

import math

import pytest

from benchmarks.__main__ import BENCHES, SIZES
from benchmarks.downlink import bench_downlink, goodput_config
from framework.config import validate_config


def test_the_downlink_benchmarks_are_registered_with_both_sizes() -> None:
    for name in ("downlink", "reencode"):
        assert name in BENCHES and set(SIZES[name]) == {"full", "quick"}


def test_the_goodput_config_is_valid() -> None:
    cfg = validate_config(goodput_config(2e6, 0.05, 4.0, 200.0, 1e9))
    assert cfg.processes["relay"]["loss"] == 0.05
    coded = validate_config(goodput_config(2e6, 0.05, 4.0, 200.0, 1e9, fec=True))
    assert coded.processes["downlink"]["fec"] == {"enabled": True, "initial_loss": 0.02}


@pytest.mark.integration
def test_goodput_at_toy_size_gives_a_row_per_loss() -> None:
    table = bench_downlink(rate_bps=1e6, window_s=2.0, size_px=128, losses=(0.0,), latency_ms=50.0, rounds=1)
    row, plain = table.rows
    assert row["loss"] == "0%" and math.isfinite(row["vs_rate"]) and row["vs_rate"] > 0
    assert row["first_thumbnail_s"] is not None
    assert (row["leg"], plain["leg"]) == ("coded", "plain CFDP") and plain["vs_rate"] > 0
