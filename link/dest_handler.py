"""cfdp-py 0.7's destination handler, adapted for a ground that restarts and runs many transactions.

- :class:`TransactionHandler`: each transaction gets its own LostSegmentTracker
  (cfdp-py shares one between all handlers, a dataclass default object), and a
  transaction resumed after a restart re-enters with its Metadata and the byte
  ranges it holds, keeping its partial file (CFDP 4.6.4.3.1). Missing data
  that arrives resets the NAK limit counter only, not the NAK timer (CFDP
  4.6.4.7): cfdp-py restarts the timer on every retransmitted segment that
  arrives, so while a NAK's answer streams in no new NAK leaves, and a
  segment lost again waited a whole timer after the last one arrived.
- :meth:`TransactionHandler.hold_all`: a coded transaction (:mod:`link.fec`) whose
  product decoded has every byte of its file written; the handler is told it
  holds them all, so it completes as if the last segment had arrived.
- :class:`FinishingRecorder`: runs the engine's completion step inside the
  handler, before its Finished PDU is built.

Used by :class:`link.dest_engine.DestEngine`; no I/O of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from spacepackets.cfdp import ConditionCode, GenericPduPacket
from spacepackets.cfdp.pdu import MetadataPdu
from spacepackets.cfdp.pdu.finished import FileStatus

from cfdppy.handler.dest import DestHandler, LostSegmentTracker, TransactionStep
from cfdppy.user import TransactionFinishedParams

from link.filestore import IncomingFilestore
from link.mib import IndicationRecorder
from link.resume import Segments

__all__ = ["TransactionHandler", "FinishingRecorder"]


class TransactionHandler(DestHandler):
    """cfdp-py 0.7's DestHandler shares one LostSegmentTracker between all instances (a dataclass
    default object); each transaction gets its own here."""

    _resuming = False

    def _reset_nak_activity_parameters(self) -> None:
        """Missing data arrived: the NAK limit counter starts again; the NAK timer keeps running."""
        self._params.acked_params.nak_activity_counter = 0

    def _common_first_packet_handler(self, pdu: GenericPduPacket) -> bool | None:
        result = super()._common_first_packet_handler(pdu)
        self._params.acked_params.lost_seg_tracker = LostSegmentTracker()
        return result

    def _init_vfs_handling(self, source_base_name: str) -> None:
        if not self._resuming:
            super()._init_vfs_handling(source_base_name)
            return
        try:  # a resumed transaction keeps the partial file it has
            self.user.vfs.keep(self._params.fp.file_name)
            self._params.finished_params.file_status = FileStatus.FILE_RETAINED
        except OSError:
            self._params.finished_params.file_status = FileStatus.DISCARDED_FILESTORE_REJECTION
            self._declare_fault(ConditionCode.FILESTORE_REJECTION)

    def restore(self, metadata: MetadataPdu, held: Segments) -> bool:
        """Re-enter a transaction after a restart, as if its Metadata and the ``held`` ranges had arrived
        (cfdp-py's lost-segment state: the gaps below the highest byte held, CFDP 4.6.4.3.1).
        False if the handler did not take it up."""
        self._resuming = True
        try:
            self.state_machine(metadata)
        finally:
            self._resuming = False
        if self.step != TransactionStep.RECEIVING_FILE_DATA:
            return False
        progress = held.end
        acked = self._params.acked_params
        acked.lost_seg_tracker.lost_segments = held.gaps(progress)
        acked.last_start_offset = acked.last_end_offset = progress
        self._params.fp.progress = progress
        return True


    def hold_all(self) -> None:
        """Every byte of the file is written (a coded transaction's decode filled the rest): nothing is
        lost any more (cfdp-py's lost-segment state, CFDP 4.6.4.3). At its EOF, or on the next call
        after it, the handler completes."""
        size = self._params.fp.file_size or 0
        acked = self._params.acked_params
        acked.lost_seg_tracker.lost_segments = []
        acked.last_start_offset = acked.last_end_offset = size
        self._params.fp.progress = max(self._params.fp.progress, size)

    @property
    def file_name(self) -> str:
        """The destination file name of the transaction (its Metadata's), or empty."""
        name = self._params.fp.file_name
        return "" if name is None or name == Path() else str(name)  # Path() until its Metadata came


class FinishingRecorder(IndicationRecorder):
    """Runs the engine's completion step inside the handler, before its Finished PDU is built."""

    def __init__(self, vfs: IncomingFilestore, on_finished: Callable[[TransactionFinishedParams], None]) -> None:
        super().__init__(vfs)
        self._on_finished = on_finished

    def transaction_finished_indication(self, params: TransactionFinishedParams) -> None:
        super().transaction_finished_indication(params)
        self._on_finished(params)
