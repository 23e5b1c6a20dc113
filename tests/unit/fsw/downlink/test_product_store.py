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
from fsw.errors import StoreError


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
    (root / "payload" / "orphan.prod").write_bytes(b"o")
    gone.path.unlink()
    store = ProductStore(root)
    r = store.recovery
    assert r.temp_files_removed == ["half.prod.123.tmp"]
    assert r.orphan_payloads_removed == ["orphan"]
    assert r.rows_without_payload == ["gone"]
    assert store.ids() == ["keep"]
    assert sorted(p.name for p in (root / "payload").iterdir()) == ["keep.prod"]


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
    assert {p.name for p in (root / "payload").iterdir()} == {f"{pid}.prod" for pid in store.ids()}


def test_transaction_numbers_survive_a_reopen(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s")
    assert store.reserve_transaction_seqs(1) == 0
    assert store.reserve_transaction_seqs(1) == 1
    store.close()
    assert ProductStore(tmp_path / "s").reserve_transaction_seqs(1) == 2
