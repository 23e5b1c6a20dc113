"""`pdh run configs/demo.yaml` must not grow without limit (issue 14 item 4: store 150 MB and pcap 180 MB
after 2.5 min): the camera makes no more than the link carries on average, and the pcap is bounded."""

from __future__ import annotations

from pathlib import Path

import yaml

DEMO = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"
MARGIN = 0.8  # of the mean link capacity: room for thumbnails, telemetry, NAK re-sends and CFDP overhead


def _mean_link_bps(relays: list[dict]) -> float:
    """Bits a second the contact plan carries on average: each relay's share of its orbit in view of the
    lander (windows do not overlap in the demo plan), at its slowest rate, less its mean burst loss."""
    total = 0.0
    for r in relays:
        in_view = sum(b - a for a, b in r["lander_windows_s"]) / r["period_s"]
        burst = r["burst"]
        mean_loss = burst["enter"] / (burst["enter"] + burst["leave"]) * burst["loss"]
        total += in_view * min(r["rate_bps"]) * (1.0 - mean_loss)
    return total


def test_the_demo_cameras_raw_bit_rate_fits_the_links_mean_capacity() -> None:
    raw = yaml.safe_load(DEMO.read_text())
    procs = raw["processes"]
    link_bps = _mean_link_bps(procs["relay"]["relays"])
    for name, p in procs.items():
        if p["kind"] != "drivers.camera":
            continue
        emulator = next(e for e in procs.values() if e["kind"] == "hil.camera" and e["camera"] == p["camera"])
        prof = emulator["profile"]
        bits_per_frame = prof["width"] * prof["height"] * prof["bit_depth"]  # lossless never needs more
        camera_bps = bits_per_frame * p["frame_rate_hz"]
        assert camera_bps <= MARGIN * link_bps, (
            f"{name}: {camera_bps / 1e6:.1f} Mbit/s of frames, the link carries {link_bps / 1e6:.1f} Mbit/s")


def test_the_demo_pcap_is_bounded() -> None:
    relay = yaml.safe_load(DEMO.read_text())["processes"]["relay"]
    assert 0 < relay["pcap_max_bytes"] * relay["pcap_files"] <= 500_000_000
