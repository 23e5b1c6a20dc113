"""`kill -TERM` or a hang-up of `pdh demo` stops its children as Ctrl-C does, and the run says why it
ended (issue 14 item 4: before, the seven children kept running and holding their ports)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.test_demo_chain import small_demo_config

pytestmark = pytest.mark.integration


def _started_pids(out: Path) -> dict[str, int]:
    """Process name -> pid of its last start, from each process's own log."""
    pids: dict[str, int] = {}
    for log in (out / "logs").glob("*.jsonl"):
        for line in log.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") == "process_start" and isinstance(rec.get("pid"), int):
                pids[log.stem] = rec["pid"]
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_to_the_demo_stops_every_child_and_says_why(sig: int, tmp_path: Path) -> None:
    cfg = small_demo_config(tmp_path)
    names = set(yaml.safe_load(cfg.read_text())["processes"])
    out = tmp_path / "out"
    stdout = open(tmp_path / "demo.out", "w")
    demo = subprocess.Popen([sys.executable, "-m", "pdh.cli", "demo", "--config", str(cfg), "--out", str(out),
                             "--duration", "300", "--drain", "5"], stdout=stdout, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    pids: dict[str, int] = {}
    try:
        end = time.monotonic() + 90
        while time.monotonic() < end and set(pids) != names and demo.poll() is None:
            time.sleep(0.2)
            pids = _started_pids(out) if (out / "logs").is_dir() else {}
        assert set(pids) == names, (pids, (tmp_path / "demo.out").read_text()[-2000:])
        demo.send_signal(sig)
        demo.wait(timeout=90)
        end = time.monotonic() + 15
        while time.monotonic() < end and any(_alive(p) for p in pids.values()):
            time.sleep(0.1)
        left = {n: p for n, p in pids.items() if _alive(p)}
        assert left == {}, f"children still running after {signal.Signals(sig).name}: {left}"
        said = (tmp_path / "demo.out").read_text()
        assert demo.returncode == 1
        assert f"FAIL: interrupted by {signal.Signals(sig).name}" in said, said[-2000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=10)
        for p in pids.values():
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        stdout.close()
