"""Payload integrity: a payload that rots on board is found (start-up scrub, check before sending), reported,
never sent, and made again where imaging still holds the frame; a product the ground refuses stays on board."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from framework.config import check_mapping
from framework.errors import StoreError
from framework.reporters import EventReporter
from fsw.downlink.payload import file_crc32c
from fsw.downlink.scrub import Scrub
from ground.interface import INTERFACE as GROUND_INTERFACE
from ground.interface import KIND as GROUND_KIND
from ground.station import Station
from tests.unit.fsw.downlink.chain import (TIMERS, Ground, Inline, flip_bytes, make_forwarder, make_product,
                                           products_message)
from tests.unit.link.fakes import Bus, Log, Radio


class Imaging:
    """The imaging core's command port as the downlink sees it: keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, cmd: str, args: dict[str, Any] | None = None) -> int:
        self.sent.append((cmd, dict(args or {})))
        return len(self.sent)


def events_named(bus: Bus, name: str) -> list[dict[str, Any]]:
    return [e for e in bus.events if e["name"] == name]


def test_a_payload_with_64_bytes_flipped_is_found_after_a_restart_reported_and_never_sent(tmp_path: Path) -> None:
    bus, radio = Bus(), Radio()
    fwd = make_forwarder(tmp_path, bus, radio)
    bad, good = make_product(1, side=96), make_product(2, side=96)
    fwd.take_product(products_message(bad))
    fwd.take_product(products_message(good))
    path = fwd.store.get(bad.id).path
    size = path.stat().st_size
    fwd.store.close()
    flip_bytes(path, 64)  # rot in place: same size, so the start-up size check passes it
    assert path.stat().st_size == size
    bus2, radio2 = Bus(), Radio()
    fwd = make_forwarder(tmp_path, bus2, radio2)  # a restart
    ground = Ground(tmp_path / "ground")
    assert ground.run(fwd, radio2, lambda: len(fwd.store) == 0)
    corrupt = events_named(bus2, "product_corrupt")
    assert [e["id"] for e in corrupt] == [bad.id]
    assert corrupt[0]["found_by"] in ("scrub", "before_send") and corrupt[0]["crc32c_found"] != \
        corrupt[0]["crc32c_stored"]
    assert not any(bad.id in n for n in ground.names), "a corrupt payload went down"
    assert any(good.id in n for n in ground.names)
    assert [e["id"] for e in events_named(bus2, "product_confirmed")] == [good.id]
    assert fwd.sample()["products_corrupt"] == 1
    fwd.store.close()


def test_the_start_up_scrub_reads_every_payload_in_bounded_slices_and_reports_once_done(tmp_path: Path) -> None:
    bus = Bus()
    fwd = make_forwarder(tmp_path, bus, Radio())
    products = [make_product(i, side=96) for i in range(1, 5)]
    for p in products:
        fwd.take_product(products_message(p))
    flip_bytes(fwd.store.get(products[2].id).path, 64)
    total = fwd.store.total_bytes()
    fwd.store.close()
    bus = Bus()
    fwd = make_forwarder(tmp_path, bus, Radio())  # scrub starts; nothing else is stepped, nothing is sent
    steps, budget = 0, 4096
    while fwd.sample()["scrub_pending"]:
        before = fwd.integrity.scrub.bytes
        fwd.integrity.scrub_step(budget)
        assert fwd.integrity.scrub.bytes - before <= budget
        steps += 1
    assert steps >= total // budget
    assert [e["id"] for e in events_named(bus, "product_corrupt")] == [products[2].id]
    assert events_named(bus, "product_corrupt")[0]["found_by"] == "scrub"
    done = events_named(bus, "scrub_done")
    assert len(done) == 1 and done[0]["checked"] == 4 and done[0]["corrupt"] == 1 and done[0]["bytes"] == total
    assert sorted(fwd.store.ids()) == sorted(p.id for p in products if p is not products[2])
    fwd.store.close()


def test_a_payload_that_rots_while_the_lander_runs_is_caught_before_it_is_sent(tmp_path: Path) -> None:
    bus, radio = Bus(), Radio()
    fwd = make_forwarder(tmp_path, bus, radio)
    fwd.step(lambda: False)  # the start-up scrub of an empty store is done
    p = make_product(3, side=96)
    fwd.take_product(products_message(p))
    flip_bytes(fwd.store.get(p.id).path, 64)
    fwd.step(lambda: False)
    assert [e["found_by"] for e in events_named(bus, "product_corrupt")] == ["before_send"]
    assert radio.sent == [] and p.id not in fwd.store
    fwd.store.close()


def test_a_corrupt_full_frame_is_asked_of_imaging_again_a_corrupt_thumbnail_says_it_cannot_be(
        tmp_path: Path) -> None:
    bus, imaging = Bus(), Imaging()
    fwd = make_forwarder(tmp_path, bus, Radio(), imaging=imaging)
    full, thumb = make_product(4, side=96), make_product(4, kind="thumbnail", side=24)
    for p in (full, thumb):
        fwd.take_product(products_message(p))
        flip_bytes(fwd.store.get(p.id).path, 64)
    for p in (full, thumb):
        fwd.integrity.judge(fwd.store.get(p.id), file_crc32c(fwd.store.get(p.id).path), "scrub")
    assert imaging.sent == [("MAKE_ROI", {"camera": "navcam", "counter": 4, "region": [0, 0, 96, 64]})]
    remakes = {e["id"]: e["remake"] for e in events_named(bus, "product_corrupt")}
    assert remakes[full.id].startswith("MAKE_ROI requested") and remakes[thumb.id].startswith("not possible")
    assert len(fwd.store) == 0
    fwd.store.close()


def test_a_payload_intact_but_for_its_index_crc_is_kept_and_its_crc_written_again(tmp_path: Path) -> None:
    bus = Bus()
    fwd = make_forwarder(tmp_path, bus, Radio())
    p = make_product(5, side=96)
    fwd.take_product(products_message(p))
    item = fwd.store.get(p.id)
    fwd.store.set_crc(p.id, item.gen, (item.crc32c + 1) % 2**32)  # the index is the damaged part
    assert fwd.integrity.judge(fwd.store.get(p.id), file_crc32c(item.path), "scrub")
    assert p.id in fwd.store and fwd.store.get(p.id).crc32c == item.crc32c
    assert events_named(bus, "product_corrupt") == []
    fwd.store.close()


def test_scrub_skips_a_payload_confirmed_meanwhile(tmp_path: Path) -> None:
    fwd = make_forwarder(tmp_path, Bus(), Radio())
    p = make_product(6, side=96)
    fwd.take_product(products_message(p))
    scrub = Scrub(fwd.store.items())
    fwd.store.confirm(p.id)
    assert scrub.step(1 << 20) == [] and scrub.done
    fwd.store.close()


def make_station(tmp_path: Path, bus: Bus, radio: Radio) -> Station:
    settings = check_mapping("<test>", "ground", GROUND_KIND.keys, {"max_packet_len": 1024, **TIMERS})
    events = EventReporter(GROUND_INTERFACE, bus, "evt.ground", Log(), time.monotonic)
    return Station(settings, tmp_path / "ground_out", "<test>", radio, events, time.time, Inline())


def exchange(fwd: Any, lander_radio: Radio, station: Station, ground_radio: Radio) -> None:
    fwd.step(lambda: False)
    for datagram in lander_radio.sent:
        station.take_datagram(datagram)
    lander_radio.sent.clear()
    station.step()
    for datagram in ground_radio.sent:
        fwd.take_datagram(datagram)
    ground_radio.sent.clear()


def test_a_product_the_ground_refuses_stays_on_board_and_the_lander_says_so(tmp_path: Path) -> None:
    """A product made wrong (its pixels do not match its own CRC) is intact on board as stored: the
    ground decodes it before confirming and refuses it in its Finished PDU; the lander keeps it, but
    does not send it again by itself (it fails on board too) unless an operator asks."""
    lander_bus, lander_radio, ground_bus, ground_radio = Bus(), Radio(), Bus(), Radio()
    imaging = Imaging()
    fwd = make_forwarder(tmp_path, lander_bus, lander_radio, imaging=imaging)
    station = make_station(tmp_path, ground_bus, ground_radio)
    wrong, right = make_product(7, side=96, crc_offset=1), make_product(8, side=96)
    fwd.take_product(products_message(wrong))
    fwd.take_product(products_message(right))
    deadline = time.monotonic() + 15
    while (not events_named(lander_bus, "product_refused") or right.id in fwd.store) and time.monotonic() < deadline:
        exchange(fwd, lander_radio, station, ground_radio)
    refused = events_named(lander_bus, "product_refused")
    assert [e["id"] for e in refused] == [wrong.id] and "FILESTORE_REJECTION" in refused[0]["reason"]
    assert refused[0]["kept"] is True and refused[0]["sent_again"] is False
    assert imaging.sent == [("MAKE_ROI", {"camera": "navcam", "counter": 7, "region": [0, 0, 96, 64]})]
    assert wrong.id in fwd.store and fwd.store.get(wrong.id).state == "refused"
    assert fwd.store.next() is None and right.id not in fwd.store
    assert wrong.id not in [e["id"] for e in events_named(lander_bus, "product_confirmed")]
    assert wrong.id not in station.ledger.product_ids() and right.id in station.ledger.product_ids()
    assert not any(wrong.id in name for name in station.ledger.known_names())
    failed = events_named(ground_bus, "product_failed")
    assert failed and failed[0]["refused"] is True and "CRC" in failed[0]["reason"]
    assert not list((station.incoming).glob(f"*{wrong.id}*"))  # the refused file is not kept at the ground
    fwd.store.request(wrong.id)  # an operator's SEND_PRODUCT sends it once more
    assert fwd.store.next().id == wrong.id
    fwd.store.close()
    station.close()


def test_a_product_the_ground_could_not_record_is_kept_and_sent_again_after_a_back_off(tmp_path: Path) -> None:
    lander_bus, lander_radio, ground_bus, ground_radio = Bus(), Radio(), Bus(), Radio()
    fwd = make_forwarder(tmp_path, lander_bus, lander_radio)
    station = make_station(tmp_path, ground_bus, ground_radio)
    record, failures = station.ledger.file_received, []

    def ledger_full_once(name: str, size: int) -> None:
        if not failures:
            failures.append(name)
            raise StoreError("ground ledger: database or disk is full")
        record(name, size)

    station.ledger.file_received = ledger_full_once  # type: ignore[method-assign]
    p = make_product(9, side=96)
    fwd.take_product(products_message(p))
    deadline = time.monotonic() + 20
    while p.id in fwd.store and time.monotonic() < deadline:
        exchange(fwd, lander_radio, station, ground_radio)
    refused = events_named(lander_bus, "product_refused")
    assert len(refused) == 1 and refused[0]["sent_again"] is True and refused[0]["retry_in_s"] > 0
    assert [e["id"] for e in events_named(lander_bus, "product_confirmed")] == [p.id]
    assert station.ledger.product_ids() == {p.id: p.crc32c}
    fwd.store.close()
    station.close()
