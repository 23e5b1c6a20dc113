"""A transaction interrupted by a crash of either end goes on where it stopped, in the same CFDP transaction.

The engines run over an in-memory link of real Space Packets. A "crash" drops an engine with everything it
held in memory; what survives is the file on disk, the ground's journal (its ledger) and the lander's last
progress mark. The measure is the file data sent again: well below the file size, where a restart from
zero would send at least what had already arrived.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Callable

from spacepackets.ccsds.spacepacket import PacketType
from spacepackets.cfdp import PduType
from spacepackets.cfdp.pdu import DirectiveType

from link.source_engine import Checkpoint, Outcome, SourceEngine
from link.mib import CfdpTimers
from link.packets import APID_DIRECTIVE, SpacePacketWrapper, unwrap
from link.dest_engine import DestEngine
from link.resume import Segments, decode_segments
from ground.ledger import Ledger

TIMERS = CfdpTimers(ack_timer_s=0.02, ack_limit=50, nak_timer_s=0.02, nak_limit=50, inactivity_s=5.0)
SIZE = 600_000
SEQ = 41
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
    """Moves PDUs both ways as Space Packets; each step is 50 ms of engine time."""

    def __init__(self, src: SourceEngine, dst: DestEngine, clock: Clock) -> None:
        self.src, self.dst, self.clock = src, dst, clock
        self.down, self.up = SpacePacketWrapper(PacketType.TM), SpacePacketWrapper(PacketType.TC)
        self.drop_down: Drop = never
        self.drop_up: Drop = never
        self.outcomes: list[Outcome] = []
        self.marks: list[Checkpoint] = []
        self.naks: list[list[tuple[int, int]]] = []

    def step(self) -> None:
        self.src.pump(32)
        while (item := self.src.pop()) is not None:
            pdu = unwrap(self.down.wrap(*item)).pdu
            if not self.drop_down(pdu):
                self.dst.insert(pdu)
        self.dst.tick()
        while (raw := self.dst.pop()) is not None:
            pdu = unwrap(self.up.wrap(APID_DIRECTIVE, raw)).pdu
            if directive(pdu) == DirectiveType.NAK_PDU:
                self.naks.append(list(pdu.segment_requests))
            if not self.drop_up(pdu):
                self.src.insert(pdu)
        self.outcomes.extend(self._take_outcomes())
        self.marks.extend(self._take_marks())
        self.clock.t += 0.05

    def _take_outcomes(self) -> list[Outcome]:
        out = list(self.src.outcomes)
        self.src.outcomes.clear()
        return out

    def _take_marks(self) -> list[Checkpoint]:
        out = list(self.src.checkpoints)
        self.src.checkpoints.clear()
        return out

    def run_until(self, done: Callable[[], bool], timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, f"not reached; outcomes {self.outcomes}"
            self.step()
            time.sleep(0.001)

    def delivered(self) -> bool:
        return any(o.delivered for o in self.outcomes)


def product(tmp: Path) -> Path:
    p = tmp / "prod"
    p.write_bytes(random.Random(5).randbytes(SIZE))
    return p


def ground(tmp: Path, clock: Clock) -> tuple[DestEngine, Ledger]:
    ledger = Ledger(tmp / "ground" / "ledger.sqlite")
    dst = DestEngine(2, 1, 512, TIMERS, tmp / "ground" / "incoming", clock=clock,
                     on_delivered=ledger.file_received, journal=ledger)
    return dst, ledger


def restarted_ground(tmp: Path, clock: Clock) -> tuple[DestEngine, Ledger, Segments]:
    """A new ground process: it knows only its ledger and the files on disk."""
    dst, ledger = ground(tmp, clock)
    open_rows = [r for r in ledger.transfers() if r.open]
    held = decode_segments(open_rows[0].segments) if open_rows and open_rows[0].segments else Segments()
    assert dst.restore(ledger.transfers(), ledger.known_names()) == len(open_rows)
    return dst, ledger, held


def delivered_file(dst: DestEngine) -> bytes:
    got = [r for r in dst.received if r.delivered]
    assert len(got) == 1, dst.received
    return got[0].path.read_bytes()


def link(tmp: Path) -> tuple[Clock, Path, SourceEngine, DestEngine, Wire]:
    """A product file, a lander engine and a ground on one fake clock, joined by a wire."""
    clock = Clock()
    f = product(tmp)
    src = SourceEngine(1, 2, 512, TIMERS, clock=clock)
    dst, _ = ground(tmp, clock)
    return clock, f, src, dst, Wire(src, dst, clock)


def overlaps(req: tuple[int, int], held: Segments) -> bool:
    return any(req[0] < e and s < req[1] for s, e in held.ranges)


def test_a_ground_restarted_mid_transfer_naks_only_what_its_journal_lacks(tmp_path: Path) -> None:
    clock, f, src, dst, wire = link(tmp_path)
    src.start("p", f, 0x102, SEQ)
    wire.run_until(lambda: dst.counters["file_bytes_new"] >= SIZE // 2)

    wire.dst, _, held = restarted_ground(tmp_path, clock)  # SIGKILL: the old engine's memory is gone
    assert held.total >= SIZE // 4 and wire.dst.counters["transfers_resumed"] == 1
    wire.naks.clear()
    wire.run_until(wire.delivered)

    assert delivered_file(wire.dst) == f.read_bytes()
    requests = [r for nak in wire.naks for r in nak]
    assert (0, 0) not in requests  # the Metadata is never asked for again
    assert not any(overlaps(r, held) for r in requests)  # nor anything the journal holds
    assert src.counters["restarted_on_metadata_nak"] == 0 and wire.dst.counters["transactions_started"] == 1
    assert src.counters["file_bytes_sent"] - SIZE < SIZE // 4  # a restart from zero resends >= SIZE // 2


def test_a_ground_restarted_after_the_eof_naks_the_gaps_at_once_and_completes(tmp_path: Path) -> None:
    clock, f, src, dst, wire = link(tmp_path)
    lost = random.Random(2)
    wire.drop_down = lambda p: directive(p) is None and lost.random() < 0.05
    wire.drop_up = lambda p: True  # the lander hears nothing before the ground's crash
    src.start("p", f, 0x102, SEQ)
    wire.run_until(lambda: dst.counters["checkpoints"] > 0 and src.tail_reached and bool(wire.naks))
    wire.drop_down = wire.drop_up = never

    wire.dst, _, held = restarted_ground(tmp_path, clock)
    first = [unwrap(wire.up.wrap(APID_DIRECTIVE, raw)).pdu for raw in list(wire.dst._out)]
    naks = [p for p in first if directive(p) == DirectiveType.NAK_PDU]
    assert naks, "the restored EOF starts lost-segment recovery at once"
    assert [r for n in naks for r in n.segment_requests] == held.gaps(SIZE)
    wire.run_until(wire.delivered)
    assert delivered_file(wire.dst) == f.read_bytes()


def test_a_lander_restarted_mid_transfer_goes_on_from_its_last_mark_in_the_same_transaction(tmp_path: Path) -> None:
    clock, f, src, dst, wire = link(tmp_path)
    src.start("p", f, 0x102, SEQ)
    wire.run_until(lambda: dst.counters["file_bytes_new"] >= SIZE // 2)
    mark = wire.marks[-1]
    assert mark.seq == SEQ and 0 < mark.progress <= SIZE // 2 + 64 * 1024 and not mark.eof_sent

    sent_before = src.counters["file_bytes_sent"]
    wire.src = SourceEngine(1, 2, 512, TIMERS, clock=clock)  # SIGKILL: only the recorded mark survives
    wire.src.resume("p", f, 0x102, SEQ, ".prod", mark.progress, mark.eof_sent)
    wire.run_until(wire.delivered)

    assert delivered_file(dst) == f.read_bytes()
    assert dst.counters["transactions_started"] == 1
    assert sent_before + wire.src.counters["file_bytes_sent"] - SIZE < SIZE // 4


def test_a_lander_restarted_after_its_eof_answers_the_naks_of_the_same_transaction(tmp_path: Path) -> None:
    clock, f, src, dst, wire = link(tmp_path)
    lost = random.Random(3)
    wire.drop_down = lambda p: directive(p) is None and lost.random() < 0.05
    wire.drop_up = lambda p: True  # NAKs and the EOF ACK are lost, then the lander dies
    src.start("p", f, 0x102, SEQ)
    wire.run_until(lambda: any(m.eof_sent for m in wire.marks))
    wire.drop_down = wire.drop_up = never
    mark = wire.marks[-1]

    wire.src = SourceEngine(1, 2, 512, TIMERS, clock=clock)
    wire.src.resume("p", f, 0x102, SEQ, ".prod", mark.progress, mark.eof_sent)
    wire.run_until(wire.delivered)

    assert delivered_file(dst) == f.read_bytes()
    assert dst.counters["transactions_started"] == 1
    assert wire.src.counters["file_bytes_sent"] < SIZE // 4  # only what the ground NAKed


def test_a_ground_restarted_after_its_finished_was_lost_answers_the_landers_eof_with_it(tmp_path: Path) -> None:
    clock, f, src, dst, wire = link(tmp_path)
    wire.drop_up = lambda p: directive(p) == DirectiveType.FINISHED_PDU
    src.start("p", f, 0x102, SEQ)
    wire.run_until(lambda: any(r.delivered for r in dst.received))
    assert delivered_file(dst) == f.read_bytes()
    wire.drop_up = never

    wire.dst, ledger, _ = restarted_ground(tmp_path, clock)
    assert wire.dst.active == 0 and not any(r.open for r in ledger.transfers())
    wire.run_until(wire.delivered)  # the lander's EOF probe meets the journalled Finished
    assert src.counters["eof_probes"] == 1 and src.counters["inactivity_aborts"] == 0
