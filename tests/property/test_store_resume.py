"""What a restart resumes from: the ground's held-segment journal and the lander's open transactions.

- Segments behaves as the set of bytes it was given (new-byte counts, gaps), and its journal codec
  round-trips; garbage gives a typed SegmentsError, never a crash.
- The store's open transactions survive a reopen exactly for items still stored unchanged, progress
  never goes back, and a confirmed, dropped or re-encoded item leaves nothing to resume.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from link.resume import Segments, SegmentsError, decode_segments, encode_segments
from fsw.downlink.store import ProductStore

RANGES = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 60)), max_size=30)


@given(RANGES, st.integers(0, 400))
def test_segments_are_the_set_of_bytes_added(ranges: list[tuple[int, int]], upto: int) -> None:
    seg, model = Segments(), set()
    for offset, length in ranges:
        new = seg.add(offset, length)
        span = set(range(offset, offset + length))
        assert new == len(span - model)
        model |= span
    assert seg.total == len(model)
    assert {b for s, e in seg.ranges for b in range(s, e)} == model
    assert all(e < s2 for (_, e), (s2, _) in zip(seg.ranges, seg.ranges[1:]))  # coalesced, apart
    assert {b for s, e in seg.gaps(upto) for b in range(s, e)} == set(range(upto)) - model


@given(RANGES)
def test_a_segment_journal_round_trips(ranges: list[tuple[int, int]]) -> None:
    seg = Segments((o, o + n) for o, n in ranges)
    assert decode_segments(encode_segments(seg)) == seg


@given(st.binary(max_size=64))
def test_garbage_journal_bytes_give_a_typed_error(data: bytes) -> None:
    try:
        decode_segments(data)
    except SegmentsError:
        pass


def test_open_transactions_resume_only_unchanged_stored_items_and_progress_never_goes_back(tmp_path: Path) -> None:
    store = ProductStore(tmp_path)
    for pid in ("a", "b", "c", "d"):
        store.add(pid, "full", pid.encode() * 100)
    seqs = {pid: store.begin_transaction(pid, 0x102) for pid in ("a", "b", "c", "d")}
    store.transaction_progress(seqs["a"], 200, False)
    store.transaction_progress(seqs["a"], 100, False)  # a late, smaller mark
    store.transaction_progress(seqs["b"], 400, True)
    store.confirm("c")
    store.set_state("d", "stored")
    assert store.replace_payload("d", b"x" * 10, "jpegxl")
    store.close()  # a crash: nothing else is said

    store = ProductStore(tmp_path)
    opened = {o.product_id: o for o in store.open_transactions()}
    assert set(opened) == {"a", "b"}
    assert (opened["a"].progress, opened["a"].eof_sent) == (200, False)
    assert (opened["b"].progress, opened["b"].eof_sent, opened["b"].seq) == (400, True, seqs["b"])
    store.transaction_closed(seqs["a"])
    store.drop("b")
    assert store.open_transactions() == []
    store.close()
