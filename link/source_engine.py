"""The lander's CFDP source engine: cfdp-py's SourceHandler plus the edges of a lossy link. No I/O.

One transaction at a time per engine (the transmitter runs several). The service feeds received PDUs in
with :meth:`SourceEngine.insert`, asks for more file data with
:meth:`SourceEngine.pump`, and takes packed PDUs out with
:meth:`SourceEngine.pop`. When a transaction ends, an :class:`Outcome` says
whether the ground reported the file delivered complete and retained
(CFDP 4.6.4: only then may the product be deleted).

What cfdp-py leaves to its user, this adapter does:

- A Finished PDU is believed only for a transaction in the state that expects
  one (CFDP 4.6.4.2): its EOF has gone and it has not finished, with this
  entity as source and the ground as destination. Any other Finished (before
  the EOF, for a transaction that finished, was abandoned before its EOF or
  is not known, naming other entities) confirms nothing: it is refused,
  counted (``finished_refused``) and reported. A repeated Finished of a
  transaction that has finished (its ACK was lost) is still answered with an
  ACK (CFDP 4.7.1, spacepackets' AckPdu), and so is one the handler no longer
  runs but that waited for it (abandoned by the inactivity watch after its
  EOF): a complete one confirms its product. Until ground PDUs arrive
  authenticated with the uplink, a forger who knows a transaction in that
  state can still end it; the radio port takes datagrams only from the relay.
- A NAK PDU is believed only if every segment request lies inside the file
  and below what was sent, and together they ask for no more than the file
  (cfdp-py queues every requested segment at once, so a NAK of 0..1 GiB would
  queue millions of PDUs); otherwise it is refused (``naks_refused``).
- A Finished PDU while the handler still waits for the EOF ACK implies the EOF
  arrived: the EOF ACK is presented first, then the Finished.
- A NAK is answered with what it asks for except the segments whose copy is
  still on its way: queued here, or sent less than :attr:`SourceEngine.in_flight_s`
  (the link's round trip, from the contact plan) before the NAK arrived, so
  the ground could not have seen it when it asked (``retransmits_in_flight``).
  The ground's NAKs repeat every missing segment (CFDP 4.6.4.3.4) and its
  immediate NAK and its NAK at EOF overlap; without this each lost segment
  went two or three times. A copy that was lost is asked for again by a later
  NAK, which is then answered.
- Every EOF PDU goes twice (a coded transaction's three times: it completes at its
  EOF): a lost EOF otherwise costs the ground its NAKs of the file's end, or a
  coded transaction its completion, for a whole ACK timer (the receiver ACKs each
  copy, 4.7.2).
- The Metadata PDU is repeated three times (a coded transaction's five times), spread through
  the first file data (or before the EOF of a small file): cfdp-py keeps no data that arrives before
  Metadata, and its receiver does not recover a small file whose Metadata and
  data were all lost before the EOF, so each copy makes that rarer.
- An inactivity watch on an injected clock abandons a transaction the ground
  has stopped answering; the product stays stored and is sent again.
- Late, duplicate or foreign PDUs are counted and dropped, never raised.
- A coded transaction (:mod:`link.fec`: its destination name ends in a coding suffix, its file is the
  coded file F of K source and R repair symbols, each one file data segment) answers NAKs differently.
  A NAK the ground sent before it had the EOF is not answered with file data (the repair symbols cover
  those losses) but measured: a round trip and a margin after a symbol's first copy left, it counts as
  lost if a NAK listed it and as arrived otherwise, which feeds the shared
  :class:`~link.fec.LossEstimate` the next transactions' redundancy comes from. A NAK after the EOF says
  how many symbols the ground holds; only the deficit (K + 1 minus those held, minus what is on its way)
  is resent, chosen among the missing segments, with enough extra for the loss. A ground that holds
  K + 1 or more and still NAKs has decoded wrongly (its CRC failed) or not at all: it is answered in full.
- Progress marks (:class:`Checkpoint`) for the service to record: how far the
  file data has gone, every ``CHECKPOINT_BYTES`` at most every
  ``CHECKPOINT_MIN_S`` (:mod:`link.resume`), and when the EOF went. After a restart
  :meth:`SourceEngine.resume` takes the same transaction up again (same
  sequence number, same Metadata) from the recorded offset: cfdp-py keeps no
  persistent state, so the handler is started afresh and its file progress set
  to that offset; what the ground lacks below it, it NAKs (CFDP 4.6.4.3).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from spacepackets.cfdp import ConditionCode, CrcFlag, GenericPduPacket, LargeFileFlag, PduConfig, TransmissionMode
from spacepackets.cfdp.pdu import AckPdu, DirectiveType, FinishedPdu, NakPdu, TransactionStatus
from spacepackets.cfdp.pdu.file_data import get_max_file_seg_len_for_max_packet_len_and_pdu_cfg
from spacepackets.cfdp.pdu.finished import DeliveryCode, FileStatus, FinishedParams
from spacepackets.util import ByteFieldU32

from cfdppy import CfdpState
from cfdppy.exceptions import (
    InvalidNakPdu,
    InvalidPduDirection,
    InvalidPduForSourceHandler,
    InvalidSourceId,
    InvalidDestinationId,
    InvalidTransactionSeqNum,
    NoRemoteEntityConfigFound,
    PduIgnoredForSource,
)
from cfdppy.handler.source import SourceHandler, TransactionStep
from cfdppy.request import PutRequest

from link.engine import PduEngine, ack_pdu
from link.fec import DECODE_MARGIN, Coding, FecError, LossEstimate, resend_for, split_name
from link.filestore import SourceFilestore, transfer_name
from link.packets import APID_DIRECTIVE
from link.mib import (
    CfdpTimers,
    FaultRecorder,
    FixedCheckTimer,
    IndicationRecorder,
    MemorySeqCount,
    entity_id,
    local_entity_config,
)
from link.resume import CHECKPOINT_BYTES, CHECKPOINT_MIN_S, Segments

__all__ = ["Checkpoint", "Outcome", "SourceEngine", "Reject", "finished_is_delivery", "nak_fault",
           "file_segment_len"]

Reject = Callable[[str, dict[str, Any]], Any]
"""How an engine reports a PDU it refuses: ``reject("pdu_refused", {reason, transaction, directive})``
(the process's rate-limited event, :meth:`framework.reporters.EventReporter.limited`)."""

_REJECTED = (InvalidPduDirection, InvalidPduForSourceHandler, InvalidSourceId, InvalidDestinationId,
             InvalidTransactionSeqNum, NoRemoteEntityConfigFound, PduIgnoredForSource)
_METADATA_REPEAT_AFTER = (1, 4, 16)  # file data PDUs sent before each repeat of the Metadata PDU
_CODED_METADATA_REPEAT_AFTER = (1, 4, 16, 64, 256)  # a coded transaction's: data before Metadata is lost
_EOF_COPIES = 2
_QUEUED = float("inf")  # a file data PDU's send time while it waits in the outbox
_NOT_FD = -1  # the offset tag of an outbox item that is not file data
_HISTORY = 256
_RUNAWAY_FACTOR = 4
_RUNAWAY_MARGIN_BYTES = 1 << 20
# What a past transaction (in the history) can still take from the ground:
_FINISHED = "finished"  # it ended on a Finished: a repeat is ACKed (its ACK was lost), believed no more
_AWAITING = "awaiting"  # abandoned after its EOF with no Finished: the ground's late Finished is believed
_ABANDONED = "abandoned"  # ended before its EOF or on a fault: no receiver can have finished it


def file_segment_len(local_id: int, remote_id: int, max_packet_len: int) -> int:
    """The file data length of one File Data PDU between these entities (as cfdp-py's source handler
    derives it for a file under 4 GiB: 2-byte entity ids, a 4-byte sequence number, a PDU CRC)."""
    conf = PduConfig(source_entity_id=entity_id(local_id), dest_entity_id=entity_id(remote_id),
                     transaction_seq_num=ByteFieldU32(0), trans_mode=TransmissionMode.ACKNOWLEDGED,
                     file_flag=LargeFileFlag.NORMAL, crc_flag=CrcFlag.WITH_CRC)
    return get_max_file_seg_len_for_max_packet_len_and_pdu_cfg(conf, max_packet_len)


@dataclass(frozen=True)
class Checkpoint:
    """Transaction ``seq`` has handed out its file data up to ``progress`` bytes (and its EOF, if said)."""

    seq: int
    progress: int
    eof_sent: bool


class _ResumableSourceHandler(SourceHandler):
    """cfdp-py's SourceHandler, plus a way to continue a transaction's file data from an offset, and a
    fixed segment length for a coded transaction (one symbol a segment)."""

    fixed_segment_len: int | None = None

    def _calculate_max_file_seg_len(self) -> None:
        super()._calculate_max_file_seg_len()
        if self.fixed_segment_len is not None:
            assert 0 < self.fixed_segment_len <= self._params.fp.segment_len, "a symbol fits one segment"
            self._params.fp.segment_len = self.fixed_segment_len

    @property
    def segment_len(self) -> int:
        """The file data length of one File Data PDU of the current transaction (0 before it starts)."""
        return self._params.fp.segment_len

    def skip_to(self, offset: int) -> int:
        """Before the first file data: the next File Data PDU starts at ``offset`` (rounded down to the
        segment grid, so the receiver's lost-segment ranges stay aligned). Returns the offset used."""
        fp = self._params.fp
        if offset < fp.file_size and fp.segment_len > 0:
            offset -= offset % fp.segment_len
        fp.progress = max(0, min(offset, fp.file_size))
        return fp.progress


@dataclass(frozen=True)
class Outcome:
    """How a transaction ended: ``delivered`` means Finished said complete and retained."""

    product_id: str
    transaction: int
    delivered: bool
    reason: str


def nak_fault(nak: NakPdu, size: int, sent: int) -> str | None:
    """Why a NAK cannot come from a receiver of a ``size``-byte file of which ``sent`` bytes went out,
    or None. A receiver asks for Metadata as (0, 0) and for data as ranges inside the file, starting
    within what was sent (CFDP 4.6.4.3); its ranges do not overlap, so together they are at most
    the file."""
    if not 0 <= nak.start_of_scope <= nak.end_of_scope <= max(size, sent):
        return f"NAK scope {nak.start_of_scope}-{nak.end_of_scope} outside the {size}-byte file"
    total = 0
    for start, end in nak.segment_requests:
        if (start, end) == (0, 0):
            continue
        if not 0 <= start < end <= size:
            return f"NAK segment {start}-{end} outside the {size}-byte file"
        if start > sent:
            return f"NAK segment {start}-{end} starts beyond the {sent} bytes sent"
        total += end - start
    if total > size:
        return f"NAK asks for {total} bytes of a {size}-byte file"
    return None


def finished_is_delivery(params: FinishedParams) -> bool:
    """CFDP Finished: data complete, file retained, no error."""
    return (params.condition_code == ConditionCode.NO_ERROR
            and params.delivery_code == DeliveryCode.DATA_COMPLETE
            and params.file_status == FileStatus.FILE_RETAINED)


@dataclass
class _Current:
    product_id: str
    apid: int
    path: Path
    seq: int
    started: float
    last_rx: float
    fd_sent: int = 0
    metadata: bytes | None = None
    metadata_repeats: int = 0
    eof_sent: bool = False
    fd_bytes: int = 0
    size: int = 0
    marked_progress: int = 0
    marked_eof: bool = False
    marked_at: float = -1e18
    eof_pdu: bytes | None = None
    eof_probed: bool = False
    sent_at: dict[int, tuple[float, int]] = field(default_factory=dict)  # offset -> (send time, length)
    coding: Coding | None = None
    eof_at: float = 0.0  # when the EOF first went
    nak_missing: Segments = field(default_factory=Segments)  # union of the data ranges its NAKs listed
    first_sent: dict[int, float] = field(default_factory=dict)  # offset -> when its first copy left
    judged: int = 0  # symbols (from the first) the loss estimate has been told about
    blind_until: float = -1e18  # the ground asked for Metadata then: what went before, it could not NAK


class SourceEngine(PduEngine[tuple[int, bytes, int]]):
    """Sends one product at a time as a CFDP class 2 transaction; :meth:`pop` gives (APID, packed PDU)."""

    def __init__(self, local_id: int, remote_id: int, max_packet_len: int, timers: CfdpTimers,
                 seq_start: int = 0, clock: Callable[[], float] = time.monotonic,
                 lookup: Callable[[int], tuple[str, int] | None] | None = None, reject: Reject | None = None,
                 loss: LossEstimate | None = None) -> None:
        super().__init__(local_id, remote_id, max_packet_len, timers, clock, {
            "pdus_in": 0, "pdus_out": 0, "pdus_rejected": 0, "late_finished": 0, "handler_errors": 0,
            "inactivity_aborts": 0, "retransmit_requests": 0, "restarted_on_metadata_nak": 0, "runaway_aborts": 0,
            "file_bytes_sent": 0, "transactions_resumed": 0, "resume_skipped_bytes": 0, "eof_probes": 0,
            "finished_refused": 0, "naks_refused": 0, "retransmits_in_flight": 0, "coded_transactions": 0,
            "coded_naks_measured": 0, "coded_resend_symbols": 0, "coded_naks_answered_in_full": 0})
        self.loss = loss if loss is not None else LossEstimate(0.0)
        """The link's loss estimate (shared by the transmitter's engines), fed from coded transactions' NAKs."""
        self.round_trip_s = 0.0
        """The contact's round trip (the transmitter sets it): a NAK sooner after the EOF was sent before it."""
        self.in_flight_s = 0.0
        """How long a file data PDU counts as on its way after it left (the round trip and a margin; the
        transmitter sets it from the contact). 0: only what still waits in the outbox."""
        self.lookup = lookup or (lambda seq: None)
        self.reject: Reject = reject or (lambda name, fields: None)
        self.filestore = SourceFilestore()
        self.faults = FaultRecorder()
        self.user = IndicationRecorder(self.filestore)
        self.seq = MemorySeqCount(seq_start)
        self.handler = _ResumableSourceHandler(
            cfg=local_entity_config(local_id, self.faults),
            user=self.user,
            remote_cfg_table=self.remotes,
            check_timer_provider=FixedCheckTimer(timers.inactivity_s),
            seq_num_provider=self.seq,
        )
        self._current: _Current | None = None
        self._history: OrderedDict[int, tuple[str, int]] = OrderedDict()  # seq -> (product id, APID)
        self._ended: dict[int, str] = {}  # seq (in the history) -> how it ended (_FINISHED, ...)
        self.outcomes: deque[Outcome] = deque()
        self.checkpoints: deque[Checkpoint] = deque()

    # -- state ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def in_flight(self) -> str:
        return self._current.product_id if self._current else ""

    @property
    def tail(self) -> bool:
        """All file data is out; the transaction only waits for the ground (or resends what it NAKs)."""
        return (self._current is not None and not self._out and self.handler.step in (
            TransactionStep.WAITING_FOR_EOF_ACK, TransactionStep.WAITING_FOR_FINISHED))

    @property
    def tail_reached(self) -> bool:
        """The EOF has gone out at least once."""
        return self._current is not None and self._current.eof_sent

    @property
    def current_seq(self) -> int | None:
        return self._current.seq if self._current else None

    def knows(self, seq: int) -> bool:
        """This engine ran transaction ``seq`` (now or recently)."""
        return seq in self._history

    @property
    def pending(self) -> int:
        """Packed PDUs waiting to be sent."""
        return len(self._out)

    def pop(self) -> tuple[int, bytes] | None:  # type: ignore[override]
        """The next (APID, packed PDU) to send, or None; a file data PDU's send time is noted."""
        item = super().pop()
        if item is None:
            return None
        apid, raw, offset = item
        cur = self._current
        if offset != _NOT_FD and cur is not None and offset in cur.sent_at:
            now = self.clock()
            cur.sent_at[offset] = (now, cur.sent_at[offset][1])
            cur.first_sent.setdefault(offset, now)
        return apid, raw

    # -- commands ------------------------------------------------------------------------------
    def start(self, product_id: str, path: Path, apid: int, seq: int | None = None, suffix: str = ".prod") -> int:
        """Begin a transaction for one stored product file; return its transaction sequence number.

        ``seq`` sets the transaction sequence number (the service keeps it unique across restarts). A
        ``suffix`` that ends in a coding (:attr:`link.fec.Coding.suffix`) makes it a coded transaction:
        ``path`` is then the coded file, sent one symbol a segment (FecError if its size does not fit).
        """
        assert not self.busy, "one transaction at a time"
        if seq is not None:
            self.seq.set_next(seq)
        seq = self.seq.peek()
        name = transfer_name(seq, product_id, suffix)
        _, coding = split_name(name)
        size = path.stat().st_size
        if coding is not None and size != coding.coded_size:
            raise FecError(f"coded file of {size} bytes, its coding says {coding.coded_size}")
        self.handler.fixed_segment_len = coding.packet_len if coding is not None else None
        request = PutRequest(destination_id=entity_id(self.remote_id), source_file=path, dest_file=Path(name),
                             trans_mode=TransmissionMode.ACKNOWLEDGED, closure_requested=True)
        if not self.handler.put_request(request):
            raise RuntimeError("CFDP source handler refused a put request while idle")
        now = self.clock()
        self._current = _Current(product_id, apid, path, seq, now, now, size=size, coding=coding)
        if coding is not None:
            self.counters["coded_transactions"] += 1
        self._history[seq] = (product_id, apid)
        self._history.move_to_end(seq)
        self._ended.pop(seq, None)
        while len(self._history) > _HISTORY:
            old, _ = self._history.popitem(last=False)
            self._ended.pop(old, None)
        self._run(None)
        return seq

    def resume(self, product_id: str, path: Path, apid: int, seq: int, suffix: str, progress: int,
               eof_sent: bool) -> None:
        """Take transaction ``seq`` up again after a restart: its Metadata again, then file data from
        ``progress`` (bytes already handed out; all of them if ``eof_sent``), then its EOF."""
        self.start(product_id, path, apid, seq, suffix)  # the handler has queued the same Metadata PDU
        cur = self._current
        assert cur is not None and self.handler.step == TransactionStep.SENDING_METADATA
        skip = cur.size if eof_sent else max(0, min(progress, cur.size))
        skip = self.handler.skip_to(skip)
        cur.marked_progress, cur.marked_eof = skip, eof_sent
        if eof_sent:
            cur.eof_at = self.clock()  # the ground's NAKs from now on answer an EOF
        self.counters["transactions_resumed"] += 1
        self.counters["resume_skipped_bytes"] += skip

    def abort(self, reason: str, awaiting_finished: bool = False) -> None:
        """Abandon the current transaction (the product stays stored). ``awaiting_finished``: its EOF
        went and only the ground's answer is missing, so a late Finished is still believed."""
        if self._current is None:
            return
        cur = self._current
        self._ended[cur.seq] = _AWAITING if awaiting_finished and cur.eof_sent else _ABANDONED
        self.handler.reset()
        self._out.clear()
        self.filestore.release(cur.path)
        self._current = None
        self.outcomes.append(Outcome(cur.product_id, cur.seq, False, reason))

    # -- data flow -----------------------------------------------------------------------------
    def pump(self, want: int) -> None:
        """Let the handler produce PDUs (file data, timers) until ``want`` are queued or it rests."""
        guard = 0
        while self._current is not None and len(self._out) < want and guard < want + 4:
            guard += 1
            before = len(self._out)
            self._run(None)
            if len(self._out) == before:
                break
        self._check_inactivity()
        self._check_runaway()
        if self._current is not None:
            self._judge(self._current, self.clock() - self.in_flight_s)

    def _take(self, pdu: GenericPduPacket) -> None:
        """A PDU from the ground (counted by :meth:`PduEngine.insert`)."""
        if isinstance(pdu, FinishedPdu):
            if not self._ours(pdu):
                self._refuse(pdu, "finished_refused", "Finished names other entities than this pair")
                return
            if not self._is_current(pdu):
                self._answer_late_finished(pdu)
                return
            if self._current is not None and not self._current.eof_sent:
                self._refuse(pdu, "finished_refused", "Finished before this transaction's EOF went")
                return
        if self._current is None or not self._is_current(pdu):
            self.counters["pdus_rejected"] += 1
            return
        if isinstance(pdu, NakPdu):
            fault = nak_fault(pdu, self._current.size, self.handler.progress)
            if fault is not None:
                self._refuse(pdu, "naks_refused", fault)
                return
        self._current.last_rx = self.clock()
        if isinstance(pdu, FinishedPdu) and self.handler.step == TransactionStep.WAITING_FOR_EOF_ACK:
            self._run(self._implied_eof_ack(pdu))
        if getattr(pdu, "directive_type", None) == DirectiveType.NAK_PDU:
            self.counters["retransmit_requests"] += 1
            if self._current.coding is not None:
                pdu = self._coded_nak(pdu)
                if pdu is None:
                    return
            pdu = self._not_in_flight(pdu)
            if pdu is None:
                return
            if ((0, 0) in pdu.segment_requests and self.tail_reached
                    and self.clock() - self._current.eof_at >= self.in_flight_s):
                # The ground asks for Metadata after our EOF reached it: it lost the transaction (a restart,
                # or every Metadata copy lost; one it asked before the EOF reached it is answered). cfdp-py's
                # source does not retransmit a whole file reliably then, so this transaction ends and the
                # product goes again in a fresh one.
                self.counters["restarted_on_metadata_nak"] += 1
                self.abort("the ground lost the transaction (Metadata NAK after EOF)")
                return
        if (isinstance(pdu, FinishedPdu) and not finished_is_delivery(pdu.finished_params)
                and self.handler.step not in (TransactionStep.WAITING_FOR_FINISHED,)):
            self.abort(f"ground ended the transaction early: {pdu.finished_params.condition_code.name}")
            self._ack_finished(pdu, TransactionStatus.TERMINATED)
            return
        self._run(pdu)

    # -- internals -----------------------------------------------------------------------------
    def _ours(self, pdu: GenericPduPacket) -> bool:
        """The PDU names this entity as the source of its transaction and the ground as its destination."""
        return pdu.source_entity_id.value == self.local_id and pdu.dest_entity_id.value == self.remote_id

    def _refuse(self, pdu: GenericPduPacket, counter: str, reason: str) -> None:
        """A PDU that does not fit the transaction it names: counted and reported, never acted on."""
        self.counters[counter] += 1
        kind = getattr(pdu, "directive_type", None)
        self.reject("pdu_refused", {"reason": reason, "transaction": pdu.transaction_seq_num.value,
                                    "directive": "FILE_DATA" if kind is None else getattr(kind, "name", str(kind))})

    def _is_current(self, pdu: GenericPduPacket) -> bool:
        cur = self._current
        return (cur is not None and pdu.transaction_seq_num.value == cur.seq
                and pdu.source_entity_id.value == self.local_id)

    def _run(self, pdu: GenericPduPacket | None) -> None:
        try:
            self.handler.state_machine(pdu)
        except _REJECTED:
            self.counters["pdus_rejected"] += 1
        except InvalidNakPdu:
            self.counters["pdus_rejected"] += 1
        except Exception:  # a library fault must not end the downlink; the transaction is retried
            self.counters["handler_errors"] += 1
            self._drain()
            self.abort("cfdp source handler error")
            return
        self._drain()
        self._mark()
        self._settle()

    def _mark(self) -> None:
        """Queue a progress mark when enough file data or the EOF has gone out since the last one."""
        cur = self._current
        if cur is None:
            return
        progress = self.handler.progress
        now = self.clock()
        if (cur.eof_sent and not cur.marked_eof) or (
                progress - cur.marked_progress >= CHECKPOINT_BYTES and now - cur.marked_at >= CHECKPOINT_MIN_S):
            cur.marked_progress, cur.marked_eof, cur.marked_at = progress, cur.eof_sent, now
            self.checkpoints.append(Checkpoint(cur.seq, progress, cur.eof_sent))

    def _drain(self) -> None:
        cur = self._current
        while True:
            holder = self.handler.get_next_packet()
            if holder is None:
                break
            raw = self._pack(holder.pdu)
            if raw is None or cur is None:
                continue
            kind = holder.pdu_directive_type
            if kind == DirectiveType.EOF_PDU:
                if not cur.eof_sent:
                    cur.eof_at = self.clock()
                cur.eof_sent, cur.eof_pdu = True, raw
            repeats = _METADATA_REPEAT_AFTER if cur.coding is None else _CODED_METADATA_REPEAT_AFTER
            if kind == DirectiveType.EOF_PDU and cur.metadata:
                while cur.metadata_repeats < len(repeats):  # a small file: repeat before EOF
                    cur.metadata_repeats += 1
                    self._out.append((cur.apid, cur.metadata, _NOT_FD))
            if kind is None:
                offset = holder.pdu.offset
                cur.sent_at[offset] = (_QUEUED, len(holder.pdu.file_data))
                self._out.append((cur.apid, raw, offset))
            else:
                copies = 1 if kind != DirectiveType.EOF_PDU else _EOF_COPIES + (cur.coding is not None)
                self._out.extend((cur.apid, raw, _NOT_FD) for _ in range(copies))
            if kind == DirectiveType.METADATA_PDU:
                cur.metadata = cur.metadata or raw
            elif kind is None:
                cur.fd_sent += 1
                cur.fd_bytes += len(raw)
                self.counters["file_bytes_sent"] += len(holder.pdu.file_data)
                if (cur.metadata and cur.metadata_repeats < len(repeats)
                        and cur.fd_sent >= repeats[cur.metadata_repeats]):
                    cur.metadata_repeats += 1
                    self._out.append((cur.apid, cur.metadata, _NOT_FD))

    def _settle(self) -> None:
        """After the handler returned to idle: record how the transaction ended."""
        cur = self._current
        if cur is None or self.handler.state != CfdpState.IDLE:
            return
        self.filestore.release(cur.path)
        self._current = None
        finished = [f for f in self.user.finished if f.transaction_id.seq_num.value == cur.seq]
        self.user.finished.clear()
        self._ended[cur.seq] = _FINISHED if finished else _ABANDONED
        if finished and finished_is_delivery(finished[-1].finished_params):
            self._judge(cur, float("inf"))  # the ground has it all: what no NAK listed arrived
            self.outcomes.append(Outcome(cur.product_id, cur.seq, True, "delivered"))
            return
        faults = [f.condition for f in self.faults.take() if f.transaction[1] == cur.seq]
        if finished:
            fp = finished[-1].finished_params
            reason = f"finished {fp.condition_code.name} {fp.delivery_code.name} {fp.file_status.name}"
        else:
            reason = "abandoned " + ",".join(faults) if faults else "abandoned"
        self.outcomes.append(Outcome(cur.product_id, cur.seq, False, reason))

    def _check_runaway(self) -> None:
        """A transaction that has sent its file data many times over is ended (and sent again fresh):
        a bound on what any retransmission fault, ours or the library's, can cost a pass."""
        cur = self._current
        if cur is not None and cur.fd_bytes > _RUNAWAY_FACTOR * cur.size + _RUNAWAY_MARGIN_BYTES:
            self.counters["runaway_aborts"] += 1
            self.abort(f"retransmission runaway: {cur.fd_bytes} bytes of file data for a {cur.size}-byte file")

    def _check_inactivity(self) -> None:
        cur = self._current
        if cur is None:
            return
        idle = self.clock() - cur.last_rx
        if idle > self.timers.inactivity_s and self.handler.step in (
                TransactionStep.WAITING_FOR_EOF_ACK, TransactionStep.WAITING_FOR_FINISHED):
            self.counters["inactivity_aborts"] += 1
            self.abort("inactivity: no PDU from the ground", awaiting_finished=True)
        elif (idle > self.timers.inactivity_s / 2 and self.handler.step == TransactionStep.WAITING_FOR_FINISHED
              and cur.eof_pdu is not None and not cur.eof_probed):
            # cfdp-py's source waits for Finished with no timer. A ground that restarted meanwhile may
            # wait for data or have lost its Finished: our EOF again makes it NAK what it lacks, or
            # answer with its Finished (CFDP 4.7.2: every EOF is answered).
            cur.eof_probed = True
            self.counters["eof_probes"] += 1
            self._out.append((cur.apid, cur.eof_pdu, _NOT_FD))

    def _implied_eof_ack(self, finished: FinishedPdu) -> AckPdu:
        return ack_pdu(finished, DirectiveType.EOF_PDU, ConditionCode.NO_ERROR, TransactionStatus.ACTIVE)

    def _ack_finished(self, finished: FinishedPdu, status: TransactionStatus) -> None:
        ack = ack_pdu(finished, DirectiveType.FINISHED_PDU, finished.condition_code, status)
        _, apid = self._history.get(finished.transaction_seq_num.value) or ("", APID_DIRECTIVE)
        self._out.appendleft((apid, bytes(ack.pack()), _NOT_FD))

    def _coded_nak(self, nak: NakPdu) -> NakPdu | None:
        """A NAK of a coded transaction: measured; before the EOF only its Metadata request is kept; after
        it, only the deficit of symbols is asked (see the module's notes). None if nothing is left."""
        cur = self._current
        assert cur is not None and cur.coding is not None
        coding, n = cur.coding, cur.coding.packet_len
        meta = [(0, 0)] if (0, 0) in nak.segment_requests else []
        if meta:
            cur.blind_until = self.clock()
        missing = sorted({i for s, e in nak.segment_requests if (s, e) != (0, 0)
                          for i in range(s // n, -(-e // n))})
        self._measure(nak, missing)
        # after the EOF: a NAK of the whole file's end (the receiver's NAK at EOF, CFDP 4.6.4.3.2, or its
        # last batch) a round trip after the EOF left; an immediate NAK (4.6.4.3.1) ends at the segment
        # that showed its gap
        after_eof = (cur.eof_sent and self.clock() - cur.eof_at >= self.round_trip_s
                     and nak.end_of_scope >= cur.size)
        if not after_eof:
            self.counters["coded_naks_measured"] += 1
            return NakPdu(nak.pdu_header.pdu_conf, nak.start_of_scope, nak.end_of_scope, meta) if meta else None
        scope = -(-nak.end_of_scope // n) - nak.start_of_scope // n
        held = scope - len(missing)  # at least this many (outside the scope counts as missing)
        if held >= coding.source + DECODE_MARGIN:  # enough to decode, yet it asks: its decode was wrong
            self.counters["coded_naks_answered_in_full"] += 1
            return nak
        # on its way: resent since the EOF (what went before it, the ground had seen or lost when it NAKed)
        cutoff = max(self.clock() - self.in_flight_s, cur.eof_at)
        on_way = [i for i in missing if cur.sent_at.get(i * n, (-1e18, 0))[0] > cutoff]
        free = [i for i in missing if cur.sent_at.get(i * n, (-1e18, 0))[0] <= cutoff]
        p = self.loss.value
        deficit = coding.source + DECODE_MARGIN - held - int(len(on_way) * (1 - p))
        pick = free[:resend_for(deficit, p, len(free))]
        self.counters["retransmits_in_flight"] += len(missing) - len(pick)
        self.counters["coded_resend_symbols"] += len(pick)
        requests = meta + [(i * n, (i + 1) * n) for i in pick]
        return NakPdu(nak.pdu_header.pdu_conf, nak.start_of_scope, nak.end_of_scope, requests) if requests else None

    def _measure(self, nak: NakPdu, missing: list[int]) -> None:
        """Note the symbols a NAK of a coded transaction lists as missing (for :meth:`_judge`)."""
        cur = self._current
        assert cur is not None and cur.coding is not None
        n = cur.coding.packet_len
        for i in missing:
            cur.nak_missing.add(i * n, n)

    def _judge(self, cur: _Current, before: float) -> None:
        """Tell the loss estimate about the symbols of a coded transaction whose first copy left before
        ``before`` (a round trip and a margin ago: the ground has NAKed each of them by now if it lost
        it, CFDP 4.6.4.3.1), in order: lost if a NAK listed it, else arrived."""
        if cur.coding is None:
            return
        n, missing, seen = cur.coding.packet_len, 0, 0
        while cur.judged < cur.coding.packets:
            sent = cur.first_sent.get(cur.judged * n)
            if sent is None or sent >= before:
                break
            if sent >= cur.blind_until:  # (before it, the ground lacked the Metadata: its NAKs say nothing)
                seen += 1
                missing += cur.nak_missing.holds(cur.judged * n)
            cur.judged += 1
        if seen:
            self.loss.observe(missing, seen)

    def _not_in_flight(self, nak: NakPdu) -> NakPdu | None:
        """``nak`` without the file data whose last copy is still on its way (queued, or sent within
        ``in_flight_s`` before now); None if nothing is left to send. Requests are cut on the grid the
        handler retransmits on (its segment length from the request's start), as it would cut them."""
        cur = self._current
        seg = self.handler.segment_len if cur is not None else 0
        if cur is None or seg <= 0 or not cur.sent_at:
            return nak
        cutoff = self.clock() - self.in_flight_s
        keep: list[tuple[int, int]] = []
        skipped = 0
        for start, end in nak.segment_requests:
            if (start, end) == (0, 0):
                keep.append((start, end))
                continue
            at = start
            while at < end:
                n = min(seg, end - at)
                sent = cur.sent_at.get(at)
                if sent is not None and sent[1] >= n and sent[0] > cutoff:
                    skipped += 1
                elif keep and keep[-1][1] == at and keep[-1] != (0, 0):
                    keep[-1] = (keep[-1][0], at + n)
                else:
                    keep.append((at, at + n))
                at += n
        if not skipped:
            return nak
        self.counters["retransmits_in_flight"] += skipped
        if not keep:
            return None
        return NakPdu(nak.pdu_header.pdu_conf, nak.start_of_scope, nak.end_of_scope, keep)

    def _answer_late_finished(self, finished: FinishedPdu) -> None:
        """A Finished for a transaction the handler no longer runs (ids already checked).

        Believed only if that transaction waited for it (abandoned after its EOF): ACKed, and its
        product confirmed if delivered. A repeat for a transaction that finished is ACKed (its ACK
        was lost) and believed no more. Any other is refused: nothing of ours awaits it."""
        seq = finished.transaction_seq_num.value
        ended = self._ended.get(seq)
        known = self._history.get(seq) or self.lookup(seq)
        if ended == _AWAITING and known is not None:
            self.counters["late_finished"] += 1
            self._ended[seq] = _FINISHED
            self._ack_finished(finished, TransactionStatus.TERMINATED)
            if finished_is_delivery(finished.finished_params):
                self.outcomes.append(Outcome(known[0], seq, True, "delivered (late Finished)"))
            return
        if ended == _FINISHED:
            self.counters["late_finished"] += 1
            self._ack_finished(finished, TransactionStatus.TERMINATED)
            return
        why = ("no transaction of that number" if known is None else
               "its transaction ended before its EOF went" if ended == _ABANDONED else
               "its transaction is not awaiting a Finished")
        self._refuse(finished, "finished_refused", f"Finished refused: {why}")
