"""Who a command port says asked: the run's keys, the allow-list on every command, delegated operators.

Real CURVE sockets over ipc (inproc carries no security mechanism) in one context (the ZAP handler of :meth:`ProcessContext.command_server`):
a client's identity is the name its key is authorised under; only a delegate (ingest, sequencer) may name
the operator it acts for; an ``operator`` field from anyone else is rejected naming why, and nothing runs.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from framework.bus.auth import (AUTHORIZED_DIR, OPERATOR_NAME, SERVICE_NAME, client_curve, ensure_run_keys,
                                generate_keypair, load_public_key)
from framework.bus.commands import CommandClient, CommandServer, CurveClientKeys, decode_request
from framework.config import validate_config
from framework.errors import CommandRejected, ConfigError
from framework.process import ProcessContext


def _config(security: dict[str, Any] | None = None) -> Any:
    data: dict[str, Any] = {
        "version": 1,
        "endpoints": {"bus_pub": "tcp://127.0.0.1:5990", "bus_sub": "tcp://127.0.0.1:5991"},
        "processes": {"broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}}},
    }
    if security is not None:
        data["security"] = security
    return validate_config(data)


@pytest.fixture
def port(tmp_path: Path) -> Iterator[tuple[ProcessContext, CommandServer, list[tuple[str, Any]], list[Any]]]:
    """A CURVE command port made the one way, whose WHO command returns who asked."""
    ctx = ProcessContext(name="broker", config=_config(), out_dir=tmp_path, log=None)
    ensure_run_keys(ctx.keys_dir, ["ingest", "sequencer", "tool"])
    events: list[tuple[str, Any]] = []
    server = ctx.command_server(endpoint=f"ipc://{tmp_path}/who", on_event=lambda n, f: events.append((n, f)))
    seen: list[Any] = []
    server.register("WHO", lambda args, client: seen.append(client) or client, with_client=True)
    try:
        yield ctx, server, events, seen
    finally:
        server.close()
        ctx.zmq.destroy(linger=0)


def _ask(ctx: ProcessContext, server: CommandServer, client: CommandClient, operator: str | None = None,
         cmd: str = "WHO") -> list[Any]:
    """Send one command and serve until its final reply (or nothing comes)."""
    done: list[Any] = []

    def serve() -> None:
        for _ in range(40):
            server.poll(50)
            if done:
                return

    t = threading.Thread(target=serve)
    t.start()
    replies = client.call(cmd, {}, timeout_s=2.0, operator=operator)
    done.append(True)
    t.join(5)
    return replies


def _client(ctx: ProcessContext, name: str) -> CommandClient:
    return CommandClient(ctx.zmq, f"ipc://{ctx.out_dir}/who", client_curve(ctx.keys_dir, name))


def test_run_keys_are_made_once_private_and_authorised(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    created = ensure_run_keys(keys, ["imaging", "downlink"])
    assert set(created) == {SERVICE_NAME, "imaging", "downlink", OPERATOR_NAME}
    assert ensure_run_keys(keys, ["imaging", "downlink"]) == []  # nothing is remade
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(keys / AUTHORIZED_DIR).st_mode) == 0o700
    for name in created:
        assert stat.S_IMODE(os.stat(keys / f"{name}.key_secret").st_mode) == 0o600
    assert sorted(p.stem for p in (keys / AUTHORIZED_DIR).glob("*.key")) == ["downlink", "imaging", OPERATOR_NAME]
    (keys / AUTHORIZED_DIR / "imaging.key").unlink()  # revoked: a later run start does not restore it
    ensure_run_keys(keys, ["imaging"])
    assert not (keys / AUTHORIZED_DIR / "imaging.key").exists()


def test_processes_starting_at_once_share_one_service_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    threads = [threading.Thread(target=ensure_run_keys, args=(keys, [f"p{i}"])) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    server = load_public_key(keys / f"{SERVICE_NAME}.key")
    assert all(client_curve(keys, f"p{i}").server_public == server for i in range(8))


def test_a_client_is_named_by_its_key(port: Any) -> None:
    ctx, server, _, seen = port
    replies = _ask(ctx, server, _client(ctx, "tool"))
    assert [r.status for r in replies] == ["accepted", "completed"] and replies[-1].result == "tool"
    assert seen == ["tool"]


def test_a_delegate_speaks_for_the_operator_it_names(port: Any) -> None:
    ctx, server, _, seen = port
    for delegate in ("ingest", "sequencer"):
        replies = _ask(ctx, server, _client(ctx, delegate), operator="ops")
        assert replies[-1].status == "completed" and replies[-1].result == "ops"
    assert seen == ["ops", "ops"]


def test_an_operator_field_from_anyone_else_is_rejected_naming_why(port: Any) -> None:
    ctx, server, events, seen = port
    for name in ("tool", OPERATOR_NAME):
        replies = _ask(ctx, server, _client(ctx, name), operator="ops")
        assert [r.status for r in replies] == ["rejected"], name
        assert "may not act for another" in replies[0].reason and name in replies[0].reason
    assert seen == []
    assert [n for n, _ in events] == ["command_rejected", "command_rejected"]


def test_unknown_and_keyless_clients_get_no_reply_and_the_refusal_is_reported(port: Any, tmp_path: Path) -> None:
    ctx, server, events, seen = port
    stranger = generate_keypair(tmp_path / "elsewhere", "stranger")
    service = load_public_key(ctx.keys_dir / f"{SERVICE_NAME}.key")
    endpoint = f"ipc://{ctx.out_dir}/who"
    unknown = CommandClient(ctx.zmq, endpoint, CurveClientKeys(stranger.public, stranger.secret, service))
    assert _ask(ctx, server, unknown) == []
    assert _ask(ctx, server, CommandClient(ctx.zmq, endpoint)) == []
    assert seen == []
    server.poll(100)
    refused = [f for n, f in events if n == "command_rejected" and "handshake" in f["reason"]]
    assert refused and refused[0]["client_key"] == stranger.public_text
    assert server.handshakes_refused >= 1


def test_a_key_revoked_after_the_handshake_is_refused_on_its_next_command(port: Any) -> None:
    ctx, server, _, seen = port
    tool = _client(ctx, "tool")
    assert _ask(ctx, server, tool)[-1].status == "completed"
    (ctx.keys_dir / AUTHORIZED_DIR / "tool.key").unlink()
    replies = _ask(ctx, server, tool, cmd="NOOP")
    assert [r.status for r in replies] == ["rejected"] and "allow-list" in replies[0].reason
    assert seen == ["tool"]


def test_without_curve_ports_are_plain_and_refuse_an_operator_field(tmp_path: Path) -> None:
    ctx = ProcessContext(name="broker", config=_config({"curve": False}), out_dir=tmp_path, log=None)
    server = ctx.command_server(endpoint="inproc://plain")
    server.register("WHO", lambda args, client: client, with_client=True)
    client = ctx.command_client("inproc://plain")
    try:
        assert _ask_plain(server, client)[-1].result == ""
        rejected = _ask_plain(server, client, operator="ops")
        assert [r.status for r in rejected] == ["rejected"] and "no CURVE" in rejected[0].reason
        assert not (tmp_path / "keys").exists()  # no keys are made for a run without CURVE
    finally:
        client.close()
        server.close()
        ctx.zmq.destroy(linger=0)


def _ask_plain(server: CommandServer, client: CommandClient, operator: str | None = None) -> list[Any]:
    client.send("WHO", {}, operator=operator)
    assert server.poll(2000) == 1
    replies = [client.recv(2.0)]
    if replies[0] is not None and replies[0].status == "accepted":
        replies.append(client.recv(2.0))
    return replies


def test_a_malformed_operator_field_is_refused() -> None:
    import msgpack

    with pytest.raises(CommandRejected, match="operator"):
        decode_request(msgpack.packb({"id": 1, "cmd": "NOOP", "args": {}, "operator": ["ops"]}))
    assert decode_request(msgpack.packb({"id": 1, "cmd": "NOOP", "args": {}, "operator": "ops"})).operator == "ops"


def test_security_section_defaults_and_checks(tmp_path: Path) -> None:
    config = _config()
    assert config.security == {"keys_dir": "keys", "curve": True, "delegates": ["ingest", "sequencer"]}
    assert config.keys_dir(tmp_path) == tmp_path / "keys"
    assert _config({"keys_dir": str(tmp_path / "k")}).keys_dir("/elsewhere") == tmp_path / "k"
    for bad in ({"curve": "yes"}, {"keys_dir": ""}, {"unknown": 1}, {"delegates": ["Not A Name"]}):
        with pytest.raises(ConfigError, match="security"):
            _config(bad)


def test_a_deploy_drivers_old_keys_dir_is_the_runs_and_only_one_is_allowed(tmp_path: Path) -> None:
    def config(keys: list[str], security: dict[str, Any] | None = None) -> Any:
        eps = {f"e{i}": f"tcp://127.0.0.1:{6000 + i}" for i in range(2 + 3 * len(keys))}
        procs: dict[str, Any] = {"broker": {"kind": "bus.broker", "endpoints": {"xsub": "e0", "xpub": "e1"}}}
        for i, k in enumerate(keys):
            procs[f"drv{i}"] = {"kind": "drivers.deploy", "mechanism": f"m{i}", "profile": "spring_boom",
                                "keys_dir": k, "endpoints": {"link": f"e{2 + 3 * i}", "bus_pub": "e0",
                                                             "command": f"e{3 + 3 * i}"}}
        data: dict[str, Any] = {"version": 1, "endpoints": eps, "processes": procs}
        if security is not None:
            data["security"] = security
        return validate_config(data)

    assert config([str(tmp_path / "k")]).keys_dir("/out") == tmp_path / "k"
    with pytest.raises(ConfigError, match="one key directory per run"):
        config([str(tmp_path / "a"), str(tmp_path / "b")])
    with pytest.raises(ConfigError, match="one key directory per run"):
        config([str(tmp_path / "a")], {"keys_dir": "keys"})
