"""The ground ledger: files recorded before confirmation, products once, telemetry once, across reopen."""

from __future__ import annotations

from pathlib import Path

from ground.ledger import Ledger


def test_a_received_file_is_unfinished_until_written_and_survives_reopen(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    led.file_received("00000001-p.prod", 10)
    led.close()
    led = Ledger(tmp_path / "l.sqlite")
    assert led.unfinished() == [("00000001-p.prod", 10)]
    led.file_done("00000001-p.prod", "written")
    assert led.unfinished() == [] and led.known_names() == {"00000001-p.prod"}


def test_a_product_id_is_written_once(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    assert led.product_written("p", "full", 7, 100)
    assert not led.product_written("p", "full", 7, 90)
    assert led.product_ids() == {"p": 7}


def test_telemetry_records_are_kept_once_in_time_order(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    recs = [[2.0, "tlm.a", "a", {"x": 2}], [1.0, "tlm.a", "a", {"x": 1}]]
    assert led.add_telemetry(recs) == 2
    assert led.add_telemetry(recs + [[3.0, "evt.a", "a", {"name": "e"}]]) == 1
    assert [r[0] for r in led.telemetry()] == [1.0, 2.0, 3.0]
    assert led.telemetry(1.5, 2.5)[0][3] == {"x": 2}


def test_thumbnails_first_counts_frames_whose_thumbnail_arrived_before_the_full_frame(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    for pid in ("c-1-thumbnail", "c-1-full", "c-2-full", "c-2-thumbnail", "c-3-thumbnail"):
        led.product_written(pid, pid.rsplit("-", 1)[1], 0, 1)
    assert led.thumbnails_first() == {"frames_with_both": 2, "thumbnail_first": 1}


def test_arrival_times_come_from_the_injected_clock(tmp_path: Path) -> None:
    times = iter([20.0, 10.0])  # the full frame is stamped earlier than its thumbnail
    led = Ledger(tmp_path / "l.sqlite", clock=lambda: next(times))
    led.product_written("c-1-thumbnail", "thumbnail", 0, 1)
    led.product_written("c-1-full", "full", 0, 1)
    assert led.thumbnails_first() == {"frames_with_both": 1, "thumbnail_first": 0}
