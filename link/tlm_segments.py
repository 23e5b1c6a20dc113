"""The telemetry segment: how recorded housekeeping, events and verification travel to the ground. No I/O.

A segment is a plain concatenation of CCSDS TM packets (docs/uplink.md, "TM packet"), each carrying
its own length, APID, sequence count and secondary-header time; the same bytes as the realtime
datagrams, so one decoder reads both. The segment's kind says how it was made (``tlm``:
housekeeping closed during a contact; ``tlm_playback``: recorded outside one, or played back on
request; ``evt``: events and command verification) and lives in its id (:data:`SEGMENT_ID_PREFIX`),
hence in the stored product and the transfer file name (``<id>.tlm``): :func:`segment_kind` reads
it back at either end. The lander's recorder (:mod:`fsw.downlink.recorder`) writes segments and
sends each as a file; the ground reads them. Both ends import the format from here, so neither
imports the other.
"""

from __future__ import annotations

import struct

from framework.errors import ProtocolError
from link.tmtc import split_packets

__all__ = ["SEGMENT_KINDS", "SEGMENT_ID_PREFIX", "TM_HEADER_LEN", "encode_segment", "decode_segment",
           "segment_kind", "packet_time", "packet_apid"]

SEGMENT_KINDS = ("tlm", "tlm_playback", "evt")
SEGMENT_ID_PREFIX = {"tlm": "tlm", "tlm_playback": "rec", "evt": "evt"}
"""A segment's id starts with ``<prefix>-``: the kind travels in the name, not in the bytes."""
_KIND_OF_PREFIX = {v: k for k, v in SEGMENT_ID_PREFIX.items()}
TM_HEADER_LEN = 6 + 7
"""Primary header plus the TM secondary header (seconds u32, subseconds u16, packet_type u8)."""
_TIME = struct.Struct(">IH")


def encode_segment(packets: list[bytes]) -> bytes:
    """A segment's bytes: the TM packets one after the other (time order is the recorder's job)."""
    if not packets:
        raise ValueError("a segment holds at least one TM packet")
    return b"".join(packets)


def decode_segment(data: bytes | bytearray | memoryview) -> list[bytes]:
    """The TM packets of a segment; ProtocolError if the bytes are not one or more whole TM packets
    (version 0, type TM, with the secondary header)."""
    raw = bytes(data)
    if not raw:
        raise ProtocolError("telemetry segment is empty")
    packets = split_packets(raw)
    for i, p in enumerate(packets):
        if len(p) < TM_HEADER_LEN or p[0] >> 5 != 0 or p[0] & 0x10 or not p[0] & 0x08:
            raise ProtocolError(f"telemetry segment packet {i} is not a TM packet with a secondary header")
    return packets


def segment_kind(item_id: str) -> str | None:
    """The kind of a segment from its id (or its transfer file's stem), None if the id is no segment's."""
    return _KIND_OF_PREFIX.get(item_id.split("-", 1)[0]) if "-" in item_id else None


def packet_time(packet: bytes | memoryview) -> float:
    """A TM packet's secondary-header time, Unix seconds (the playback filter and the time order)."""
    seconds, sub = _TIME.unpack_from(packet, 6)
    return seconds + sub / 65536.0


def packet_apid(packet: bytes | memoryview) -> int:
    return ((packet[0] & 0x07) << 8) | packet[1]
