"""Coded transactions (link.fec) between the engines over an in-memory lossy link of real Space Packets.

The product is coded into K source and R repair symbols, one file data segment each; the ground
rebuilds it from any K (+1) and delivers the product itself. Each step of the wire is 50 ms of engine
time (cfdp-py's own NAK and ACK timers run on wall time and are short here).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Callable

import pytest
from spacepackets.ccsds.spacepacket import PacketType
from spacepackets.cfdp import PduType
from spacepackets.cfdp.pdu import DirectiveType

import link.dest_engine as dest_engine
from ground.ledger import Ledger
from link.dest_engine import DestEngine
from link.fec import Coding, SymbolDecoder, encode, repair_for
from link.filestore import transfer_name
from link.mib import CfdpTimers
from link.packets import APID_DIRECTIVE, SpacePacketWrapper, unwrap
from link.resume import decode_segments
from link.source_engine import Outcome, SourceEngine, file_segment_len

TIMERS = CfdpTimers(ack_timer_s=0.02, ack_limit=50, nak_timer_s=0.02, nak_limit=50, inactivity_s=5.0)
PACKET = 512
SIZE = 60_000
SEQ = 7
Drop = Callable[[object], bool]


def directive(pdu: object) -> DirectiveType | None:
    return None if pdu.pdu_type == PduType.FILE_DATA else pdu.directive_type


def never(pdu: object) -> bool:
    return False


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Wire:
    """Moves PDUs both ways; notes every file data offset sent and every NAK after the EOF went."""

    def __init__(self, src: SourceEngine, dst: DestEngine, clock: Clock) -> None:
        self.src, self.dst, self.clock = src, dst, clock
        self.down, self.up = SpacePacketWrapper(PacketType.TM), SpacePacketWrapper(PacketType.TC)
        self.drop_down: Drop = never
        self.drop_up: Drop = never
        self.outcomes: list[Outcome] = []
        self.sent: list[int] = []  # file data offsets, in order
        self.naks_after_eof = 0
        self.eof_seen = False

    def step(self) -> None:
        self.src.pump(32)
        while (item := self.src.pop()) is not None:
            pdu = unwrap(self.down.wrap(*item)).pdu
            if directive(pdu) is None:
                self.sent.append(pdu.offset)
            if directive(pdu) == DirectiveType.EOF_PDU:
                self.eof_seen = True
            if not self.drop_down(pdu):
                self.dst.insert(pdu)
        self.dst.tick()
        while (raw := self.dst.pop()) is not None:
            pdu = unwrap(self.up.wrap(APID_DIRECTIVE, raw)).pdu
            if directive(pdu) == DirectiveType.NAK_PDU and self.eof_seen:
                self.naks_after_eof += 1
            if not self.drop_up(pdu):
                self.src.insert(pdu)
        self.outcomes.extend(self.src.outcomes)
        self.src.outcomes.clear()
        self.clock.t += 0.05

    def run_until(self, done: Callable[[], bool], timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, f"not reached; outcomes {self.outcomes}"
            self.step()
            time.sleep(0.001)

    def delivered(self) -> bool:
        return any(o.delivered for o in self.outcomes)


def coded_product(tmp: Path, loss: float, repair: int | None = None) -> tuple[bytes, Coding, Path]:
    data = random.Random(5).randbytes(SIZE)
    t = (file_segment_len(1, 2, PACKET) - 4) // 8 * 8
    k = -(-SIZE // t)
    coding = Coding(SIZE, t, repair if repair is not None else repair_for(k, loss))
    f = tmp / "coded"
    f.write_bytes(encode(data, coding))
    return data, coding, f


def setup(tmp: Path, loss: float = 0.2, repair: int | None = None, journal: bool = False):
    clock = Clock()
    data, coding, f = coded_product(tmp, loss, repair)
    src = SourceEngine(1, 2, PACKET, TIMERS, clock=clock)
    src.round_trip_s = 0.1
    src.loss.value = loss
    ledger = Ledger(tmp / "ground" / "ledger.sqlite") if journal else None
    dst = DestEngine(2, 1, PACKET, TIMERS, tmp / "ground" / "incoming", clock=clock,
                     on_delivered=ledger.file_received if ledger else None, journal=ledger)
    return data, coding, f, src, dst, Wire(src, dst, clock)


def delivered(dst: DestEngine) -> tuple[str, bytes]:
    got = [r for r in dst.received if r.delivered]
    assert len(got) == 1, dst.received
    return got[0].name, got[0].path.read_bytes()


def drop_symbols(coding: Coding, indexes: set[int], once: bool = True) -> Drop:
    """Drop the file data PDUs of these symbols (their first copy only, if ``once``)."""
    left = set(indexes)

    def drop(pdu: object) -> bool:
        if directive(pdu) is not None:
            return False
        i = pdu.offset // coding.packet_len
        if i in left:
            if once:
                left.discard(i)
            return True
        return False
    return drop


def test_a_coded_product_crosses_20_percent_loss_and_arrives_as_the_product(tmp_path: Path) -> None:
    data, coding, f, src, dst, wire = setup(tmp_path)
    down, up = random.Random(20), random.Random(21)
    wire.drop_down = lambda p: down.random() < 0.2
    wire.drop_up = lambda p: up.random() < 0.2
    src.start("p", f, 0x102, SEQ, ".prod" + coding.suffix)
    wire.run_until(wire.delivered)

    name, got = delivered(dst)
    assert got == data and name == transfer_name(SEQ, "p", ".prod")
    assert sorted(p.name for p in (tmp_path / "ground" / "incoming").iterdir()) == [name]  # the coded file went
    assert dst.counters["fec_transactions"] == 1
    assert dst.counters["file_bytes_new"] == SIZE  # product bytes only: parity never counts
    assert dst.counters["fec_parity_bytes"] > 0


def test_losses_within_the_repair_budget_complete_at_the_eof_with_no_resend_and_no_nak_round_trip(
        tmp_path: Path) -> None:
    data, coding, f, src, dst, wire = setup(tmp_path)
    # (none among the last wire step's symbols: their gaps' immediate NAKs would leave beside the EOF)
    lost = set(random.Random(3).sample(range(coding.packets - 40), coding.repair - 1))
    wire.drop_down = drop_symbols(coding, lost)
    src.start("p", f, 0x102, SEQ, ".prod" + coding.suffix)
    wire.run_until(wire.delivered)

    assert delivered(dst)[1] == data
    assert sorted(wire.sent) == [i * coding.packet_len for i in range(coding.packets)]  # each symbol once
    assert src.counters["coded_naks_measured"] > 0  # the ground's NAKs before the EOF were only measured
    assert src.counters["coded_resend_symbols"] == 0
    assert wire.naks_after_eof == 0  # the decode filled the gaps: no lost-segment round trip
    assert dst.counters["fec_decoded"] == 1 and dst.counters["fec_fill_bytes"] > 0
    assert dst.counters["file_bytes_new"] == SIZE
    assert src.loss.value > 0.0


def test_a_shortfall_after_the_eof_is_made_up_by_resending_the_deficit_only(tmp_path: Path) -> None:
    data, coding, f, src, dst, wire = setup(tmp_path, loss=0.05, repair=30)
    lost = set(random.Random(4).sample(range(coding.packets), 60))  # K - 30 held: 31 short of K + 1
    wire.drop_down = drop_symbols(coding, lost)
    src.start("p", f, 0x102, SEQ, ".prod" + coding.suffix)
    wire.run_until(wire.delivered)

    assert delivered(dst)[1] == data
    resent = len(wire.sent) - coding.packets
    assert src.counters["coded_resend_symbols"] == resent
    # the deficit and a margin for the loss as the NAKs measured it (60 of ~150 symbols), not every missing one
    assert 31 <= resent < 60
    assert dst.counters["fec_decoded"] == 1


def test_a_coded_transaction_whose_metadata_came_late_is_decoded_too(tmp_path: Path) -> None:
    data, coding, f, src, dst, wire = setup(tmp_path)
    metadata_lost = [2]  # the first copy and the first repeat: file data comes first

    def drop(pdu: object) -> bool:
        if directive(pdu) == DirectiveType.METADATA_PDU and metadata_lost[0] > 0:
            metadata_lost[0] -= 1
            return True
        return False
    wire.drop_down = drop
    src.start("p", f, 0x102, SEQ, ".prod" + coding.suffix)
    wire.run_until(wire.delivered)

    assert delivered(dst)[1] == data
    assert dst.counters["fec_transactions"] == 1 and dst.counters["fec_decoded"] == 1


class WrongDecoder(SymbolDecoder):
    """Decodes, then gives a product with one byte changed (as a decoder fault would)."""

    def add(self, offset: int, data: bytes) -> int:
        new = super().add(offset, data)
        if self.product is not None and self.product[:1] != b"\xAA":
            self.product = b"\xAA" + self.product[1:]
        return new


def test_a_wrong_decode_fails_its_checksum_and_plain_naks_fetch_what_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dest_engine, "SymbolDecoder", WrongDecoder)
    data, coding, f, src, dst, wire = setup(tmp_path)
    lost = set(random.Random(6).sample(range(coding.packets), 3))
    wire.drop_down = drop_symbols(coding, lost)
    src.start("p", f, 0x102, SEQ, ".prod" + coding.suffix)
    wire.run_until(wire.delivered)

    assert delivered(dst)[1] == data  # bit-exact: the wrong bytes never reached the file
    assert dst.counters["fec_decode_mismatch"] == 1 and dst.counters["fec_decoded"] == 0
    assert src.counters["coded_naks_answered_in_full"] >= 1
    assert dst.counters["checksum_failures"] == 0


def test_a_coded_transfer_resumes_after_a_ground_restart_and_decodes_from_what_its_file_held(
        tmp_path: Path) -> None:
    data, coding, f, src, dst, wire = setup(tmp_path, journal=True)
    lost = set(random.Random(8).sample(range(coding.packets), 10))
    wire.drop_down = drop_symbols(coding, lost, once=False)  # these never arrive: the decode must fill them
    src.start("p", f, 0x102, SEQ, ".prod" + coding.suffix)
    wire.run_until(lambda: dst.counters["checkpoints"] > 0 and len(wire.sent) > coding.packets // 2)

    ledger = Ledger(tmp_path / "ground" / "ledger.sqlite")  # SIGKILL of the ground: a new one from its ledger
    wire.dst = DestEngine(2, 1, PACKET, TIMERS, tmp_path / "ground" / "incoming", clock=wire.clock,
                          on_delivered=ledger.file_received, journal=ledger)
    rows = [r for r in ledger.transfers() if r.open]
    assert len(rows) == 1 and decode_segments(rows[0].segments).total > 0
    assert wire.dst.restore(ledger.transfers(), ledger.known_names()) == 1
    wire.run_until(wire.delivered)

    name, got = delivered(wire.dst)
    assert got == data and name == transfer_name(SEQ, "p", ".prod")
    assert wire.dst.counters["fec_decoded"] == 1
    assert ledger.known_names() >= {name}


def test_a_plain_product_goes_plain_beside_coded_ones(tmp_path: Path) -> None:
    clock = Clock()
    src = SourceEngine(1, 2, PACKET, TIMERS, clock=clock)
    dst = DestEngine(2, 1, PACKET, TIMERS, tmp_path / "incoming", clock=clock)
    wire = Wire(src, dst, clock)
    p = tmp_path / "plain"
    p.write_bytes(random.Random(9).randbytes(5000))
    src.start("q", p, 0x102, 3, ".prod")
    wire.run_until(wire.delivered)
    assert delivered(dst) == (transfer_name(3, "q", ".prod"), p.read_bytes())
    assert dst.counters["fec_transactions"] == 0 and src.counters["coded_transactions"] == 0
