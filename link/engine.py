"""What the two CFDP engines share, at whichever end they run: PDUs in, packed PDUs out. No I/O.

The lander's :class:`~link.source_engine.SourceEngine` and the ground's
:class:`~link.dest_engine.DestEngine` both wrap cfdp-py handlers, and both
meet the link the same way: every PDU the link delivers is taken without
raising (counted ``pdus_in``); what the handlers build waits packed in an
outbox until the adapter takes it (counted ``pdus_out``); a PDU the library
built but cannot pack is counted (``handler_errors``), never raised; and an
EOF or Finished PDU is acknowledged with the transaction's own PDU
configuration turned around (CFDP 5.2.4, ACK PDU). This is their one copy.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Generic, TypeVar

from spacepackets.cfdp import ConditionCode, Direction, GenericPduPacket
from spacepackets.cfdp.pdu import AckPdu, DirectiveType, TransactionStatus

from cfdppy.mib import RemoteEntityConfigTable

from link.mib import CfdpTimers, remote_entity_config

__all__ = ["PduEngine", "ack_pdu", "packed_or_none"]

OutT = TypeVar("OutT")


def packed_or_none(pdu: GenericPduPacket) -> bytes | None:
    """A PDU's bytes as spacepackets packs them, or None when it cannot (spacepackets 0.32 cannot
    re-pack some parsed PDUs, e.g. a cancel EOF's shifted condition code)."""
    try:
        return bytes(pdu.pack())
    except Exception:  # the library raises several unrelated types
        return None


def ack_pdu(pdu: GenericPduPacket, acked: DirectiveType, condition: ConditionCode,
            status: TransactionStatus) -> AckPdu:
    """The ACK of ``acked`` (an EOF or a Finished) for the transaction ``pdu`` belongs to (CFDP 5.2.4).

    An EOF is acknowledged towards its sender, a Finished towards its receiver. ``pdu``'s own
    configuration is reused and turned around in place, as cfdp-py does for its replies."""
    conf = pdu.pdu_header.pdu_conf
    conf.direction = Direction.TOWARDS_SENDER if acked == DirectiveType.EOF_PDU else Direction.TOWARDS_RECEIVER
    return AckPdu(conf, acked, condition, status)


class PduEngine(Generic[OutT]):
    """The edges a CFDP engine shows the link: :meth:`insert` a PDU, :meth:`pop` what to send.

    Holds what both ends know of the pair of entities: this end's id, the peer's (and its MIB entry,
    ``remotes``, for cfdp-py's handlers), the timers, and the clock the engine's own timers read.
    ``counters`` is the engine's whole counter map (health telemetry reads it); it must hold
    ``pdus_in``, ``pdus_out`` and ``handler_errors``. A subclass handles a PDU in :meth:`_take`
    and queues what goes out on ``self._out``.
    """

    def __init__(self, local_id: int, remote_id: int, max_packet_len: int, timers: CfdpTimers,
                 clock: Callable[[], float], counters: dict[str, int]) -> None:
        self.local_id = local_id
        self.remote_id = remote_id
        self.timers = timers
        self.clock = clock
        self.remotes = RemoteEntityConfigTable([remote_entity_config(remote_id, max_packet_len, timers)])
        self.counters = counters
        self._out: deque[OutT] = deque()

    def pop(self) -> OutT | None:
        """The next item to send, or None."""
        if not self._out:
            return None
        self.counters["pdus_out"] += 1
        return self._out.popleft()

    def insert(self, pdu: GenericPduPacket) -> None:
        """A PDU from the other end. Never raises on what the link delivers."""
        self.counters["pdus_in"] += 1
        self._take(pdu)

    def _take(self, pdu: GenericPduPacket) -> None:
        raise NotImplementedError

    def _pack(self, pdu: Any) -> bytes | None:
        """A PDU a handler built, packed; None (counted) if the library cannot pack it (e.g. offsets
        past 4 GiB)."""
        try:
            return bytes(pdu.pack())
        except Exception:  # the library raises several unrelated types
            self.counters["handler_errors"] += 1
            return None
