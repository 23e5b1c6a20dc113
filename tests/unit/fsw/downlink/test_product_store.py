"""The product store: order, durability, confirm, and recovery after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fsw.downlink.store import ProductStore
from framework.errors import StoreError


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def test_thumbnails_come_before_older_full_frames_then_oldest_first(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", clock=FakeClock())
    store.add("f1", "full", b"a")
    store.add("f2", "full", b"b")
    store.add("t1", "thumbnail", b"c")
    store.add("t2", "thumbnail", b"d")
    assert store.ids() == ["t1", "t2", "f1", "f2"]
    assert store.next().id == "t1"
    assert store.next(exclude={"t1"}).id == "t2"


def test_confirmation_products_go_to_the_front_of_the_queue(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", clock=FakeClock())
    store.add("t1", "thumbnail", b"a")
    store.add("f1", "full", b"b")
    store.add("c-thumb", "thumbnail", b"c", priority="confirmation")
    store.add("c-full", "full", b"d", priority="confirmation")
    assert store.ids()[:2] == ["c-thumb", "c-full"]


def test_add_makes_the_payload_durable_before_the_row_exists(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", clock=FakeClock())
    p = store.add("p1", "full", b"payload-bytes")
    assert p.path.read_bytes() == b"payload-bytes"
    assert list((tmp_path / "s" / "tmp").iterdir()) == []
    assert len(store) == 1 and store.total_bytes() == len(b"payload-bytes")


def test_confirm_deletes_row_and_payload(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", clock=FakeClock())
    p = store.add("p1", "thumbnail", b"x" * 10)
    assert store.confirm("p1") is True
    assert not p.path.exists() and len(store) == 0 and store.next() is None
    assert store.confirm("p1") is False


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "x" * 200, "sp ace"])
def test_unusable_ids_are_refused_with_a_store_error(tmp_path: Path, bad: str) -> None:
    store = ProductStore(tmp_path / "s")
    with pytest.raises(StoreError):
        store.add(bad, "full", b"x")


def test_a_duplicate_id_is_refused_and_the_first_copy_kept(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s")
    store.add("p1", "full", b"first")
    with pytest.raises(StoreError):
        store.add("p1", "full", b"second")
    assert store.get("p1").path.read_bytes() == b"first"


def test_reopen_cleans_temp_files_orphans_and_rows_without_payload(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = ProductStore(root, clock=FakeClock())
    store.add("keep", "full", b"k")
    gone = store.add("gone", "full", b"g")
    store.close()
    (root / "tmp" / "half.prod.123.tmp").write_bytes(b"half")
    (root / "payload" / "orphan~0.prod").write_bytes(b"o")
    gone.path.unlink()
    store = ProductStore(root)
    r = store.recovery
    assert r.temp_files_removed == ["half.prod.123.tmp"]
    assert r.orphan_payloads_removed == ["orphan~0.prod"]
    assert r.rows_without_payload == ["gone"]
    assert store.ids() == ["keep"]
    assert sorted(p.name for p in (root / "payload").iterdir()) == ["keep~0.prod"]


def test_a_process_killed_while_adding_leaves_only_whole_products(tmp_path: Path) -> None:
    root = tmp_path / "s"
    script = textwrap.dedent(f"""
        import sys
        from fsw.downlink.store import ProductStore
        s = ProductStore({str(root)!r})
        i = 0
        while True:
            s.add(f"p{{i:06d}}", "full" if i % 2 else "thumbnail", bytes([i % 256]) * (1000 + i))
            i += 1
            if i == 5:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[4])
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    store = ProductStore(root)
    assert len(store) >= 5
    for pid in store.ids():
        i = int(pid[1:])
        assert store.get(pid).path.read_bytes() == bytes([i % 256]) * (1000 + i)
    assert list((root / "tmp").iterdir()) == []
    assert {p.name for p in (root / "payload").iterdir()} == {store.get(pid).path.name for pid in store.ids()}


def test_transaction_numbers_survive_a_reopen(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s")
    assert store.reserve_transaction_seqs(1) == 0
    assert store.reserve_transaction_seqs(1) == 1
    store.close()
    assert ProductStore(tmp_path / "s").reserve_transaction_seqs(1) == 2


def test_over_quota_the_lowest_graded_unrequested_full_frame_is_evicted_first(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", clock=FakeClock(), quota_bytes=300)
    store.add("evt1", "evt", b"e" * 50)
    store.add("good", "full", b"g" * 100, score=0.9)
    store.add("poor", "full", b"p" * 100, score=0.2)
    store.add("thumb", "thumbnail", b"t" * 40)
    store.add("new", "full", b"n" * 100, score=0.5)
    assert [v.id for v in store.evicted] == ["poor"]
    assert sorted(store.ids()) == ["evt1", "good", "new", "thumb"]
    assert not (tmp_path / "s" / "payload" / "poor~0.prod").exists()


def test_a_product_that_only_fits_by_evicting_better_ones_is_refused(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", clock=FakeClock(), quota_bytes=200)
    store.add("good", "full", b"g" * 150, score=0.9)
    with pytest.raises(StoreError, match="store full"):
        store.add("poor", "full", b"p" * 100, score=0.1)
    with pytest.raises(StoreError, match="store full"):
        store.add("alert", "evt", b"a" * 300)
    assert store.ids() == ["good"] and store.evicted == []


def test_requested_and_in_flight_products_are_never_evicted(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", clock=FakeClock(), quota_bytes=250)
    store.add("asked", "full", b"a" * 100, score=0.0)
    store.request("asked")
    store.add("flying", "full", b"f" * 100, score=0.0)
    store.set_state("flying", "sending")
    with pytest.raises(StoreError):
        store.add("new", "full", b"n" * 100, score=1.0)
    assert sorted(store.ids()) == ["asked", "flying"]


def test_a_request_moves_a_full_frame_ahead_of_the_rest(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", clock=FakeClock())
    store.add("f1", "full", b"1", score=0.9)
    store.add("f2", "full", b"2", score=0.1)
    store.add("t1", "tlm", b"t")
    assert store.ids() == ["t1", "f1", "f2"]
    store.request("f2")
    assert store.ids() == ["t1", "f2", "f1"]


def test_replace_payload_swaps_bytes_atomically_and_is_refused_in_flight(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", clock=FakeClock())
    old = store.add("p", "full", b"x" * 100, codec="jpegls")
    assert store.replace_payload("p", b"y" * 60, "jpegxl")
    new = store.get("p")
    assert new.path.read_bytes() == b"y" * 60 and new.codec == "jpegxl" and not old.path.exists()
    assert store.total_bytes() == 60
    store.set_state("p", "sending")
    assert not store.replace_payload("p", b"z" * 10, "zstd")
    assert store.get("p").path.read_bytes() == b"y" * 60
    assert sorted(x.name for x in (tmp_path / "s" / "payload").iterdir()) == ["p~1.prod"]
