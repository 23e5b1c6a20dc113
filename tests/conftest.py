"""Shared test helpers: free ports, configs in tmp dirs, processes that always end."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from hypothesis import HealthCheck, settings

import pdh.topology  # noqa: F401  (registers every process kind, as the tools do)

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


_handed_out: set[int] = set()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that was free a moment ago and not handed out before in this test run
    (the kernel may offer a just-closed port again, which would give two endpoints one port)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh free port after 100 tries")


def peek_sqlite(path: Path, sql: str) -> list[tuple[Any, ...]] | None:
    """Rows of a read-only query on a database another process is writing, or None while the database
    is not there yet (the file may exist a moment before its tables do)."""
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return None
        raise
    finally:
        db.close()


def link_chain_config(write_config: Callable[[dict[str, Any]], Path], timers: dict[str, float],
                      downlink: dict[str, Any] | None = None, relay: dict[str, Any] | None = None,
                      ground: dict[str, Any] | None = None, plan: dict[str, Any] | None = None) -> Path:
    """Broker, downlink, relay emulator and ground on 127.0.0.1, wired as in the demo (packets of 1024 bytes)
    but for one thing: the ground publishes on the lander's broker, so one subscriber sees both ends (the demo
    and multihost configs give the ground its own broker). The ground also gets its optional command port.

    ``timers`` (CFDP ack/nak/inactivity) go to the downlink and the ground; ``plan`` (contact-plan keys)
    to the downlink, the relay and the ground alike; ``downlink``, ``relay``, ``ground``: each one's own keys."""
    tcp = {n: f"tcp://127.0.0.1:{free_port()}" for n in ("bus_pub", "bus_sub", "products", "downlink_cmd",
                                                         "ground_cmd")}
    udp = {n: f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
           for n in ("lander_radio", "relay_lander", "relay_ground", "ground_radio")}
    plan = plan or {}
    return write_config({
        "version": 1,
        "security": {"curve": False},  # plain command ports: the tests of this chain are not about keys
        "endpoints": {**tcp, **udp},
        "bus": {"sndhwm": 1000, "rcvhwm": 1000},
        "processes": {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
            "downlink": {"kind": "fsw.downlink",
                         "endpoints": {"bus_pub": "bus_pub", "products": "products", "radio": "lander_radio",
                                       "relay": "relay_lander", "command": "downlink_cmd"},
                         "max_packet_len": 1024, **timers, **plan, **(downlink or {})},
            "relay": {"kind": "hil.relay",
                      "endpoints": {"lander_in": "relay_lander", "ground_in": "relay_ground",
                                    "lander": "lander_radio", "ground": "ground_radio"},
                      **plan, **(relay or {})},
            "ground": {"kind": "ground.station",
                       "endpoints": {"radio": "ground_radio", "relay": "relay_ground", "bus_pub": "bus_pub",
                                     "command": "ground_cmd"},
                       "max_packet_len": 1024, **timers, **plan, **(ground or {})},
        },
    })


def wait_for(predicate: Callable[[], Any], timeout_s: float, poll_s: float = 0.2) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; its last answer, as a bool."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())


_inproc_ids = itertools.count()


@contextlib.contextmanager
def inproc_commands(wire: Callable[[Any], None]) -> Iterator[Callable[[str, dict[str, Any]], Any]]:
    """A real CommandServer and CommandClient over inproc; ``wire(server)`` registers the handlers under
    test. Yields ``call(cmd, args)``, which returns the command's final (or only) reply."""
    import zmq

    from framework.bus.commands import CommandClient, CommandServer

    ctx = zmq.Context()
    endpoint = f"inproc://commands-{next(_inproc_ids)}"
    server = CommandServer(ctx, endpoint)
    client = CommandClient(ctx, endpoint)
    wire(server)

    def call(cmd: str, args: dict[str, Any]) -> Any:
        client.send(cmd, args)
        assert server.poll(2000) == 1
        reply = client.recv(2.0)
        assert reply is not None
        return reply

    try:
        yield call
    finally:
        client.close()
        server.close()
        ctx.term()


def undeclared_in_logs(out: Path) -> list[str]:
    """Log lines where a process published an event or a telemetry channel its interface table lacks."""
    return [line for log in sorted((out / "logs").glob("*.jsonl")) for line in log.read_text().splitlines()
            if '"event": "undeclared_' in line]


@pytest.fixture
def write_config(tmp_path: Path) -> Any:
    def _write(data: dict[str, Any], name: str = "config.yaml") -> Path:
        p = tmp_path / name
        p.write_text(yaml.safe_dump(data, sort_keys=False))
        return p

    return _write


class Processes:
    """Starts lunar-pdh processes and ends every one of them."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, config: Path, name: str) -> subprocess.Popen[bytes]:
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        err = open(self.out / "logs" / f"{name}.stderr", "ab")
        p = subprocess.Popen([sys.executable, "-m", "pdh.process", str(config), name, "--out", str(self.out)],
                             stdout=err, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        err.close()
        self.procs[name] = p
        return p

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        p = self.procs.pop(name)
        if p.poll() is None:
            os.killpg(p.pid, sig)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        return p.returncode

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path / "out")
    try:
        yield procs
    finally:
        procs.stop_all()


# -- the archive's two backends (tests/unit/ground/test_archive*.py) -----------------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL server for the whole session (tests/postgres.py); fails, never skips, without one."""
    from tests.postgres import start

    server = start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty archive's URL on each backend: a SQLite file, or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'archive.sqlite'}"
    return request.getfixturevalue("postgres_server").new_database()
