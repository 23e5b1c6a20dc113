"""Record relay traffic as a libpcap file: each packet in a UDP datagram in IPv4 (LINKTYPE_RAW).

Every record is written with one unbuffered ``write``, so a relay killed at
any moment leaves a file that ends on a record boundary and reads cleanly.
Bounded by config: a file that would pass ``max_bytes`` is closed and rotated
(``relay.pcap`` -> ``relay.pcap.1`` -> ...), and only ``keep`` files stay, so a
long run's capture never grows without limit (``max_bytes`` 0: one file, unbounded).
File I/O only: addresses are packed with :mod:`ipaddress`, no socket module.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import BinaryIO

import dpkt

__all__ = ["PcapRecorder", "LINKTYPE_RAW", "udp_ipv4"]

LINKTYPE_RAW = 101  # tcpdump.org link-layer header types: raw IPv4/IPv6
SNAPLEN = 65535


def udp_ipv4(payload: bytes, src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    """One IPv4 packet carrying ``payload`` in a UDP datagram from ``src`` to ``dst``."""
    udp = dpkt.udp.UDP(sport=src[1], dport=dst[1], data=payload)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=ipaddress.IPv4Address(src[0]).packed, dst=ipaddress.IPv4Address(dst[0]).packed, p=dpkt.ip.IP_PROTO_UDP,
                    ttl=64, data=udp)
    ip.len = len(ip)
    return bytes(ip)


_FILE_HEADER_BYTES = 24
_RECORD_HEADER_BYTES = 16


class PcapRecorder:
    """Appends timestamped UDP/IPv4 records to a pcap file, rotated at ``max_bytes`` keeping ``keep`` files."""

    def __init__(self, path: Path, max_bytes: int = 0, keep: int = 2) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.keep = max(1, keep)
        self.records = 0
        self.rotations = 0
        self._open()

    def _open(self) -> None:
        self._file: BinaryIO = open(self.path, "wb", buffering=0)
        self._writer = dpkt.pcap.Writer(self._file, snaplen=SNAPLEN, linktype=LINKTYPE_RAW)
        self._bytes = _FILE_HEADER_BYTES

    def _rotate(self) -> None:
        """relay.pcap -> .1 -> .2 ...; the oldest beyond ``keep`` files is deleted."""
        self._file.close()
        oldest = self.path.with_name(f"{self.path.name}.{self.keep - 1}") if self.keep > 1 else self.path
        oldest.unlink(missing_ok=True)
        for i in range(self.keep - 2, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.keep > 1 and self.path.exists():
            self.path.rename(self.path.with_name(f"{self.path.name}.1"))
        self.rotations += 1
        self._open()

    def record(self, payload: bytes, src: tuple[str, int], dst: tuple[str, int], ts: float) -> None:
        packet = udp_ipv4(payload, src, dst)
        size = _RECORD_HEADER_BYTES + len(packet)
        if self.max_bytes and self._bytes + size > self.max_bytes and self._bytes > _FILE_HEADER_BYTES:
            self._rotate()
        self._writer.writepkt(packet, ts=ts)
        self._bytes += size
        self.records += 1

    def close(self) -> None:
        self._file.close()
