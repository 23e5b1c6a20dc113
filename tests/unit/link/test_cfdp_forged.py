"""Forged and altered PDUs (a valid CRC recomputed over wrong fields) at both CFDP engines.

Each engine believes a PDU only when it fits the transaction it names: a Finished only for a transaction
whose EOF has gone and that has not finished yet (CFDP 4.6.4.2; the full authentication of ground PDUs
comes with the authenticated uplink), a NAK only for byte ranges of the file being sent, file data and
sizes only within the file's size. Everything else is refused, counted and reported, and the transfers
go on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spacepackets.cfdp import ConditionCode, CrcFlag, Direction, PduConfig, TransmissionMode
from spacepackets.cfdp.pdu import EofPdu, FileDataPdu, FinishedPdu, NakPdu
from spacepackets.cfdp.pdu.file_data import FileDataParams
from spacepackets.cfdp.pdu.finished import DeliveryCode, FileStatus, FinishedParams
from spacepackets.util import ByteFieldU16, ByteFieldU32

from link.dest_engine import DestEngine
from link.mib import CfdpTimers
from link.packets import APID_DIRECTIVE, SpacePacketWrapper, unwrap
from link.source_engine import SourceEngine
from tests.unit.link.test_cfdp_engine import TIMERS, Link, make_files, received

DELIVERED = FinishedParams(ConditionCode.NO_ERROR, DeliveryCode.DATA_COMPLETE, FileStatus.FILE_RETAINED)


def conf(seq: int, source: int = 1, dest: int = 2, towards: Direction = Direction.TOWARDS_SENDER) -> PduConfig:
    return PduConfig(source_entity_id=ByteFieldU16(source), dest_entity_id=ByteFieldU16(dest),
                     transaction_seq_num=ByteFieldU32(seq), trans_mode=TransmissionMode.ACKNOWLEDGED,
                     crc_flag=CrcFlag.WITH_CRC, direction=towards)


def over_the_link(pdu: Any) -> Any:
    """``pdu`` packed with its CRC, wrapped and parsed back: what a forger's datagram gives the engine."""
    return unwrap(SpacePacketWrapper().wrap(APID_DIRECTIVE, bytes(pdu.pack())), require_crc=True).pdu


def forged_finished(seq: int, **ids: int) -> Any:
    return over_the_link(FinishedPdu(params=DELIVERED, pdu_conf=conf(seq, **ids)))


class Reports:
    """The engine's ``reject`` callback: the events it asked for."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, fields: dict[str, Any]) -> None:
        self.events.append((name, fields))


def run_to_tail(src: SourceEngine) -> None:
    """Let the engine send everything up to and including its EOF (the ground hears none of it)."""
    for _ in range(50):
        src.pump(64)
        while src.pop() is not None:
            pass
        if src.tail_reached:
            return
    raise AssertionError("the EOF never went")


# --- Finished PDUs at the lander --------------------------------------------------------------

def test_a_forged_finished_for_a_past_transaction_of_a_still_stored_product_confirms_nothing(tmp_path: Path) -> None:
    reports = Reports()
    past = {5: ("navcam-00000007-full", 0x7FD)}  # the store remembers transaction 5 (it failed; the product waits)
    src = SourceEngine(1, 2, 512, TIMERS, lookup=past.get, reject=reports)
    src.insert(forged_finished(5))
    assert not src.outcomes, "a Finished for no transaction awaiting one must not confirm its product"
    assert src.counters["finished_refused"] == 1
    assert reports.events and reports.events[0][0] == "pdu_refused" and reports.events[0][1]["transaction"] == 5


def test_a_forged_finished_for_an_aborted_transaction_confirms_nothing(tmp_path: Path) -> None:
    src = SourceEngine(1, 2, 512, TIMERS, reject=Reports())
    f = make_files(tmp_path, [3000])[0]
    seq = src.start("p", f, 0x7FD)
    src.pump(2)
    src.abort("dropped by an operator")  # before its EOF: no receiver can have all of it
    src.outcomes.clear()
    src.insert(forged_finished(seq))
    assert not any(o.delivered for o in src.outcomes)
    assert src.counters["finished_refused"] == 1


def test_a_finished_before_the_eof_went_is_refused_and_the_transfer_goes_on(tmp_path: Path) -> None:
    link = Link(tmp_path)
    f = make_files(tmp_path, [60_000])[0]
    seq = link.src.start(f.stem, f, 0x7FD)
    link.src.pump(1)
    link.src.insert(over_the_link(FinishedPdu(params=FinishedParams(
        ConditionCode.FILESTORE_REJECTION, DeliveryCode.DATA_INCOMPLETE, FileStatus.DISCARDED_DELIBERATELY),
        pdu_conf=conf(seq))))
    assert link.src.busy and link.src.counters["finished_refused"] == 1
    link.settle(0.5)
    assert [o.delivered for o in link.outcomes] == [True]
    assert received(link, tmp_path)[f.stem] == f.read_bytes()


def test_a_finished_naming_other_entities_is_refused(tmp_path: Path) -> None:
    src = SourceEngine(1, 2, 512, TIMERS, reject=Reports())
    f = make_files(tmp_path, [3000])[0]
    seq = src.start("p", f, 0x7FD)
    run_to_tail(src)
    src.insert(forged_finished(seq, dest=9))
    assert src.busy and not src.outcomes
    assert src.counters["finished_refused"] == 1


def test_the_grounds_late_finished_still_confirms_a_transaction_abandoned_after_its_eof(tmp_path: Path) -> None:
    clock = [0.0]
    src = SourceEngine(1, 2, 512, CfdpTimers(ack_timer_s=30, ack_limit=3, nak_timer_s=30, inactivity_s=2.0),
                       clock=lambda: clock[0])
    f = make_files(tmp_path, [2000])[0]
    seq = src.start("p", f, 0x7FD)
    run_to_tail(src)
    clock[0] = 10.0
    src.pump(1)
    assert not src.outcomes.popleft().delivered  # inactivity: it waited for a Finished
    src.insert(forged_finished(seq))  # (the ground's, late: this engine cannot tell it from a forged one)
    assert [o.delivered for o in src.outcomes] == [True]
    src.outcomes.clear()
    src.insert(forged_finished(seq))  # once: the transaction has its Finished now
    assert not src.outcomes


# --- NAK PDUs at the lander -------------------------------------------------------------------

def test_a_nak_beyond_the_file_is_refused_and_queues_nothing(tmp_path: Path) -> None:
    reports = Reports()
    src = SourceEngine(1, 2, 512, TIMERS, reject=reports)
    f = make_files(tmp_path, [30_000])[0]
    seq = src.start("p", f, 0x7FD)
    run_to_tail(src)
    src.insert(over_the_link(NakPdu(conf(seq), start_of_scope=0, end_of_scope=10**7,
                                    segment_requests=[(0, 10**7)])))
    assert src.pending < 10, f"{src.pending} PDUs queued for a NAK of a 30 kB file"
    assert src.counters["naks_refused"] == 1 and src.busy
    assert reports.events[-1][0] == "pdu_refused" and "NAK" in reports.events[-1][1]["reason"]


def test_naks_with_reversed_or_repeated_ranges_are_refused(tmp_path: Path) -> None:
    src = SourceEngine(1, 2, 512, TIMERS)
    f = make_files(tmp_path, [4000])[0]
    seq = src.start("p", f, 0x7FD)
    run_to_tail(src)
    for reqs in ([(3000, 1000)], [(0, 4000)] * 40):
        src.insert(over_the_link(NakPdu(conf(seq), start_of_scope=0, end_of_scope=4000, segment_requests=reqs)))
    assert src.counters["naks_refused"] == 2 and src.pending < 10 and src.busy


def test_an_altered_nak_range_does_not_break_the_transfer(tmp_path: Path) -> None:
    """A NAK whose end offset was altered (and its CRC recomputed) is refused; the real NAKs recover."""
    seen = {"first": True}

    def alter(pdu: Any) -> bool:
        if isinstance(pdu, NakPdu) and pdu.segment_requests and seen["first"] and pdu.segment_requests[0] != (0, 0):
            seen["first"] = False
            start, _ = pdu.segment_requests[0]
            pdu.segment_requests = [(start, 1 << 30)]
        return False

    dropped = {"n": 0}

    def drop_some_data(pdu: Any) -> bool:
        if isinstance(pdu, FileDataPdu) and dropped["n"] < 3:
            dropped["n"] += 1
            return True
        return False

    link = Link(tmp_path, drop_down=drop_some_data, drop_up=alter)
    files = make_files(tmp_path, [40_000])
    link.send_all(files, timeout_s=10)
    assert received(link, tmp_path)[files[0].stem] == files[0].read_bytes()
    assert not seen["first"] and link.src.counters["naks_refused"] >= 1


# --- sizes at the ground ----------------------------------------------------------------------

def _dest(tmp: Path, reports: Reports | None = None) -> DestEngine:
    return DestEngine(2, 1, 512, TIMERS, tmp / "incoming", reject=reports, max_file_bytes=1 << 24)


def test_file_data_beyond_the_declared_size_is_refused_before_it_is_written(tmp_path: Path) -> None:
    reports = Reports()
    link = Link(tmp_path)
    link.dst = _dest(tmp_path, reports)
    f = make_files(tmp_path, [20_000])[0]
    seq = link.src.start(f.stem, f, 0x7FD)
    link.step()  # Metadata and the first data are at the ground
    forged = FileDataPdu(pdu_conf=conf(seq, towards=Direction.TOWARDS_RECEIVER),
                         params=FileDataParams(file_data=b"x" * 100, offset=1 << 31, segment_metadata=None))
    link.dst.insert(over_the_link(forged))
    files = list((tmp_path / "incoming").iterdir())
    assert files and max(p.stat().st_size for p in files) <= 20_000, "a forged offset grew the file"
    assert link.dst.counters["pdus_refused"] == 1 and reports.events[0][0] == "pdu_refused"
    link.settle(0.5)
    assert received(link, tmp_path)[f.stem] == f.read_bytes()


def test_an_eof_or_metadata_naming_an_impossible_size_opens_no_transaction(tmp_path: Path) -> None:
    dst = _dest(tmp_path)
    eof = EofPdu(file_checksum=b"\0\0\0\0", file_size=1 << 31, pdu_conf=conf(40, towards=Direction.TOWARDS_RECEIVER))
    dst.insert(over_the_link(eof))
    naks = [unwrap(SpacePacketWrapper().wrap(APID_DIRECTIVE, raw)).pdu for raw in iter(dst.pop, None)]
    assert not any(isinstance(p, NakPdu) and any(e > 1 << 24 for _, e in p.segment_requests) for p in naks)
    assert dst.active == 0 and dst.counters["pdus_refused"] == 1
