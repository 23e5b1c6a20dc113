"""The downlink's store-and-forward logic without a socket: fed messages and datagrams, it stores, sends
through its radio, settles what the ground confirms and reports each step as an event."""

from __future__ import annotations

import time
from pathlib import Path

import msgpack
import numpy as np
from spacepackets.ccsds.spacepacket import PacketType

from framework.config import check_mapping
from framework.crc import pixels_crc32c
from framework.reporters import EventReporter
from fsw.downlink.forwarder import Forwarder
from fsw.downlink.interface import INTERFACE, KIND
from fsw.imaging.codecs import encode_pixels
from fsw.imaging.product import Product, encode_product
from link.dest_engine import DestEngine
from link.mib import CfdpTimers
from link.packets import APID_DIRECTIVE, SpacePacketWrapper, unwrap
from tests.unit.link.fakes import Bus, Log, Radio

TIMERS = {"ack_timer_s": 0.02, "nak_timer_s": 0.02, "inactivity_s": 5.0}


def make(tmp_path: Path, bus: Bus, radio: Radio) -> Forwarder:
    settings = check_mapping("<test>", "downlink", KIND.keys,
                             {"max_packet_len": 1024, "reencode": {"enabled": False}, **TIMERS})
    events = EventReporter(INTERFACE, bus, "evt.downlink", Log(), time.monotonic)
    return Forwarder(settings, tmp_path, "<test>", "downlink", radio, events, Log(), time.time, time.monotonic)


def products_message(counter: int) -> list[bytes]:
    pixels = np.random.default_rng(counter).integers(0, 4096, size=(32, 48), dtype=np.uint16)
    p = Product(id=f"navcam-{counter:08d}-full", kind="full", camera="navcam", counter=counter, t_capture=1.0,
                codec="jpegls", shape=pixels.shape, dtype="uint16", bit_depth=12,
                payload=encode_pixels("jpegls", pixels), crc32c=pixels_crc32c(pixels), meta={}, grades={})
    return [msgpack.packb({"id": p.id, "kind": p.kind, "score": 0.5}), encode_product(p)]


def test_a_product_is_stored_and_announced_and_a_malformed_one_rejected(tmp_path: Path) -> None:
    bus = Bus()
    fwd = make(tmp_path, bus, Radio())
    fwd.take_product(products_message(1))
    fwd.take_product([b"\x01", b"not a product"])
    assert bus.names() == ["product_stored", "product_rejected"]
    assert fwd.c["products_stored"] == 1 and fwd.c["products_rejected"] == 1 and len(fwd.store) == 1
    fwd.reset_counters()
    assert fwd.c["products_rejected"] == 0 and fwd.c["products_stored"] == 1
    fwd.store.close()


def test_a_stored_product_goes_out_and_is_deleted_once_the_ground_confirms_it(tmp_path: Path) -> None:
    bus, radio = Bus(), Radio()
    fwd = make(tmp_path, bus, radio)
    fwd.take_product(products_message(2))
    ground = DestEngine(2, 1, 1024, CfdpTimers.from_settings(TIMERS), tmp_path / "ground")
    up = SpacePacketWrapper(PacketType.TC)
    deadline = time.monotonic() + 10
    while len(fwd.store) and time.monotonic() < deadline:
        fwd.step(lambda: False)
        for datagram in radio.sent:
            ground.insert(unwrap(datagram).pdu)
        radio.sent.clear()
        ground.tick()
        while (raw := ground.pop()) is not None:
            fwd.take_datagram(up.wrap(APID_DIRECTIVE, raw))
    assert len(fwd.store) == 0 and fwd.c["products_confirmed"] == 1
    assert bus.names() == ["product_stored", "product_confirmed"]
    fwd.store.close()


def test_a_bad_datagram_is_counted_and_reported_rate_limited(tmp_path: Path) -> None:
    bus = Bus()
    fwd = make(tmp_path, bus, Radio())
    for _ in range(3):
        fwd.take_datagram(b"\x00garbage")
    assert fwd.c["datagrams_rejected"] == 3 and fwd.c["packets_received"] == 3
    assert bus.names() == ["datagram_rejected"]
    fwd.store.close()
