"""configs/multihost.yaml: lander, relay and ground on three addresses (127.0.0.2, .3, .4), each host's
processes bound to its own address, run by ``pdh demo`` and checked bit-exact; ``pdh run --host`` starts
one host's processes only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest
import yaml

from framework.config import free_loopback_ports, validate_config
from tests.conftest import wait_for

MULTIHOST = Path(__file__).resolve().parents[2] / "configs" / "multihost.yaml"
ADDRESSES = {"lander": "127.0.0.2", "relay": "127.0.0.3", "ground": "127.0.0.4"}

pytestmark = pytest.mark.integration


def small_multihost_config(tmp_path: Path) -> Path:
    """multihost.yaml with ports free now on each host's address, ``*`` bound at the binder's own address
    (tests bind no wildcard), a small camera and a fast frame rate."""
    raw = yaml.safe_load(MULTIHOST.read_text())
    assert raw["hosts"] == ADDRESSES
    config = validate_config(raw, str(MULTIHOST))
    for name, address in raw["endpoints"].items():
        if "://*:" in address:
            binder = config.binder(name)
            assert binder is not None, name
            raw["endpoints"][name] = address.replace("*", ADDRESSES[config.processes[binder]["host"]])
    raw["endpoints"] = free_loopback_ports(raw["endpoints"])
    procs = raw["processes"]
    procs["navcam_emulator"]["profile"] = {"width": 320, "height": 256, "bit_depth": 12, "pattern": "mono"}
    procs["navcam_driver"]["frame_rate_hz"] = 2.0
    path = tmp_path / "multihost.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def pcap_address_pairs(path: Path) -> set[tuple[str, str]]:
    """(sender, destination) IPv4 addresses of every datagram the relay carried."""
    pairs = set()
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        try:
            for _ts, buf in reader:
                ip = dpkt.ethernet.Ethernet(buf).data if reader.datalink() == dpkt.pcap.DLT_EN10MB else dpkt.ip.IP(buf)
                pairs.add((".".join(map(str, ip.src)), ".".join(map(str, ip.dst))))
        except dpkt.NeedData:
            pass
    return pairs


def test_three_hosts_on_three_addresses_deliver_every_frame_bit_exact(tmp_path: Path) -> None:
    cfg = small_multihost_config(tmp_path)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "pdh.cli", "demo", "--config", str(cfg), "--out", str(out),
                        "--duration", "3", "--drain", "120"], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["full_frames_made"] >= 2
    assert summary["full_frames_bit_exact"] == summary["full_frames_made"]
    # the ground's events came over the ground's own bus: every product made was seen arriving there
    assert summary["products_at_ground"] == summary["products_made"]
    assert summary["process_restarts"] == {}
    # the lander's radio sent from its own address, the ground's from its own; the relay sits between
    pairs = pcap_address_pairs(out / "link" / "relay.pcap")
    assert pairs == {(ADDRESSES["lander"], ADDRESSES["ground"]), (ADDRESSES["ground"], ADDRESSES["lander"])}
    relay_log = (out / "logs" / "relay.jsonl").read_text()
    assert f'"lander_in": ["{ADDRESSES["relay"]}"' in relay_log


def _started(out: Path, name: str) -> bool:
    log = out / "logs" / f"{name}.jsonl"
    return log.exists() and '"process_start"' in log.read_text()


def test_run_with_a_host_starts_only_that_hosts_processes(tmp_path: Path) -> None:
    cfg = small_multihost_config(tmp_path)
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "pdh.cli", "run", str(cfg), "--host", "ground", "--out", str(out)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        assert wait_for(lambda: all(_started(out, n) for n in ("ground", "ground_broker", "console")), 30.0)
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)
    assert p.returncode == 0
    assert sorted(x.stem for x in (out / "logs").glob("*.jsonl") if x.stem != "supervisor") == [
        "console", "ground", "ground_broker"]


def test_run_with_an_unknown_host_fails_at_once_naming_the_hosts(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pdh.cli", "run", str(MULTIHOST), "--host", "moon",
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "'moon'" in r.stderr and "['ground', 'lander', 'relay']" in r.stderr
