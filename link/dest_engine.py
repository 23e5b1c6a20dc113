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
- sends every other NAK PDU ``NAK_COPIES`` times, the copies after what else
  waits: a lost NAK costs a segment a whole round trip more (or, before the
  EOF, the wait for it), a copy costs the nearly idle return link a few dozen
  bytes, and the lander sends a segment asked for twice only once
  (:mod:`link.source_engine`);
- abandons a transaction after ``inactivity_s`` without a PDU (CFDP 4.8.3);
- calls ``on_delivered`` (the ground's durable ledger) before a complete file's
  Finished PDU is built: if that fails, the Finished says filestore rejection;
- ACKs a repeated EOF while recovering lost data (cfdp-py ignores it then; a
  lander that resumed after a crash sends its EOF again);
- refuses (counted ``pdus_refused``, reported as ``pdu_refused``) a Metadata or
  EOF PDU whose file size exceeds ``max_file_bytes``, and file data that would
  end past the transaction's file size or that bound: cfdp-py writes file data
  before it compares it with the file size, so an altered offset (its CRC
  recomputed) would grow a sparse file of gigabytes, and an EOF of a huge size
  would make it NAK gigabytes from the lander;
- decodes a coded transaction (:mod:`link.fec`: its file name carries the coding)
  as its symbols arrive: once the product decodes and the EOF's checksum is
  known, the coded file is rebuilt from it and checked against that checksum;
  if it matches, the missing symbols are written and the handler told it holds
  every byte (:meth:`TransactionHandler.hold_all`), so it completes without a
  NAK round trip; if not, the decoder is set aside and plain NAKs fetch what is
  missing. A completed coded file is delivered as its product: the product is
  written (fsync'd) under the name without the coding, the coded file removed.
  ``file_bytes_new`` counts product bytes only (source symbols as they arrive
  and what a decode filled), never parity;
- journals each transaction (a :class:`TransferJournal`, the ground's ledger):
  its Metadata PDU at the start, at checkpoints the byte ranges written and
  fsync'd (every ``CHECKPOINT_BYTES`` at most every ``CHECKPOINT_MIN_S``, at
  least every ``CHECKPOINT_MAX_S`` while data comes, and at EOF; :mod:`link.resume`), and its
  Finished PDU when built. :meth:`DestEngine.restore` rebuilds the handlers of
  open transactions from that after a restart (cfdp-py keeps no persistent
  state): as if Metadata and the held ranges had arrived, then the EOF if it
  had, so its NAKs ask only for what is missing (CFDP 4.6.4.3).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from spacepackets.cfdp import ChecksumType, ConditionCode, Direction, GenericPduPacket, PduType
from spacepackets.cfdp.pdu import DirectiveType, EofPdu, FileDataPdu, FinishedPdu, MetadataPdu, TransactionStatus
from spacepackets.cfdp.pdu.finished import DeliveryCode, FileStatus, FinishedParams

from cfdppy import CfdpState
from cfdppy.handler.dest import DestHandler, TransactionStep
from cfdppy.user import TransactionFinishedParams

from link.dest_handler import FinishingRecorder, TransactionHandler
from link.engine import PduEngine, ack_pdu, packed_or_none
from link.fec import Coding, FecError, SymbolDecoder, crc32_of, extract, split_name
from link.filestore import IncomingFilestore, fsync_dir
from link.mib import (
    CfdpTimers,
    FaultRecorder,
    FixedCheckTimer,
    fault_handlers_for_receiver,
    local_entity_config,
)
from link.resume import (
    CHECKPOINT_BYTES,
    CHECKPOINT_MAX_S,
    CHECKPOINT_MIN_S,
    JournalRecord,
    NoJournal,
    Segments,
    TransferJournal,
    decode_segments,
    encode_segments,
)

__all__ = ["ReceivedFile", "DestEngine"]

_MAX_ACTIVE = 64
NAK_COPIES = 2
MAX_FILE_BYTES = 1 << 30
"""The largest file a transaction may declare (a product is a few MiB); larger sizes are refused."""
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
    transfer_name: str = ""
    """The name the transaction carried (its Metadata's), where it differs from ``name``: a coded transfer's."""


@dataclass
class _Active:
    handler: DestHandler
    last_rx: float
    eof_checksum: bytes | None = None
    last_nak: float = -1e18
    finished_pdu: bytes | None = None
    completed: bool = False
    started: bool = False
    received: Segments = field(default_factory=Segments)  # byte ranges written (goodput counts each once)
    name: str = ""  # destination file name, once Metadata arrived
    journaled: bool = False  # the journal has this transaction open
    eof_raw: bytes | None = None
    eof_unsaved: bool = False
    unsaved_bytes: int = 0
    last_checkpoint: float = -1e18
    coding: Coding | None = None  # a coded transaction (its name told), once Metadata arrived
    coding_checked: bool = False  # its name was looked at
    fec: SymbolDecoder | None = None
    filled: bool = False  # its decode wrote the missing symbols


def _plain(name: str) -> str:
    """A received file's name without its coding (the name itself if it has none or a malformed one)."""
    try:
        return split_name(name)[0]
    except FecError:
        return name


class DestEngine(PduEngine[bytes]):
    """Receives products from one source entity; :meth:`pop` gives the packed PDUs to send back."""

    def __init__(self, local_id: int, remote_id: int, max_packet_len: int, timers: CfdpTimers,
                 incoming: Path, clock: Callable[[], float] = time.monotonic,
                 on_delivered: Callable[[str, int], None] | None = None,
                 journal: TransferJournal | None = None, reject: Callable[[str, dict[str, Any]], Any] | None = None,
                 max_file_bytes: int = MAX_FILE_BYTES) -> None:
        super().__init__(local_id, remote_id, max_packet_len, timers, clock, {
            "pdus_in": 0, "pdus_out": 0, "pdus_late": 0, "pdus_rejected": 0, "naks_suppressed": 0,
            "transactions_started": 0, "transactions_abandoned": 0, "checksum_failures": 0, "handler_errors": 0,
            "file_bytes_new": 0, "file_bytes_repeat": 0, "transfers_resumed": 0, "resumed_bytes": 0,
            "checkpoints": 0, "journal_errors": 0, "pdus_refused": 0, "fec_transactions": 0, "fec_decoded": 0,
            "fec_fill_bytes": 0, "fec_parity_bytes": 0, "fec_decode_mismatch": 0, "fec_errors": 0})
        self.reject = reject or (lambda name, fields: None)
        self.max_file_bytes = max_file_bytes
        self.journal: TransferJournal = journal or NoJournal()
        self.on_delivered = on_delivered or (lambda name, size: None)
        self.filestore = IncomingFilestore(incoming)
        self.faults = fault_handlers_for_receiver(FaultRecorder())
        self._cfg = local_entity_config(local_id, self.faults)
        self._active: dict[tuple[int, int], _Active] = {}
        self._history: OrderedDict[tuple[int, int], bytes | None] = OrderedDict()
        self.received: deque[ReceivedFile] = deque()
        self._copies: deque[bytes] = deque()  # NAK copies, sent once the outbox is empty

    def pop(self) -> bytes | None:
        """The next packed PDU to send (NAK copies last), or None."""
        raw = super().pop()
        if raw is None and self._copies:
            self.counters["pdus_out"] += 1
            raw = self._copies.popleft()
        return raw

    @property
    def active(self) -> int:
        return len(self._active)

    # -- input ---------------------------------------------------------------------------------
    def _take(self, pdu: GenericPduPacket) -> None:
        """A PDU from the lander (counted by :meth:`PduEngine.insert`)."""
        if pdu.source_entity_id.value != self.remote_id or pdu.dest_entity_id.value != self.local_id:
            self.counters["pdus_rejected"] += 1
            return
        key = (pdu.source_entity_id.value, pdu.transaction_seq_num.value)
        directive = getattr(pdu, "directive_type", None) if pdu.pdu_type == PduType.FILE_DIRECTIVE else None
        entry = self._active.get(key)
        fault = self._size_fault(pdu, entry)
        if fault is not None:
            self.counters["pdus_refused"] += 1
            self.reject("pdu_refused", {"reason": fault, "transaction": key[1],
                                        "directive": "FILE_DATA" if directive is None else getattr(directive, "name", str(directive))})
            return
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
        if isinstance(pdu, EofPdu):
            entry.eof_checksum = bytes(pdu.file_checksum)
            if entry.eof_raw is None and pdu.condition_code == ConditionCode.NO_ERROR:
                entry.eof_raw, entry.eof_unsaved = packed_or_none(pdu), True
            if (entry.handler.step in _CLOSING or entry.completed
                    or entry.handler.step == TransactionStep.WAITING_FOR_MISSING_DATA):
                self._ack_eof(pdu, TransactionStatus.ACTIVE)
                if self._fill(entry):
                    self._run(key, entry, None)
                self._checkpoint(key, entry)
                return
            if pdu.condition_code == ConditionCode.NO_ERROR:
                self._fill(entry)  # a decoded product completes the file before the handler sees its EOF
        metadata = packed_or_none(pdu) if directive == DirectiveType.METADATA_PDU and not entry.journaled else None
        self._run(key, entry, pdu)  # (cfdp-py turns the first PDU's header around for its replies)
        if metadata is not None:
            self._journal_open(key, entry, metadata)
        if self._coded(entry) and isinstance(pdu, FileDataPdu) and key in self._active:
            self._feed(entry, pdu.offset, pdu.file_data)
            if self._fill(entry):
                self._run(key, entry, None)
        self._checkpoint(key, entry)

    def tick(self) -> None:
        """Run every handler's timers; drop handlers that are done or inactive."""
        now = self.clock()
        for key, entry in list(self._active.items()):
            if now - entry.last_rx > self.timers.inactivity_s:
                self.counters["transactions_abandoned"] += 1
                self._close(key, entry)
                continue
            self._run(key, entry, None)
            self._checkpoint(key, entry)

    def restore(self, records: Iterable[JournalRecord], delivered: set[str] = frozenset()) -> int:
        """After a restart: resume the journal's open transactions, remember the closed ones (a late EOF
        is answered with their Finished). ``delivered``: file names the ledger holds as received (their
        Finished may not have been journalled). Returns how many transactions resumed."""
        resumed = 0
        for rec in records:
            key = (rec.source, rec.seq)
            if rec.source != self.remote_id:
                continue
            if not rec.open or rec.name in delivered or _plain(rec.name) in delivered:
                finished = rec.finished or self._finished_for(rec.metadata)
                self._remember(key, finished)
                if rec.open:
                    self._journal_call(self.journal.transfer_closed, key, finished)
                continue
            if self._resume(key, rec):
                resumed += 1
            else:
                self._journal_call(self.journal.transfer_closed, key, None)
        return resumed

    # -- internals -----------------------------------------------------------------------------
    def _size_fault(self, pdu: GenericPduPacket, entry: _Active | None) -> str | None:
        """Why a PDU's sizes or offsets cannot belong to its transaction, or None."""
        if isinstance(pdu, (MetadataPdu, EofPdu)) and pdu.file_size > self.max_file_bytes:
            return f"file size {pdu.file_size} above the {self.max_file_bytes}-byte limit"
        if isinstance(pdu, FileDataPdu):
            end = pdu.offset + len(pdu.file_data)
            declared = entry.handler.file_size if entry is not None else None
            limit = min(self.max_file_bytes, declared if declared is not None else self.max_file_bytes)
            if end > limit:
                return f"file data ends at byte {end}, past the file's {limit} bytes"
        return None

    def _open(self, key: tuple[int, int]) -> _Active | None:
        if len(self._active) >= _MAX_ACTIVE:
            oldest = min(self._active, key=lambda k: self._active[k].last_rx)
            self.counters["transactions_abandoned"] += 1
            self._close(oldest, self._active[oldest])
        user = FinishingRecorder(self.filestore, lambda p, k=key: self._on_finished(k, p))
        handler = TransactionHandler(self._cfg, user, self.remotes, FixedCheckTimer(self.timers.inactivity_s))
        entry = _Active(handler, self.clock())
        self._active[key] = entry
        self.counters["transactions_started"] += 1
        return entry

    def _resume(self, key: tuple[int, int], rec: JournalRecord) -> bool:
        try:  # the journal holds PDUs as cfdp-py/spacepackets packed them; unpack them the same way
            meta = MetadataPdu.unpack(rec.metadata)
            held = decode_segments(rec.segments) if rec.segments else Segments()
            eof = EofPdu.unpack(rec.eof) if rec.eof else None
        except Exception:  # a journal row that does not decode: that transaction starts again
            self.counters["journal_errors"] += 1
            return False
        entry = self._open(key)
        if entry is None:
            return False
        try:
            size = self.filestore.resolve(Path(rec.name)).stat().st_size
        except (OSError, PermissionError):
            size = 0
        held = Segments((s, min(e, size)) for s, e in held.ranges if s < size)  # never claim bytes not on disk
        try:
            ok = entry.handler.restore(meta, held)
        except Exception:  # a library fault: that transaction starts again
            self.counters["handler_errors"] += 1
            ok = False
        self._drain(key, entry)
        if not ok:
            self._active.pop(key, None)
            return False
        entry.started, entry.journaled, entry.name, entry.received = True, True, rec.name, held
        self.counters["transfers_resumed"] += 1
        self.counters["resumed_bytes"] += held.total
        if self._coded(entry):
            self._refeed(entry)
        if eof is not None:
            entry.eof_checksum, entry.eof_raw = bytes(eof.file_checksum), rec.eof
            self._fill(entry)
            self._run(key, entry, eof)  # recovers what is missing, or completes
        return True

    def _finished_for(self, metadata: bytes) -> bytes | None:
        """A Finished PDU (complete, retained) for a delivered transaction whose own was not journalled."""
        try:
            conf = MetadataPdu.unpack(metadata).pdu_header.pdu_conf
            conf.direction = Direction.TOWARDS_SENDER
            params = FinishedParams(ConditionCode.NO_ERROR, DeliveryCode.DATA_COMPLETE, FileStatus.FILE_RETAINED)
            return bytes(FinishedPdu(params=params, pdu_conf=conf).pack())
        except Exception:  # a journal row that does not decode: a late EOF then gets its ACK only
            self.counters["journal_errors"] += 1
            return None

    def _journal_open(self, key: tuple[int, int], entry: _Active, raw: bytes) -> None:
        """Journal a transaction once its Metadata PDU (``raw``, as it arrived) has created its file."""
        metas = [m for m in entry.handler.user.metadata if m.dest_file_name]
        if not metas or entry.handler.state != CfdpState.BUSY or entry.completed:
            return
        entry.name = metas[-1].dest_file_name
        try:
            fsync_dir(self.filestore.resolve(Path(entry.name)).parent)  # the new file's name is durable
        except (OSError, PermissionError):
            self.counters["journal_errors"] += 1
            return
        entry.journaled = self._journal_call(self.journal.transfer_opened, key, entry.name, raw)
        entry.last_checkpoint = self.clock()

    def _checkpoint(self, key: tuple[int, int], entry: _Active) -> None:
        """fsync the file, then journal the ranges it holds (and the EOF): never claim what is not durable."""
        if not entry.journaled or entry.completed or not (entry.unsaved_bytes or entry.eof_unsaved):
            return
        now = self.clock()
        since = now - entry.last_checkpoint
        if not (entry.eof_unsaved or since >= CHECKPOINT_MAX_S
                or (entry.unsaved_bytes >= CHECKPOINT_BYTES and since >= CHECKPOINT_MIN_S)):
            return
        try:
            self.filestore.flush(Path(entry.name))
        except (OSError, PermissionError):
            self.counters["journal_errors"] += 1
            return
        if self._journal_call(self.journal.transfer_progress, key, encode_segments(entry.received), entry.eof_raw):
            entry.unsaved_bytes, entry.eof_unsaved, entry.last_checkpoint = 0, False, now
            self.counters["checkpoints"] += 1

    def _journal_call(self, fn: Callable[..., None], *args: object) -> bool:
        try:
            fn(*args)
        except Exception:  # the journal only saves resends; its failure must not stop a transfer
            self.counters["journal_errors"] += 1
            return False
        return True

    def _note_writes(self, entry: _Active) -> None:
        """Each write's new bytes are held; goodput counts the new product bytes (of a coded file, the
        source symbols' share only)."""
        for _path, offset, length in self.filestore.writes:
            if entry.coding is None:
                new = entry.received.add(offset, length)
                self.counters["file_bytes_new"] += new
            else:
                new = self._note_coded(entry, offset, length)
            entry.unsaved_bytes += new
            self.counters["file_bytes_repeat"] += length - new
        self.filestore.writes.clear()

    def _note_coded(self, entry: _Active, offset: int, length: int) -> int:
        """A write to a coded file, symbol by symbol: returns the new file bytes; counts the new product
        bytes (a source symbol's data without its payload id and padding) and the new parity bytes."""
        coding = entry.coding
        assert coding is not None
        n, end, total = coding.packet_len, offset + length, 0
        for i in range(offset // n, -(-end // n)):
            lo, hi = max(offset, i * n), min(end, (i + 1) * n)
            new = entry.received.add(lo, hi - lo)
            total += new
            if i < coding.source:
                self.counters["file_bytes_new"] += new * coding.product_bytes(i) // n
            else:
                self.counters["fec_parity_bytes"] += new
        return total

    # -- coded transactions (link.fec) -----------------------------------------------------------
    def _coded(self, entry: _Active) -> bool:
        """Whether the transaction is coded and its decoder still useful; sets it up once its Metadata
        has arrived (a coding that does not fit the file's size is counted and ignored: plain NAKs)."""
        if not entry.coding_checked and entry.handler.file_name:
            entry.coding_checked = True
            try:
                _, coding = split_name(Path(entry.handler.file_name).name)
                if coding is not None and coding.coded_size != entry.handler.file_size:
                    raise FecError(f"coding of {coding.coded_size} bytes for a {entry.handler.file_size}-byte file")
            except FecError as exc:
                self.counters["fec_errors"] += 1
                self.reject("pdu_refused", {"reason": f"coding not used: {exc}", "transaction": -1,
                                            "directive": "METADATA_PDU"})
                coding = None
            if coding is not None:
                entry.coding, entry.fec = coding, SymbolDecoder(coding)
                self.counters["fec_transactions"] += 1
        return entry.fec is not None and not entry.fec.failed and not entry.filled

    def _feed(self, entry: _Active, offset: int, data: bytes) -> None:
        assert entry.fec is not None
        try:
            entry.fec.add(offset, bytes(data))
        except FecError:
            self.counters["fec_errors"] += 1

    def _refeed(self, entry: _Active) -> None:
        """A resumed coded transaction: the whole symbols its partial file holds, to a fresh decoder."""
        assert entry.coding is not None
        n = entry.coding.packet_len
        for start, end in entry.received.ranges:
            first, last = -(-start // n), end // n
            if last <= first:
                continue
            try:
                data = self.filestore.read_data(Path(entry.name), first * n, (last - first) * n)
            except OSError:
                self.counters["journal_errors"] += 1
                return
            self._feed(entry, first * n, data)

    def _fill(self, entry: _Active) -> bool:
        """If the product decoded and the EOF's checksum is known: rebuild the coded file, check it, write
        the symbols not held and tell the handler it holds them all. True if it did; a rebuilt file
        whose checksum differs sets the decoder aside (plain NAKs then)."""
        fec = entry.fec
        if (fec is None or fec.product is None or fec.failed or entry.filled or entry.eof_checksum is None
                or entry.completed or entry.handler.step in _CLOSING):
            return False
        coded = fec.coded()
        if crc32_of(coded) != entry.eof_checksum:
            fec.failed = True
            self.counters["fec_decode_mismatch"] += 1
            return False
        self.filestore.writes.clear()
        name = Path(entry.handler.file_name)
        try:
            for start, end in entry.received.gaps(len(coded)):
                self.filestore.write_data(name, coded[start:end], start)
        except (OSError, PermissionError):
            self.counters["journal_errors"] += 1
            self._note_writes(entry)
            return False
        filled = sum(length for _p, _o, length in self.filestore.writes)
        self._note_writes(entry)
        entry.handler.hold_all()
        entry.filled = True
        self.counters["fec_decoded"] += 1
        self.counters["fec_fill_bytes"] += filled
        return True

    def _deliver_coded(self, entry: _Active, name: str, path: Path, size: int) -> tuple[str, Path, int]:
        """A complete, checked coded file as its product: written under the plain name, fsync'd.
        Returns (name, path, size) of the product; OSError or FecError if it cannot be."""
        assert entry.coding is not None
        plain = _plain(name)
        data = extract(path.read_bytes(), entry.coding)
        real = self.filestore.deliver(path, plain, data)
        return plain, real, len(data)

    def _run(self, key: tuple[int, int], entry: _Active, pdu: GenericPduPacket | None) -> None:
        handler = entry.handler
        self.filestore.writes.clear()
        try:
            handler.state_machine(pdu)
        except Exception:  # library faults and rejected PDUs: count, keep the transaction
            self.counters["handler_errors" if pdu is None else "pdus_rejected"] += 1
        self._note_writes(entry)
        self._drain(key, entry)
        if handler.state == CfdpState.BUSY:
            entry.started = True
        elif entry.started or entry.completed:
            self._close(key, entry)
        else:  # the first PDU did not begin a transaction: forget it, keep no history
            self._active.pop(key, None)

    def _drain(self, key: tuple[int, int], entry: _Active) -> None:
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
                copies = 1
            else:
                copies = NAK_COPIES if directive == DirectiveType.NAK_PDU else 1
            raw = self._pack(holder.pdu)
            if raw is None:
                continue
            if directive == DirectiveType.FINISHED_PDU:
                if entry.journaled and entry.finished_pdu is None:  # before it leaves: a restart answers with it
                    entry.journaled = not self._journal_call(self.journal.transfer_closed, key, raw)
                entry.finished_pdu = raw
            self._out.append(raw)
            self._copies.extend(raw for _ in range(copies - 1))

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
        coded, transfer_name = path, Path(name).name
        if delivered and entry.coding is not None:
            try:
                name, path, size = self._deliver_coded(entry, name, path, size)
            except (OSError, FecError):
                delivered = False
                fp.condition_code = ConditionCode.FILESTORE_REJECTION
                fp.file_status = FileStatus.DISCARDED_FILESTORE_REJECTION
        if delivered:
            try:  # the ground confirms only what it has recorded as stored
                self.on_delivered(Path(name).name, size)
            except Exception:  # any failure to record means: not stored, the lander keeps its copy
                delivered = False
                fp.condition_code = ConditionCode.FILESTORE_REJECTION
                fp.file_status = FileStatus.DISCARDED_FILESTORE_REJECTION
        if entry.coding is not None and path != coded:  # the product is out: the coded file goes
            try:
                self.filestore.discard(coded)
            except (OSError, PermissionError):
                pass
        plain = Path(name).name
        self.received.append(ReceivedFile(key, path, plain, delivered, fp.condition_code.name, size,
                                          transfer_name if transfer_name != plain else ""))

    def _close(self, key: tuple[int, int], entry: _Active) -> None:
        self._active.pop(key, None)
        for meta in entry.handler.user.metadata:
            if meta.dest_file_name:
                try:
                    self.filestore.close(self.filestore.resolve(Path(meta.dest_file_name)))
                except PermissionError:
                    pass
        if entry.journaled:  # ended without a Finished of ours: abandoned, its partial file goes
            self._journal_call(self.journal.transfer_closed, key, entry.finished_pdu)
            if not entry.completed and entry.name:
                try:
                    self.filestore.resolve(Path(entry.name)).unlink(missing_ok=True)
                except (OSError, PermissionError):
                    pass
        self._remember(key, entry.finished_pdu)

    def _remember(self, key: tuple[int, int], finished: bytes | None) -> None:
        self._history[key] = finished
        self._history.move_to_end(key)
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
        # spacepackets 0.32's EofPdu.unpack leaves the condition code in the high nibble (data & 0xF0)
        code = eof.condition_code >> 4 if eof.condition_code > 0x0F else eof.condition_code
        try:
            self._out.append(bytes(ack_pdu(eof, DirectiveType.EOF_PDU, ConditionCode(code), status).pack()))
        except ValueError:  # a condition code no ACK can carry: count it, never crash on the link's input
            self.counters["pdus_rejected"] += 1
