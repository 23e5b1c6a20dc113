"""The ground's CFDP destination engine: one cfdp-py DestHandler per transaction. No I/O.

A new transaction can start while an older one is still closing (its Finished
not yet ACKed). Around the handlers this adapter:

- remembers finished transactions, so late Metadata, file data and ACKs are
  dropped instead of starting a ghost transaction, and a repeated EOF of a
  finished transaction is ACKed (CFDP 4.7.2) and its Finished sent again;
- ACKs an EOF itself when the handler has moved past it (cfdp-py's handler
  ignores EOF once it waits for the Finished ACK);
- checks the file checksum when the handler completes without having done so
  (cfdp-py verifies only after lost-segment recovery), and fsyncs the file
  before the Finished PDU leaves;
- sends at most one NAK per NAK timer period while Metadata is missing
  (cfdp-py issues a whole-file NAK for every segment that arrives then);
- abandons a transaction after ``inactivity_s`` without a PDU (CFDP 4.8.3);
- calls ``on_delivered`` (the ground's durable ledger) before a complete file's
  Finished PDU is built: if that fails, the Finished says filestore rejection.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from spacepackets.cfdp import ChecksumType, ConditionCode, Direction, GenericPduPacket, PduType
from spacepackets.cfdp.pdu import AckPdu, DirectiveType, EofPdu, TransactionStatus
from spacepackets.cfdp.pdu.finished import DeliveryCode, FileStatus

from cfdppy import CfdpState
from cfdppy.handler.dest import DestHandler, LostSegmentTracker, TransactionStep
from cfdppy.mib import RemoteEntityConfigTable
from cfdppy.user import TransactionFinishedParams

from fsw.downlink.filestore import IncomingFilestore
from fsw.downlink.mib import (
    CfdpTimers,
    FaultRecorder,
    FixedCheckTimer,
    IndicationRecorder,
    fault_handlers_for_receiver,
    local_entity_config,
    remote_entity_config,
)

__all__ = ["ReceivedFile", "DestEngine"]

_MAX_ACTIVE = 64
_HISTORY = 1024
_CLOSING = (TransactionStep.SENDING_FINISHED_PDU, TransactionStep.WAITING_FOR_FINISHED_ACK)


@dataclass(frozen=True)
class ReceivedFile:
    """A transaction that completed at the ground: the file (fsync'd) and how it ended."""

    transaction: tuple[int, int]
    path: Path
    name: str
    delivered: bool
    condition: str
    size: int


class _TransactionHandler(DestHandler):
    """cfdp-py 0.7's DestHandler shares one LostSegmentTracker between all instances (a dataclass
    default object); each transaction gets its own here."""

    def _common_first_packet_handler(self, pdu: GenericPduPacket) -> bool | None:
        result = super()._common_first_packet_handler(pdu)
        self._params.acked_params.lost_seg_tracker = LostSegmentTracker()
        return result


class _Recorder(IndicationRecorder):
    """Runs the engine's completion step inside the handler, before its Finished PDU is built."""

    def __init__(self, vfs: IncomingFilestore, on_finished: Callable[[TransactionFinishedParams], None]) -> None:
        super().__init__(vfs)
        self._on_finished = on_finished

    def transaction_finished_indication(self, params: TransactionFinishedParams) -> None:
        super().transaction_finished_indication(params)
        self._on_finished(params)


@dataclass
class _Active:
    handler: DestHandler
    last_rx: float
    eof_checksum: bytes | None = None
    last_nak: float = -1e18
    finished_pdu: bytes | None = None
    completed: bool = False
    started: bool = False
    offsets: set[int] = field(default_factory=set)  # file data segments seen: goodput counts each once


class DestEngine:
    """Receives products from one source entity."""

    def __init__(self, local_id: int, remote_id: int, max_packet_len: int, timers: CfdpTimers,
                 incoming: Path, clock: Callable[[], float] = time.monotonic,
                 on_delivered: Callable[[str, int], None] | None = None) -> None:
        self.local_id = local_id
        self.on_delivered = on_delivered or (lambda name, size: None)
        self.remote_id = remote_id
        self.timers = timers
        self.clock = clock
        self.filestore = IncomingFilestore(incoming)
        self.faults = fault_handlers_for_receiver(FaultRecorder())
        self._cfg = local_entity_config(local_id, self.faults)
        self._remotes = RemoteEntityConfigTable([remote_entity_config(remote_id, max_packet_len, timers)])
        self._active: dict[tuple[int, int], _Active] = {}
        self._history: OrderedDict[tuple[int, int], bytes | None] = OrderedDict()
        self._out: deque[bytes] = deque()
        self.received: deque[ReceivedFile] = deque()
        self.counters = {"pdus_in": 0, "pdus_out": 0, "pdus_late": 0, "pdus_rejected": 0, "naks_suppressed": 0,
                         "transactions_started": 0, "transactions_abandoned": 0, "checksum_failures": 0,
                         "handler_errors": 0, "file_bytes_new": 0}

    @property
    def active(self) -> int:
        return len(self._active)

    def pop(self) -> bytes | None:
        if not self._out:
            return None
        self.counters["pdus_out"] += 1
        return self._out.popleft()

    # -- input ---------------------------------------------------------------------------------
    def insert(self, pdu: GenericPduPacket) -> None:
        """A PDU from the lander. Never raises on what the link delivers."""
        self.counters["pdus_in"] += 1
        if pdu.source_entity_id.value != self.remote_id or pdu.dest_entity_id.value != self.local_id:
            self.counters["pdus_rejected"] += 1
            return
        key = (pdu.source_entity_id.value, pdu.transaction_seq_num.value)
        directive = getattr(pdu, "directive_type", None) if pdu.pdu_type == PduType.FILE_DIRECTIVE else None
        entry = self._active.get(key)
        if entry is None:
            if key in self._history:
                self._late(key, pdu, directive)
                return
            if directive not in (None, DirectiveType.METADATA_PDU, DirectiveType.EOF_PDU):
                self.counters["pdus_rejected"] += 1
                return
            entry = self._open(key)
            if entry is None:
                return
        entry.last_rx = self.clock()
        if directive is None and pdu.offset not in entry.offsets:
            entry.offsets.add(pdu.offset)
            self.counters["file_bytes_new"] += len(pdu.file_data)
        if isinstance(pdu, EofPdu):
            entry.eof_checksum = bytes(pdu.file_checksum)
            if entry.handler.step in _CLOSING or entry.completed:
                self._ack_eof(pdu, TransactionStatus.ACTIVE)
                return
        self._run(key, entry, pdu)

    def tick(self) -> None:
        """Run every handler's timers; drop handlers that are done or inactive."""
        now = self.clock()
        for key, entry in list(self._active.items()):
            if now - entry.last_rx > self.timers.inactivity_s:
                self.counters["transactions_abandoned"] += 1
                self._close(key, entry)
                continue
            self._run(key, entry, None)

    # -- internals -----------------------------------------------------------------------------
    def _open(self, key: tuple[int, int]) -> _Active | None:
        if len(self._active) >= _MAX_ACTIVE:
            oldest = min(self._active, key=lambda k: self._active[k].last_rx)
            self.counters["transactions_abandoned"] += 1
            self._close(oldest, self._active[oldest])
        user = _Recorder(self.filestore, lambda p, k=key: self._on_finished(k, p))
        handler = _TransactionHandler(self._cfg, user, self._remotes, FixedCheckTimer(self.timers.inactivity_s))
        entry = _Active(handler, self.clock())
        self._active[key] = entry
        self.counters["transactions_started"] += 1
        return entry

    def _run(self, key: tuple[int, int], entry: _Active, pdu: GenericPduPacket | None) -> None:
        handler = entry.handler
        try:
            handler.state_machine(pdu)
        except Exception:  # library faults and rejected PDUs: count, keep the transaction
            self.counters["handler_errors" if pdu is None else "pdus_rejected"] += 1
        self._drain(entry)
        if handler.state == CfdpState.BUSY:
            entry.started = True
        elif entry.started or entry.completed:
            self._close(key, entry)
        else:  # the first PDU did not begin a transaction: forget it, keep no history
            self._active.pop(key, None)

    def _drain(self, entry: _Active) -> None:
        handler = entry.handler
        while True:
            holder = handler.get_next_packet()
            if holder is None:
                return
            directive = holder.pdu_directive_type
            if directive == DirectiveType.NAK_PDU and handler.step == TransactionStep.WAITING_FOR_METADATA:
                now = self.clock()
                if now - entry.last_nak < self.timers.nak_timer_s:
                    self.counters["naks_suppressed"] += 1
                    continue
                entry.last_nak = now
            try:
                raw = bytes(holder.pdu.pack())
            except Exception:  # a PDU the library built but cannot pack (e.g. offsets past 4 GiB)
                self.counters["handler_errors"] += 1
                continue
            if directive == DirectiveType.FINISHED_PDU:
                entry.finished_pdu = raw
            self._out.append(raw)

    def _on_finished(self, key: tuple[int, int], params: TransactionFinishedParams) -> None:
        """Called by the handler before it builds the Finished PDU."""
        entry = self._active.get(key)
        if entry is None or entry.completed:
            return
        entry.completed = True
        handler = entry.handler
        fp = params.finished_params
        metas = [m for m in handler.user.metadata if m.dest_file_name]
        name = metas[-1].dest_file_name if metas else ""
        path, size = Path(), 0
        delivered = fp.delivery_code == DeliveryCode.DATA_COMPLETE and fp.file_status == FileStatus.FILE_RETAINED
        if fp.file_status == FileStatus.FILE_RETAINED and name:
            try:
                path = self.filestore.sync(Path(name))
                size = path.stat().st_size
            except OSError:
                delivered = False
                fp.file_status = FileStatus.DISCARDED_FILESTORE_REJECTION
        if delivered and fp.condition_code == ConditionCode.NO_ERROR and entry.eof_checksum is not None:
            got = self.filestore.calculate_checksum(ChecksumType.CRC_32, path, size)
            if got != entry.eof_checksum:
                self.counters["checksum_failures"] += 1
                delivered = False
                fp.delivery_code = DeliveryCode.DATA_INCOMPLETE
                fp.condition_code = ConditionCode.FILE_CHECKSUM_FAILURE
        delivered = delivered and fp.condition_code == ConditionCode.NO_ERROR
        if delivered:
            try:  # the ground confirms only what it has recorded as stored
                self.on_delivered(Path(name).name, size)
            except Exception:  # any failure to record means: not stored, the lander keeps its copy
                delivered = False
                fp.condition_code = ConditionCode.FILESTORE_REJECTION
                fp.file_status = FileStatus.DISCARDED_FILESTORE_REJECTION
        self.received.append(ReceivedFile(key, path, Path(name).name, delivered, fp.condition_code.name, size))

    def _close(self, key: tuple[int, int], entry: _Active) -> None:
        self._active.pop(key, None)
        for meta in entry.handler.user.metadata:
            if meta.dest_file_name:
                try:
                    self.filestore.close(self.filestore.resolve(Path(meta.dest_file_name)))
                except PermissionError:
                    pass
        self._history[key] = entry.finished_pdu
        while len(self._history) > _HISTORY:
            self._history.popitem(last=False)

    def _late(self, key: tuple[int, int], pdu: GenericPduPacket, directive: DirectiveType | None) -> None:
        self.counters["pdus_late"] += 1
        if isinstance(pdu, EofPdu):
            self._ack_eof(pdu, TransactionStatus.TERMINATED)
            finished = self._history.get(key)
            if finished is not None:
                self._out.append(finished)

    def _ack_eof(self, eof: EofPdu, status: TransactionStatus) -> None:
        conf = eof.pdu_header.pdu_conf
        conf.direction = Direction.TOWARDS_SENDER
        # spacepackets 0.32's EofPdu.unpack leaves the condition code in the high nibble (data & 0xF0)
        code = eof.condition_code >> 4 if eof.condition_code > 0x0F else eof.condition_code
        try:
            self._out.append(bytes(AckPdu(conf, DirectiveType.EOF_PDU, ConditionCode(code), status).pack()))
        except ValueError:  # a condition code no ACK can carry: count it, never crash on the link's input
            self.counters["pdus_rejected"] += 1
