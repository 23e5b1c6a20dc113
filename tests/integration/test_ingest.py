"""The command ingest as a real process: TC packets pushed into its uplink socket reach a real target
(the broker's command port, over CURVE) only when authentic and fresh, their verification stages
appear on the bus, and a SIGKILL of the ingest at any moment never lets a replayed packet act twice."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import zmq

from framework.bus.auth import operator_client
from framework.bus.client import Subscriber
from framework.bus.message import Message
from framework.config import load_config
from fsw.ingest.interface import INTERFACE as INGEST_TABLE
from fsw.broker.interface import INTERFACE as BROKER_TABLE
from link.dictionary import Dictionary
from link.sdls import SequenceStore, Signer, generate_key, load_associations
from framework.config import find_config
from tests.conftest import Processes, free_port

WAIT_S = 15.0


class Uplink:
    """The ground's side: signs commands (SA 1 of configs/sa.yaml) and pushes them into the ingest's
    uplink socket, as the downlink does with what its radio reads."""

    def __init__(self, zctx: zmq.Context, endpoint: str, keys_dir: Path, dictionary: Dictionary, state: Path) -> None:
        sa = load_associations(find_config("configs/sa.yaml"))[0]
        self.signer = Signer(sa, generate_key(keys_dir, sa.key_id), SequenceStore(state))
        self.zctx = zctx
        self.endpoint = endpoint
        self.dictionary = dictionary

    def sign(self, process: str, cmd: str, args: dict[str, Any] | None = None) -> bytes:
        apid = self.dictionary.apid_of(process)
        spec = self.dictionary.interface_of(apid).commands[cmd]
        return self.signer.sign(apid, spec, args or {}).packet

    def push(self, packet: bytes) -> None:
        sock = self.zctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 2000)  # close waits for the packet to leave, no longer
        sock.connect(self.endpoint)
        sock.send(packet)
        sock.close()


@pytest.fixture
def rig(write_config: Callable[..., Path], processes: Processes, tmp_path: Path) -> Iterator[dict[str, Any]]:
    tcp = {n: f"tcp://127.0.0.1:{free_port()}" for n in ("bus_pub", "bus_sub")}
    cfg = write_config({
        "version": 1,
        "endpoints": {**tcp, "broker_cmd": "ipc://broker_cmd", "uplink": "ipc://uplink", "ingest_cmd": "ipc://ingest_cmd"},
        "bus": {"sndhwm": 1000, "rcvhwm": 1000},
        "processes": {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub", "command": "broker_cmd"}},
            "ingest": {"kind": "fsw.ingest", "endpoints": {"uplink": "uplink", "bus_pub": "bus_pub", "command": "ingest_cmd"},
                       "reply_timeout_s": 3.0},
        },
    })
    out = processes.out
    config = load_config(cfg).for_run(out)
    keys_dir = config.keys_dir(out)
    zctx = zmq.Context()
    uplink = Uplink(zctx, config.endpoint("ingest", "uplink"), keys_dir, Dictionary.from_config(config),
                    tmp_path / "ground_sequences.json")
    sub = Subscriber(zctx, tcp["bus_sub"], ["vrf.ingest", "evt.ingest", "tlm.ingest", "tlm.broker"])
    processes.start(cfg, "broker")
    processes.start(cfg, "ingest")
    try:
        yield {"cfg": cfg, "config": config, "out": out, "zctx": zctx, "uplink": uplink, "sub": sub,
               "processes": processes}
    finally:
        sub.close()
        processes.stop_all()
        zctx.destroy(linger=0)


def _next(sub: Subscriber, want: Callable[[Message], bool], timeout_s: float = WAIT_S) -> Message | None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        m = sub.recv(timeout_ms=200)
        if m is not None and want(m):
            return m
    return None


def _stage(seq: int, *stages: str) -> Callable[[Message], bool]:
    return lambda m: m.topic == "vrf.ingest" and m.header.fields["tc_seq"] == seq and m.header.fields["stage"] in stages


def _ingest_up(sub: Subscriber) -> None:
    assert _next(sub, lambda m: m.topic == "tlm.ingest") is not None, "the ingest published no health"


def test_an_authentic_command_acts_at_the_target_and_its_stages_reach_the_bus(rig: dict[str, Any]) -> None:
    sub, uplink = rig["sub"], rig["uplink"]
    _ingest_up(sub)
    uplink.push(uplink.sign("broker", "NOOP"))
    stages = []
    for _ in range(3):
        m = _next(sub, lambda m: m.topic == "vrf.ingest")
        assert m is not None, f"stages so far: {stages}"
        stages.append(m.header.fields)
    assert [s["stage"] for s in stages] == ["received", "accepted", "completed"]
    apid = rig["uplink"].dictionary.apid_of("broker")
    assert {(s["spi"], s["tc_seq"], s["target_apid"], s["opcode"]) for s in stages} == \
        {(1, 1, apid, BROKER_TABLE.commands["NOOP"].opcode)}
    # the broker acted: its command port counts the NOOP the ingest sent over CURVE
    assert _next(sub, lambda m: m.topic == "tlm.broker" and m.header.fields["commands_accepted"] == 1) is not None
    health = _next(sub, lambda m: m.topic == "tlm.ingest" and m.header.fields["tc_completed"] == 1)
    assert health is not None and health.header.fields["sa_last_seq"]["1"] == 1


def test_forged_garbage_and_replayed_packets_are_refused_with_events_and_nothing_acts(rig: dict[str, Any]) -> None:
    sub, uplink = rig["sub"], rig["uplink"]
    _ingest_up(sub)
    genuine = uplink.sign("broker", "RESET_COUNTERS")
    forged = genuine[:-1] + bytes([genuine[-1] ^ 1])
    uplink.push(forged)
    event = _next(sub, lambda m: m.topic == "evt.ingest" and m.header.fields["name"] == "tc_rejected")
    assert event is not None and event.header.fields["reason"] == "bad_mac"
    assert event.header.fields["event_id"] == INGEST_TABLE.events["tc_rejected"].id
    uplink.push(b"\x10\x00garbage")
    uplink.push(genuine)
    assert _next(sub, _stage(1, "completed")) is not None
    uplink.push(genuine)  # a retransmission: answered, not acted on
    dup = _next(sub, _stage(1, "duplicate"))
    assert dup is not None and dup.header.fields["reason"] == "completed"
    health = _next(sub, lambda m: m.topic == "tlm.ingest" and m.header.fields["tc_duplicates"] == 1)
    assert health is not None
    f = health.header.fields
    assert (f["rejected_bad_mac"], f["rejected_malformed"], f["tc_dispatched"], f["tc_completed"]) == (1, 1, 1, 1)
    assert _next(sub, lambda m: m.topic == "tlm.broker" and m.header.fields["commands_accepted"] == 1) is not None
    assert not [m for m in iter(lambda: sub.recv(timeout_ms=500), None)
                if m.topic == "vrf.ingest" and m.header.fields["stage"] == "received"]


def test_the_ingests_own_commands_come_through_the_uplink_and_from_a_local_operator(rig: dict[str, Any]) -> None:
    sub, uplink = rig["sub"], rig["uplink"]
    _ingest_up(sub)
    uplink.push(uplink.sign("ingest", "SA_DISABLE", {"spi": 2}))
    assert _next(sub, _stage(1, "completed")) is not None
    client = operator_client(rig["zctx"], rig["config"], rig["out"], "ingest")
    try:
        reply = client.call("SA_STATUS", timeout_s=WAIT_S)
        assert reply and reply[-1].status == "completed", reply
        status = {a["spi"]: a for a in reply[-1].result["associations"]}
        assert status[1]["last_seq"] == 1 and status[1]["enabled"] and not status[2]["enabled"]
        key_hex = (rig["config"].keys_dir(rig["out"]) / "sdls" / "ops1.key").read_text().strip()
        assert key_hex not in repr(reply[-1].result)
        refused = client.call("SA_DISABLE", {"spi": 1}, timeout_s=WAIT_S)  # the last enabled one
        assert refused and refused[-1].status == "rejected" and "last enabled" in refused[-1].reason
    finally:
        client.close()


def test_a_sigkill_at_any_moment_never_lets_a_replay_act_twice(rig: dict[str, Any]) -> None:
    """Each round pushes a fresh command, SIGKILLs the ingest a random moment later (before it read the
    packet, between the durable sequence write and the dispatch, or after), restarts it and pushes the
    same packet again. A command is ``received`` (published only after its sequence number is durable)
    at most once across both lives; the broker acts on at most one NOOP per sequence number."""
    sub, uplink, processes = rig["sub"], rig["uplink"], rig["processes"]
    rounds = 8
    rng = random.Random(1313)
    received: dict[int, int] = {}
    _ingest_up(sub)
    for seq in range(1, rounds + 1):
        packet = uplink.sign("broker", "NOOP")
        uplink.push(packet)
        time.sleep(rng.choice([0.0, rng.uniform(0.0, 0.004), rng.uniform(0.0, 0.08)]))
        processes.stop("ingest", sig=9)
        for m in iter(lambda: sub.recv(timeout_ms=300), None):
            if m.topic == "vrf.ingest" and m.header.fields["stage"] == "received":
                received[m.header.fields["tc_seq"]] = received.get(m.header.fields["tc_seq"], 0) + 1
        processes.start(rig["cfg"], "ingest")
        _ingest_up(sub)
        uplink.push(packet)  # the replay
        answer = _next(sub, _stage(seq, "received", "duplicate"))
        assert answer is not None, f"round {seq}: no answer to the replay"
        if answer.header.fields["stage"] == "received":
            received[seq] = received.get(seq, 0) + 1
        for m in iter(lambda: sub.recv(timeout_ms=300), None):
            if m.topic == "vrf.ingest" and m.header.fields["stage"] == "received":
                received[m.header.fields["tc_seq"]] = received.get(m.header.fields["tc_seq"], 0) + 1
    assert all(n == 1 for n in received.values()), f"a sequence number received twice: {received}"
    final = uplink.sign("broker", "NOOP")  # still commandable after all the kills
    uplink.push(final)
    assert _next(sub, _stage(rounds + 1, "completed")) is not None
    samples = [_next(sub, lambda m: m.topic == "tlm.broker") for _ in range(2)]  # the 2nd is after the final
    assert samples[-1] is not None
    acted = samples[-1].header.fields["commands_accepted"]
    assert 1 <= acted <= rounds + 1, f"the broker acted {acted} times for {rounds} + 1 commands"


def test_a_key_made_after_the_ingest_started_is_picked_up_and_its_sa_takes_commands(rig: dict[str, Any]) -> None:
    """SA 2's key (ops2) does not exist when the ingest starts: the SA is refused until the key is made,
    then takes commands without a restart."""
    sub, uplink, config, out = rig["sub"], rig["uplink"], rig["config"], rig["out"]
    _ingest_up(sub)
    client = operator_client(rig["zctx"], config, out, "ingest")

    def sa2() -> dict[str, Any]:
        reply = client.call("SA_STATUS", timeout_s=WAIT_S)
        assert reply and reply[-1].status == "completed", reply
        return next(a for a in reply[-1].result["associations"] if a["spi"] == 2)

    try:
        assert not sa2()["key_loaded"] and not sa2()["enabled"]
        sa = load_associations(find_config("configs/sa.yaml"))[1]
        signer = Signer(sa, generate_key(config.keys_dir(out), sa.key_id), SequenceStore(out / "ground2.json"))
        end = time.monotonic() + WAIT_S
        while time.monotonic() < end and not sa2()["enabled"]:
            time.sleep(0.5)
        assert sa2()["key_loaded"] and sa2()["enabled"]
        apid = uplink.dictionary.apid_of("broker")
        uplink.push(signer.sign(apid, BROKER_TABLE.commands["NOOP"], {}).packet)
        done = _next(sub, lambda m: m.topic == "vrf.ingest" and m.header.fields["spi"] == 2
                     and m.header.fields["stage"] == "completed")
        assert done is not None and done.header.fields["tc_seq"] == 1
    finally:
        client.close()
