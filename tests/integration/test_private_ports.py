"""On one host, the bus and the internal ports of demo.yaml take connections from the service user only.

The lander's broker and downlink run from demo.yaml as shipped (only the radio ports moved to free ones),
with their output directory in a place every user may enter. A process of another user (``nobody``) then
tries to connect to each socket they bind: the bus (where it could publish frames and events), the products
port (forged products) and the downlink's command port (DROP). Each must be refused; the service user's
own connection to the same socket is taken, so the sockets are there.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml

import pdh.topology  # noqa: F401  (registers every kind)
from framework.config import load_config
from tests.conftest import Processes, free_port

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
NOBODY = 65534
INTERNAL = (("broker", "xsub"), ("broker", "xpub"), ("downlink", "products"), ("downlink", "command"))

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")]


def connect_as(uid: int, address: str) -> str:
    """Connect to a zmq tcp:// or ipc:// address from a child process running as ``uid``; "ok" or the error."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: plain sockets only, then _exit
        result = "ok"
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            scheme, rest = address.split("://", 1)
            if scheme == "ipc":
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(rest)
            else:
                host, port = rest.rsplit(":", 1)
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # numeric: no name lookup as nobody
                s.settimeout(2)
                s.connect((host, int(port)))
            s.close()
        except Exception as exc:  # the outcome is the answer
            result = f"{type(exc).__name__}: {exc}"
        os.write(write_end, result.encode()[:500])
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        answer = f.read().decode()
    os.waitpid(pid, 0)
    return answer


@pytest.fixture
def run_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="pdh-shared-", dir="/tmp"))
    os.chmod(base, 0o755)  # any user may enter the run's output directory itself
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_another_user_cannot_reach_the_bus_the_products_port_or_the_command_port(run_dir: Path) -> None:
    raw = yaml.safe_load(DEMO.read_text())
    for name, address in raw["endpoints"].items():
        scheme = address.split("://")[0]
        if scheme in ("tcp", "udp"):
            raw["endpoints"][name] = f"{scheme}://127.0.0.1:{free_port(socket.SOCK_DGRAM if scheme == 'udp' else socket.SOCK_STREAM)}"
    raw["processes"] = {n: raw["processes"][n] for n in ("broker", "downlink")}
    raw["processes"]["downlink"]["reencode"] = {"enabled": False}
    cfg = run_dir / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = run_dir / "out"
    out.mkdir(mode=0o755)
    os.chmod(out, 0o755)
    config = load_config(cfg).for_run(out)
    addresses = {f"{p}.{r}": config.endpoint(p, r) for p, r in INTERNAL}
    procs = Processes(out)
    try:
        for name in ("broker", "downlink"):
            procs.start(cfg, name)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(connect_as(os.geteuid(), a) != "ok" for a in addresses.values()):
            time.sleep(0.2)
        assert {k: connect_as(os.geteuid(), a) for k, a in addresses.items()} == {k: "ok" for k in addresses}
        answers = {k: connect_as(NOBODY, a) for k, a in addresses.items()}
    finally:
        procs.stop_all()
    refused = {k: v for k, v in answers.items() if v.startswith("PermissionError")}
    assert refused == answers, f"another user reached {sorted(set(answers) - set(refused))}: {answers}"
