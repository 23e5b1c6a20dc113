"""The ground station's I/O-free logic, fed datagrams by a real CFDP source engine: no sockets, no threads."""

from __future__ import annotations

import time
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, Callable

import numpy as np
from spacepackets.ccsds.spacepacket import PacketType

from framework.config import check_mapping
from framework.crc import pixels_crc32c
from framework.reporters import EventReporter
from fsw.imaging.codecs import encode_pixels
from fsw.imaging.product import Product, encode_product
from ground.interface import INTERFACE, KIND
from ground.station import Station
from link.filestore import PRODUCT_SUFFIX, SEGMENT_SUFFIX
from link.mib import CfdpTimers
from link.packets import APID_CFDP, SpacePacketWrapper, unwrap
from link.source_engine import SourceEngine
from link.dictionary import Dictionary
from link.tlm_segments import encode_segment
from link.tmtc import encode_event
from drivers.camera.interface import INTERFACE as CAMERA
from tests.unit.link.fakes import Bus, Log, Radio

TIMERS = {"ack_timer_s": 0.02, "nak_timer_s": 0.02, "inactivity_s": 5.0}


class Inline(Executor):
    """Runs each job at once, so a decode is done when submit returns."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # the station reads the failure from the future, as from a thread
            fut.set_exception(exc)
        return fut


def make_station(tmp_path: Path, bus: Bus, radio: Radio) -> Station:
    settings = check_mapping("<test>", "ground", KIND.keys, {"max_packet_len": 1024, **TIMERS})
    events = EventReporter(INTERFACE, bus, "evt.ground", Log(), time.monotonic)
    return Station(settings, tmp_path / "out", "<test>", radio, events, time.time, Inline(),
                   dictionary=Dictionary.from_interfaces({"camera": CAMERA, "ground": INTERFACE}))


def product_file(tmp_path: Path, counter: int) -> tuple[Product, Path]:
    pixels = np.random.default_rng(counter).integers(0, 4096, size=(32, 48), dtype=np.uint16)
    p = Product(id=f"navcam-{counter:08d}-full", kind="full", camera="navcam", counter=counter, t_capture=1.0,
                codec="jpegls", shape=pixels.shape, dtype="uint16", bit_depth=12,
                payload=encode_pixels("jpegls", pixels), crc32c=pixels_crc32c(pixels), meta={}, grades={})
    path = tmp_path / f"{p.id}.prod"
    path.write_bytes(encode_product(p))
    return p, path


def send(station: Station, radio: Radio, item_id: str, path: Path, suffix: str, seq: int) -> bool:
    """One CFDP transaction from a lander's engine to the station; True if the ground confirmed it."""
    src = SourceEngine(1, 2, 1024, CfdpTimers.from_settings(TIMERS))
    down = SpacePacketWrapper(PacketType.TM)
    src.start(item_id, path, APID_CFDP, seq, suffix)
    deadline = time.monotonic() + 10
    while src.busy and time.monotonic() < deadline:
        src.pump(32)
        while (item := src.pop()) is not None:
            station.take_datagram(down.wrap(*item))
        station.step()
        while radio.sent:
            src.insert(unwrap(radio.sent.pop(0)).pdu)
    return any(o.delivered for o in src.outcomes)


def test_a_received_product_is_written_recorded_and_announced_once(tmp_path: Path) -> None:
    bus, radio = Bus(), Radio()
    station = make_station(tmp_path, bus, radio)
    p, path = product_file(tmp_path, 7)
    assert send(station, radio, p.id, path, PRODUCT_SUFFIX, seq=3)
    assert (station.out_dir / f"{p.id}.png").exists() and station.ledger.product_ids() == {p.id: p.crc32c}
    assert bus.names().count("product_received") == 1
    got = next(e for e in bus.events if e["name"] == "product_received")
    assert got["id"] == p.id and got["ok"] is True and got["crc32c"] == p.crc32c
    assert send(station, radio, p.id, path, PRODUCT_SUFFIX, seq=4)  # sent again: confirmed, not announced again
    assert bus.names().count("product_received") == 1 and station.c["products_duplicate"] == 1
    station.close()


def test_a_telemetry_segment_goes_into_the_ledger(tmp_path: Path) -> None:
    bus, radio = Bus(), Radio()
    station = make_station(tmp_path, bus, radio)
    path = tmp_path / "seg.tlm"
    lost = CAMERA.event("link_down")
    path.write_bytes(encode_segment([encode_event(0x10, 3, 5.0, lost.id, "warning", {"detail": "x"})]))
    assert send(station, radio, "evt-5000-1-1", path, SEGMENT_SUFFIX, seq=9)
    got = next(e for e in bus.events if e["name"] == "telemetry_received")
    assert got["id"] == "evt-5000-1-1" and got["segment_kind"] == "evt" and got["new_records"] == 1
    assert station.ledger.telemetry()[0][:3] == (5.0, "evt.camera", "camera")
    assert station.ledger.telemetry()[0][3] == {"name": lost.name, "event_id": lost.id, "severity": "warning",
                                                "detail": "x"}
    station.close()


def test_a_bad_datagram_is_counted_and_reported_rate_limited_and_reset_zeroes_the_count(tmp_path: Path) -> None:
    bus, radio = Bus(), Radio()
    station = make_station(tmp_path, bus, radio)
    for _ in range(3):
        station.take_datagram(b"\x00garbage")
    assert station.c["datagrams_rejected"] == 3 and station.c["packets_received"] == 3
    assert bus.names() == ["datagram_rejected"]  # the other two are folded into the next one's count
    station.reset_counters()
    assert station.c["datagrams_rejected"] == 0 and station.c["packets_received"] == 3
    station.close()

