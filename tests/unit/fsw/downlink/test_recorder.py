"""Telemetry recording: live vs recorded segments, events apart, an archive that plays back any time range."""

from __future__ import annotations

from pathlib import Path

from fsw.downlink.recorder import TelemetryRecorder
from link.tlm_segments import decode_segment, packet_time
from link.tmtc import decode_tm
from tests.unit.fsw.downlink.chain import DICTIONARY, event_packet, hk_packet


def recorder(tmp_path: Path, archive_bytes: int = 10**6) -> TelemetryRecorder:
    return TelemetryRecorder(tmp_path / "archive", archive_bytes, segment_s=2.0, alert_flush_s=0.5)


def counter_of(packet: bytes) -> int:
    return decode_tm(packet, DICTIONARY).values["frames_in"]


def test_segments_follow_the_contact_and_events_go_apart(tmp_path: Path) -> None:
    r = recorder(tmp_path)
    r.add(hk_packet(100.0, {"frames_in": 1}), False, now=0.0)
    r.add(hk_packet(99.0, {"frames_good": 3}, src="navcam_driver"), False, now=0.0)
    r.add(event_packet(100.5, "x"), True, now=0.0)
    assert r.due(0.1, in_contact=True) == []
    evt = r.due(0.6, in_contact=True)
    assert [s.kind for s in evt] == ["evt"] and len(evt[0].packets) == 1
    live = r.due(2.1, in_contact=True)
    assert [s.kind for s in live] == ["tlm"]
    assert [packet_time(p) for p in decode_segment(live[0].data)] == [99.0, 100.0]  # time order
    assert decode_segment(live[0].data) == live[0].packets and live[0].id.startswith("tlm-")
    r.add(hk_packet(110.0, {"frames_in": 2}), False, now=3.0)
    recorded = r.due(5.1, in_contact=False)
    assert [s.kind for s in recorded] == ["tlm_playback"] and recorded[0].id.startswith("rec-")


def test_any_time_range_plays_back_from_the_archive_in_time_order(tmp_path: Path) -> None:
    r = recorder(tmp_path)
    for k in range(10):
        r.add(hk_packet(1000.0 + k, {"frames_in": k}, seq=k), False, now=k * 3.0)
        r.due(k * 3.0 + 2.5, in_contact=k % 2 == 0)
    seg = r.playback(1002.5, 1006.0)
    assert seg is not None and seg.kind == "tlm_playback"
    assert [counter_of(p) for p in seg.packets] == [3, 4, 5, 6]
    assert decode_segment(seg.data) == seg.packets
    assert r.playback(5000.0, 6000.0) is None
    again = TelemetryRecorder(tmp_path / "archive", 10**6, 2.0, 0.5)  # survives a restart
    assert [counter_of(p) for p in again.playback(1000.0, 1001.0).packets] == [0, 1]


def test_the_archive_holds_the_segments_bytes(tmp_path: Path) -> None:
    r = recorder(tmp_path)
    r.add(hk_packet(1000.0, {"frames_in": 1}), False, now=0.0)
    (seg,) = r.due(2.5, in_contact=True)
    (archived,) = (tmp_path / "archive").glob("*.seg")
    assert archived.read_bytes() == seg.data


def test_the_archive_drops_its_oldest_segments_beyond_its_quota(tmp_path: Path) -> None:
    one = len(hk_packet(0.0, {}))
    r = recorder(tmp_path, archive_bytes=6 * one)
    for k in range(20):
        r.add(hk_packet(1000.0 + k, {"frames_in": k}), False, now=k * 3.0)
        r.due(k * 3.0 + 2.5, in_contact=True)
    assert r.c["archive_evicted"] > 0 and r.c["archived_bytes"] <= 6 * one
    assert r.playback(1000.0, 1001.0) is None and r.playback(1019.0, 1019.0) is not None
