"""A scenario's clock step moves a real process's wall clock (issue 15: clock steps), and only that one."""

from __future__ import annotations

import time
from pathlib import Path

import structlog
import zmq

import pdh.topology  # noqa: F401  (registers every kind)
from framework.bus.client import Subscriber
from framework.config import load_config
from pdh.scenario.runner import Faults
from pdh.supervisor import Supervisor
from tests.conftest import free_port

STEP_S = 3600.0
WAIT_S = 30.0


def _health_t(sub: Subscriber, src: str, after: float) -> float | None:
    """The header time of the next health message of ``src`` sent after wall time ``after`` (bounded wait)."""
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        msg = sub.recv(timeout_ms=200)
        if msg is not None and msg.header.src == src and msg.topic == f"tlm.{src}" and time.time() > after:
            return float(msg.header.t)
    return None


def test_a_clock_step_moves_the_stepped_process_and_not_the_others(write_config, tmp_path: Path) -> None:
    eps = {n: f"tcp://127.0.0.1:{free_port()}" for n in ("bus_pub", "bus_sub", "g_pub", "g_sub")}
    cfg = write_config({
        "version": 1, "endpoints": eps, "security": {"curve": False},
        "processes": {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
            "other_broker": {"kind": "bus.broker", "endpoints": {"xsub": "g_pub", "xpub": "g_sub"}},
        },
    })
    out = tmp_path / "out"
    sup = Supervisor(load_config(cfg), cfg, out)
    zctx = zmq.Context()
    subs = [Subscriber(zctx, eps["bus_sub"], ["tlm.broker"]), Subscriber(zctx, eps["g_sub"], ["tlm.other_broker"])]
    try:
        sup.start()
        before = _health_t(subs[0], "broker", 0.0)
        assert before is not None and abs(before - time.time()) < 60
        ok, detail = Faults(sup, out, structlog.get_logger()).act("broker", "clock", {"step_s": STEP_S})
        assert ok, detail
        stepped_at = time.time() + 1.0  # the process looks at its offset at least every 0.25 s
        t = _health_t(subs[0], "broker", stepped_at)
        assert t is not None and t - time.time() > STEP_S - 60, (t, time.time())
        other = _health_t(subs[1], "other_broker", stepped_at)
        assert other is not None and abs(other - time.time()) < 60
        ok, detail = Faults(sup, out, structlog.get_logger()).act("broker", "clock", {"step_s": -STEP_S})
        assert ok and "broker +0 s" in detail, detail
        t = _health_t(subs[0], "broker", time.time() + 1.0)
        assert t is not None and abs(t - time.time()) < 60
    finally:
        for s in subs:
            s.close()
        sup.stop()
        zctx.destroy(linger=0)
