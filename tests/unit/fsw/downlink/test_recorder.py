"""Telemetry recording: live vs recorded segments, events apart, an archive that plays back any time range."""

from __future__ import annotations

from pathlib import Path

from fsw.downlink.recorder import TelemetryRecorder
from link.tlm_segments import decode_segment


def recorder(tmp_path: Path, archive_bytes: int = 10**6) -> TelemetryRecorder:
    return TelemetryRecorder(tmp_path / "archive", archive_bytes, segment_s=2.0, alert_flush_s=0.5)


def test_segments_follow_the_contact_and_events_go_apart(tmp_path: Path) -> None:
    r = recorder(tmp_path)
    r.add(100.0, "tlm.imaging", "imaging", {"frames_in": 1}, now=0.0)
    r.add(99.0, "tlm.navcam_driver", "navcam_driver", {"frames_good": 3}, now=0.0)
    r.add(100.5, "evt.imaging", "imaging", {"name": "x", "severity": "warning"}, now=0.0)
    assert r.due(0.1, in_contact=True) == []
    evt = r.due(0.6, in_contact=True)
    assert [s.kind for s in evt] == ["evt"] and len(evt[0].records) == 1
    live = r.due(2.1, in_contact=True)
    assert [s.kind for s in live] == ["tlm"]
    assert [rec[0] for rec in decode_segment(live[0].data)["records"]] == [99.0, 100.0]  # time order
    r.add(110.0, "tlm.imaging", "imaging", {"frames_in": 2}, now=3.0)
    recorded = r.due(5.1, in_contact=False)
    assert [s.kind for s in recorded] == ["tlm_playback"] and recorded[0].id.startswith("rec-")


def test_any_time_range_plays_back_from_the_archive_in_time_order(tmp_path: Path) -> None:
    r = recorder(tmp_path)
    for k in range(10):
        r.add(1000.0 + k, "tlm.a", "a", {"k": k}, now=k * 3.0)
        r.due(k * 3.0 + 2.5, in_contact=k % 2 == 0)
    seg = r.playback(1002.5, 1006.0)
    assert seg is not None and seg.kind == "tlm_playback"
    assert [rec[3]["k"] for rec in seg.records] == [3, 4, 5, 6]
    assert r.playback(5000.0, 6000.0) is None
    again = TelemetryRecorder(tmp_path / "archive", 10**6, 2.0, 0.5)  # survives a restart
    assert [rec[3]["k"] for rec in again.playback(1000.0, 1001.0).records] == [0, 1]


def test_the_archive_drops_its_oldest_segments_beyond_its_quota(tmp_path: Path) -> None:
    r = recorder(tmp_path, archive_bytes=600)
    for k in range(20):
        r.add(1000.0 + k, "tlm.a", "a", {"k": k, "pad": "x" * 40}, now=k * 3.0)
        r.due(k * 3.0 + 2.5, in_contact=True)
    assert r.c["archive_evicted"] > 0 and r.c["archived_bytes"] <= 600
    assert r.playback(1000.0, 1001.0) is None and r.playback(1019.0, 1019.0) is not None
