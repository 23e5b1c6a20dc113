"""The product store at scale: what the downlink asks of it every turn, from 10^3 to 10^6 stored items.

Each size gets a fresh store whose index is filled in one transaction (the rows a long outage
leaves: mostly 'rest' products, lowest priority, graded at random, taken at 10 frames/s, a few
'playback' segments, a third already re-encoded), as full as its quota, with 16 items in flight.
Then, in several rounds, each operation the downlink loop does is timed, ``calls`` times a round:

``next``      the next item to send (:meth:`~fsw.downlink.store.ProductStore.next`, the in-flight
              items excluded), as :meth:`~fsw.downlink.forwarder.Forwarder.start_next` asks
``add``       a new product under the full quota, so the policy evicts to make room: file written
              and synced, row committed
``confirm``   the ground has one: row deleted (commit), file removed
``health``    every store figure the health tick reads
              (:meth:`~fsw.downlink.forwarder.Forwarder.store_figures`)
``reencode``  the re-encoder's next candidate, polled every turn

A round's figure is the mean time of one call; the table gives the median of the rounds and
their spread (min-max), and the ratio of the median to the same operation's at 10^3 items: a
store that stays flat reads ~1.0 at every size (issue 16's goal: <= 2 at 10^6). The bulk-filled
rows have no payload files (their bytes do not matter to the index; ``add`` and ``confirm`` work
on real files), and nothing reopens the store, whose opening scans every payload file.

End to end (:func:`bench_store_pass`): the goodput pass of :mod:`benchmarks.downlink` at 0 % loss
(real downlink, relay, ground), once with an empty store and once with ``queued`` low-priority
products already in it (real payload files, as a long outage leaves them: 'rest', graded below the
pass's own products, so they wait behind them), alternating, several rounds. The figure is the
goodput with the queue as a ratio of the goodput with an empty store (issue 16's goal: >= 0.97).
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from benchmarks.figures import Column, LoadWatch, Table, ratio

__all__ = ["bench_store", "bench_store_pass", "fill_store", "queue_products", "OPERATIONS"]

ITEM_BYTES = 2048
IN_FLIGHT = 16
CAPTURE_TAG = "jpegxl:effort=1"   # what the capture path stores (benchmarks.imaging.CAPTURE)
TARGET_TAG = "jpegxl:effort=7"    # the re-encoder's target
OPERATIONS = ("next", "add", "confirm", "health", "reencode")


def _rows(n: int, now: float, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    """``n`` index rows, oldest first: 98 % 'rest' products, 2 % 'playback' segments."""
    for i in range(n):
        created = now - (n - i) * 0.1
        if i % 50 == 49:
            yield (f"pb-{i:07d}", "tlm_playback", "playback", 0.0, ITEM_BYTES, created, "", 0, i + 1)
            continue
        kind = ("full", "full", "roi", "preview")[i % 4]
        done = rng.random() < 1 / 3
        yield (f"p-{i:07d}", kind, "rest", rng.random(), ITEM_BYTES, created, TARGET_TAG if done else CAPTURE_TAG,
               int(done), i + 1)


def fill_store(store: Any, n: int, now: float, seed: int = 16) -> None:
    """Index ``n`` items in one transaction (no payload files: see the module's note)."""
    db = store.db
    cache = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute("PRAGMA cache_size = -524288")  # 512 MiB while filling: a huge transaction that spills is slow
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO items (id, kind, cls, score, requested, size, created, codec, reencoded, seq) "
                       "VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?)", _rows(n, now, random.Random(seed)))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the fill's pages into the index file, as a store in use has them
    db.execute(f"PRAGMA cache_size = {int(cache)}")


def _health(store: Any, flying: list[str]) -> None:
    """What the forwarder's health tick reads of the store (Forwarder.store_figures)."""
    from fsw.downlink.reencoder import REENCODE_KINDS
    from fsw.imaging.product import PRODUCT_KINDS
    store.oldest_created(PRODUCT_KINDS)
    store.total_bytes()
    len(store)
    store.depth_by_class()
    sum(p.size for p in map(store.get, flying) if p)
    store.reencode_backlog(REENCODE_KINDS, TARGET_TAG)


def _timed(fn: Callable[[int], Any], calls: int) -> tuple[float, float]:
    """Mean wall and CPU seconds of one call of ``fn(i)`` over ``calls`` calls."""
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - t0) / calls, (time.process_time() - c0) / calls


def _measure(n: int, rounds: int, calls: int, tmp: Path) -> tuple[dict[str, list[tuple[float, float]]], float]:
    """Per operation, the mean call's wall and CPU time of each round; and the seconds building the store took."""
    from fsw.downlink.reencoder import REENCODE_KINDS
    from fsw.downlink.store import ProductStore

    now = time.time()
    t0 = time.perf_counter()
    store = ProductStore(tmp / f"store-{n}", quota_bytes=n * ITEM_BYTES)
    fill_store(store, n, now)
    build_s = time.perf_counter() - t0
    os.sync()  # the fill's writeback is done before anything is timed: each fsync then waits for its own bytes
    rng = random.Random(n)
    payload = bytes(ITEM_BYTES)
    try:
        flying: list[str] = []
        while len(flying) < IN_FLIGHT:
            flying.append(store.next(exclude=set(flying)).id)
        for pid in flying:
            store.set_state(pid, "sending")
        exclude = set(flying)
        times: dict[str, list[tuple[float, float]]] = {op: [] for op in OPERATIONS}
        for r in range(rounds):
            added = [f"new-{r}-{i}" for i in range(calls)]
            ops: dict[str, Callable[[int], Any]] = {
                "next": lambda i: store.next(exclude=exclude),
                "add": lambda i: store.add(added[i], "full", payload, score=rng.random(), codec=CAPTURE_TAG),
                "confirm": lambda i: store.confirm(added[i]),
                "health": lambda i: _health(store, flying),
                "reencode": lambda i: store.reencode_candidates(REENCODE_KINDS, TARGET_TAG, 1),
            }
            for op in OPERATIONS:
                times[op].append(_timed(ops[op], calls))
            store.evicted.clear()
    finally:
        store.close()
    return times, build_s


def bench_store(sizes: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000), rounds: int = 5,
                calls: int = 20) -> Table:
    """Each per-turn store operation's time per size, as a ratio to its time at the smallest size."""
    watch = LoadWatch()
    table = Table(
        name="store",
        title="Product store: the downlink's per-turn operations from 10^3 to 10^6 stored items",
        baseline=f"the same operation on a store of {sizes[0]:,} items, in this run (flat = 1.0; goal <= 2 at 10^6)",
        columns=[Column("op", "operation"), Column("items", "items", ","),
                 Column("vs_smallest", f"x {sizes[0]:,}", ".2f", True),
                 Column("cpu_vs_smallest", f"CPU x {sizes[0]:,}", ".2f", True),
                 Column("median_us", "median us", ",.0f"),
                 Column("min_us", "min us", ",.0f"), Column("max_us", "max us", ",.0f"),
                 Column("cpu_us", "CPU us", ",.0f")],
    )
    results: dict[int, dict[str, list[tuple[float, float]]]] = {}
    builds: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pdh-store-") as tmp:
        for n in sizes:
            results[n], build_s = _measure(n, rounds, calls, Path(tmp))
            builds.append(f"{n:,}: {build_s:.1f} s")
    for op in OPERATIONS:
        base = statistics.median(w for w, _ in results[sizes[0]][op])
        cpu_base = statistics.median(c for _, c in results[sizes[0]][op])
        for n in sizes:
            t = [w for w, _ in results[n][op]]
            med, cpu = statistics.median(t), statistics.median(c for _, c in results[n][op])
            table.rows.append({"op": op, "items": n, "vs_smallest": ratio(med, base),
                               "cpu_vs_smallest": ratio(cpu, cpu_base), "median_us": med * 1e6,
                               "min_us": min(t) * 1e6, "max_us": max(t) * 1e6, "cpu_us": cpu * 1e6})
    table.load = watch.done()
    table.notes.append(f"{rounds} rounds of {calls} calls per operation and size; a round's figure is the mean call; "
                       "median and min-max over the rounds (wall time); CPU: this process's CPU time, median of "
                       "the rounds (add and confirm wait on fsync, whose latency is the disk's, not the index's)")
    table.notes.append(f"{IN_FLIGHT} items in flight (excluded from next); 98 % 'rest' at 10 frames/s, 2 % 'playback', "
                       f"a third already re-encoded; {ITEM_BYTES} B each; quota full, so every add evicts")
    table.notes.append("building each store (open + one-transaction fill of the index): " + ", ".join(builds))
    return table


PASS_LEAD_S = 14.0  # the downlink opens a queued store and its start-up scrub reads it before the window opens


def queue_products(root: Path, n: int, side: int = 16) -> None:
    """``n`` small lossless 'rest' products (grade 0.1) in a store at ``root``, payload files and
    rows, indexed in one transaction (not synced one by one: this is the bench's setup, not a capture)."""
    from framework.crc import pixels_crc32c
    from fsw.downlink.payload import data_crc32c, payload_name
    from fsw.downlink.store import ProductStore
    from fsw.imaging.codecs import encode_pixels
    from fsw.imaging.product import Product, encode_product, product_id

    pixels = np.random.default_rng(n).integers(0, 1 << 12, size=(side, side), dtype=np.uint16)
    payload, crc = encode_pixels("jpegls", pixels, {"bit_depth": 12}), pixels_crc32c(pixels)
    store = ProductStore(root)
    now = time.time()
    rows = []
    for i in range(n):
        pid = product_id("queued", i, "full")
        data = encode_product(Product(id=pid, kind="full", camera="queued", counter=i, t_capture=now - n + i,
                                      codec="jpegls", shape=pixels.shape, dtype=str(pixels.dtype), bit_depth=12,
                                      payload=payload, crc32c=crc, grades={"score": 0.1},
                                      codec_params={"bit_depth": 12}))
        (store.payload_dir / payload_name(pid, 0)).write_bytes(data)
        rows.append((pid, 0.1, len(data), now - (n - i) * 0.01, i + 1, data_crc32c(data)))
    db = store.db
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO items (id, kind, cls, score, requested, size, created, codec, seq, crc32c) "
                       "VALUES (?, 'full', 'rest', ?, 0, ?, ?, 'jpegls', ?, ?)", rows)
    store.close()
    os.sync()


def bench_store_pass(rate_bps: float = 8e6, window_s: float = 12.0, size_px: int = 1024,
                     latency_ms: float = 1290.0, queued: int = 100_000, rounds: int = 2,
                     lead_s: float = PASS_LEAD_S) -> Table:
    """Goodput of a pass at 0 % loss with ``queued`` products waiting, as a ratio of an empty store's."""
    from benchmarks.downlink import _products, _run_pass

    watch = LoadWatch()
    per_frame = len(_products(size_px, 1)[1][2])
    products = _products(size_px, max(2, int(rate_bps / 8 * window_s * 1.3 / per_frame) + 1))
    got: dict[str, list[dict[str, Any]]] = {"empty": [], "queued": []}
    setup: list[float] = []

    def prepare(out: Path) -> None:
        t0 = time.perf_counter()
        queue_products(out / "store", queued)
        setup.append(time.perf_counter() - t0)

    for _ in range(rounds):
        for leg in got:
            got[leg].append(_run_pass(products, rate_bps, 0.0, window_s, latency_ms, lead_s=lead_s,
                                      prepare=prepare if leg == "queued" else None))
    goodput = {leg: [r["new_file_bytes"] * 8 / window_s for r in rs] for leg, rs in got.items()}
    base = statistics.median(goodput["empty"])
    table = Table(
        name="store_pass",
        title=f"A pass at 0 % loss with {queued:,} low-priority products already queued in the store",
        baseline="the same pass with an empty store, in this run (goal: >= 0.97)",
        columns=[Column("store", "store"), Column("vs_empty", "x empty store", ".3f", True),
                 Column("vs_rate", "x rate", ".3f", True), Column("goodput_mbps", "Mbit/s", ".2f"),
                 Column("min_mbps", "min", ".2f"), Column("max_mbps", "max", ".2f"),
                 Column("products", "complete products")],
    )
    for leg, label in (("empty", "empty"), ("queued", f"{queued:,} queued")):
        g = goodput[leg]
        med = statistics.median(g)
        table.rows.append({"store": label, "vs_empty": ratio(med, base), "vs_rate": ratio(med, rate_bps),
                           "goodput_mbps": med / 1e6, "min_mbps": min(g) / 1e6, "max_mbps": max(g) / 1e6,
                           "products": statistics.median(r["products"] for r in got[leg])})
    table.load = watch.done()
    table.notes.append(f"{rounds} rounds, the legs alternating; one window of {window_s:g} s at "
                       f"{rate_bps / 1e6:g} Mbit/s, one-way light time {latency_ms:g} ms; {len(products)} products "
                       f"of a {size_px}x{size_px} frame and its thumbnail pushed before the window opens (goodput "
                       "as in the downlink benchmark)")
    table.notes.append(f"the queue: {queued:,} lossless 'rest' products, grade 0.1 (the pass's own are 0.5), "
                       "real payload files, written in " + ", ".join(f"{t:.1f} s" for t in setup)
                       + f"; the window opens {lead_s:g} s after the processes start, once the downlink "
                       "has opened the store and its start-up scrub has read it")
    return table
