"""The supervisor restarts a process that dies, and stops every process it started."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from framework.config import load_config
from pdh.supervisor import Supervisor
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def test_killed_process_is_reported_and_restarted_then_all_stop(write_config, tmp_path: Path) -> None:
    cfg = write_config({
        "version": 1,
        "endpoints": {"bus_pub": f"tcp://127.0.0.1:{free_port()}", "bus_sub": f"tcp://127.0.0.1:{free_port()}"},
        "processes": {"broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}}},
    })
    reports: list[tuple[str, dict]] = []
    sup = Supervisor(load_config(cfg), cfg, tmp_path / "out", on_report=lambda n, f: reports.append((n, f)),
                     restart_backoff_s=0.2)
    try:
        sup.start()
        first = sup.children["broker"].popen
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        end = time.monotonic() + 20
        while time.monotonic() < end and sup.children["broker"].starts < 2:
            sup.watch()
            time.sleep(0.05)
        assert sup.children["broker"].starts == 2
        assert ("process_died", {"process": "broker", "returncode": -signal.SIGKILL, "restart_in_s": 0.2}) in reports
        assert sup.alive() == {"broker": True}
    finally:
        sup.stop()
    second = sup.children["broker"].popen
    assert second is not None and second.poll() is not None


def test_a_host_given_keeps_only_that_hosts_processes_brokers_first(tmp_path: Path) -> None:
    from framework.errors import ConfigError

    demo = load_config(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml")
    ground = Supervisor(demo, Path(demo.file), tmp_path / "out", host="ground")
    assert list(ground.children) == ["ground_broker", "ground", "console"]
    assert list(Supervisor(demo, Path(demo.file), tmp_path / "out").children)[:2] == ["broker", "ground_broker"]
    with pytest.raises(ConfigError, match="'moon'"):
        Supervisor(demo, Path(demo.file), tmp_path / "out", host="moon")


def test_a_process_that_can_never_start_is_given_up_with_its_last_error(write_config, tmp_path: Path) -> None:
    import socket

    port = free_port()
    cfg = write_config({
        "version": 1,
        "endpoints": {"bus_pub": f"tcp://127.0.0.1:{port}", "bus_sub": f"tcp://127.0.0.1:{free_port()}"},
        "processes": {"broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}}},
    })
    reports: list[tuple[str, dict]] = []
    sup = Supervisor(load_config(cfg), cfg, tmp_path / "out", on_report=lambda n, f: reports.append((n, f)),
                     restart_backoff_s=0.05, max_restarts=2)
    with socket.socket() as holder:  # the broker's port is taken for good: every start fails
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        try:
            sup.start()
            end = time.monotonic() + 60
            while time.monotonic() < end and not sup.given_up():
                sup.watch()
                time.sleep(0.05)
            for _ in range(10):  # given up: no more starts
                sup.watch()
                time.sleep(0.05)
        finally:
            sup.stop()
    assert sup.children["broker"].starts == 3  # the first start and two restarts
    gave_up = [f for n, f in reports if n == "process_gave_up"]
    assert len(gave_up) == 1 and gave_up[0]["restarts"] == 2
    assert "Address already in use" in gave_up[0]["last_error"], gave_up[0]
    state = json.loads((tmp_path / "out" / "supervisor.json").read_text())
    assert state["processes"]["broker"]["state"] == "gave_up"
