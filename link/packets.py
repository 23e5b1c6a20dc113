"""CFDP PDUs inside CCSDS Space Packets: pure wrap and unwrap, no sockets.

One CFDP PDU travels as the user data field of one Space Packet (CCSDS
133.0-B-2, no secondary header, unsegmented). Every CFDP PDU goes on APID
2045 (0x7FD), the APID under which Wireshark's CCSDS dissector hands the data
field to its CFDP dissector (it offers no "Decode As" for other APIDs), so a
recorded link opens in Wireshark down to each PDU. The class of a transfer is
in its CFDP transaction (file name, transaction id), not in the APID; the
wrapper still keeps a 14-bit sequence count per APID for any other traffic.

:func:`unwrap` parses the Space Packet header (spacepackets'
``SpacePacketHeader``), then the PDU (``PduFactory``); any fault raises a
:class:`PacketError` or :class:`PduError`, both :class:`~framework.errors.ProtocolError`.
:func:`received_pdu` is how both ends take a datagram off the radio: counted,
and a bad one reported (``datagram_rejected``) instead of raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from spacepackets.ccsds.spacepacket import (
    CCSDS_HEADER_LEN,
    PacketType,
    SequenceFlags,
    SpacePacket,
    SpacePacketHeader,
)
from spacepackets.cfdp import GenericPduPacket, PduFactory

from framework.errors import ProtocolError

__all__ = [
    "APIDS",
    "APID_CFDP",
    "APID_THUMBNAIL",
    "APID_FULL",
    "APID_DIRECTIVE",
    "APID_TELEMETRY",
    "APID_EVENTS",
    "PacketError",
    "PduError",
    "Unwrapped",
    "SpacePacketWrapper",
    "apid_for_kind",
    "unwrap",
    "received_pdu",
]

APID_CFDP = 0x7FD  # Wireshark's CFDP APID
APID_THUMBNAIL = APID_CFDP
APID_FULL = APID_CFDP
APID_TELEMETRY = APID_CFDP
APID_EVENTS = APID_CFDP
APID_DIRECTIVE = APID_CFDP
APIDS: dict[str, int] = {"thumbnail": APID_THUMBNAIL, "full": APID_FULL, "tlm": APID_TELEMETRY,
                         "tlm_playback": APID_TELEMETRY, "evt": APID_EVENTS, "directive": APID_DIRECTIVE}
_SEQ_MODULO = 1 << 14
_MAX_DATA_LEN = 1 << 16


class PacketError(ProtocolError):
    """A datagram is not one well-formed CCSDS Space Packet."""


class PduError(ProtocolError):
    """A Space Packet's user data is not one well-formed CFDP PDU."""


@dataclass(frozen=True)
class Unwrapped:
    """What came out of a datagram: the Space Packet fields and the CFDP PDU."""

    apid: int
    seq_count: int
    packet_type: PacketType
    pdu: GenericPduPacket
    pdu_len: int


def apid_for_kind(kind: str) -> int:
    """The APID of a product kind; unknown kinds travel as full frames."""
    return APIDS.get(kind, APID_FULL)


class SpacePacketWrapper:
    """Wraps packed PDUs into Space Packets, counting sequence per APID."""

    def __init__(self, packet_type: PacketType = PacketType.TM) -> None:
        self.packet_type = packet_type
        self._seq: dict[int, int] = {}

    def wrap(self, apid: int, pdu: bytes | bytearray) -> bytes:
        """One Space Packet carrying ``pdu``; raises PacketError if it cannot fit."""
        if not 0 <= apid < 0x800:
            raise PacketError(f"APID {apid} outside 0..0x7ff")
        if not 0 < len(pdu) <= _MAX_DATA_LEN:
            raise PacketError(f"PDU of {len(pdu)} bytes does not fit a Space Packet data field")
        seq = self._seq.get(apid, 0)
        self._seq[apid] = (seq + 1) % _SEQ_MODULO
        header = SpacePacketHeader(packet_type=self.packet_type, apid=apid, seq_count=seq,
                                   data_len=len(pdu) - 1, seq_flags=SequenceFlags.UNSEGMENTED)
        return bytes(SpacePacket(header, None, pdu).pack())

    def next_seq_count(self, apid: int) -> int:
        return self._seq.get(apid, 0)


def _parse_header(datagram: bytes) -> SpacePacketHeader:
    if len(datagram) < CCSDS_HEADER_LEN + 1:
        raise PacketError(f"datagram of {len(datagram)} bytes is shorter than a Space Packet")
    try:
        header = SpacePacketHeader.unpack(datagram)
    except Exception as exc:  # spacepackets raises ValueError and its own types
        raise PacketError(f"bad Space Packet header: {type(exc).__name__}: {exc}") from None
    if header.ccsds_version != 0:
        raise PacketError(f"Space Packet version {header.ccsds_version} is not 0")
    if header.sec_header_flag:
        raise PacketError("Space Packet has a secondary header; CFDP packets have none")
    if header.seq_flags != SequenceFlags.UNSEGMENTED:
        raise PacketError(f"Space Packet is segmented ({header.seq_flags.name})")
    if header.packet_len != len(datagram):
        raise PacketError(f"Space Packet length field says {header.packet_len} bytes, datagram has {len(datagram)}")
    return header


def _parse_pdu(data: bytes) -> GenericPduPacket:
    try:
        pdu = PduFactory.from_raw(data)
    except Exception as exc:  # PDU parsers raise ValueError, struct.error, IndexError, ...
        raise PduError(f"bad CFDP PDU: {type(exc).__name__}: {exc}") from None
    if pdu is None:
        raise PduError("unknown CFDP PDU directive")
    try:
        pdu_len = pdu.packet_len
    except Exception as exc:
        raise PduError(f"bad CFDP PDU length: {type(exc).__name__}: {exc}") from None
    if pdu_len != len(data):
        raise PduError(f"CFDP PDU length {pdu_len} does not fill the {len(data)}-byte packet data field")
    return pdu


def unwrap(datagram: bytes | bytearray | memoryview, require_crc: bool = False) -> Unwrapped:
    """Parse one datagram: a Space Packet whose data field is exactly one CFDP PDU.

    With ``require_crc`` a PDU whose header says it carries no CRC is refused: our entities
    always send one (CCSDS 727.0-B-5 §5.1.1 CRC flag), so a clear flag means the header bit
    itself was hit, the one flip a PDU's own CRC cannot catch."""
    raw = bytes(datagram)
    header = _parse_header(raw)
    pdu_bytes = raw[CCSDS_HEADER_LEN:]
    pdu = _parse_pdu(pdu_bytes)
    if require_crc and not pdu.pdu_header.crc_flag:
        raise PduError("CFDP PDU without a CRC on a link that requires one")
    return Unwrapped(apid=header.apid, seq_count=header.seq_count, packet_type=header.packet_type,
                     pdu=pdu, pdu_len=len(pdu_bytes))


def received_pdu(datagram: bytes, counters: dict[str, int],
                 reject: Callable[[str, dict[str, Any]], Any]) -> GenericPduPacket | None:
    """The CFDP PDU a radio datagram carries (its CRC checked), or None for a bad datagram.

    Counts ``packets_received`` and ``datagrams_rejected`` in ``counters``; a rejection is reported
    as ``reject("datagram_rejected", {"reason", "bytes"})`` (a rate-limited event at both ends)."""
    counters["packets_received"] += 1
    try:
        return unwrap(datagram, require_crc=True).pdu
    except ProtocolError as exc:
        counters["datagrams_rejected"] += 1
        reject("datagram_rejected", {"reason": str(exc), "bytes": len(datagram)})
        return None
