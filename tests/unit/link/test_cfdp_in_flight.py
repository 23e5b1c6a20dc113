"""The source engine answers a NAK with what is not already on its way, and still answers a later NAK.

A segment asked for again before its retransmission could have reached the ground (queued, or sent
less than ``in_flight_s`` ago) is not sent twice; once that time has passed, the ground still lacking
it means the copy was lost, and the NAK is answered. Fake clock, no link.
"""

from __future__ import annotations

from pathlib import Path

from spacepackets.ccsds.spacepacket import PacketType
from spacepackets.cfdp import Direction, PduType
from spacepackets.cfdp.pdu import DirectiveType, NakPdu

from link.mib import CfdpTimers
from link.packets import SpacePacketWrapper, unwrap
from link.source_engine import SourceEngine

TIMERS = CfdpTimers(ack_timer_s=60.0, nak_timer_s=60.0, inactivity_s=600.0)
SEG = 400


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _sent(engine: SourceEngine) -> list[object]:
    wrap = SpacePacketWrapper(PacketType.TM)
    out = []
    while (item := engine.pop()) is not None:
        out.append(unwrap(wrap.wrap(*item)).pdu)
    return out


def _file_data(pdus: list[object]) -> list[int]:
    return [p.offset for p in pdus if p.pdu_type == PduType.FILE_DATA]


def _started(tmp_path: Path) -> tuple[SourceEngine, Clock, object, int]:
    clock = Clock()
    engine = SourceEngine(1, 2, 512, TIMERS, clock=clock)
    engine.in_flight_s = 10.0
    path = tmp_path / "product.bin"
    path.write_bytes(bytes(range(256)) * 16)
    engine.start("p", path, 0x7FD, seq=7)
    first: list[object] = []
    for _ in range(50):
        engine.pump(64)
        first += _sent(engine)
        if engine.tail_reached:
            break
    assert any(getattr(p, "directive_type", None) == DirectiveType.EOF_PDU for p in first)
    seg = next(p for p in first if p.pdu_type == PduType.FILE_DATA)
    return engine, clock, seg, len(seg.file_data)


def _nak(seg_pdu: object, start: int, end: int, size: int) -> NakPdu:
    conf = seg_pdu.pdu_header.pdu_conf
    conf.direction = Direction.TOWARDS_SENDER
    return NakPdu(conf, 0, size, [(start, end)])


def test_a_segment_asked_for_again_while_its_copy_is_on_its_way_goes_once(tmp_path: Path) -> None:
    engine, clock, seg_pdu, seg = _started(tmp_path)
    clock.t = 20.0  # the first pass is long gone: the first NAK is answered
    engine.insert(_nak(seg_pdu, seg, 2 * seg, 4096))
    engine.insert(_nak(seg_pdu, seg, 2 * seg, 4096))  # a copy of the NAK, before anything was sent
    engine.pump(8)
    assert _file_data(_sent(engine)) == [seg]
    clock.t = 25.0  # the retransmission left 5 s ago, less than the round trip: the ground cannot have it yet
    engine.insert(_nak(seg_pdu, 0, 3 * seg, 4096))
    engine.pump(8)
    assert _file_data(_sent(engine)) == [0, 2 * seg]
    assert engine.counters["retransmits_in_flight"] == 2


def test_a_segment_still_missing_after_the_round_trip_is_sent_again(tmp_path: Path) -> None:
    engine, clock, seg_pdu, seg = _started(tmp_path)
    clock.t = 20.0
    engine.insert(_nak(seg_pdu, seg, 2 * seg, 4096))
    engine.pump(8)
    assert _file_data(_sent(engine)) == [seg]
    clock.t = 31.0  # that copy was lost: the ground asks again after the round trip
    engine.insert(_nak(seg_pdu, seg, 2 * seg, 4096))
    engine.pump(8)
    assert _file_data(_sent(engine)) == [seg]
