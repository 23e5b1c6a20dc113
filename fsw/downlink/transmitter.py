"""Several CFDP source transactions in flight over one paced radio, only while a contact is open.

The next product starts as soon as every transaction already in flight has
sent all its file data and only waits for the ground (its EOF ACK, NAKs,
Finished), so a pass never idles during a product's tail recovery. Older
transactions send first: their retransmissions overtake new file data.

Outside a contact nothing is sent and no engine runs its timers (a
suspension in the sense of CFDP 4.6.6, driven by the contact plan); engine
clocks run on contact time, so inactivity counts only open-window seconds.
PDUs that still arrive (light time) are taken in. The radio is the only I/O
here and it is injected, as is every clock.

The engines share one :class:`~link.fec.LossEstimate` (coded transactions' NAKs feed it; the next
coded product's redundancy comes from it), and :meth:`Transmitter.send_s` says how long a file of
so many segments takes to leave at the open contact's rate, so the forwarder starts no product that
cannot leave before the window closes.

Realtime TM packets (:class:`~fsw.downlink.tm.RealtimeQueue`) share the
pacing and go ahead of every CFDP PDU, several to a datagram; when the
contact closes, what still waits is forgotten (the recorded segments carry
it).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Callable

from spacepackets.ccsds.spacepacket import PacketType

from link.contacts import Contact, ContactPlan
from link.fec import LossEstimate
from link.source_engine import Checkpoint, Outcome, Reject, SourceEngine, file_segment_len
from link.mib import CfdpTimers
from link.pacing import TokenBucket
from link.packets import SpacePacketWrapper
from link.radio import Radio
from fsw.downlink.tm import RealtimeQueue
from framework.counters import saturating_add

__all__ = ["Transmitter", "IN_FLIGHT_MARGIN_S", "SEGMENT_OVERHEAD_BYTES"]

IN_FLIGHT_MARGIN_S = 0.1
"""Beyond the contact's round trip, how long a sent file data PDU still counts as on its way (the relay's
serialisation and both ends' turn times): a NAK that arrives sooner cannot have seen it."""
BURST_S = 0.05
"""The pacing's bucket holds this much of the contact's rate (at least four packets)."""
SEGMENT_OVERHEAD_BYTES = 24
"""What a file data segment costs on the radio beyond its data: the PDU header, offset and CRC (18 bytes,
:func:`~link.source_engine.file_segment_len`) and the Space Packet primary header (6)."""


class Transmitter:
    """Runs ``max_in_flight`` source engines over one radio, paced to the open contact's rate."""

    def __init__(self, local_id: int, remote_id: int, max_packet_len: int, timers: CfdpTimers, plan: ContactPlan,
                 radio: Radio, wall: Callable[[], float], monotonic: Callable[[], float],
                 engine_clock: Callable[[], float], lookup: Callable[[int], tuple[str, int] | None],
                 max_in_flight: int = 2, reject: Reject | None = None,
                 realtime: RealtimeQueue | None = None, initial_loss: float = 0.0) -> None:
        self.plan = plan
        self.radio = radio
        self.wall = wall
        self.loss = LossEstimate(initial_loss)
        self.segment_len = file_segment_len(local_id, remote_id, max_packet_len)
        """The file data of one segment (a coded file's symbol and payload id fit it)."""
        self.engines = [SourceEngine(local_id, remote_id, max_packet_len, timers, clock=engine_clock, lookup=lookup,
                                     reject=reject, loss=self.loss) for _ in range(max_in_flight)]
        first = plan.relays[0].rate_bps[0]
        # the radio's transmit buffer: what a turn that held the loop up (coding a product, a disk write) could
        # not send goes out at once after it, instead of being lost to the pass
        self.burst_bytes = max(4 * (max_packet_len + 64), int(first / 8 * BURST_S))
        self.bucket = TokenBucket(first, self.burst_bytes, clock=monotonic)
        self.wrapper = SpacePacketWrapper(PacketType.TM)
        self.realtime = realtime if realtime is not None else RealtimeQueue(max_packet_len)
        self.held: bytes | None = None
        self.held_tm = 0  # TM packets in the held datagram (0: it is a CFDP one)
        self.contact: Contact | None = None
        self.order: deque[int] = deque()  # engine indexes, oldest transaction first
        self.c = {"bytes_sent": 0, "packets_sent": 0, "contacts": 0, "tm_realtime_packets": 0,
                  "tm_realtime_bytes": 0}

    # -- state ---------------------------------------------------------------------------------
    def in_flight(self) -> list[str]:
        return [e.in_flight for e in self.engines if e.busy]

    def can_start(self) -> bool:
        """A free engine, and every busy one is past its file data."""
        return (self.contact is not None and any(not e.busy for e in self.engines)
                and all(e.tail for e in self.engines if e.busy))

    def send_s(self, segments: int, segment_len: int) -> float:
        """Seconds ``segments`` file data segments of ``segment_len`` bytes take to leave at the open
        contact's rate (inf outside a contact)."""
        if self.contact is None or self.contact.rate_bps <= 0:
            return float("inf")
        return segments * (segment_len + SEGMENT_OVERHEAD_BYTES) * 8 / self.contact.rate_bps

    def outcomes(self) -> list[Outcome]:
        out: list[Outcome] = []
        for e in self.engines:
            while e.outcomes:
                out.append(e.outcomes.popleft())
        return out

    def checkpoints(self) -> list[Checkpoint]:
        out: list[Checkpoint] = []
        for e in self.engines:
            while e.checkpoints:
                out.append(e.checkpoints.popleft())
        return out

    def counters(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for e in self.engines:
            for k, v in e.counters.items():
                total[k] = total.get(k, 0) + v
        return total

    # -- actions -------------------------------------------------------------------------------
    def update_contact(self) -> Contact | None:
        """Follow the plan: the current contact sets the rate; returns it (None outside contacts)."""
        contact = self.plan.contact(self.wall())
        if contact is not None and (self.contact is None or contact.rate_bps != self.bucket.rate_Bps * 8):
            self.bucket.rate_Bps = contact.rate_bps / 8.0
        if contact is not None and (self.contact is None or contact.latency_ms != self.contact.latency_ms):
            for e in self.engines:
                e.in_flight_s = 2 * contact.latency_ms / 1000 + IN_FLIGHT_MARGIN_S
                e.round_trip_s = 2 * contact.latency_ms / 1000
        if contact is not None and (self.contact is None or (contact.relay, contact.pass_number)
                                    != (self.contact.relay, self.contact.pass_number)):
            self.c["contacts"] += 1
        if contact is None and self.contact is not None:
            self._forget_realtime()
        self.contact = contact
        return contact

    def start(self, product_id: str, path: Path, apid: int, seq: int, suffix: str) -> None:
        idx = next(i for i, e in enumerate(self.engines) if not e.busy)
        self.engines[idx].start(product_id, path, apid, seq, suffix)
        if idx in self.order:
            self.order.remove(idx)
        self.order.append(idx)

    def resume(self, product_id: str, path: Path, apid: int, seq: int, suffix: str, progress: int,
               eof_sent: bool) -> bool:
        """Take an interrupted transaction up again (see SourceEngine.resume); False if no engine is free."""
        free = [i for i, e in enumerate(self.engines) if not e.busy]
        if not free:
            return False
        self.engines[free[0]].resume(product_id, path, apid, seq, suffix, progress, eof_sent)
        self.order.append(free[0])
        return True

    def abort(self, product_id: str, reason: str) -> bool:
        for e in self.engines:
            if e.busy and e.in_flight == product_id:
                e.abort(reason)
                return True
        return False

    def insert(self, pdu: Any) -> None:
        """A PDU from the ground, to the engine that owns its transaction (or the first, to answer it)."""
        seq = pdu.transaction_seq_num.value
        for e in self.engines:
            if e.current_seq == seq:
                e.insert(pdu)
                return
        for e in self.engines:
            if e.knows(seq):
                e.insert(pdu)
                return
        self.engines[0].insert(pdu)

    def run_timers(self) -> None:
        if self.contact is None:
            return
        for e in self.engines:
            e.pump(0)

    def send(self, stop: Callable[[], bool]) -> None:
        """Send while the bucket allows; older transactions first."""
        if self.contact is None:
            return
        while not stop():
            if self.held is None:
                self.held, self.held_tm = self._next_realtime()
                if self.held is None:
                    self.held = self._next_datagram()
                if self.held is None:
                    return
            if not self.bucket.try_take(len(self.held)):
                return
            if not self.radio.send(self.held):
                self.bucket.give_back(len(self.held))
                return
            self.c["bytes_sent"] += len(self.held)
            self.c["packets_sent"] += 1
            if self.held_tm:
                self.c["tm_realtime_packets"] = saturating_add(self.c["tm_realtime_packets"], self.held_tm)
                self.c["tm_realtime_bytes"] = saturating_add(self.c["tm_realtime_bytes"], len(self.held))
            self.held, self.held_tm = None, 0

    def _next_realtime(self) -> tuple[bytes | None, int]:
        got = self.realtime.next_datagram()
        return (None, 0) if got is None else got

    def _forget_realtime(self) -> None:
        """The contact closed: realtime packets not sent are not sent later (they are recorded)."""
        self.realtime.clear()
        if self.held_tm:
            self.realtime.dropped = saturating_add(self.realtime.dropped, self.held_tm)
            self.held, self.held_tm = None, 0

    def _next_datagram(self) -> bytes | None:
        for idx in list(self.order):
            e = self.engines[idx]
            if e.pending == 0 and e.busy:
                e.pump(8)
            item = e.pop()
            if item is not None:
                return self.wrapper.wrap(*item)
        for e in self.engines:  # ACKs for transactions no engine runs any more
            item = e.pop()
            if item is not None:
                return self.wrapper.wrap(*item)
        return None

    def wait_s(self) -> float:
        if self.held is not None:
            return self.bucket.wait_s(len(self.held))
        if self.contact is not None and len(self.realtime):
            return self.bucket.wait_s(self.realtime.first_len())
        return 0.01 if any(e.busy for e in self.engines) else 0.05
