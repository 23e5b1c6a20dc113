"""Record relay traffic as a libpcap file: each packet in a UDP datagram in IPv4 (LINKTYPE_RAW).

Every record is written with one unbuffered ``write``, so a relay killed at
any moment leaves a file that ends on a record boundary and reads cleanly.
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


class PcapRecorder:
    """Appends timestamped UDP/IPv4 records to a pcap file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: BinaryIO = open(path, "wb", buffering=0)
        self._writer = dpkt.pcap.Writer(self._file, snaplen=SNAPLEN, linktype=LINKTYPE_RAW)
        self.records = 0

    def record(self, payload: bytes, src: tuple[str, int], dst: tuple[str, int], ts: float) -> None:
        self._writer.writepkt(udp_ipv4(payload, src, dst), ts=ts)
        self.records += 1

    def close(self) -> None:
        self._file.close()
