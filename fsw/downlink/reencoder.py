"""Background re-encoding of waiting lossless products, in a separate process that runs only on idle CPU.

The send loop never waits for it. Each turn, :meth:`Reencoder.step` collects a finished job and, when the
worker is free, looks for the next item worth its CPU (:mod:`fsw.downlink.reencode_policy`). It walks the
store in sending order (the first :data:`~fsw.downlink.reencode_policy.MAX_WALK` items) and gives each
untried lossless product the time until the contact plan's passes have carried everything ahead of it and
itself; the worker takes them in that order, the one leaving soonest first, with the budget
:func:`~fsw.downlink.reencode_policy.budget_in_order` leaves it (what still lets every later one have its
own re-encoding in time). Items beyond the walk wait longer than all of it; when none in the walk is
worth the worker, the newest of those is taken. An item whose wait is too short for any setting that
gains is *about to leave* and is not touched (held off a while, then looked at again). The worker reads
the product's header, picks from the measured codec table the smallest setting whose predicted cost fits
(decode, encode, decode again to prove it bit-exact, scaled by the slowdown it measured on the jobs
before), with the table's second-smallest too when the budget covers both, and runs
:func:`fsw.imaging.reencode.reencode_smallest` (the smaller of them, bit-exact, or nothing). The store
swaps the payload with :meth:`~fsw.downlink.store.ProductStore.replace_payload`, which refuses if the item
went in flight meanwhile (counted: ``reencode_lost_race``).

The worker gives its CPU up to the capture path: it is a spawned process under Linux's ``SCHED_IDLE``
(it runs only when no other process wants the core) and ``os.nice``, one codec thread.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from fsw.downlink.reencode_policy import (MAX_WALK, TABLE_TARGET, Estimate, budget_in_order, budget_s, estimate,
                                          time_to_carry)
from fsw.imaging.codecs import codec_tag

__all__ = ["Reencoder", "Result", "REENCODE_KINDS", "sending_order"]

REENCODE_KINDS = ("full", "roi", "preview")
CANDIDATES = 8
"""Newest untried items looked at per decision."""
MIN_BUDGET_S = 0.02
"""A wait that gives less than this is not sent to the worker at all: about to leave."""
HOLD_S = 5.0
"""An item found about to leave is looked at again after this long (a pass may have closed meanwhile)."""
IDLE_S = 1.0
"""With nothing worth the worker, the next look is this much later."""
START_SLOWDOWN = 2.0
"""Wall seconds per table CPU second assumed before the worker has measured its own."""
RECENT_JOBS = 5
"""The slowdown a job is planned with is the worst of the last this many jobs' (or the running mean, if
higher): the worker takes the item leaving soonest first, so a job that runs slower than planned on a
machine whose load comes in bursts goes in flight unfinished (a lost race, its CPU wasted)."""


@dataclass(frozen=True)
class Result:
    id: str
    gen: int
    data: bytes | None  # None: not smaller, skipped, or not a lossless product
    old_bytes: int
    error: str = ""
    skipped: str = ""  # the policy's reason for not re-encoding ("about_to_leave", "no_gain")
    tag: str = ""  # the codec tag of ``data``
    wall_s: float = 0.0
    cpu_s: float = 0.0
    predicted_s: float = 0.0  # at the slowdown the job was given
    tried: int = 0  # settings encoded (two: the frame kept the smaller of the table's best two)


def _yield_cpu(nice: int) -> None:
    """Run only on idle CPU: SCHED_IDLE where Linux has it, and nice either way."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        pass
    try:
        os.nice(nice)
    except OSError:
        pass


def _job(raw: bytes, pid: str, gen: int, budget: float, slowdown: float,
         fixed: tuple[str, dict[str, Any]] | None) -> Result:
    from fsw.downlink.reencode_policy import choose, profile_for
    from fsw.imaging.codecs import CODECS
    from fsw.imaging.product import read_product_header
    from fsw.imaging.reencode import reencode_smallest

    head = read_product_header(raw)
    if head.kind not in REENCODE_KINDS or not CODECS[head.codec].lossless:
        return Result(pid, gen, None, len(raw), skipped="no_gain")
    profile = profile_for(head.camera, head.bit_depth, str(head.meta.get("pattern", "mono")))
    mpix = math.prod(head.shape) / 1e6
    choice = choose(profile, codec_tag(head.codec, head.codec_params), mpix, budget, slowdown, fixed)
    if choice.setting is None:
        return Result(pid, gen, None, len(raw), skipped=choice.reason, predicted_s=choice.predicted_s)
    got = reencode_smallest(raw, [(s.codec, s.params) for s in choice.settings])
    tag = codec_tag(got.codec, got.params) if got else choice.setting.tag
    return Result(pid, gen, got.data if got else None, len(raw), tag=tag, predicted_s=choice.predicted_s,
                  tried=len(choice.settings))


def _worker(conn: Any, fixed: tuple[str, dict[str, Any]] | None, nice: int) -> None:
    _yield_cpu(nice)
    from dataclasses import replace

    from framework.errors import PdhError
    import fsw.downlink.reencode_policy  # noqa: F401  imported before the first job, not inside its time:
    import fsw.imaging.reencode  # noqa: F401  the first job's item is the one leaving soonest

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        pid, gen, path, budget, slowdown = job
        t0, c0 = time.monotonic(), time.process_time()
        try:
            result = _job(Path(path).read_bytes(), pid, gen, budget, slowdown, fixed)
        except (PdhError, OSError, ValueError, KeyError) as exc:
            result = Result(pid, gen, None, 0, f"{type(exc).__name__}: {exc}")
        conn.send(replace(result, wall_s=time.monotonic() - t0, cpu_s=time.process_time() - c0))


def sending_order(store: Any) -> Iterator[Any]:
    """The store's items in the order they leave (those in flight first), one :meth:`next` at a time."""
    seen: set[str] = set()
    while True:
        item = store.next(exclude=seen)
        if item is None:
            return
        seen.add(item.id)
        yield item


class Reencoder:
    """The worker process and the decisions about it. ``codec`` ``"table"``: the setting is chosen per
    product from the measured table; a codec name: that codec with ``params``, still only for items that
    wait long enough."""

    def __init__(self, codec: str, params: dict[str, Any], nice: int) -> None:
        self.codec = codec
        self.params = dict(params)
        self.fixed = None if codec == TABLE_TARGET else (codec, self.params)
        # what the store's candidates query leaves out: items already in the target (none, for the table)
        self.tag = TABLE_TARGET if self.fixed is None else codec_tag(codec, params)
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker, args=(child, self.fixed, nice), daemon=True,
                                 name="downlink-reencode")
        self._proc.start()
        child.close()
        self.busy: tuple[str, int] | None = None
        self.slowdown = START_SLOWDOWN  # running mean of the measured
        self._recent: deque[float] = deque(maxlen=RECENT_JOBS)
        self._given_slowdown = START_SLOWDOWN
        self.hold: dict[str, float] = {}  # id -> not looked at again before (monotonic-free: wall, as the plan)
        self.next_look = 0.0
        self.c: dict[str, Any] = {"reencoded": 0, "reencode_bytes_saved": 0, "reencode_failed": 0,
                                  "reencode_not_smaller": 0, "reencode_skipped_leaving": 0, "reencode_lost_race": 0,
                                  "reencode_cpu_s": 0.0}

    # -- the worker ----------------------------------------------------------------------------
    def offer(self, product_id: str, gen: int, path: Path, budget: float = math.inf) -> bool:
        if self.busy is not None or not self._proc.is_alive():
            return False
        self._conn.send((product_id, gen, str(path), budget, self.planned_slowdown))
        self._given_slowdown = self.planned_slowdown
        self.busy = (product_id, gen)
        return True

    def poll(self) -> Result | None:
        if self.busy is None or not self._conn.poll():
            return None
        try:
            result: Result = self._conn.recv()
        except (EOFError, OSError):
            self.busy = None
            return None
        self.busy = None
        self.c["reencode_cpu_s"] = round(self.c["reencode_cpu_s"] + result.cpu_s, 3)
        self.measure(result, self._given_slowdown)
        return result

    def measure(self, result: Result, given: float) -> None:
        """What a job took against the table's CPU figure (its prediction at the ``given`` slowdown): the
        machine's load as this worker sees it."""
        if result.data is not None and result.predicted_s > 0 and result.wall_s > 0:
            measured = min(20.0, max(0.5, result.wall_s / (result.predicted_s / given)))
            self.slowdown = 0.7 * self.slowdown + 0.3 * measured
            self._recent.append(measured)

    @property
    def planned_slowdown(self) -> float:
        """Wall seconds per table CPU second a job is planned with: the worst recently measured, or the
        running mean if higher (START_SLOWDOWN before any)."""
        return max([self.slowdown, *self._recent])

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            if self._proc.is_alive():
                self._proc.terminate()
            self._proc.join(2)

    # -- one turn ------------------------------------------------------------------------------
    def step(self, store: Any, plan: Any, now: float, log: Any = None) -> list[Result]:
        """Take a finished job into the store, then give the worker the next item worth it. Returns the
        failed jobs (the caller reports them and checks the payload)."""
        failed: list[Result] = []
        result = self.poll()
        if result is not None:
            if self.settle(store, result, now, log):
                failed.append(result)
        if self.busy is None and now >= self.next_look:
            self.next_look = now + (0.0 if self.pick(store, plan, now, log) else IDLE_S)
        return failed

    def settle(self, store: Any, result: Result, now: float, log: Any) -> bool:
        """One finished job; True if it failed."""
        item = store.get(result.id)
        if result.error:
            self.c["reencode_failed"] += 1
        elif result.skipped == "about_to_leave":
            self.c["reencode_skipped_leaving"] += 1
            self.hold[result.id] = now + HOLD_S
            _log(log, "reencode_skipped", id=result.id, reason=result.skipped, predicted_s=result.predicted_s)
            return False  # looked at again later: not marked
        elif result.data is None:
            self.c["reencode_not_smaller"] += 1
            _log(log, "reencode_skipped", id=result.id, reason=result.skipped or "not_smaller")
        elif item is not None and item.gen == result.gen and store.replace_payload(result.id, result.data,
                                                                                   result.tag):
            self.c["reencoded"] += 1
            self.c["reencode_bytes_saved"] += item.size - len(result.data)
            _log(log, "reencoded", id=result.id, tag=result.tag, bytes=len(result.data), old_bytes=item.size,
                 tried=result.tried, wall_s=round(result.wall_s, 3), cpu_s=round(result.cpu_s, 3),
                 predicted_s=round(result.predicted_s, 3))
        else:
            self.c["reencode_lost_race"] += 1
            _log(log, "reencode_skipped", id=result.id, reason="lost_race", tag=result.tag,
                 wall_s=round(result.wall_s, 3), predicted_s=round(result.predicted_s, 3))
        if item is not None:
            store.mark_reencoded(result.id)
        return bool(result.error)

    def pick(self, store: Any, plan: Any, now: float, log: Any) -> bool:
        """Offer the candidate leaving soonest whose wait buys a re-encoding (the newest beyond the walk when
        none in it does); False if there is none now."""
        self.hold = {k: t for k, t in self.hold.items() if t > now}
        order = self.in_order(store, plan, now)
        if not order:
            return False
        backlog = store.reencode_backlog(REENCODE_KINDS, self.tag)
        walked = [(c, w) for c, w, beyond in order if not beyond]
        est = {c.id: self.estimate(c) for c, _, _ in order}
        for i, (c, wait, beyond) in enumerate(order):
            if beyond:  # it leaves after the whole walk: its share of the backlog's wait, as before
                budget = budget_s(wait, backlog)
            else:
                ahead = walked[i:]
                budget = budget_in_order([w for _, w in ahead], [est[r.id].best_s for r, _ in ahead])
            if budget >= max(MIN_BUDGET_S, est[c.id].cheapest_s):
                return self.offer(c.id, c.gen, c.path, budget)
            self.c["reencode_skipped_leaving"] += 1
            self.hold[c.id] = now + HOLD_S
            _log(log, "reencode_skipped", id=c.id, reason="about_to_leave",
                 wait_s=round(wait, 3), budget_s=round(budget, 3))
        return False

    def in_order(self, store: Any, plan: Any, now: float) -> list[tuple[Any, float, bool]]:
        """Untried candidates not held, each with its wait, in the order they leave (the first MAX_WALK
        items of the store's sending order); then, when the walk did not reach the store's end, the newest
        candidates beyond it (``True``: beyond the walk; their wait is the walk's, a lower bound)."""
        walked: list[Any] = []
        for item in sending_order(store):
            walked.append(item)
            if len(walked) >= MAX_WALK:
                break
        open_ids = [i.id for i in walked if i.kind in REENCODE_KINDS and i.state == "stored"
                    and i.codec != self.tag and i.id not in self.hold]
        untried = store.reencode_untried(open_ids) if open_ids else set()
        out: list[tuple[Any, float, bool]] = []
        ahead = 0
        for item in walked:
            ahead += int(item.size)
            if item.id in untried:
                out.append((item, time_to_carry(plan, now, ahead), False))
        if len(walked) >= MAX_WALK:
            seen = {i.id for i in walked}
            floor = time_to_carry(plan, now, ahead)
            beyond = [c for c in store.reencode_candidates(REENCODE_KINDS, self.tag, CANDIDATES + len(self.hold))
                      if c.id not in self.hold and c.id not in seen][:CANDIDATES]
            out.extend((c, floor, True) for c in beyond)
        return out

    def estimate(self, item: Any) -> Estimate:
        """The item's predicted worker seconds at the worker's measured slowdown (from the store's figures)."""
        return estimate(item.id.rsplit("-", 2)[0], item.codec, int(item.size), self.planned_slowdown)


def _log(log: Any, event: str, **fields: Any) -> None:
    if log is not None:
        log.info(event, **fields)
