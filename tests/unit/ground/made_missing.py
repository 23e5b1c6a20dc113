"""What is missing, made on purpose over the station's real CFDP and TM paths, and the truth about it.

One setup for the tests that ask the archive what is missing (test_archive_missing.py through the
archive and ``pdh missing``, test_missing_agree.py through ``pdh missing`` and the console): thumbnails
1-4 and full frame 1 arrive; frame 2's full frame is evicted on board (reported by a TM event), frame 3's
lost (never sent), frame 4's interrupted mid-transfer after the ground NAKed its gap; downlink
housekeeping packets 3 and 4 are lost in a ten-second silence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from spacepackets.ccsds.spacepacket import PacketType
from spacepackets.cfdp.pdu import FileDataPdu, PduFactory

from framework.config import check_mapping
from framework.crc import pixels_crc32c
from framework.reporters import EventReporter
from fsw.downlink.interface import INTERFACE as DOWNLINK
from fsw.imaging.codecs import encode_pixels
from fsw.imaging.product import Product, encode_product
from ground.interface import INTERFACE, KIND
from ground.station import Station
from link.dictionary import Dictionary
from link.filestore import PRODUCT_SUFFIX
from link.mib import CfdpTimers
from link.packets import APID_CFDP, SpacePacketWrapper, unwrap
from link.resume import Segments
from link.source_engine import SourceEngine
from link.tmtc import encode_event, encode_housekeeping
from tests.unit.ground.test_station import TIMERS, Inline, send
from tests.unit.link.fakes import Bus, Log, Radio

DICTIONARY = Dictionary.from_interfaces({"downlink": DOWNLINK, "ground": INTERFACE})
DOWNLINK_APID = DICTIONARY.apid_of("downlink")
DROP = (3000, 9000)  # file data PDUs of the interrupted transfer starting in here never arrive


@dataclass(frozen=True)
class Truth:
    """What the archive must say is missing (and what it holds) after :func:`make_what_is_missing`."""

    frames: list[tuple[str, str]]  # (full frame id, status) of each thumbnail without its full frame
    open_id: str  # the interrupted transfer
    open_size: int
    lost: list[tuple[int, int]]  # its byte ranges that never arrived, [start, end)
    gaps: list[tuple[str, str, float, float, int | None]]  # (source, kind, t_from, t_to, packets_missing)
    evicted: list[tuple[str, bool]]  # (id, received)
    products: list[str]  # every product that arrived
    delivered: int  # transfers that completed


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


def make_what_is_missing(tmp_path: Path, url: str) -> Truth:
    """Make it all happen at a station archiving to ``url`` (closed afterwards); the truth, as the archive must
    tell it."""
    station, radio = make_station(tmp_path, url)
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
    lost = interrupt(station, radio, full4.id, path4, next(seq))
    # downlink housekeeping: packets 3 and 4 lost, and a 10 s silence around them
    for count, t in ((1, 1101.0), (2, 1102.0), (5, 1112.0), (6, 1113.0)):
        station.take_datagram(encode_housekeeping(DOWNLINK_APID, count, t, DOWNLINK, {"products_stored": count}))
    station.close()
    return Truth(
        frames=[("navcam-00000002-full", "evicted"), ("navcam-00000003-full", "not_received"),
                ("navcam-00000004-full", "in_transfer")],
        open_id=full4.id, open_size=path4.stat().st_size, lost=lost,
        gaps=[("downlink", "sequence", 1102.0, 1112.0, 2), ("downlink", "time", 1102.0, 1112.0, None)],
        evicted=[("navcam-00000002-full", False)],
        products=["navcam-00000001-thumbnail", "navcam-00000001-full", "navcam-00000002-thumbnail",
                  "navcam-00000003-thumbnail", "navcam-00000004-thumbnail"],
        delivered=5,
    )
