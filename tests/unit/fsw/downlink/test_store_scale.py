"""The store stays flat with many items: every query the downlink makes per turn is an index search (never a
scan of the items), the running totals are kept and, for an index from before them, counted at open, and the
'rest' order's index follows the policy's age weight."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from benchmarks.store import fill_store
from framework.errors import ConfigError
from fsw.downlink.policy import CLASSES, Policy
from fsw.downlink.reencoder import REENCODE_KINDS
from fsw.downlink.store import ProductStore
from fsw.imaging.product import PRODUCT_KINDS

# Walks in index order that the store stops after a few rows (the first sendable item, the next victims).
ORDERED_WALKS = ("items_rest_order", "items_refused", "items_rest_grade")
SMALL_TABLES = ("totals", "open_transactions")  # a row per (class, kind, codec) / per transaction in flight


class FakeClock:
    def __init__(self, t: float = 1e6) -> None:
        self.t = t

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def plan_faults(db: sqlite3.Connection, statements: list[str]) -> list[str]:
    """Each statement's query plan lines that read every item: a table scan, a whole-index scan that
    is not an ordered walk, or a sort (statements that read only small tables aside)."""
    bad = []
    for sql in statements:
        if re.match(r"\s*(--|BEGIN|COMMIT|ROLLBACK|PRAGMA|SAVEPOINT|RELEASE)", sql, re.I):
            continue
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]
        if {m.group(1) for m in (re.match(r"(?:SCAN|SEARCH) (\w+)", d) for d in plan) if m} <= set(SMALL_TABLES):
            continue  # only small tables read: a sort of a few rows is fine
        for detail in plan:
            walk = re.match(r"SCAN (\w+)(?: USING (?:COVERING )?INDEX (\w+))?", detail)
            if "TEMP B-TREE" in detail or (walk and walk.group(1) not in SMALL_TABLES
                                           and walk.group(2) not in ORDERED_WALKS):
                bad.append(f"{detail}  <-  {sql[:160]}")
    return bad


def test_every_query_of_a_downlink_turn_searches_an_index_and_never_reads_every_item(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", clock=FakeClock(), quota_bytes=3000 * 2048)
    fill_store(store, 3000, 1e6)
    store.add("thumb", "thumbnail", b"t" * 100)
    store.add("seg", "tlm", b"s" * 100)
    seen: list[str] = []
    store.db.set_trace_callback(seen.append)
    flying = [store.next().id]
    store.set_state(flying[0], "sending")
    flying.append(store.next(exclude=set(flying)).id)
    seq = store.begin_transaction(flying[0], 0x10)
    store.transaction_progress(seq, 100, False)
    store.transaction_closed(seq)
    store.add("new", "full", b"n" * 2048, score=0.7, codec="jpegxl:effort=1")  # evicts: the store is full
    assert store.evicted
    store.set_state("p-0000017", "refused")
    store.add("new2", "full", b"n" * 2048, score=0.7)  # evicts the refused item first
    store.confirm("new")
    store.request("p-0000021")
    for cand in store.reencode_candidates(REENCODE_KINDS, "jpegxl:effort=7", 1):
        store.replace_payload(cand.id, b"r" * 10, "jpegxl:effort=7")
        store.mark_reencoded(cand.id)
    store.oldest_created(PRODUCT_KINDS), store.total_bytes(), len(store), store.depth_by_class()
    store.reencode_backlog(REENCODE_KINDS, "jpegxl:effort=7")
    [store.get(pid) for pid in flying]
    store.db.set_trace_callback(None)
    assert len(seen) > 20
    assert plan_faults(store.db, seen) == []


def test_the_totals_match_the_rows_after_every_kind_of_change(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", clock=FakeClock(), quota_bytes=400)
    store.add("a", "full", b"a" * 100, score=0.1, codec="c1")
    store.add("b", "thumbnail", b"b" * 50)
    store.add("c", "roi", b"c" * 120, score=0.9, codec="c1")
    store.replace_payload("c", b"x" * 70, "c2")
    store.request("a")
    store.confirm("b")
    store.add("d", "full", b"d" * 200, score=0.5, codec="c1")
    store.add("e", "full", b"e" * 100, score=0.9, codec="c1")  # over quota: 'd' goes ('a' is requested now)
    assert [v.id for v in store.evicted] == ["d"]
    store.set_state("e", "sending")
    store.mark_reencoded("a")
    rows = store.db.execute("SELECT cls, kind, codec, reencoded, COUNT(*), SUM(size) FROM items "
                            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4").fetchall()
    kept = store.db.execute("SELECT cls, kind, codec, reencoded, items, bytes FROM totals "
                            "ORDER BY 1, 2, 3, 4").fetchall()
    assert kept == rows
    assert len(store) == store.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    assert store.total_bytes() == store.db.execute("SELECT SUM(size) FROM items").fetchone()[0]


def test_an_index_from_before_the_running_totals_gets_them_counted_when_opened(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = ProductStore(root, clock=FakeClock())
    store.add("a", "full", b"a" * 10, codec="jpegls")
    store.add("b", "thumbnail", b"b" * 20)
    store.add("c", "tlm_playback", b"c" * 30)
    before = (len(store), store.total_bytes(), store.depth_by_class(), store.reencode_backlog(("full",), "jxl"))
    for name in ("totals_insert", "totals_delete", "totals_update"):
        store.db.execute(f"DROP TRIGGER {name}")
    store.db.execute("DROP TABLE totals")
    for name in ("items_seq", "items_kind_age", "items_class_age", "items_rest_grade", "items_refused",
                 "items_to_reencode", "items_rest_order"):
        store.db.execute(f"DROP INDEX {name}")
    store.close()
    store = ProductStore(root, clock=FakeClock())
    assert (len(store), store.total_bytes(), store.depth_by_class(),
            store.reencode_backlog(("full",), "jxl")) == before == (3, 60, before[2], 1)
    assert store.depth_by_class()["thumbnail"] == 1 and store.depth_by_class()["playback"] == 1
    store.confirm("a")
    assert (len(store), store.total_bytes()) == (2, 50)


def test_a_changed_age_weight_remakes_the_rest_order_index_and_the_order_follows_it(tmp_path: Path) -> None:
    root = tmp_path / "s"
    clock = FakeClock()
    store = ProductStore(root, clock=clock, policy=Policy(age_weight_per_h=0.0))
    store.add("old_poor", "full", b"o", score=0.1)
    clock.t += 3600 * 100
    store.add("new_good", "full", b"n", score=0.9)
    assert store.next().id == "new_good" and store.ids()[0] == "new_good"
    store.close()
    store = ProductStore(root, clock=clock, policy=Policy(age_weight_per_h=1.0))  # 100 h of age beats 0.8 of grade
    assert store.next().id == "old_poor" and store.ids()[0] == "old_poor"
    sql = store.db.execute("SELECT sql FROM sqlite_master WHERE name = 'items_rest_order'").fetchone()[0]
    assert "1.0 * created" in sql


def test_next_breaks_a_rounding_tie_as_the_full_order_does(tmp_path: Path) -> None:
    """Grade and age that tie exactly on paper: the index's form and the order's form may round them
    apart differently; next() follows the order's."""
    w = 50.0
    clock = FakeClock(0.0)
    store = ProductStore(tmp_path / "s", clock=clock, policy=Policy(age_weight_per_h=w))
    for i in range(12):
        store.add(f"p{i}", "full", b"x", score=i * w * 0.5 / 3600.0 + (i % 3) * 1e-17)
        clock.t -= 0.5  # each item half a second younger than the one before, and graded as much higher
    for now in (1e6, 12345.678, 3.0):
        order = store.ids(now=now)
        assert store.next(now=now).id == order[0]
        assert store.next(exclude={order[0], order[3]}, now=now).id == order[1]


def test_an_age_weight_that_is_not_a_finite_number_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="age_weight_per_h"):
        Policy.from_settings(list(CLASSES), float("inf"))
