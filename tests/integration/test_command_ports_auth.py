"""Every command port of the demo's lander, as real processes: only a client with an authorised CURVE key
is answered, and nothing a refused client sends acts.

For each port of a lander process (the camera driver, imaging, the downlink, the camera emulator's
control port): a client with no CURVE key and a client with a CURVE key that is not authorised get no
reply, and their RESET_COUNTERS (or set_boom_angle) leaves the process's counters (or state) as they
were; the run's operator key gets replies and its RESET_COUNTERS acts (so the check would see one that
did). The demo config's lander host binds no address but the loopback and its private ipc sockets.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
import zmq

from framework.bus.auth import SERVICE_NAME, generate_keypair, load_public_key, operator_client
from framework.bus.client import Subscriber
from framework.bus.commands import CommandClient, CurveClientKeys
from framework.config import Config, config_dir, free_loopback_ports, load_config, parse_endpoint
from framework.kinds import KINDS
from framework.process import ensure_keys
from tests.conftest import Processes

pytestmark = pytest.mark.integration

LANDER = "lander"
REFUSED_WAIT_S = 1.5  # a refused client's command: how long we wait for the reply that must not come


def lander_ports(config: Config) -> list[tuple[str, str]]:
    """(process, role) of every command port a process of the lander host binds."""
    return [(name, role) for name, p in config.processes.items() if p["host"] == LANDER
            for role in p["endpoints"] if role in ("command", "control") and role in KINDS[p["kind"]].binds]


def test_the_demo_lander_binds_only_loopback_and_private_sockets() -> None:
    config = load_config(config_dir() / "demo.yaml")
    assert config.security["curve"] is True
    for name, p in config.processes.items():
        if p["host"] != LANDER:
            continue
        for role, ref in p["endpoints"].items():
            address = config.endpoints[ref]
            if role not in KINDS[p["kind"]].binds or address.startswith("ipc://"):
                continue
            _, host, _ = parse_endpoint(address)
            assert host in ("127.0.0.1", "localhost") or host.startswith("127."), (name, role, address)
    assert len(lander_ports(config)) >= 4  # camera driver, imaging, downlink, camera emulator control


@pytest.fixture(scope="module")
def lander(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Path]]:
    """The demo config's lander processes (ports moved to free ones), running; ended after the tests."""
    tmp_path = tmp_path_factory.mktemp("lander")
    raw = yaml.safe_load((config_dir() / "demo.yaml").read_text())
    raw["endpoints"] = free_loopback_ports(raw["endpoints"])
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = tmp_path / "out"
    config = load_config(cfg).for_run(out)
    ensure_keys(config, out)  # as the supervisor does at run start, so the test's clients find the keys
    procs = Processes(out)
    try:
        lander_processes = [n for n, p in config.processes.items() if p["host"] == LANDER]
        assert {"broker", "navcam_emulator", "navcam_driver", "imaging", "downlink"} <= set(lander_processes)
        for name in sorted(lander_processes, key=lambda n: n != "broker"):  # the broker first
            procs.start(cfg, name)
        yield config, out
    finally:
        procs.stop_all()


def health_of(sub: Subscriber, process: str, timeout_s: float, at_least: int = 0) -> list[dict[str, Any]]:
    """The health messages of ``process`` seen within ``timeout_s`` (returns early once one shows
    ``commands_accepted >= at_least`` after the first)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = sub.recv(200)
        if m is None or m.topic != f"tlm.{process}" or m.header.kind != "health":
            continue
        seen.append(m.header.fields)
        if at_least and m.header.fields.get("commands_accepted", 0) >= at_least and len(seen) >= 2:
            break
    return seen


def intruders(zctx: zmq.Context, address: str, keys_dir: Path, tmp_path: Path) -> dict[str, CommandClient]:
    """A client with no CURVE key, and one with a CURVE key the run never authorised."""
    stranger = generate_keypair(tmp_path / "stranger", "stranger")
    service = load_public_key(keys_dir / f"{SERVICE_NAME}.key")
    return {"no key": CommandClient(zctx, address),
            "unauthorised key": CommandClient(zctx, address, CurveClientKeys(stranger.public, stranger.secret, service))}


def wait_answered(client: CommandClient, cmd: str, args: dict[str, Any], timeout_s: float = 30.0) -> list[Any]:
    """The process may still be starting: ask until it answers (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        replies = client.call(cmd, args, timeout_s=2.0)
        if replies:
            return replies
    return []


def test_every_lander_command_port_answers_only_an_authorised_key(lander: tuple[Config, Path],
                                                                  tmp_path: Path) -> None:
    config, out = lander
    keys_dir = config.keys_dir(out)
    zctx = zmq.Context()
    sub = Subscriber(zctx, config.endpoint("broker", "xpub"), ["tlm."])
    clients: list[CommandClient] = []
    try:
        ports = lander_ports(config)
        assert {p for p, _ in ports} >= {"navcam_driver", "imaging", "downlink", "navcam_emulator"}
        for process, role in ports:
            operator = operator_client(zctx, config, out, process, role)
            clients.append(operator)
            assert [r.status for r in wait_answered(operator, "NOOP", {})] == ["accepted", "completed"], process
            bad = intruders(zctx, config.reach(process, role), keys_dir, tmp_path / process)
            clients.extend(bad.values())
            if config.processes[process]["kind"] == "hil.camera":
                _check_emulator_port(process, operator, bad)
            else:
                assert "bus_pub" in config.processes[process]["endpoints"], process  # its health shows its counters
                _check_counters_port(process, operator, bad, sub)
    finally:
        for c in clients:
            c.close()
        sub.close()
        zctx.destroy(linger=0)


def _check_counters_port(process: str, operator: CommandClient, bad: dict[str, CommandClient],
                         sub: Subscriber) -> None:
    """Refused clients' RESET_COUNTERS do not reset commands_accepted; the operator's does."""
    for _ in range(3):
        assert operator.call("NOOP", {}, 5.0)[-1].status == "completed"
    before = health_of(sub, process, 15.0, at_least=4)
    assert before and before[-1]["commands_accepted"] >= 4, (process, before[-1:])
    floor = before[-1]["commands_accepted"]
    for who, client in bad.items():
        for cmd in ("RESET_COUNTERS", "NOOP"):
            assert client.call(cmd, {}, REFUSED_WAIT_S) == [], (process, who, cmd)
    after = health_of(sub, process, 3.5)
    assert after, process
    assert all(h["commands_accepted"] >= floor for h in after), (process, floor, after)
    assert operator.call("RESET_COUNTERS", {}, 5.0)[-1].status == "completed"
    reset = health_of(sub, process, 3.5)
    assert reset and min(h["commands_accepted"] for h in reset) < floor, (process, floor, reset)


def _check_emulator_port(process: str, operator: CommandClient, bad: dict[str, CommandClient]) -> None:
    """Refused clients' set_boom_angle leaves the scene as it was; the operator's moves the boom."""
    start = operator.call("status", {}, 5.0)[-1].result["boom_angle_deg"]
    for who, client in bad.items():
        assert client.call("set_boom_angle", {"deg": 77.0}, REFUSED_WAIT_S) == [], (process, who)
    assert operator.call("status", {}, 5.0)[-1].result["boom_angle_deg"] == start
    assert operator.call("set_boom_angle", {"deg": 77.0}, 5.0)[-1].status == "completed"
    assert operator.call("status", {}, 5.0)[-1].result["boom_angle_deg"] == 77.0


def test_pdh_cmd_uses_the_operator_key_and_says_what_is_wrong(lander: tuple[Config, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from pdh.cli import main

    config, out = lander
    base = [config.file, "downlink", "NOOP", "--out", str(out), "--timeout", "2"]
    assert main(["cmd", *base[:3], "--out", str(out), "--timeout", "30"]) == 0  # the run's operator key
    assert "completed" in capsys.readouterr().out
    assert main(["cmd", *base, "--keys", str(tmp_path / "nowhere")]) == 2
    assert "no key file" in capsys.readouterr().err
    generate_keypair(config.keys_dir(out), "visitor")  # a keypair in the run's directory, never authorised
    assert main(["cmd", *base, "--operator", "visitor"]) == 1
    assert "not authorised" in capsys.readouterr().err
