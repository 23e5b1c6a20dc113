"""The relay's pcap is bounded by config (issue 14 item 4: 180 MB after 2.5 min of `pdh run`): past
``max_bytes`` the file rotates (relay.pcap -> relay.pcap.1 ...), and only ``keep`` files are kept, each
a whole pcap that reads cleanly."""

from __future__ import annotations

from pathlib import Path

import dpkt

from hil.relay.pcap import PcapRecorder


def _records(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in dpkt.pcap.Reader(f))


def test_the_pcap_rotates_at_its_bound_and_keeps_the_newest_files(tmp_path: Path) -> None:
    path = tmp_path / "link" / "relay.pcap"
    rec = PcapRecorder(path, max_bytes=5000, keep=2)
    for i in range(100):
        rec.record(bytes([i % 256]) * 200, ("127.0.0.1", 1), ("127.0.0.2", 2), 1.0e9 + i)
    rec.close()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["relay.pcap", "relay.pcap.1"]
    assert all((path.parent / f).stat().st_size <= 5000 for f in files)
    assert rec.records == 100 and rec.rotations >= 2
    assert all(_records(path.parent / f) > 0 for f in files)


def test_without_a_bound_one_file_grows(tmp_path: Path) -> None:
    path = tmp_path / "relay.pcap"
    rec = PcapRecorder(path)
    for i in range(50):
        rec.record(b"x" * 200, ("127.0.0.1", 1), ("127.0.0.2", 2), 1.0e9 + i)
    rec.close()
    assert [p.name for p in tmp_path.iterdir()] == ["relay.pcap"] and _records(path) == 50
