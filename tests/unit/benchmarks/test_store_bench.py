"""Smoke tests of benchmarks/store.py: well-formed tables at toy sizes, and the queue it leaves opens clean.
No timing assertions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.__main__ import BENCHES, SIZES
from benchmarks.figures import render
from benchmarks.store import OPERATIONS, bench_store, bench_store_pass, queue_products
from fsw.downlink.store import ProductStore


def test_the_store_benchmarks_are_registered_with_both_sizes() -> None:
    for name in ("store", "store_pass"):
        assert name in BENCHES and set(SIZES[name]) == {"full", "quick"}


def test_the_store_benchmark_at_toy_sizes_gives_every_operation_at_every_size() -> None:
    table = bench_store(sizes=(50, 200), rounds=2, calls=3)
    assert table.columns[2].is_ratio
    assert [(r["op"], r["items"]) for r in table.rows] == [(op, n) for op in OPERATIONS for n in (50, 200)]
    for row in table.rows:
        assert math.isfinite(row["vs_smallest"]) and row["vs_smallest"] > 0
        assert 0 < row["min_us"] <= row["median_us"] <= row["max_us"]
        if row["items"] == 50:
            assert row["vs_smallest"] == 1.0
    text = render(table)
    assert "machine load" in text and table.baseline in text


def test_a_queued_store_opens_clean_with_every_item_and_its_crc(tmp_path: Path) -> None:
    queue_products(tmp_path / "store", 30)
    store = ProductStore(tmp_path / "store")
    assert store.recovery.clean and len(store) == 30 and store.depth_by_class()["rest"] == 30
    item = store.next()
    assert item is not None and item.crc32c is not None and item.path.stat().st_size == item.size
    store.close()


@pytest.mark.integration
def test_the_pass_with_a_queue_at_toy_size_compares_with_an_empty_store() -> None:
    table = bench_store_pass(rate_bps=1e6, window_s=2.0, size_px=64, latency_ms=50.0, queued=200, rounds=1,
                             lead_s=5.0)
    rows = {r["store"].split()[-1]: r for r in table.rows}
    assert rows["empty"]["vs_empty"] == 1.0 and rows["queued"]["vs_empty"] is not None
