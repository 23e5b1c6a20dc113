"""An independent reading of a run's telemetry: the relay's capture decoded by space-packet-parser from the
XTCE dictionary ``pdh dictionary`` writes, compared with what the ground archived (issue 13: a dictionary
YAMCS and other ground systems can load must describe the packets actually flown)."""

from __future__ import annotations

import math
import sqlite3
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dpkt
from space_packet_parser.xtce import definitions as spp_definitions

import pdh.topology  # noqa: F401  (registers every kind: the dictionary finds each process's table)
from framework.config import load_config
from framework.errors import ProtocolError
from link.dictionary import Dictionary
from link.packets import APID_CFDP
from link.tmtc import TmType, channel_encoding, decode_tm, split_packets
from pdh.dictionary import hk_parameter, write_xtce


@dataclass
class PcapTm:
    packets: int = 0             # TM packets in the capture that our decoder reads
    housekeeping_compared: int = 0  # housekeeping packets the ground archived, compared value by value
    values_compared: int = 0
    mismatches: list[str] = field(default_factory=list)


def _tm_payloads(pcap: Path) -> list[bytes]:
    out = []
    with open(pcap, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        for _, buf in reader:
            ip = dpkt.ethernet.Ethernet(buf).data if reader.datalink() == dpkt.pcap.DLT_EN10MB else dpkt.ip.IP(buf)
            payload = bytes(ip.data.data)
            if len(payload) >= 6 and payload[0] >> 5 == 0 and not payload[0] & 0x10 \
                    and ((payload[0] & 0x07) << 8 | payload[1]) != APID_CFDP:
                out.append(payload)
    return out


def _same(encoding: str, theirs: Any, archived: Any) -> bool:
    if encoding == "f64":
        if archived is None:
            return math.isnan(theirs)
        return float(theirs) == float(archived) or (math.isnan(theirs) and math.isnan(float(archived)))
    if encoding == "u8":
        return bool(theirs) == bool(archived)
    if encoding in ("i64", "u64"):
        return int(theirs) == int(archived)
    return True  # strings and JSON: the archive keeps the decoded form; compared through our decoder above


def compare(out: Path, max_packets: int = 400) -> PcapTm:
    config = load_config(out / "config.yaml")
    dictionary = Dictionary.from_config(config)
    xtce = write_xtce(out / "dictionary.xml", dictionary)
    definition = spp_definitions.XtcePacketDefinition.from_xtce(xtce)
    ground_dir = out / config.processes[config.processes_of_kind("ground.station")[0]]["out_subdir"]
    db = sqlite3.connect(f"file:{ground_dir / 'ledger.sqlite'}?mode=ro", uri=True)
    result = PcapTm()
    for payload in _tm_payloads(out / "link" / "relay.pcap"):
        try:
            packets = split_packets(payload)
        except ProtocolError:
            continue  # a datagram the relay corrupted in its length fields: the ground refuses it too
        for packet in packets:
            try:
                ours = decode_tm(packet, dictionary)
            except ProtocolError:
                continue  # corrupted on the link (the ground refuses it too)
            if result.packets >= max_packets:
                return result
            result.packets += 1
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                theirs = definition.parse_bytes(packet)
            if theirs["apid"] != ours.apid or theirs["seq_count"] != ours.seq_count:
                result.mismatches.append(f"header of apid {ours.apid} seq {ours.seq_count}: {theirs}")
                continue
            if ours.packet_type != TmType.HOUSEKEEPING:
                continue
            rows = dict(db.execute("SELECT channel, value FROM parameters WHERE src = ? AND t = ?",
                                   (ours.process, ours.t)).fetchall())
            if not rows:
                continue  # lost on the link after the capture, or not archived yet
            result.housekeeping_compared += 1
            interface = dictionary.interface_of(ours.apid)
            for channel in interface.telemetry.values():
                if channel.name not in rows:
                    continue
                result.values_compared += 1
                value = theirs[hk_parameter(ours.process, channel.name)]
                if not _same(channel_encoding(channel), value, rows[channel.name]):
                    result.mismatches.append(f"{ours.process}.{channel.name} at {ours.t}: space-packet-parser "
                                             f"{value!r}, archived {rows[channel.name]!r}")
    db.close()
    return result
