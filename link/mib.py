"""The CFDP management information base for both ends of the downlink, built from settings.

Both entities use class 2 (acknowledged, CCSDS 727.0-B-5 4.6.4), closure
requested, CRC-32 file checksums and a CRC-16 on every PDU. Timer values come
from the process settings; cfdp-py runs them on its own ``Countdown`` (wall
time), which is why the adapters on top add their own injected-clock
inactivity watch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from spacepackets.cfdp import ChecksumType, ConditionCode, FaultHandlerCode, TransactionId, TransmissionMode
from spacepackets.countdown import Countdown
from spacepackets.seqcount import ProvidesSeqCount
from spacepackets.util import ByteFieldU16, UnsignedByteField

from cfdppy.filestore import VirtualFilestore
from cfdppy.mib import (
    CheckTimerProvider,
    DefaultFaultHandlerBase,
    EntityType,
    IndicationConfig,
    LocalEntityConfig,
    RemoteEntityConfig,
)
from cfdppy.user import (
    CfdpUserBase,
    FileSegmentRecvdParams,
    MetadataRecvParams,
    TransactionFinishedParams,
    TransactionParams,
)

__all__ = [
    "NAK_PATIENCE_S",
    "CfdpTimers",
    "FaultRecord",
    "FaultRecorder",
    "IndicationRecorder",
    "MemorySeqCount",
    "FixedCheckTimer",
    "entity_id",
    "fault_handlers_for_receiver",
    "local_entity_config",
    "remote_entity_config",
    "tid_key",
]


NAK_PATIENCE_S = 60.0
"""Contact seconds a receiver NAKs without any missing data arriving before it declares the NAK limit."""


@dataclass(frozen=True)
class CfdpTimers:
    """Timer values and limits for one entity's view of its peer (CFDP 4.7.1, 4.6.4.7)."""

    ack_timer_s: float = 1.0
    ack_limit: int = 10
    nak_timer_s: float = 1.0
    nak_limit: int = 20
    inactivity_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "CfdpTimers":
        """The NAK limit follows the NAK timer: a receiver may NAK as often as a round trip allows and
        still waits ``NAK_PATIENCE_S`` of contact without any missing data arriving before it gives up."""
        nak_timer_s = float(settings["nak_timer_s"])
        return cls(ack_timer_s=float(settings["ack_timer_s"]), nak_timer_s=nak_timer_s,
                   nak_limit=max(cls.nak_limit, math.ceil(NAK_PATIENCE_S / nak_timer_s)),
                   inactivity_s=float(settings["inactivity_s"]))


def entity_id(value: int) -> UnsignedByteField:
    """CFDP entity ids are two bytes on this mission."""
    return ByteFieldU16(value)


def tid_key(tid: TransactionId) -> tuple[int, int]:
    """A hashable (source entity id, transaction sequence number) pair."""
    return tid.source_id.value, tid.seq_num.value


def remote_entity_config(remote_id: int, max_packet_len: int, timers: CfdpTimers) -> RemoteEntityConfig:
    """The peer as this entity sees it: class 2, closure requested, CRC-32, PDU CRC on."""
    return RemoteEntityConfig(
        entity_id=entity_id(remote_id),
        max_file_segment_len=None,
        max_packet_len=max_packet_len,
        closure_requested=True,
        crc_on_transmission=True,
        default_transmission_mode=TransmissionMode.ACKNOWLEDGED,
        crc_type=ChecksumType.CRC_32,
        positive_ack_timer_interval_seconds=timers.ack_timer_s,
        positive_ack_timer_expiration_limit=timers.ack_limit,
        immediate_nak_mode=True,
        nak_timer_interval_seconds=timers.nak_timer_s,
        nak_timer_expiration_limit=timers.nak_limit,
        disposition_on_cancellation=False,
    )


@dataclass(frozen=True)
class FaultRecord:
    transaction: tuple[int, int]
    condition: str
    progress: int
    handler: str


class FaultRecorder(DefaultFaultHandlerBase):
    """Keeps each declared fault (CFDP 4.8) so the adapter can report and count it."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[FaultRecord] = []

    def _keep(self, tid: TransactionId, cond: ConditionCode, progress: int, handler: str) -> None:
        self.records.append(FaultRecord(tid_key(tid), cond.name, progress, handler))

    def notice_of_suspension_cb(self, transaction_id: TransactionId, cond: ConditionCode, progress: int) -> None:
        self._keep(transaction_id, cond, progress, "suspension")

    def notice_of_cancellation_cb(self, transaction_id: TransactionId, cond: ConditionCode, progress: int) -> None:
        self._keep(transaction_id, cond, progress, "cancellation")

    def abandoned_cb(self, transaction_id: TransactionId, cond: ConditionCode, progress: int) -> None:
        self._keep(transaction_id, cond, progress, "abandoned")

    def ignore_cb(self, transaction_id: TransactionId, cond: ConditionCode, progress: int) -> None:
        self._keep(transaction_id, cond, progress, "ignored")

    def take(self) -> list[FaultRecord]:
        out, self.records = self.records, []
        return out


def local_entity_config(local_id: int, faults: FaultRecorder) -> LocalEntityConfig:
    """This entity: no per-segment indication (it would cost a call per PDU)."""
    indications = IndicationConfig(file_segment_recvd_indication_required=False)
    return LocalEntityConfig(local_entity_id=entity_id(local_id), indication_cfg=indications,
                             default_fault_handlers=faults)


class FixedCheckTimer(CheckTimerProvider):
    """Check timer (CFDP 4.6.3.3, class 1 only) of a fixed length."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def provide_check_timer(self, local_entity_id: UnsignedByteField, remote_entity_id: UnsignedByteField,
                            entity_type: EntityType) -> Countdown:
        return Countdown(timedelta(seconds=self.timeout_s))


class MemorySeqCount(ProvidesSeqCount):
    """A 32-bit transaction sequence counter; ``peek`` shows the number the next transaction gets."""

    def __init__(self, start: int = 0) -> None:
        self._next = start

    @property
    def max_bit_width(self) -> int:
        return 32

    @max_bit_width.setter
    def max_bit_width(self, width: int) -> None:
        raise AttributeError("the transaction sequence number width is fixed at 32 bits")

    def set_next(self, value: int) -> None:
        self._next = value % (1 << 32)

    def peek(self) -> int:
        return self._next

    def get_and_increment(self) -> int:
        value = self._next
        self._next = (self._next + 1) % (1 << 32)
        return value


class IndicationRecorder(CfdpUserBase):
    """A CFDP user that records the indications an adapter acts on (CFDP 3.4)."""

    def __init__(self, vfs: VirtualFilestore) -> None:
        super().__init__(vfs)
        self.finished: list[TransactionFinishedParams] = []
        self.metadata: list[MetadataRecvParams] = []
        self.eof_sent: list[TransactionId] = []
        self.eof_received: list[TransactionId] = []

    def transaction_indication(self, transaction_indication_params: TransactionParams) -> None:
        pass

    def eof_sent_indication(self, transaction_id: TransactionId) -> None:
        self.eof_sent.append(transaction_id)

    def transaction_finished_indication(self, params: TransactionFinishedParams) -> None:
        self.finished.append(params)

    def metadata_recv_indication(self, params: MetadataRecvParams) -> None:
        self.metadata.append(params)

    def file_segment_recv_indication(self, params: FileSegmentRecvdParams) -> None:
        pass

    def report_indication(self, transaction_id: TransactionId, status_report: Any) -> None:  # noqa: ANN401
        pass

    def suspended_indication(self, transaction_id: TransactionId, cond_code: ConditionCode) -> None:
        pass

    def resumed_indication(self, transaction_id: TransactionId, progress: int) -> None:
        pass

    def fault_indication(self, transaction_id: TransactionId, cond_code: ConditionCode, progress: int) -> None:
        pass

    def abandoned_indication(self, transaction_id: TransactionId, cond_code: ConditionCode, progress: int) -> None:
        pass

    def eof_recv_indication(self, transaction_id: TransactionId) -> None:
        self.eof_received.append(transaction_id)


def fault_handlers_for_receiver(faults: FaultRecorder) -> FaultRecorder:
    """Ground side: a Finished PDU nobody ACKs is abandoned, not cancelled and re-sent forever."""
    faults.set_handler(ConditionCode.POSITIVE_ACK_LIMIT_REACHED, FaultHandlerCode.ABANDON_TRANSACTION)
    return faults
