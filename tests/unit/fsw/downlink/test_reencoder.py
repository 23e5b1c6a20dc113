"""The re-encoder's turns against a real store and its real worker process: what it takes, what it leaves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from framework.crc import pixels_crc32c
from fsw.downlink.reencode_policy import settings_for, top_two
from fsw.downlink.reencoder import RECENT_JOBS, START_SLOWDOWN, Reencoder, Result, sending_order
from fsw.downlink.store import ProductStore
from fsw.imaging.codecs import codec_tag, encode_pixels
from fsw.imaging.product import Product, decode_product, encode_product, product_id
from fsw.imaging.reencode import reencode
from link.contacts import plan_from_mapping


def _frame(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:128, 0:128]
    base = 1500 + 600 * np.sin(x / 9.0) * np.cos(y / 13.0)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 4095).astype(np.uint16)


def _product(counter: int) -> tuple[str, bytes, np.ndarray]:
    px = _frame(counter)
    params = {"bit_depth": 12, "effort": 1}
    p = Product(id=product_id("navcam", counter, "full"), kind="full", camera="navcam", counter=counter,
                t_capture=float(counter), codec="jpegxl", shape=px.shape, dtype="uint16", bit_depth=12,
                payload=encode_pixels("jpegxl", px, params), crc32c=pixels_crc32c(px), codec_params=params,
                meta={"pattern": "mono"}, grades={"score": 0.5})
    return p.id, encode_product(p), px


def _plan(windows: list[list[float]], rate_bps: float) -> Any:
    return plan_from_mapping({"time_scale": 1.0, "epoch_s": 0.0,
                              "relays": [{"name": "r", "period_s": 100_000.0, "lander_windows_s": windows,
                                          "rate_bps": rate_bps, "latency_ms": 10}]}, "<test>")


@pytest.fixture
def worker() -> Iterator[Reencoder]:
    r = Reencoder("table", {}, nice=0)
    yield r
    r.close()


def _store(tmp_path: Path, n: int) -> tuple[ProductStore, dict[str, np.ndarray]]:
    store = ProductStore(tmp_path / "store")
    frames = {}
    for counter in range(1, n + 1):
        pid, data, px = _product(counter)
        store.add(pid, "full", data, score=0.5, codec="jpegxl:effort=1")
        frames[pid] = px
    return store, frames


def _turns(r: Reencoder, store: ProductStore, plan: Any, now: float, until: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline:
        assert r.step(store, plan, now) == []
        time.sleep(0.01)


def test_products_waiting_through_an_outage_get_the_smaller_of_the_tables_two_best_settings_bit_exact(
        tmp_path: Path, worker: Reencoder) -> None:
    store, frames = _store(tmp_path, 2)
    originals = {i.id: i.path.read_bytes() for i in store.items()}
    plan = _plan([[10_000.0, 10_100.0]], 8e6)  # the next pass opens in almost three hours
    two = top_two("navcam", "jpegxl:effort=1")
    assert two[0].tag == min(settings_for("navcam"), key=lambda s: s.bits_per_px).tag
    _turns(worker, store, plan, 0.0, lambda: worker.c["reencoded"] + worker.c["reencode_not_smaller"] == 2)
    assert worker.c["reencoded"] == 2 and worker.c["reencode_skipped_leaving"] == 0
    for item in store.items():
        assert item.codec in {s.tag for s in two}
        product, pixels = decode_product(item.path.read_bytes())
        assert np.array_equal(pixels, frames[item.id]) and product.meta["reencoded_from"] == "jpegxl"
        # frame by frame, never more bytes than either of the two alone (the table's best among them)
        for s in two:
            alone = reencode(originals[item.id], s.codec, s.params)
            assert alone is not None and item.size <= alone.new_bytes
    assert store.reencode_candidates(("full",), worker.tag) == []


def test_products_about_to_leave_in_an_open_pass_are_not_touched(tmp_path: Path, worker: Reencoder) -> None:
    store, _ = _store(tmp_path, 3)
    plan = _plan([[0.0, 10_000.0]], 1e9)  # open now and fast: everything leaves in milliseconds
    before = {i.id: (i.gen, i.size) for i in store.items()}
    for _ in range(3):
        assert worker.step(store, plan, 0.0) == []
    assert worker.busy is None and worker.c["reencode_skipped_leaving"] == 3
    assert {i.id: (i.gen, i.size) for i in store.items()} == before
    # held off, not marked: once held long enough and the plan says they wait, they are taken
    late = _plan([[0.0, 1.0]], 1e9)
    _turns(worker, store, late, 10.0, lambda: worker.c["reencoded"] == 3)
    assert all(i.gen == 1 for i in store.items())


def test_a_product_that_went_in_flight_meanwhile_keeps_its_bytes_and_counts_as_a_lost_race(
        tmp_path: Path, worker: Reencoder) -> None:
    store, _ = _store(tmp_path, 1)
    plan = _plan([[10_000.0, 10_100.0]], 8e6)
    worker.step(store, plan, 0.0)
    assert worker.busy is not None
    pid = worker.busy[0]
    store.set_state(pid, "sending")
    before = store.get(pid)
    _turns(worker, store, plan, 0.0, lambda: worker.busy is None)
    assert worker.c["reencode_lost_race"] == 1 and worker.c["reencoded"] == 0
    after = store.get(pid)
    assert (after.gen, after.size, after.codec) == (before.gen, before.size, before.codec)


def test_sending_order_walks_the_store_as_it_will_send(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s")
    store.add("f1", "full", b"a")
    store.add("t1", "thumbnail", b"b")
    store.add("f2", "full", b"c")
    assert [i.id for i in sending_order(store)] == store.ids() == ["t1", "f1", "f2"]


def test_the_worker_takes_first_the_item_that_leaves_first(tmp_path: Path, worker: Reencoder) -> None:
    store, _ = _store(tmp_path, 3)
    order = [i.id for i in sending_order(store)]
    plan = _plan([[100.0, 200.0]], 8e6)  # all wait about 100 s; each takes milliseconds to re-encode
    assert worker.step(store, plan, 0.0) == []
    assert worker.busy is not None and worker.busy[0] == order[0]
    _turns(worker, store, plan, 0.0, lambda: worker.c["reencoded"] == 3)


def test_an_item_about_to_leave_is_passed_over_for_the_one_after_it(tmp_path: Path, worker: Reencoder) -> None:
    store, _ = _store(tmp_path, 2)
    first, second = list(sending_order(store))
    carries = first.size * 8 / 8e6
    plan = _plan([[0.0, carries * 1.5], [1000.0, 1100.0]], 8e6)  # the open window takes the first only
    assert worker.step(store, plan, 0.0) == []
    assert worker.busy is not None and worker.busy[0] == second.id
    assert worker.c["reencode_skipped_leaving"] == 1 and first.id in worker.hold
    _turns(worker, store, plan, 0.0, lambda: worker.busy is None)
    assert store.get(first.id).gen == 0 and store.get(second.id).gen == 1


def test_beyond_the_walk_the_newest_are_taken_when_the_walk_has_none(
        tmp_path: Path, worker: Reencoder, monkeypatch: pytest.MonkeyPatch) -> None:
    import fsw.downlink.reencoder as reencoder

    monkeypatch.setattr(reencoder, "MAX_WALK", 2)
    store, _ = _store(tmp_path, 4)
    order = [i.id for i in sending_order(store)]
    for pid in order[:2]:
        store.mark_reencoded(pid)  # the walk's two items were tried already
    assert worker.step(store, _plan([[10_000.0, 10_100.0]], 8e6), 0.0) == []
    assert worker.busy is not None and worker.busy[0] == order[-1]


def test_a_job_is_planned_with_the_worst_recent_slowdown_until_faster_jobs_replace_it(worker: Reencoder) -> None:
    def job(slowdown: float) -> Result:  # predicted 1 s at slowdown 1, took ``slowdown`` s
        return Result("x", 0, b"new", 10, wall_s=slowdown, predicted_s=1.0)

    assert worker.planned_slowdown == START_SLOWDOWN  # nothing measured yet
    for s in (1.0, 6.0, 1.0):
        worker.measure(job(s), 1.0)
    assert worker.planned_slowdown == 6.0 and worker.slowdown < 6.0
    for _ in range(RECENT_JOBS):
        worker.measure(job(1.0), 1.0)
    assert worker.planned_slowdown < 6.0
    worker.measure(Result("y", 0, None, 10, wall_s=50.0, predicted_s=1.0), 1.0)  # no result: nothing learnt
    assert worker.planned_slowdown < 6.0
