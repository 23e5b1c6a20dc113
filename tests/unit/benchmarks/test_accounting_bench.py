"""The frame-accounting benchmark runs end to end on tiny frames (its figures are not judged here)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.accounting import accounting_table, bench_accounting
from benchmarks.figures import render


def test_the_accounting_benchmark_gives_its_figures(tmp_path: Path) -> None:
    r = bench_accounting(size_px=64, n_frames=2, n_books=5, directory=tmp_path)
    assert r["frames_per_leg"] == 2 and r["books_cpu_us_p50"] > 0 and r["ratio_with_to_without"] > 0
    assert list(tmp_path.iterdir()) == []  # its journal went with its temporary directory


def test_the_accounting_table_gives_the_ratio_its_spread_and_the_load() -> None:
    table = accounting_table(size_px=64, n_frames=4, n_books=5, rounds=2)
    with_books, without = table.rows
    assert table.columns[1].is_ratio and without["ratio"] == 1.0
    assert 0 < with_books["ratio_min"] <= with_books["ratio"] <= with_books["ratio_max"]
    assert table.load is not None and "machine load" in render(table)
