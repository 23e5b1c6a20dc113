"""The operator's CLI against a running system: ``pdh status``, ``pdh tlm``, ``pdh events``, ``pdh request``.

One ``pdh run`` of the demo config for the module (free ports; 768 x 768 frames at 0.5 Hz over relays
slowed to 3 Mbit/s, so full frames queue on board behind the thumbnails and a requested one is still
there to be asked for). Every tool runs as an operator runs it, ``python -m pdh.cli ...`` in a
subprocess, and every wait is bounded. The run is ended (SIGINT to ``pdh run``, which stops its
children; SIGKILL of its process group if it does not) also when a test fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from pdh.supervisor import read_state
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "demo.yaml"
START_S = 90.0
FRAME_S = 180.0

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def operator_config(tmp_path: Path) -> Path:
    """demo.yaml with free ports; big frames at 1 Hz over a slow link (a backlog of full frames on board)."""
    raw = yaml.safe_load(DEMO.read_text())
    for name, addr in raw["endpoints"].items():
        scheme = addr.split("://")[0]
        if scheme == "ipc":
            continue
        port = free_port() if scheme == "tcp" else free_port(socket.SOCK_DGRAM)
        raw["endpoints"][name] = f"{scheme}://127.0.0.1:{port}"
    procs = raw["processes"]
    # ~0.8 MB full frames every 2 s: a little more than the 3 Mbit/s relays carry (in view 5/6 of the time)
    procs["navcam_emulator"]["profile"] = {"width": 768, "height": 768, "bit_depth": 12, "pattern": "mono"}
    procs["navcam_driver"]["frame_rate_hz"] = 0.5
    procs["downlink"]["reencode"] = {"enabled": False}
    for relay in procs["downlink"]["relays"]:  # one list, shared by every process through the YAML alias
        relay["rate_bps"] = [3_000_000]
    path = tmp_path / "operator.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def pdh(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pdh.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, log: Path) -> Any:
    """``check()``'s first truthy value within ``timeout_s``; fails with the run's log otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout_s:g} s; run log:\n{log.read_text()[-3000:]}")


class Run:
    def __init__(self, cfg: Path, out: Path, log: Path) -> None:
        self.cfg, self.out, self.log = cfg, out, log
        self.where = ("--config", str(cfg), "--out", str(out))

    def all_running(self) -> bool:
        procs = read_state(self.out).get("processes", {})
        return bool(procs) and all(p.get("state") == "running" for p in procs.values())

    def missing(self) -> dict[str, Any]:
        r = pdh("missing", *self.where, "--json")
        return json.loads(r.stdout) if r.returncode == 0 else {}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("operator")
    cfg, out = operator_config(tmp), tmp / "out"
    subprocess.run([sys.executable, "-m", "pdh.cli", "keys", "--dir", str(out / "keys"), "--sdls", "ops1", "ops2"],
                   cwd=ROOT, check=True, capture_output=True, timeout=60)
    log = tmp / "run.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "pdh.cli", "run", str(cfg), "--out", str(out)], cwd=ROOT,
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            r = Run(cfg, out, log)
            wait_for("every process running", r.all_running, START_S, log)
            yield r
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


def test_status_shows_every_process_running_and_the_link(run: Run) -> None:
    wait_for("the downlink's health on a bus", lambda: pdh("tlm", "--process", "downlink", "--count", "1",
                                                           "--duration", "5", *run.where).stdout, 60, run.log)
    r = pdh("status", "--out", str(run.out), "--json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    view = json.loads(r.stdout)
    assert view["ok"] and view["supervisor"]["alive"]
    assert {p["name"] for p in view["processes"]} == set(read_state(run.out)["processes"])
    assert all(p["state"] == "running" for p in view["processes"])
    assert view["link"]["current"] is not None or view["link"]["next"] is not None
    assert view["link"]["downlink_health"]["via"] in ("bus", "tm")
    assert "store_fill" in view["store"]["lander"]["values"]
    text = pdh("status", "--out", str(run.out))
    assert text.returncode == 0, text.stdout + text.stderr
    lines = text.stdout.splitlines()
    for name in view["processes"]:
        assert any(line.split()[:1] == [name["name"]] and "running" in line for line in lines), text.stdout
    for section in ("PROCESSES", "LINK", "PASSES", "STORE", "EVENTS"):
        assert any(line.split(" ")[0] == section for line in lines), text.stdout
    assert any(line.strip().startswith(("contact", "next")) for line in lines)


def test_tlm_json_of_the_downlink_is_one_parseable_object_per_line(run: Run) -> None:
    r = pdh("tlm", "--json", "--process", "downlink", "--count", "3", "--duration", "60", *run.where)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3, r.stdout + r.stderr
    for line in lines:
        got = json.loads(line)
        assert got["process"] == "downlink" and got["via"] in ("bus", "tm")
        assert {"store_fill", "queue_depth", "bytes_in_flight"} <= set(got["channels"])
    narrowed = pdh("tlm", "--json", "--process", "downlink", "--channel", "queue_*", "--count", "1",
                   "--duration", "60", *run.where)
    (one,) = narrowed.stdout.splitlines()
    assert set(json.loads(one)["channels"]) == {"queue_depth", "queue_alert", "queue_thumbnail", "queue_telemetry",
                                                 "queue_requested", "queue_playback", "queue_rest"}


def test_events_shows_events_from_the_archive_and_live(run: Run) -> None:
    def archived() -> list[dict[str, Any]]:
        r = pdh("events", "--json", *run.where)
        return [json.loads(line) for line in r.stdout.splitlines()] if r.returncode == 0 else []

    got = wait_for("an event in the archive", archived, FRAME_S, run.log)
    assert all({"t", "source", "name", "severity", "via", "fields"} <= set(e) for e in got)
    live = pdh("events", "--json", "--follow", "--limit", "0", "--count", "1", "--duration", "60", *run.where)
    assert live.returncode == 0, live.stderr
    (line,) = live.stdout.splitlines()
    assert json.loads(line)["via"] in ("bus", "tm")
    only = pdh("events", "--json", "--source", "downlink", "--since", "10m", *run.where)
    assert only.returncode == 0 and all(json.loads(e)["source"] == "downlink" for e in only.stdout.splitlines())


def test_request_of_a_full_frame_completes_and_the_frame_arrives_at_the_ground(run: Run) -> None:
    def waiting() -> list[dict[str, Any]]:
        rows = run.missing().get("thumbnails_without_full", [])
        return [f for f in rows if f["status"] == "not_received"]

    candidates = wait_for("a thumbnail without its full frame", waiting, FRAME_S, run.log)
    outcome, tried = None, []
    for frame in reversed(candidates[-3:]):  # the newest first: the furthest back in the queue on board
        r = pdh("request", "full", "--camera", frame["camera"], "--counter", str(frame["counter"]), "--wait",
                "--wait-s", str(FRAME_S), *run.where, timeout=FRAME_S + 60)
        tried.append(r.stdout + r.stderr)
        if "already at the ground" in r.stdout or (r.returncode != 0 and "not on board" in r.stdout):
            continue  # it came down between the look and the request: ask for another
        outcome = (frame, r)
        break
    assert outcome is not None, f"every candidate frame came down before it could be requested: {tried}"
    frame, r = outcome
    assert r.returncode == 0, r.stdout + r.stderr
    assert "completed" in r.stdout and "arrived" in r.stdout, r.stdout
    full_id = frame["full_id"]
    sidecar = json.loads((run.out / "ground" / f"{full_id}.json").read_text())
    assert sidecar["id"] == full_id and sidecar["kind"] == "full"
    shown = pdh("products", "show", full_id, *run.where, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == full_id
