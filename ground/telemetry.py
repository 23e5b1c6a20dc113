"""The ground's TM intake: CCSDS TM packets from the lander into the ledger. No sockets.

Realtime datagrams (while in contact) and telemetry segment files (recorded outside one, sent
by CFDP) are both plain concatenations of TM packets (docs/uplink.md, "TM packet"), so one
intake reads both: :func:`link.tmtc.split_packets` cuts them, :func:`link.tmtc.decode_tm` reads
each against the dictionary (the interface table of its APID). New packets (by ``(apid,
seq_count, t)``: a packet sent realtime and recorded in a segment counts once) go to the ledger
(:meth:`ground.ledger.Ledger.add_tm`): housekeeping as parameters, events as event records,
and each verification is handed to ``on_verification`` (the uplink matches it to its queued
command by SPI and sequence number).

Bytes from the link are outside data, and the relay flips bits. Every TM packet ends with a
CRC-16 (its Packet Error Control, checked by :func:`link.tmtc.decode_tm` before any field is
read): a packet whose PEC does not match was damaged on the way and is counted and reported
(``tm_corrupt``, rate-limited), nothing of it stored, not even which APID it claims. A packet with
a good PEC that still does not decode (an APID or table this ground does not know) is
``tm_rejected``. Neither is raised, and the other packets of the datagram or segment are kept.
A damaged length field leaves the rest of a datagram uncuttable: the whole packets before it are
kept and the bytes from it on count as one corrupt packet. A datagram without even one whole
packet at its front raises a typed error (:class:`~link.tmtc.TmtcError`) for the station to count
with its other unreadable datagrams.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from framework.bus.message import RESERVED_KEYS
from framework.errors import BusError, ProtocolError
from framework.reporters import EventReporter
from ground.ledger import Ledger
from link.dictionary import Dictionary
from link.packets import APID_CFDP
from link.tmtc import TmCorrupt, TmPacket, TmType, decode_tm, split_stream

__all__ = ["TelemetryIntake", "Intake", "is_tm"]


def is_tm(datagram: bytes | bytearray | memoryview) -> bool:
    """Whether a datagram from the relay starts like a TM packet: version bits 000, type bit 0, and not
    the CFDP APID (CFDP PDUs travel in Space Packets on :data:`~link.packets.APID_CFDP`). Never raises."""
    if len(datagram) < 2:
        return False
    first = datagram[0]
    return first >> 5 == 0 and not first & 0x10 and ((first & 0x07) << 8 | datagram[1]) != APID_CFDP


@dataclass(frozen=True)
class Intake:
    """What one datagram or segment gave: packets in it, new ones stored, rejected ones (``corrupt``:
    those of them whose PEC did not match, or an uncuttable rest), the time span of the good ones."""

    packets: int
    new: int
    rejected: int
    t0: float = 0.0
    t1: float = 0.0
    corrupt: int = 0


class TelemetryIntake:
    """Fed TM bytes; stores them through ``ledger``, reports through ``events``.

    ``on_verification(packet)``: called for each new verification packet, after it is stored.
    ``publisher``: where each new housekeeping and event packet is also published for live views
    (the console): ``lander.tlm.<process>`` (kind ``health``) and ``lander.evt.<process>`` (kind
    ``evt``), stamped with the lander's time. None: nothing is published (the station passes the
    ground bus's publisher, :mod:`ground.process`)."""

    def __init__(self, dictionary: Dictionary, ledger: Ledger, events: EventReporter,
                 on_verification: Callable[[TmPacket], Any] = lambda p: None, publisher: Any = None) -> None:
        self.dictionary = dictionary
        self.ledger = ledger
        self.events = events
        self.on_verification = on_verification
        self.publisher = publisher
        self.unpublished = 0
        self.c = {"tm_packets": 0, "tm_packets_new": 0, "tm_rejected": 0, "tm_corrupt": 0, "tm_parameters": 0,
                  "tm_events": 0, "tm_verifications": 0}

    def take_datagram(self, data: bytes, source: str = "radio") -> Intake:
        """One realtime datagram: its packets split, decoded and stored. Bytes after a header that does
        not cut (a damaged length) count as one corrupt packet; the packets before it are kept. A
        datagram without one whole packet at its front raises TmtcError (a ProtocolError): the radio's
        owner counts and reports it as it does any datagram it cannot read."""
        packets, rest, error = split_stream(data)
        if error is not None and not packets:
            raise error
        got = self.take_packets(packets, source)
        if error is None:
            return got
        self.c["tm_packets"] += 1
        self._corrupt(source, str(error), len(rest))
        return replace(got, packets=got.packets + 1, rejected=got.rejected + 1, corrupt=got.corrupt + 1)

    def take_packets(self, raws: Iterable[bytes], source: str) -> Intake:
        """Packets already split (a segment file's): each decoded; the good ones stored once."""
        decoded: list[tuple[TmPacket, bytes]] = []
        rejected = corrupt = 0
        for raw in raws:
            self.c["tm_packets"] += 1
            try:
                decoded.append((decode_tm(raw, self.dictionary), raw))
            except TmCorrupt as exc:
                rejected += 1
                corrupt += 1
                self._corrupt(source, str(exc), len(raw))
            except ProtocolError as exc:
                rejected += 1
                self._reject(source, str(exc), len(raw))
        new = self.ledger.add_tm(decoded) if decoded else []
        self.c["tm_packets_new"] += len(new)
        for p in new:
            self._publish(p)
            if p.packet_type is TmType.HOUSEKEEPING:
                self.c["tm_parameters"] += len(p.values)
            elif p.packet_type is TmType.EVENT:
                self.c["tm_events"] += 1
            else:
                self.c["tm_verifications"] += 1
                self.on_verification(p)
        times = [p.t for p, _ in decoded]
        return Intake(len(decoded) + rejected, len(new), rejected, min(times, default=0.0), max(times, default=0.0),
                      corrupt)

    def _publish(self, p: TmPacket) -> None:
        """A new housekeeping or event packet on the ground bus; a bus fault is counted, never raised."""
        if self.publisher is None or p.packet_type is TmType.VERIFICATION:
            return
        if p.packet_type is TmType.HOUSEKEEPING:
            topic, kind, body = f"lander.tlm.{p.process}", "health", dict(p.values)
        else:
            topic, kind = f"lander.evt.{p.process}", "evt"
            body = {**p.fields, "name": p.event_name or f"event_{p.event_id}", "event_id": p.event_id,
                    "severity": p.severity}
        try:
            self.publisher.publish(topic, kind, {(f"{k}_" if k in RESERVED_KEYS else k): v for k, v in body.items()},
                                   t=p.t)
        except BusError:
            self.unpublished += 1

    def _reject(self, source: str, reason: str, size: int) -> None:
        self.c["tm_rejected"] += 1
        self.events.limited("tm_rejected", {"source": source, "reason": reason, "bytes": size})

    def _corrupt(self, source: str, reason: str, size: int) -> None:
        """A packet damaged on the link: counted, one rate-limited event; nothing of it is believed."""
        self.c["tm_corrupt"] += 1
        self.events.limited("tm_corrupt", {"source": source, "reason": reason, "bytes": size})

    def reset_counters(self) -> None:
        self.c["tm_rejected"] = 0
        self.c["tm_corrupt"] = 0
