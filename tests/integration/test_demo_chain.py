"""The whole chain, real processes and sockets, run by the real supervisor (``pdh demo``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pdh.verify import read_manifest, verify_pcap
from tests.conftest import free_port, undeclared_in_logs
from tests.integration import pcap_tm

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"

pytestmark = pytest.mark.integration


def small_demo_config(tmp_path: Path, **relay) -> Path:
    """demo.yaml with free ports, a small camera and a fast frame rate."""
    raw = yaml.safe_load(DEMO.read_text())
    for name, addr in raw["endpoints"].items():
        scheme = addr.split("://")[0]
        if scheme == "ipc":
            continue  # a socket in the run's private directory (OUT/ipc): no port to choose
        port = free_port() if scheme == "tcp" else free_port(__import__("socket").SOCK_DGRAM)
        raw["endpoints"][name] = f"{scheme}://127.0.0.1:{port}"
    procs = raw["processes"]
    procs["navcam_emulator"]["profile"] = {"width": 320, "height": 256, "bit_depth": 12, "pattern": "mono"}
    procs["navcam_driver"]["frame_rate_hz"] = 2.0
    procs["relay"].update(relay)
    p = tmp_path / "chain.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


def run_demo(cfg: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pdh.cli", "demo", "--config", str(cfg), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=240)


def test_chain_with_ten_percent_loss_delivers_every_frame_bit_exact(tmp_path: Path) -> None:
    cfg = small_demo_config(tmp_path)
    out = tmp_path / "out"
    r = run_demo(cfg, out, "--duration", "5", "--loss", "0.1", "--drain", "120")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["loss"] == 0.1
    assert summary["full_frames_made"] >= 3
    assert summary["full_frames_bit_exact"] == summary["full_frames_made"]
    # the ground publishes on its own broker, and the demo watches it: every product was seen arriving
    assert summary["products_at_ground"] == summary["products_made"]
    manifest = read_manifest(out / "hil" / "manifest.jsonl")
    assert len(manifest) >= summary["full_frames_made"]
    pcap = verify_pcap(out / "link" / "relay.pcap")
    assert pcap.ok, pcap.bad
    # the uplink: a command queued at the ground outside a window crossed the relay (the pcap holds it),
    # acted on board after the window opened, and its verification stages came back as TM
    assert summary["uplink_queued_outside_window"] and summary["uplink_state"] == "completed", summary
    assert pcap.ccsds_tc >= 1 and pcap.ccsds_tm >= 1
    stages = [s.split("@")[0] for s in summary["uplink_stages"]]
    # each stage comes back as a realtime TM packet over the 10 % lossy link: one may be lost (its recorded
    # copy crosses later, after the demo); the first is the ground's own and the last must be completed
    assert stages[0] == "queued" and stages[-1] == "completed" and {"received", "accepted"} & set(stages)
    # an independent decoder (space-packet-parser, from the XTCE dictionary) reads the captured TM packets
    # to the values the ground archived
    tm = pcap_tm.compare(out)
    assert tm.packets > 0 and tm.housekeeping_compared > 0 and tm.values_compared > 0, tm
    assert tm.mismatches == []
    sidecars = list((out / "ground").glob("*-full.json"))
    assert len(sidecars) == summary["full_frames_made"]
    side = json.loads(sidecars[0].read_text())
    assert {"id", "camera", "counter", "t_capture", "codec", "crc32c", "grades"} <= set(side)
    assert undeclared_in_logs(out) == []  # every event and telemetry channel is in its component's table
    # the archive's transfer rows: every transfer (coded ones carry the coding in their name) ended delivered
    import sqlite3
    with sqlite3.connect(out / "archive.sqlite") as db:
        states = dict(db.execute("SELECT state, COUNT(*) FROM transfers GROUP BY state").fetchall())
    assert states.get("delivered", 0) >= summary["products_made"] and set(states) <= {"delivered", "open"}, states


def test_demo_with_a_wrong_config_fails_at_once_naming_the_key(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEMO.read_text())
    raw["processes"]["relay"]["endpoints"]["ground"] = "nowhere"
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    r = run_demo(cfg, tmp_path / "out", "--duration", "1")
    assert r.returncode == 2
    assert "processes.relay.endpoints.ground" in r.stderr and "bad.yaml" in r.stderr
