"""Source and destination engines over an in-memory lossy channel: files arrive bit-exact.

The channel carries real Space Packets; cfdp-py's timers run on wall time, so
timers here are short (tens of ms) and each transfer takes well under a second.
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

from link.source_engine import SourceEngine
from link.mib import CfdpTimers
from link.packets import APID_DIRECTIVE, SpacePacketWrapper, unwrap
from link.dest_engine import DestEngine

TIMERS = CfdpTimers(ack_timer_s=0.02, ack_limit=50, nak_timer_s=0.02, nak_limit=50, inactivity_s=5.0)
Drop = Callable[[object], bool]


def directive(pdu: object) -> DirectiveType | None:
    return None if pdu.pdu_type == PduType.FILE_DATA else pdu.directive_type


def drop_first(kind: DirectiveType, times: int = 1) -> Drop:
    left = [times]

    def drop(pdu: object) -> bool:
        if directive(pdu) == kind and left[0] > 0:
            left[0] -= 1
            return True
        return False
    return drop


def never(pdu: object) -> bool:
    return False


class Link:
    """Moves PDUs between the engines as Space Packets, dropping what the predicates say."""

    def __init__(self, tmp: Path, drop_down: Drop = never, drop_up: Drop = never, max_packet_len: int = 512) -> None:
        self.src = SourceEngine(1, 2, max_packet_len, TIMERS)
        self.dst = DestEngine(2, 1, max_packet_len, TIMERS, tmp / "incoming")
        self.down, self.up = SpacePacketWrapper(PacketType.TM), SpacePacketWrapper(PacketType.TC)
        self.drop_down, self.drop_up = drop_down, drop_up
        self.down_log: list[bytes] = []
        self.outcomes: list = []

    def step(self) -> bool:
        moved = False
        self.src.pump(32)
        while (item := self.src.pop()) is not None:
            dg = self.down.wrap(*item)
            self.down_log.append(dg)
            pdu = unwrap(dg).pdu
            moved = True
            if not self.drop_down(pdu):
                self.dst.insert(pdu)
        self.dst.tick()
        while (raw := self.dst.pop()) is not None:
            pdu = unwrap(self.up.wrap(APID_DIRECTIVE, raw)).pdu
            moved = True
            if not self.drop_up(pdu):
                self.src.insert(pdu)
        while self.src.outcomes:
            self.outcomes.append(self.src.outcomes.popleft())
        return moved

    def send_all(self, files: list[Path], timeout_s: float = 20.0) -> None:
        queue = list(files)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.src.busy and queue:
                f = queue.pop(0)
                self.src.start(f.stem, f, 0x102)
            if not self.step():
                time.sleep(0.002)
            delivered = {o.product_id for o in self.outcomes if o.delivered}
            if not queue and not self.src.busy and {f.stem for f in files} <= delivered:
                return
            if not self.src.busy and queue == [] and len(self.outcomes) >= len(files):
                failed = [f for f in files if f.stem not in delivered]
                queue.extend(failed)  # a failed transaction is retried, as the service does
        raise AssertionError(f"transfer did not finish: {self.outcomes}")

    def settle(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not self.step():
                time.sleep(0.002)


def make_files(tmp: Path, sizes: list[int], seed: int = 3) -> list[Path]:
    rng = random.Random(seed)
    out = []
    for i, n in enumerate(sizes):
        p = tmp / f"prod{i}"
        p.write_bytes(rng.randbytes(n))
        out.append(p)
    return out


def received(link: Link, tmp: Path) -> dict[str, bytes]:
    return {r.name.split("-", 1)[1][:-5]: r.path.read_bytes() for r in link.dst.received if r.delivered}


def test_several_files_cross_a_link_with_20_percent_loss_bit_exact(tmp_path: Path) -> None:
    rng_down, rng_up = random.Random(20), random.Random(21)
    link = Link(tmp_path, drop_down=lambda p: rng_down.random() < 0.2, drop_up=lambda p: rng_up.random() < 0.2)
    files = make_files(tmp_path, [1, 5000, 20_000, 64_000, 0])
    link.send_all(files)
    got = received(link, tmp_path)
    for f in files:
        assert got[f.stem] == f.read_bytes()


@pytest.mark.parametrize("lost", [DirectiveType.METADATA_PDU, DirectiveType.EOF_PDU])
def test_a_lost_lander_directive_is_recovered(tmp_path: Path, lost: DirectiveType) -> None:
    link = Link(tmp_path, drop_down=drop_first(lost, times=2))
    files = make_files(tmp_path, [30_000])
    link.send_all(files)
    assert received(link, tmp_path)[files[0].stem] == files[0].read_bytes()


def test_a_lost_finished_is_sent_again_and_confirms_the_product(tmp_path: Path) -> None:
    link = Link(tmp_path, drop_up=drop_first(DirectiveType.FINISHED_PDU))
    files = make_files(tmp_path, [10_000])
    link.send_all(files)
    assert [o.delivered for o in link.outcomes] == [True]


def test_a_lost_ack_of_finished_is_answered_for_the_old_transaction(tmp_path: Path) -> None:
    drop_ack = drop_first(DirectiveType.ACK_PDU)

    def drop_finished_ack(pdu: object) -> bool:
        return directive(pdu) == DirectiveType.ACK_PDU and pdu.directive_code_of_acked_pdu == DirectiveType.FINISHED_PDU \
            and drop_ack(pdu)
    link = Link(tmp_path, drop_down=drop_finished_ack)
    files = make_files(tmp_path, [4000, 4000])
    link.send_all(files)
    link.settle(0.3)
    assert link.src.counters["late_finished"] >= 1
    assert link.dst.active == 0  # the ground's first transaction closed on the late ACK
    assert all(o.delivered for o in link.outcomes)


def test_replayed_pdus_of_finished_transactions_start_nothing_and_crash_nothing(tmp_path: Path) -> None:
    link = Link(tmp_path)
    files = make_files(tmp_path, [9000])
    link.send_all(files)
    link.settle(0.05)
    started = link.dst.counters["transactions_started"]
    for dg in link.down_log:
        link.dst.insert(unwrap(dg).pdu)
    link.settle(0.05)
    assert link.dst.counters["transactions_started"] == started
    assert link.dst.counters["pdus_late"] >= len(link.down_log)
    assert len([r for r in link.dst.received if r.delivered]) == 1


def test_a_ground_that_stops_answering_ends_the_transaction_undelivered(tmp_path: Path) -> None:
    clock = [0.0]
    src = SourceEngine(1, 2, 512, CfdpTimers(ack_timer_s=30, ack_limit=3, nak_timer_s=30, inactivity_s=2.0),
                       clock=lambda: clock[0])
    f = make_files(tmp_path, [2000])[0]
    src.start("p", f, 0x102)
    for _ in range(20):
        src.pump(32)
        while src.pop() is not None:
            pass
    clock[0] = 10.0
    src.pump(1)
    out = src.outcomes.popleft()
    assert not out.delivered and "inactivity" in out.reason and not src.busy


def test_a_cancel_eof_of_a_finished_transaction_is_acked_not_a_crash(tmp_path: Path) -> None:
    from spacepackets.cfdp import ConditionCode
    from spacepackets.cfdp.pdu import EofPdu

    link = Link(tmp_path)
    link.send_all(make_files(tmp_path, [3000]))
    eof = next(unwrap(dg).pdu for dg in link.down_log if directive(unwrap(dg).pdu) == DirectiveType.EOF_PDU)
    cancel = EofPdu(eof.pdu_header.pdu_conf, eof.file_checksum, eof.file_size,
                    condition_code=ConditionCode.CANCEL_REQUEST_RECEIVED)
    again = unwrap(link.down.wrap(0x102, cancel.pack())).pdu  # parsed back, as the ground gets it
    link.dst.insert(again)
    acks = [unwrap(link.up.wrap(APID_DIRECTIVE, raw)).pdu for raw in iter(link.dst.pop, None)]
    assert any(directive(a) == DirectiveType.ACK_PDU for a in acks)


def test_a_metadata_nak_after_eof_ends_the_transaction_for_a_fresh_start(tmp_path: Path) -> None:
    link = Link(tmp_path, drop_down=lambda p: True)  # the ground hears nothing of the first attempt
    f = make_files(tmp_path, [20_000])[0]
    link.src.start("p", f, 0x102, 7)
    for _ in range(20):
        link.step()
    assert link.src.tail_reached
    fresh = Link(tmp_path / "g2")  # a ground that lost its state hears the repeated EOF and asks for everything
    fresh.src = link.src
    deadline = time.monotonic() + 3.0
    while link.src.busy and time.monotonic() < deadline:
        fresh.step()
        time.sleep(0.01)
    out = [o for o in fresh.outcomes + list(link.src.outcomes) if not o.delivered]
    assert out and "Metadata NAK" in out[0].reason and link.src.counters["restarted_on_metadata_nak"] == 1
