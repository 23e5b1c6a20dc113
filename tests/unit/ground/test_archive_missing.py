"""What is missing, made on purpose: a full frame evicted on board, one lost, one interrupted mid-transfer,
telemetry packets lost. The station takes it all over its real CFDP and TM paths (made_missing.py, the
setup test_missing_agree.py shares); the archive's answer and ``pdh missing``'s output (text and JSON) name
exactly those, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ground.archive import Archive
from link.filestore import PRODUCT_SUFFIX
from pdh.cli import main
from tests.unit.ground.made_missing import frame_file, make_station, make_what_is_missing
from tests.unit.ground.test_station import send


def test_evicted_lost_and_interrupted_products_are_what_pdh_missing_reports(
        tmp_path: Path, archive_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    truth = make_what_is_missing(tmp_path, archive_url)

    with Archive(archive_url, tmp_path, readonly=True) as archive:
        got = archive.missing()
        assert [(r["full_id"], r["status"]) for r in got.thumbnails_without_full.dicts()] == truth.frames
        (opened,) = got.open_transfers.dicts()
        assert opened["id"] == truth.open_id and opened["file_size"] == truth.open_size
        assert opened["missing"] == truth.lost and opened["naks"] >= 1 and opened["eof_received"]
        assert [(g["source"], g["kind"], g["t_from"], g["t_to"], g["packets_missing"])
                for g in got.tm_gaps.dicts()] == truth.gaps
        assert [(e["id"], e["received"]) for e in got.evicted.dicts()] == truth.evicted
        full1 = "navcam-00000001-full"
        assert archive.product(full1)["label"].endswith(f"{full1}.xml")  # full frames get a PDS4 label
        sent = archive.transfers(state="delivered")
        assert len(sent) == truth.delivered and archive.events(sources=["ground"], name="product_received")

    assert main(["missing", "--archive", archive_url, "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert as_json == json.loads(json.dumps(got.to_dict(), default=str))
    assert main(["missing", "--archive", archive_url]) == 0
    text = capsys.readouterr().out
    assert "Frames with a thumbnail but no full frame: 3" in text and "Transfers still open: 1" in text
    assert "Telemetry gaps: 2" in text and "Products the lander reported evicted: 1" in text
    for line in ("navcam-00000002-full  evicted", "navcam-00000003-full  not_received",
                 "navcam-00000004-full  in_transfer"):
        assert line in text
    assert ",".join(f"{a}-{b - 1}" for a, b in truth.lost) in text
    assert main(["missing", "--archive", archive_url, "--csv", "evicted"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("navcam-00000002-full,full,rest,")


def test_pdh_products_lists_shows_and_exports_what_the_station_archived(
        tmp_path: Path, archive_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    station, radio = make_station(tmp_path, archive_url)
    p, path = frame_file(tmp_path, 1, "full")
    assert send(station, radio, p.id, path, PRODUCT_SUFFIX, seq=1)
    station.close()
    assert main(["products", "list", "--archive", archive_url, "--camera", "navcam", "--csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("id,kind,camera") and rows[1].startswith(f"{p.id},full,navcam,1,")
    assert main(["products", "show", p.id, "--archive", archive_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["crc32c"] == p.crc32c
    assert main(["products", "export", p.id, "--archive", archive_url, "--to", str(tmp_path / "x")]) == 0
    assert sorted(f.name for f in (tmp_path / "x").iterdir()) == sorted(f"{p.id}{s}" for s in (".img", ".json",
                                                                                                   ".png", ".xml"))
    with pytest.raises(SystemExit, match="no product nope"):
        main(["products", "show", "nope", "--archive", archive_url])
