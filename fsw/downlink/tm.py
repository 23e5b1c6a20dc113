"""The lander's side of the TM/TC space link: what a radio datagram is, bus messages as TM packets,
the realtime queue. No sockets.

:func:`classify_uplink` sorts a datagram from the relay (docs/uplink.md): a CFDP PDU (inside a Space
Packet on the CFDP APID, as both ends send them, or a bare PDU, version bits 001) goes to the CFDP
engine; a TC space packet (version 000, type bit 1, any other APID) goes to command ingest; anything
else is garbage. It never raises.

:class:`TmPacketizer` turns each recorded bus message (``tlm.*`` housekeeping, ``evt.*`` events,
``vrf.*`` command verification) into one CCSDS TM packet (:mod:`link.tmtc`), with its source's APID
from the dictionary and a 14-bit sequence count per APID. :class:`RealtimeQueue` holds the packets
to send at once while a contact is open, verification and events ahead of housekeeping, and packs
several into one datagram.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from framework.bus.message import Message
from framework.counters import saturating_add
from framework.errors import ProtocolError
from link.dictionary import Dictionary
from link.packets import APID_CFDP
from link.tmtc import VERIFICATION_COMPONENT, encode_event, encode_housekeeping, encode_verification

__all__ = ["UplinkKind", "classify_uplink", "TmItem", "UnknownSource", "TmPacketizer", "RealtimeQueue",
           "SEQ_MODULO", "MAX_REALTIME_PACKETS"]

UplinkKind = Literal["cfdp", "tc", "garbage"]
SEQ_MODULO = 1 << 14
MAX_REALTIME_PACKETS = 4096
"""Packets waiting to go realtime, at most; beyond it the oldest housekeeping goes (it is recorded anyway)."""
_EVENT_HEADER_KEYS = ("name", "event_id", "severity")


def classify_uplink(datagram: bytes | bytearray | memoryview) -> UplinkKind:
    """What a datagram from the relay is, from its first two bytes; never raises."""
    if len(datagram) < 2:
        return "garbage"
    first = datagram[0]
    version = first >> 5
    if version == 1:
        return "cfdp"
    if version != 0:
        return "garbage"
    if ((first & 0x07) << 8 | datagram[1]) == APID_CFDP:
        return "cfdp"
    return "tc" if first & 0x10 else "garbage"


@dataclass(frozen=True)
class TmItem:
    """One encoded TM packet; ``alert``: an event or a verification (recorded and sent first)."""

    data: bytes
    t: float
    alert: bool


class UnknownSource(ProtocolError):
    """A bus message from a process the dictionary does not know."""


class TmPacketizer:
    """Bus messages to TM packets; counts the sequence per APID (wrapping at 14 bits)."""

    def __init__(self, dictionary: Dictionary) -> None:
        self.dictionary = dictionary
        self._seq: dict[int, int] = {}

    def packet(self, msg: Message) -> TmItem | None:
        """The TM packet of one bus message; None for a topic that is none of ``tlm``/``evt``/``vrf``.
        UnknownSource for a source without an APID; KeyError/ValueError/TypeError/ProtocolError if its
        fields cannot be encoded (a verification message without its fields)."""
        h = msg.header
        family = msg.topic.split(".", 1)[0]
        if family not in ("tlm", "evt", "vrf"):
            return None
        try:
            entry = self.dictionary.entry(h.src)
        except LookupError:
            raise UnknownSource(f"no APID for source {h.src!r}") from None
        apid, t, f = entry.apid, float(h.t), h.fields
        seq = self._seq.get(apid, 0)
        if family == "tlm":
            data = encode_housekeeping(apid, seq, t, entry.interface, f)
        elif family == "evt":
            details = {k: v for k, v in f.items() if k not in _EVENT_HEADER_KEYS}
            event_id = _event_id(entry.interface, f)
            data = encode_event(apid, seq, t, event_id, f.get("severity", "warning"),
                                {"name": f.get("name", ""), **details})
        else:
            if entry.interface.component != VERIFICATION_COMPONENT:
                raise ValueError(f"verification from {h.src!r}, a {entry.interface.component!r} process "
                                 f"(only {VERIFICATION_COMPONENT} sends them)")
            data = encode_verification(apid, seq, t, int(f["spi"]), int(f["tc_seq"]), int(f["target_apid"]),
                                       int(f["opcode"]), f["stage"], str(f.get("reason") or ""))
        self._seq[apid] = (seq + 1) % SEQ_MODULO
        return TmItem(bytes(data), t, family != "tlm")


def _event_id(interface: Any, fields: dict[str, Any]) -> int:
    """The event's id as the table numbers it (the bus message carries it; the name is the fallback)."""
    eid = fields.get("event_id")
    if isinstance(eid, int) and not isinstance(eid, bool) and 0 <= eid < 1 << 16:
        return eid
    spec = interface.events.get(fields.get("name"))
    return spec.id if spec is not None else 0


class RealtimeQueue:
    """TM packets waiting to go out at once; :meth:`next_datagram` packs them, alerts first."""

    def __init__(self, max_datagram: int, max_packets: int = MAX_REALTIME_PACKETS) -> None:
        self.max_datagram = max_datagram
        self.max_packets = max_packets
        self.alerts: deque[bytes] = deque()
        self.hk: deque[bytes] = deque()
        self.dropped = 0  # packets never sent: the queue was full, or the contact closed first

    def __len__(self) -> int:
        return len(self.alerts) + len(self.hk)

    def put(self, packet: bytes, alert: bool) -> None:
        (self.alerts if alert else self.hk).append(packet)
        while len(self) > self.max_packets:
            (self.hk or self.alerts).popleft()
            self.dropped = saturating_add(self.dropped, 1)

    def clear(self) -> int:
        """Forget what waits (the contact closed: it is recorded); how many packets that was."""
        n = len(self)
        self.alerts.clear()
        self.hk.clear()
        self.dropped = saturating_add(self.dropped, n)
        return n

    def first_len(self) -> int:
        q = self.alerts or self.hk
        return len(q[0]) if q else 0

    def next_datagram(self) -> tuple[bytes, int] | None:
        """The next datagram and how many packets it holds: as many whole packets as fit in
        ``max_datagram`` (a larger packet goes alone), verification and events before housekeeping."""
        parts: list[bytes] = []
        size = 0
        for q in (self.alerts, self.hk):
            while q and (not parts or size + len(q[0]) <= self.max_datagram):
                p = q.popleft()
                parts.append(p)
                size += len(p)
                if size >= self.max_datagram:
                    break
            if parts and (size >= self.max_datagram or (q and size + len(q[0]) > self.max_datagram)):
                break
        if not parts:
            return None
        return b"".join(parts), len(parts)

