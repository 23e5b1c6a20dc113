"""What is missing, made on purpose: a full frame evicted on board, one lost, one interrupted mid-transfer,
telemetry packets lost. The station takes it all over its real CFDP and TM paths; the archive's answer
and ``pdh missing``'s output (text and JSON) name exactly those, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from spacepackets.ccsds.spacepacket import PacketType
from spacepackets.cfdp.pdu import FileDataPdu, PduFactory

from framework.config import check_mapping
from framework.crc import pixels_crc32c
from framework.reporters import EventReporter
from fsw.downlink.interface import INTERFACE as DOWNLINK
from fsw.imaging.codecs import encode_pixels
from fsw.imaging.product import Product, encode_product
from ground.archive import Archive
from ground.interface import INTERFACE, KIND
from ground.station import Station
from link.dictionary import Dictionary
from link.filestore import PRODUCT_SUFFIX
from link.mib import CfdpTimers
from link.packets import APID_CFDP, SpacePacketWrapper, unwrap
from link.resume import Segments
from link.source_engine import SourceEngine
from link.tmtc import encode_event, encode_housekeeping
from pdh.cli import main
from tests.unit.ground.test_station import TIMERS, Inline, send
from tests.unit.link.fakes import Bus, Log, Radio

DICTIONARY = Dictionary.from_interfaces({"downlink": DOWNLINK, "ground": INTERFACE})
DOWNLINK_APID = DICTIONARY.apid_of("downlink")
DROP = (3000, 9000)  # file data PDUs of the interrupted transfer starting in here never arrive


def make_station(tmp_path: Path, url: str) -> tuple[Station, Radio]:
    settings = check_mapping("<test>", "ground", KIND.keys, {"max_packet_len": 1024, **TIMERS, "archive": {"url": url}})
    radio = Radio()
    events = EventReporter(INTERFACE, Bus(), "evt.ground", Log(), time.monotonic)
    return Station(settings, tmp_path / "out", "<test>", radio, events, time.time, Inline(),
                   dictionary=DICTIONARY), radio


def frame_file(tmp_path: Path, counter: int, kind: str) -> tuple[Product, Path]:
    rng = np.random.default_rng(counter)
    if kind == "thumbnail":
        pixels = rng.integers(0, 256, size=(16, 16), dtype=np.uint8)
        depth, codec = 8, "png"
    else:
        pixels = rng.integers(0, 4096, size=(96, 96), dtype=np.uint16)
        depth, codec = 12, "jpegls"
    p = Product(id=f"navcam-{counter:08d}-{kind}", kind=kind, camera="navcam", counter=counter,
                t_capture=1000.0 + counter, codec=codec, shape=pixels.shape, dtype=str(pixels.dtype), bit_depth=depth,
                payload=encode_pixels(codec, pixels), crc32c=pixels_crc32c(pixels), meta={},
                grades={"score": 0.1 * counter})
    path = tmp_path / f"{p.id}.prod"
    path.write_bytes(encode_product(p))
    return p, path


def interrupt(station: Station, radio: Radio, item_id: str, path: Path, seq: int) -> list[tuple[int, int]]:
    """Send a transaction whose file data in DROP is lost, until the ground has NAKed it; then the link is
    gone (nothing more reaches either end). Returns the byte ranges that never arrived."""
    src = SourceEngine(1, 2, 1024, CfdpTimers.from_settings(TIMERS))
    down = SpacePacketWrapper(PacketType.TM)
    src.start(item_id, path, APID_CFDP, seq, PRODUCT_SUFFIX)
    lost = Segments()
    naks = 0
    deadline = time.monotonic() + 10
    while naks == 0 and time.monotonic() < deadline:
        src.pump(32)
        while (item := src.pop()) is not None:
            pdu = PduFactory.from_raw(item[1])
            if isinstance(pdu, FileDataPdu) and DROP[0] <= pdu.offset < DROP[1]:
                lost.add(pdu.offset, len(pdu.file_data))
                continue
            station.take_datagram(down.wrap(*item))
        station.step()
        for raw in radio.sent:
            naks += unwrap(raw).pdu.__class__.__name__ == "NakPdu"
        radio.sent.clear()
    assert naks and lost.ranges, "the ground never NAKed the gap"
    return lost.ranges


def test_evicted_lost_and_interrupted_products_are_what_pdh_missing_reports(
        tmp_path: Path, archive_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    station, radio = make_station(tmp_path, archive_url)
    seq = iter(range(1, 100))
    for n in (1, 2, 3, 4):
        p, path = frame_file(tmp_path, n, "thumbnail")
        assert send(station, radio, p.id, path, PRODUCT_SUFFIX, seq=next(seq))
    full1, path1 = frame_file(tmp_path, 1, "full")
    assert send(station, radio, full1.id, path1, PRODUCT_SUFFIX, seq=next(seq))
    # frame 2's full frame: evicted on board, reported by the downlink as a TM event
    evicted = DOWNLINK.events["product_evicted"]
    station.take_datagram(encode_event(DOWNLINK_APID, 0, 1100.0, evicted.id, "warning",
                                       {"id": "navcam-00000002-full", "product_kind": "full", "class": "rest",
                                        "score": 0.2, "bytes": 18000, "reason": "store over quota"}))
    # frame 3's full frame: lost (never arrives); frame 4's: interrupted mid-transfer
    full4, path4 = frame_file(tmp_path, 4, "full")
    lost_ranges = interrupt(station, radio, full4.id, path4, next(seq))
    # downlink housekeeping: packets 3 and 4 lost, and a 10 s silence around them
    for count, t in ((1, 1101.0), (2, 1102.0), (5, 1112.0), (6, 1113.0)):
        station.take_datagram(encode_housekeeping(DOWNLINK_APID, count, t, DOWNLINK, {"products_stored": count}))
    station.close()

    with Archive(archive_url, tmp_path, readonly=True) as archive:
        got = archive.missing()
        assert [(r["full_id"], r["status"]) for r in got.thumbnails_without_full.dicts()] == [
            ("navcam-00000002-full", "evicted"), ("navcam-00000003-full", "not_received"),
            ("navcam-00000004-full", "in_transfer")]
        (opened,) = got.open_transfers.dicts()
        assert opened["id"] == full4.id and opened["file_size"] == path4.stat().st_size
        assert opened["missing"] == lost_ranges and opened["naks"] >= 1 and opened["eof_received"]
        assert [(g["source"], g["kind"], g["t_from"], g["t_to"], g["packets_missing"])
                for g in got.tm_gaps.dicts()] == [("downlink", "sequence", 1102.0, 1112.0, 2),
                                                  ("downlink", "time", 1102.0, 1112.0, None)]
        assert [(e["id"], e["received"]) for e in got.evicted.dicts()] == [("navcam-00000002-full", False)]
        assert archive.product(full1.id)["label"].endswith(f"{full1.id}.xml")  # full frames get a PDS4 label
        sent = archive.transfers(state="delivered")
        assert len(sent) == 5 and archive.events(sources=["ground"], name="product_received")

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
    assert ",".join(f"{a}-{b - 1}" for a, b in lost_ranges) in text
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
