"""FrameAccounts: every frame ends stored or named, across restarts (a fake journal, a fake clock)."""

from __future__ import annotations

from typing import Any

from fsw.imaging.accounts import FrameAccounts, ranges_of
from fsw.imaging.product import product_id


class MemJournal:
    """Records in memory: ``committed`` survives a 'crash', ``buf`` does not."""

    def __init__(self) -> None:
        self.committed: list[dict[str, Any]] = []
        self.buf: list[dict[str, Any]] = []

    @property
    def records(self) -> int:
        return len(self.committed)

    def append(self, rec: dict[str, Any]) -> None:
        self.buf.append(rec)

    def commit(self) -> None:
        self.committed += self.buf
        self.buf = []

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        self.committed, self.buf = list(records), []


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _accounts(journal: MemJournal | None = None, clock: Clock | None = None, **kw: Any) -> FrameAccounts:
    return FrameAccounts(["cam"], journal or MemJournal(), clock or Clock(), **kw)


def _take(acc: FrameAccounts, n: int) -> None:
    assert acc.arrived("cam", n) == "new"
    acc.accepted("cam", n, "drv", {"camera": "cam", "counter": n})


def _lost(acc: FrameAccounts, now: float) -> list[tuple[list[list[int]], str]]:
    return [(f["ranges"], f["reason"]) for name, f in acc.due(now) if name == "frames_lost"]


def test_ranges_merge_consecutive_counters() -> None:
    assert ranges_of([7, 1, 3, 2, 2]) == [[1, 3], [7, 7]]
    assert ranges_of([]) == []


def test_a_counter_gap_names_the_frames_that_never_arrived_and_a_fresh_camera_counts_from_zero() -> None:
    acc, clock = _accounts(), Clock()
    _take(acc, 2)
    _take(acc, 3)
    _take(acc, 7)
    assert _lost(acc, clock()) == [([[0, 1]], "not_received"), ([[4, 6]], "not_received")]
    assert acc.sample()["frames_lost"] == 5


def test_a_frame_is_open_until_both_products_are_stored_or_named() -> None:
    acc = _accounts()
    _take(acc, 0)
    _take(acc, 1)
    assert acc.stored(product_id("cam", 0, "thumbnail"))
    assert ("cam", 0) in acc.open
    assert acc.stored(product_id("cam", 0, "full"))
    assert ("cam", 0) not in acc.open
    acc.lacks("frames_thumbnail_only", "cam", 1, {"full"}, {"camera": "cam", "counters": [1], "reason": "rule"})
    acc.stored(product_id("cam", 1, "thumbnail"))
    assert acc.open == {}
    assert not acc.stored("other-00000001-full")


def test_duplicates_are_dropped_late_frames_taken_and_a_counter_going_back_is_a_reset() -> None:
    acc, clock = _accounts(), Clock()
    _take(acc, 0)
    assert acc.arrived("cam", 0) == "duplicate"
    _take(acc, 5)  # 1..4 named lost
    assert _lost(acc, clock()) == [([[1, 4]], "not_received")]
    assert acc.arrived("cam", 3) == "late"  # it came after all: taken; the naming was cautious, not wrong
    assert acc.arrived("cam", 5) == "duplicate"
    assert acc.arrived("cam", 2**64 - 1) == "new"  # the largest counter the wire can carry
    assert acc.arrived("cam", 6) == "late"  # named lost by that jump
    assert acc.arrived("cam", 0) == "duplicate"
    fresh = _accounts()
    assert fresh.arrived("cam", 10) == "new"
    assert fresh.arrived("cam", 20) == "new"
    assert fresh.arrived("cam", 15) == "late"
    assert fresh.arrived("cam", 30) == "new"
    assert fresh.arrived("cam", 21) == "late"
    fresh._gaps["cam"].clear()  # noqa: SLF001 - forget the named gaps: what is left below is a reset
    assert fresh.arrived("cam", 22) == "reset"
    assert fresh.arrived("cam", 23) == "new"
    assert fresh.last["cam"] == 23


def test_reports_go_out_again_until_heard_back_with_growing_waits() -> None:
    clock = Clock()
    acc = _accounts(clock=clock, retry_s=1.0)
    acc.lost("cam", [4, 5, 9], "restart_pixels_overwritten", {"full"})
    first = acc.due(clock())
    assert [(n, f["ranges"], f["products"], f["report"]) for n, f in first] == \
        [("frames_lost", [[4, 5], [9, 9]], ["full"], 1)]
    assert acc.due(clock()) == []
    clock.t += 1.0
    assert len(acc.due(clock())) == 1
    clock.t += 1.0
    assert acc.due(clock()) == []  # the second wait is twice the first
    clock.t += 1.0
    assert len(acc.due(clock())) == 1
    acc.echoed(1)
    clock.t += 60
    assert acc.due(clock()) == [] and acc.sample()["reports_unechoed"] == 0
    acc.echoed("1")  # a forged or garbled echo is ignored
    acc.echoed(True)


def test_a_driver_counter_ahead_of_every_frame_names_the_tail_after_the_grace() -> None:
    clock = Clock()
    acc = _accounts(clock=clock, tail_grace_s=3.0)
    _take(acc, 0)
    acc.due(clock())
    acc.driver_counter("cam", 1, clock())
    _take(acc, 1)  # the frame came: nothing to name
    acc.driver_counter("cam", 4, clock())
    clock.t += 2.0
    acc.tick(clock())
    assert _lost(acc, clock()) == []
    acc.driver_counter("cam", 4, clock())
    clock.t += 1.5
    acc.tick(clock())
    assert _lost(acc, clock()) == [([[2, 4]], "not_received")]
    assert acc.arrived("cam", 3) == "late"
    for no in list(acc.reports):
        acc.echoed(no)
    for bad in (-1, True, "5", 2**64, None):
        acc.driver_counter("cam", bad, clock())
    acc.driver_counter("other", 99, clock())
    clock.t += 10
    acc.tick(clock())
    assert _lost(acc, clock()) == []


def test_after_a_crash_the_journal_gives_back_the_open_frames_the_counters_and_unheard_reports() -> None:
    journal, clock = MemJournal(), Clock()
    acc = _accounts(journal, clock)
    for n in (0, 1, 2):
        _take(acc, n)
    acc.stored(product_id("cam", 0, "thumbnail"))
    acc.stored(product_id("cam", 0, "full"))
    acc.stored(product_id("cam", 1, "thumbnail"))
    _take(acc, 5)  # 3, 4 named: a report
    acc.due(clock())
    journal.commit()
    _take(acc, 6)  # not committed: lost with the crash
    after = _accounts(journal, clock)
    left = after.restore(journal.committed)
    assert [(f.counter, sorted(f.missing())) for f in left] == \
        [(1, ["full"]), (2, ["full", "thumbnail"]), (5, ["full", "thumbnail"])]
    assert after.is_stored(product_id("cam", 1, "thumbnail")) and not after.is_stored(product_id("cam", 1, "full"))
    assert after.last["cam"] == 5
    assert [(n, f["ranges"]) for n, f in after.due(clock())] == [("frames_lost", [[3, 4]])]
    _take(after, 8)  # frame 6 was never journalled: it is named with 7
    assert _lost(after, clock()) == [([[6, 7]], "not_received")]
    after.compact()
    again = _accounts(journal, clock)
    assert [f.counter for f in again.restore(journal.committed)] == [1, 2, 5, 8]
    assert again.last["cam"] == 8 and again.next_no == after.next_no


def test_memory_stays_bounded_the_oldest_open_frame_and_report_are_given_up_named() -> None:
    clock = Clock()
    acc = _accounts(clock=clock, max_open=3, max_reports=4)
    for n in range(5):
        _take(acc, n)
    assert sorted(k[1] for k in acc.open) == [2, 3, 4]
    assert acc.c["frames_given_up"] == 2
    assert [(f["ranges"], f["reason"]) for _, f in acc.due(clock())] == \
        [([[0, 0]], "open_frames_full"), ([[1, 1]], "open_frames_full")]
    for n in range(10, 20, 2):
        _take(acc, n)  # each leaves a one-frame gap: a report each
    assert len(acc.reports) == 4 and acc.c["reports_abandoned"] > 0
