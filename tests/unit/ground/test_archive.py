"""The archive's schema and queries, the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from fsw.downlink.interface import INTERFACE as DOWNLINK
from ground.archive import Archive, ProductRecord
from ground.queue import CommandQueue
from link.dictionary import Dictionary
from link.tmtc import decode_tm, encode_event, encode_housekeeping

DICTIONARY = Dictionary.from_interfaces({"downlink": DOWNLINK})
APID = DICTIONARY.apid_of("downlink")


def product(pid: str, camera: str, counter: int, kind: str, t: float, grade: float | None) -> ProductRecord:
    return ProductRecord(pid, kind, camera, counter, t, t + 100, grade, "png", 7, 1000, 48, 32, 12,
                         f"/x/{pid}.png", None, {} if grade is None else {"score": grade})


def hk(seq: int, t: float, **values: object):
    return decode_tm(encode_housekeeping(APID, seq, t, DOWNLINK, values), DICTIONARY)


def event(seq: int, t: float, name: str, severity: str, **fields: object):
    return decode_tm(encode_event(APID, seq, t, DOWNLINK.events[name].id, severity, fields), DICTIONARY)


@pytest.fixture
def archive(archive_url: str, tmp_path: Path):
    a = Archive(archive_url, tmp_path)
    yield a
    a.close()


def test_products_are_found_by_camera_time_range_and_grade(archive: Archive) -> None:
    archive.record_product(product("nav-00000001-full", "nav", 1, "full", 10.0, 0.9))
    archive.record_product(product("nav-00000002-full", "nav", 2, "full", 20.0, 0.3))
    archive.record_product(product("haz-00000001-full", "haz", 1, "full", 15.0, 0.8))
    archive.record_product(product("nav-00000001-full", "nav", 1, "full", 10.0, 0.9))  # again: one row
    assert archive.products(camera="nav").column("id") == ["nav-00000001-full", "nav-00000002-full"]
    assert archive.products(t0=12.0, t1=20.0).column("id") == ["haz-00000001-full", "nav-00000002-full"]
    assert archive.products(min_grade=0.5).column("id") == ["nav-00000001-full", "haz-00000001-full"]
    assert archive.product("haz-00000001-full")["grades"] == {"score": 0.8}
    assert archive.product("nope") is None


def test_a_parameter_over_a_time_range_and_events_by_severity_and_source(archive: Archive) -> None:
    packets = [hk(0, 1.0, products_stored=1), hk(1, 2.0, products_stored=2), hk(2, 3.0, products_stored=3),
               event(3, 2.5, "product_evicted", "warning", id="x"), event(4, 2.6, "store_recovered", "warning")]
    assert archive.record_tm([(p, 9.0) for p in packets]) == 5
    assert archive.record_tm([(p, 9.0) for p in packets]) == 0  # the same packets again change nothing
    got = archive.parameter("downlink", "products_stored", 1.5, 3.0)
    assert [(r[0], r[3]) for r in got] == [(2.0, 2.0), (3.0, 3.0)]
    archive.record_event("ground", 2.7, "product_failed", "error", {"file": "f"})
    assert archive.events(min_severity="error").column("name") == ["product_failed"]
    assert archive.events(min_severity="warning", sources=["downlink"]).column("name") == [
        "product_evicted", "store_recovered"]
    assert archive.events(sources=["ground"]).dicts()[0]["fields"] == {"file": "f"}


def test_every_query_exports_to_csv_with_a_header(archive: Archive) -> None:
    archive.record_product(product("nav-00000001-full", "nav", 1, "full", 10.0, None))
    rows = list(csv.reader(io.StringIO(archive.products().csv())))
    assert rows[0][:3] == ["id", "kind", "camera"] and rows[1][:4] == ["nav-00000001-full", "full", "nav", "1"]
    assert rows[1][rows[0].index("grade")] == ""  # None is an empty field


def test_command_history_keeps_every_verification_stage(archive: Archive, tmp_path: Path) -> None:
    clock = iter(range(100, 200)).__next__
    queue = CommandQueue(tmp_path / "q.sqlite", lambda: float(clock()))
    cid = queue.enqueue("imaging", "MAKE_LOSSY", {"camera": "nav"}, 1)
    queue.signed(cid, 5, b"x")
    queue.sent(cid)
    archive.record_command(queue.get(cid))
    for stage in ("received", "accepted", "completed"):
        queue.stage(cid, stage)
        archive.record_command(queue.get(cid))
    queue.close()
    (row,) = archive.commands().dicts()
    assert row["state"] == "completed" and row["args"] == {"camera": "nav"}
    assert [s["stage"] for s in row["stages"]] == ["queued", "sent#1", "received", "accepted", "completed"]


def test_open_transfers_show_their_missing_ranges_and_naks(archive: Archive) -> None:
    archive.transfer_opened((1, 7), "7-nav-00000004-full.prod", 10_000, 1.0)
    archive.transfer_progress((1, 7), [(0, 4000), (6000, 9000)], True, 2.0)
    archive.transfer_nak((1, 7), [(4000, 6000), (9000, 10_000)], 2.1)
    archive.transfer_nak((1, 7), [(4000, 6000)], 3.1)
    archive.transfer_opened((1, 8), "8-nav-00000005-full.prod", 500, 1.5)
    archive.transfer_closed((1, 8), 4.0)
    (t,) = archive.missing().open_transfers.dicts()
    assert t["missing"] == [(4000, 6000), (9000, 10_000)] and t["missing_bytes"] == 3000
    assert t["naks"] == 2 and t["last_nak_ranges"] == [[4000, 6000]] and t["id"] == "nav-00000004-full"
    assert t["missing_text"] == "4000-5999,9000-9999"


def test_the_newest_closed_transfers_come_first_and_only_as_many_as_asked(archive: Archive) -> None:
    for seq in range(1, 8):  # opened at 1..7 s; 4 stays open, 6 fails, the rest are delivered
        archive.transfer_opened((1, seq), f"{seq}-nav-{seq:08d}-full.prod", 100, float(seq))
        if seq == 6:
            archive.transfer_outcome(f"{seq}-nav-{seq:08d}-full.prod", False, "check limit", 10.0 + seq)
        elif seq != 4:
            archive.transfer_closed((1, seq), 10.0 + seq, "delivered")
    assert archive.transfers().column("seq") == [1, 2, 3, 4, 5, 6, 7]  # all, oldest first, as before
    assert archive.transfers(closed=True, newest_first=True, limit=3).column("seq") == [7, 6, 5]
    assert archive.transfers(closed=True, newest_first=True).column("seq") == [7, 6, 5, 3, 2, 1]
    assert archive.transfers(closed=False).column("seq") == [4]
    assert archive.transfers(state="delivered", newest_first=True, limit=2).column("seq") == [7, 5]


def test_products_are_counted_by_kind_without_loading_them(archive: Archive) -> None:
    assert archive.count_products() == {}
    archive.record_product(product("nav-00000001-thumbnail", "nav", 1, "thumbnail", 10.0, None))
    archive.record_product(product("nav-00000001-full", "nav", 1, "full", 10.0, 0.9))
    archive.record_product(product("nav-00000002-thumbnail", "nav", 2, "thumbnail", 20.0, None))
    archive.record_product(product("nav-00000002-thumbnail", "nav", 2, "thumbnail", 20.0, None))  # again: one row
    assert archive.count_products() == {"full": 1, "thumbnail": 2}


def test_telemetry_gaps_by_sequence_count_and_by_time(archive: Archive) -> None:
    seqs_times = [(16382, 0.0), (16383, 1.0), (0, 2.0), (1, 3.0), (4, 13.0), (5, 14.0)]  # wraps; 2 and 3 lost
    archive.record_tm([(hk(s, t), 20.0) for s, t in seqs_times])
    gaps = archive.missing().tm_gaps.dicts()
    assert [(g["kind"], g["t_from"], g["t_to"]) for g in gaps] == [("sequence", 3.0, 13.0), ("time", 3.0, 13.0)]
    assert gaps[0]["packets_missing"] == 2 and (gaps[0]["first_missing_seq"], gaps[0]["last_missing_seq"]) == (2, 3)


def test_thumbnails_without_full_frames_say_why(archive: Archive) -> None:
    for n in (1, 2, 3, 4):
        archive.record_product(product(f"nav-{n:08d}-thumbnail", "nav", n, "thumbnail", float(n), 0.5))
    archive.record_product(product("nav-00000001-full", "nav", 1, "full", 1.0, 0.5))
    archive.record_tm([(event(0, 5.0, "product_evicted", "warning", id="nav-00000002-full",
                             product_kind="full", **{"class": "rest"}, score=0.1, bytes=99,
                             reason="store over quota"), 6.0)])
    archive.transfer_opened((1, 3), "3-nav-00000004-full.prod", 100, 7.0)
    m = archive.missing()
    assert [(r["counter"], r["status"]) for r in m.thumbnails_without_full.dicts()] == [
        (2, "evicted"), (3, "not_received"), (4, "in_transfer")]
    (ev,) = m.evicted.dicts()
    assert ev["id"] == "nav-00000002-full" and ev["class"] == "rest" and ev["received"] is False


def test_contacts_are_recorded_as_they_open_and_close(archive: Archive) -> None:
    archive.contact_opened("relay-a", 100.0, 3, 160.0, 256000.0)
    archive.contact_opened("relay-a", 100.0, 3, 160.0, 256000.0)
    archive.contact_closed("relay-a", 100.0, 161.0)
    assert archive.contacts().dicts() == [{"relay": "relay-a", "pass_number": 3, "t_open": 100.0,
                                           "t_close_planned": 160.0, "t_closed": 161.0, "rate_bps": 256000.0}]


def test_an_archive_url_it_cannot_open_is_a_store_error_naming_it(tmp_path: Path) -> None:
    from framework.errors import StoreError

    with pytest.raises(StoreError, match="expected sqlite"):
        Archive("mysql://x/y", tmp_path)
    with pytest.raises(StoreError, match="cannot connect") as got:
        Archive("postgresql://u:secret@127.0.0.1:1/db", tmp_path)
    assert "secret" not in str(got.value) and "u:***@127.0.0.1:1" in str(got.value)
