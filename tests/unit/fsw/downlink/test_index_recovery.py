"""A damaged or lost index never stops the downlink: it is set aside and rebuilt from the payload files' own
metadata (or, if even that fails, the whole store is set aside and a fresh one started), with an event."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import crc32c
import pytest

from fsw.downlink.payload import file_crc32c
from fsw.downlink.recorder import TelemetryRecorder
from fsw.downlink.store import ProductStore
from fsw.imaging.product import encode_product
from tests.unit.fsw.downlink.chain import Ground, event_packet, make_forwarder, make_product, products_message
from tests.unit.link.fakes import Bus, Radio


def fill(tmp_path: Path) -> tuple[dict[str, tuple[str, str, int, int | None]], int]:
    """A store with products of several kinds and a telemetry segment; returns each item's
    (kind, class, size, crc32c) and the next transaction number."""
    fwd = make_forwarder(tmp_path, Bus(), Radio())
    for p in (make_product(1), make_product(1, kind="thumbnail", side=24), make_product(2, kind="roi")):
        fwd.take_product(products_message(p))
    rec = TelemetryRecorder(tmp_path / "archive", 10**6, 0.05, 0.01)
    rec.add(event_packet(100.0, "x", "warning"), alert=True, now=0.0)
    for seg in rec.due(1.0, in_contact=False):
        fwd.store_segment(seg)
    fwd.store.reserve_transaction_seqs(5)
    items = {pid: (i.kind, i.cls, i.size, crc32c.crc32c(i.path.read_bytes()))
             for pid, i in ((pid, fwd.store.get(pid)) for pid in fwd.store.ids())}
    seq = fwd.store.next_transaction_seq()
    fwd.store.close()
    return items, seq


def damage_page(index: Path) -> None:
    """Overwrite the second page of the index (a table's b-tree) with garbage, as a bad sector would."""
    with open(index, "r+b") as f:
        f.seek(4096)
        f.write(bytes(range(256)) * 16)


@pytest.mark.parametrize("damage", ["garbage", "page", "missing"])
def test_a_damaged_or_lost_index_is_rebuilt_from_the_payloads_and_everything_still_goes_down(
        tmp_path: Path, damage: str) -> None:
    items, seq = fill(tmp_path)
    index = tmp_path / "store" / "index.sqlite"
    if damage == "garbage":
        index.write_bytes(b"\xde\xad\xbe\xef" * 4096)
    elif damage == "page":
        damage_page(index)
    else:
        index.unlink()
    bus, radio = Bus(), Radio()
    fwd = make_forwarder(tmp_path, bus, radio)  # the restart that used to crash (and crash again, forever)
    assert sorted(fwd.store.ids()) == sorted(items)  # (a lost index used to orphan, so delete, every payload)
    assert {i.id: (i.kind, i.cls, i.size) for i in fwd.store.items()} == {k: v[:3] for k, v in items.items()}
    assert {i.crc32c for i in fwd.store.items()} == {None}  # not trusted before each payload is decoded
    while fwd.integrity.scrub_figures()["scrub_pending"]:
        fwd.integrity.scrub_step()
    assert {i.id: (i.kind, i.cls, i.size, i.crc32c) for i in fwd.store.items()} == items
    rebuilt = [e for e in bus.events if e["name"] == "index_rebuilt"]
    assert len(rebuilt) == 1 and rebuilt[0]["rows"] == len(items)
    if damage != "missing":
        assert any(n.endswith("index.sqlite") for n in rebuilt[0]["index_set_aside"])
        assert (tmp_path / "store" / "aside").is_dir()
    assert fwd.store.next_transaction_seq() >= seq  # the ground never sees a transaction number again
    ground = Ground(tmp_path / "ground")
    assert ground.run(fwd, radio, lambda: len(fwd.store) == 0)
    assert sorted(n.split("-", 1)[1].rsplit(".", 1)[0] for n in ground.names) == sorted(items)
    fwd.store.close()


def test_an_unreadable_payload_and_a_stale_generation_are_set_aside_not_deleted(tmp_path: Path) -> None:
    items, _ = fill(tmp_path)
    payload = tmp_path / "store" / "payload"
    (payload / "junk~0.prod").write_bytes(b"not msgpack at all")
    some = sorted(items)[0]
    stale = payload / f"{some}~7.prod"  # a higher generation that does not describe the item
    stale.write_bytes(b"\x00")
    (tmp_path / "store" / "index.sqlite").write_bytes(b"garbage" * 1000)
    bus = Bus()
    fwd = make_forwarder(tmp_path, bus, Radio())
    assert sorted(fwd.store.ids()) == sorted(items)
    rebuilt = next(e for e in bus.events if e["name"] == "index_rebuilt")
    assert sorted(n.split("-", 2)[-1] for n in rebuilt["files_set_aside"]) == sorted(["junk~0.prod", stale.name])
    aside = sorted(p.name for p in (tmp_path / "store" / "aside").iterdir())
    assert any(n.endswith("junk~0.prod") for n in aside) and any(n.endswith(stale.name) for n in aside)
    fwd.store.close()


def test_a_rebuild_that_fails_sets_the_whole_store_aside_and_starts_afresh(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fill(tmp_path)
    (tmp_path / "store" / "index.sqlite").write_bytes(b"garbage" * 1000)

    def broken(*args: object) -> None:
        raise RuntimeError("a payload directory the rebuild cannot make sense of")

    monkeypatch.setattr("fsw.downlink.index.scan_payloads", broken)
    bus = Bus()
    fwd = make_forwarder(tmp_path, bus, Radio())
    assert fwd.store.ready and len(fwd.store) == 0
    aside = next(e for e in bus.events if e["name"] == "store_set_aside")
    assert Path(aside["moved_to"]).is_dir() and (Path(aside["moved_to"]) / "payload").is_dir()
    p = make_product(9)
    fwd.take_product(products_message(p))
    assert p.id in fwd.store
    fwd.store.close()


def test_an_index_damaged_while_running_is_rebuilt_in_place(tmp_path: Path) -> None:
    items, _ = fill(tmp_path)
    bus, radio = Bus(), Radio()
    fwd = make_forwarder(tmp_path, bus, radio)
    fwd.store.close()
    damage_page(tmp_path / "store" / "index.sqlite")
    fwd.store._db = sqlite3.connect(tmp_path / "store" / "index.sqlite", isolation_level=None)
    ground = Ground(tmp_path / "ground")
    ground.exchange(fwd, radio)  # the first read of the damaged page
    assert ground.run(fwd, radio, lambda: len(fwd.store) == 0)
    assert [e["name"] for e in bus.events].count("index_rebuilt") == 1
    assert sorted(n.split("-", 1)[1].rsplit(".", 1)[0] for n in ground.names) == sorted(items)
    fwd.store.close()


def test_a_store_written_before_the_index_kept_crcs_gets_them_from_the_scrub(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ProductStore(root)
    p = make_product(3)
    store.add(p.id, p.kind, encode_product(p))
    store.close()
    db = sqlite3.connect(root / "index.sqlite")
    db.execute("UPDATE items SET crc32c = NULL")
    db.commit()
    db.close()
    bus = Bus()
    fwd = make_forwarder(tmp_path, bus, Radio())
    assert fwd.store.get(p.id).crc32c is None
    fwd.integrity.scrub_step()
    assert fwd.store.get(p.id).crc32c == file_crc32c(fwd.store.get(p.id).path)
    assert next(e for e in bus.events if e["name"] == "scrub_done")["crc_recorded"] == 1
    fwd.store.close()
