"""The downlink with fec.enabled: products go as coded transactions (link/fec.py) through the spool, a restart
rebuilds the same coded file, and no product starts that cannot leave before the window closes if another can."""

from __future__ import annotations

import time
from pathlib import Path

from spacepackets.ccsds.spacepacket import PacketType

from framework.config import check_mapping
from framework.reporters import EventReporter
from fsw.downlink.forwarder import Forwarder
from fsw.downlink.interface import INTERFACE, KIND
from link.contacts import Contact
from link.dest_engine import DestEngine
from link.fec import split_name
from link.mib import CfdpTimers
from link.packets import APID_DIRECTIVE, SpacePacketWrapper, unwrap
from tests.unit.fsw.downlink.test_forwarder import products_message
from tests.unit.link.fakes import Bus, Log, Radio

TIMERS = {"ack_timer_s": 0.02, "nak_timer_s": 0.02, "inactivity_s": 5.0}


def make(tmp_path: Path, radio: Radio, fec: bool = True) -> Forwarder:
    settings = check_mapping("<test>", "downlink", KIND.keys,
                             {"max_packet_len": 1024, "reencode": {"enabled": False},
                              "fec": {"enabled": fec, "initial_loss": 0.05}, **TIMERS})
    events = EventReporter(INTERFACE, Bus(), "evt.downlink", Log(), time.monotonic)
    return Forwarder(settings, tmp_path, "<test>", "downlink", radio, events, Log(), time.time, time.monotonic)


def spool_files(fwd: Forwarder) -> list[Path]:
    assert fwd.spool is not None
    return sorted(fwd.spool.root.iterdir())


def run(fwd: Forwarder, radio: Radio, ground: DestEngine, until, timeout_s: float = 10.0) -> None:
    up = SpacePacketWrapper(PacketType.TC)
    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline:
        fwd.step(lambda: False)
        for datagram in radio.sent:
            ground.insert(unwrap(datagram).pdu)
        radio.sent.clear()
        ground.tick()
        while (raw := ground.pop()) is not None:
            fwd.take_datagram(up.wrap(APID_DIRECTIVE, raw))
        time.sleep(0.001)
    assert until(), "not reached in time"


def test_a_coded_product_goes_as_its_coded_file_which_ends_with_its_transaction(tmp_path: Path) -> None:
    radio = Radio()
    fwd = make(tmp_path, radio)
    frames = products_message(3)
    fwd.take_product(frames)
    payload = fwd.store.get(fwd.store.ids()[0]).path.read_bytes()
    ground = DestEngine(2, 1, 1024, CfdpTimers.from_settings(TIMERS), tmp_path / "ground")

    fwd.step(lambda: False)
    assert len(spool_files(fwd)) == 1  # the coded file, while its transaction runs
    (ot,) = fwd.store.open_transactions()
    assert split_name("x" + ot.suffix)[1] is not None  # the coding is recorded with the transaction
    run(fwd, radio, ground, lambda: len(fwd.store) == 0)

    assert fwd.c["products_confirmed"] == 1 and fwd.tx.counters()["coded_transactions"] == 1
    (got,) = [r for r in ground.received if r.delivered]
    assert got.path.read_bytes() == payload and got.name.endswith(".prod")
    fwd.step(lambda: False)
    assert spool_files(fwd) == []


def test_a_restart_rebuilds_the_same_coded_file_and_the_transaction_goes_on(tmp_path: Path) -> None:
    radio = Radio()
    fwd = make(tmp_path, radio)
    fwd.take_product(products_message(4))
    fwd.step(lambda: False)
    (coded,) = spool_files(fwd)
    before = coded.read_bytes()
    (ot,) = fwd.store.open_transactions()
    fwd.store.close()  # a crash: only the store survives (the spool is emptied at start)

    radio2 = Radio()
    again = make(tmp_path, radio2)
    assert spool_files(again) == []
    again.step(lambda: False)
    assert again.c["transactions_resumed"] == 1
    assert [p.read_bytes() for p in spool_files(again)] == [before]
    assert again.tx.engines[0].current_seq == ot.seq
    ground = DestEngine(2, 1, 1024, CfdpTimers.from_settings(TIMERS), tmp_path / "ground")
    run(again, radio2, ground, lambda: len(again.store) == 0)
    assert again.c["products_confirmed"] == 1
    again.store.close()


def test_with_fec_off_products_go_plain(tmp_path: Path) -> None:
    radio = Radio()
    fwd = make(tmp_path, radio, fec=False)
    fwd.take_product(products_message(5))
    ground = DestEngine(2, 1, 1024, CfdpTimers.from_settings(TIMERS), tmp_path / "ground")
    run(fwd, radio, ground, lambda: len(fwd.store) == 0)
    assert fwd.spool is None and fwd.tx.counters()["coded_transactions"] == 0
    assert ground.counters["fec_transactions"] == 0
    fwd.store.close()


def test_a_product_that_cannot_leave_before_the_close_gives_way_to_one_that_can(tmp_path: Path) -> None:
    fwd = make(tmp_path, Radio())
    big = fwd.store.add("rest-big", "full", bytes(400_000), score=0.9)
    small = fwd.store.add("rest-small", "full", bytes(3_000), score=0.1)
    now = time.time()
    fwd.tx.contact = Contact("relay_a", 0, 0, 8e6, 1290.0, now - 5, now + 0.1)  # 0.1 s left: 100 kB go

    assert fwd.store.next().id == big.id  # the policy's choice
    assert fwd.fitting(big, set()).id == small.id
    assert fwd.c["fec_started_fitting"] == 1
    fwd.tx.contact = Contact("relay_a", 0, 0, 8e6, 1290.0, now - 5, now + 0.001)  # nothing fits
    assert fwd.fitting(big, set()).id == big.id
    fwd.tx.contact = Contact("relay_a", 0, 0, 8e6, 1290.0, now - 5, now + 10)  # both fit
    assert fwd.fitting(big, set()).id == big.id
    fwd.store.close()


def test_a_product_whose_eof_leaves_within_a_round_trip_of_the_close_gets_more_repair(tmp_path: Path) -> None:
    fwd = make(tmp_path, Radio())
    item = fwd.store.add("rest-a", "full", bytes(200_000), score=0.5)
    now = time.time()
    fwd.tx.contact = Contact("relay_a", 0, 0, 8e6, 1290.0, now - 5, now + 60)
    early = fwd.coding(item)
    fwd.tx.contact = Contact("relay_a", 0, 0, 8e6, 1290.0, now - 5, now + 2.0)
    late = fwd.coding(item)
    assert early is not None and late is not None and late.repair > early.repair
    fwd.store.close()
