"""End-to-end checks of a run's output: ground images against the emulator manifest, and the pcap.

Pure reading of files; used by ``pdh demo`` and by the integration tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np

from framework.crc import pixels_crc32c

__all__ = ["read_manifest", "verify_ground", "verify_pcap", "GroundCheck", "PcapCheck"]


def read_manifest(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Manifest lines keyed by (camera, counter); a torn last line is skipped."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
            out[(rec["camera"], int(rec["counter"]))] = rec
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return out


@dataclass
class GroundCheck:
    expected: list[str]
    exact: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    not_in_manifest: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.expected) and len(self.exact) == len(self.expected)


def verify_ground(ground_dir: Path, manifest: dict[tuple[str, int], dict[str, Any]],
                  full_products: Iterable[tuple[str, str, int]]) -> GroundCheck:
    """Each full product (id, camera, counter) must be a PNG whose pixels match the manifest CRC-32C."""
    items = sorted(set(full_products))
    check = GroundCheck(expected=[i for i, _, _ in items])
    for pid, camera, counter in items:
        rec = manifest.get((camera, counter))
        if rec is None:
            check.not_in_manifest.append(pid)
            continue
        png = ground_dir / f"{pid}.png"
        if not png.exists():
            check.missing.append(pid)
            continue
        img = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        if img is None or list(img.shape[:2]) != list(rec["shape"][:2]):
            check.mismatched.append(pid)
            continue
        if pixels_crc32c(np.ascontiguousarray(img)) == int(rec["crc32c"]):
            check.exact.append(pid)
        else:
            check.mismatched.append(pid)
    return check


@dataclass
class PcapCheck:
    packets: int = 0
    ccsds_cfdp: int = 0
    bad: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.packets > 0 and self.ccsds_cfdp == self.packets


def verify_pcap(path: Path, max_bad: int = 5) -> PcapCheck:
    """Every UDP payload in the capture must parse as a Space Packet whose data field is a CFDP PDU."""
    import dpkt
    from spacepackets.ccsds.spacepacket import SpacePacketHeader
    from spacepackets.cfdp.pdu import PduFactory

    check = PcapCheck()
    if not path.exists():
        check.bad.append("no pcap file")
        return check
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        link = reader.datalink()
        try:
            for _ts, buf in reader:
                check.packets += 1
                try:
                    ip = dpkt.ethernet.Ethernet(buf).data if link == dpkt.pcap.DLT_EN10MB else dpkt.ip.IP(buf)
                    udp = ip.data
                    payload = bytes(udp.data)
                    sph = SpacePacketHeader.unpack(payload)
                    if sph.packet_len != len(payload):
                        raise ValueError(f"space packet length {sph.packet_len} != datagram {len(payload)}")
                    if PduFactory.from_raw(payload[6:]) is None:
                        raise ValueError("data field is not a CFDP PDU")
                    check.ccsds_cfdp += 1
                except Exception as exc:  # any parser's failure is a finding, not a crash
                    if len(check.bad) < max_bad:
                        check.bad.append(f"packet {check.packets}: {type(exc).__name__}: {exc}")
        except dpkt.NeedData:
            pass  # a capture cut short by a kill ends with a partial record
    return check
