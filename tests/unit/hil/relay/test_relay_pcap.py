"""The relay's pcap: readable by dpkt, UDP/IPv4 records whose payloads are Space Packets with CFDP PDUs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dpkt
from spacepackets.cfdp import ConditionCode, CrcFlag, Direction, PduConfig, TransmissionMode
from spacepackets.cfdp.pdu import AckPdu, DirectiveType, TransactionStatus
from spacepackets.util import ByteFieldU16, ByteFieldU32

from link.packets import APIDS, SpacePacketWrapper, unwrap
from hil.relay.pcap import LINKTYPE_RAW, PcapRecorder
from tests.conftest import free_port


def ack_packet(seq: int) -> bytes:
    conf = PduConfig(source_entity_id=ByteFieldU16(1), dest_entity_id=ByteFieldU16(2),
                     transaction_seq_num=ByteFieldU32(seq), trans_mode=TransmissionMode.ACKNOWLEDGED,
                     crc_flag=CrcFlag.WITH_CRC, direction=Direction.TOWARDS_SENDER)
    pdu = AckPdu(conf, DirectiveType.EOF_PDU, ConditionCode.NO_ERROR, TransactionStatus.ACTIVE)
    return SpacePacketWrapper().wrap(APIDS["directive"], bytes(pdu.pack()))


def read_records(path: Path) -> list[tuple[float, dpkt.ip.IP]]:
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == LINKTYPE_RAW
        return [(ts, dpkt.ip.IP(buf)) for ts, buf in reader]


def test_recorded_packets_read_back_as_udp_with_ports_and_times(tmp_path: Path) -> None:
    rec = PcapRecorder(tmp_path / "link" / "relay.pcap")
    for i in range(5):
        rec.record(ack_packet(i), ("127.0.0.1", 47120), ("127.0.0.1", 47123), ts=1000.0 + i)
    rec.close()
    records = read_records(tmp_path / "link" / "relay.pcap")
    assert len(records) == 5
    for i, (ts, ip) in enumerate(records):
        assert abs(ts - (1000.0 + i)) < 1e-5
        assert ip.p == dpkt.ip.IP_PROTO_UDP and ip.data.sport == 47120 and ip.data.dport == 47123
        assert unwrap(ip.data.data).pdu.transaction_seq_num.value == i


def _relay_config(tmp: Path) -> tuple[Path, dict[str, int]]:
    ports = {n: free_port(socket.SOCK_DGRAM) for n in ("lander", "relay_lander", "relay_ground", "ground")}
    cfg = tmp / "relay.yaml"
    cfg.write_text(f"""
version: 1
endpoints:
  lander: udp://127.0.0.1:{ports['lander']}
  relay_lander: udp://127.0.0.1:{ports['relay_lander']}
  relay_ground: udp://127.0.0.1:{ports['relay_ground']}
  ground: udp://127.0.0.1:{ports['ground']}
processes:
  relay:
    kind: hil.relay
    endpoints: {{lander_in: relay_lander, ground_in: relay_ground, lander: lander, ground: ground}}
    latency_ms: 1
""")
    return cfg, ports


def test_a_killed_relay_leaves_a_readable_pcap_of_what_it_forwarded(tmp_path: Path) -> None:
    cfg, ports = _relay_config(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pdh.process", str(cfg), "relay", "--out", str(out)],
                            start_new_session=True, cwd=Path(__file__).parents[4])
    lander = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ground = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        lander.bind(("127.0.0.1", ports["lander"]))
        ground.bind(("127.0.0.1", ports["ground"]))
        ground.settimeout(0.2)
        got = None
        deadline = time.monotonic() + 20
        while got is None and time.monotonic() < deadline:
            lander.sendto(ack_packet(7), ("127.0.0.1", ports["relay_lander"]))
            try:
                got, sender = ground.recvfrom(65535)
            except socket.timeout:
                continue
        assert got == ack_packet(7) and sender[1] == ports["relay_ground"]
        ground.sendto(ack_packet(8), sender)
        lander.settimeout(5)
        assert lander.recvfrom(65535)[0] == ack_packet(8)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
        lander.close()
        ground.close()
    records = read_records(out / "link" / "relay.pcap")
    seqs = [(ip.data.sport, ip.data.dport, unwrap(ip.data.data).pdu.transaction_seq_num.value) for _, ip in records]
    assert (ports["lander"], ports["ground"], 7) in seqs
    assert (ports["ground"], ports["lander"], 8) in seqs
