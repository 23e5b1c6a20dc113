"""The ground's uplink as real processes: the relay emulator, the ground station and a stand-in lander
radio (a UDP socket that checks each TC packet as ingest does and answers with verification packets);
then the same through the real downlink, command ingest and a target (the broker's command port).

A command queued with ``pdh uplink --wait`` while no lander window is open leaves the ground only
after the window opens, crosses the relay, is lost once (the stand-in ignores it) and comes again as
the same bytes; its verification stages come back through the relay and the CLI prints them until
``completed``. ``pdh queue list --all`` then shows its whole history."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from framework.config import load_config
from framework.process import ensure_keys
from link.dictionary import Dictionary
from link.radio import udp_address
from link.sdls import SequenceStore, TcDuplicate, Verifier, generate_key, load_associations, load_keys
from link.tmtc import encode_verification
from tests.conftest import Processes, free_port

pytestmark = pytest.mark.integration

LEAD_S = 8.0  # the lander window opens this long after the test starts
LATENCY_MS = 200
WAIT_S = 60.0  # the longest any step of the test may take
SA_YAML = "- {spi: 1, key_id: ops1, algorithm: aes-gcm, window: 64, enabled: true, operator: ops}\n"


def uplink_config(write_config: Callable[..., Path], tmp_path: Path, epoch_s: float) -> Path:
    sa_file = tmp_path / "sa.yaml"
    sa_file.write_text(SA_YAML)
    udp = {n: f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
           for n in ("lander_radio", "relay_lander", "relay_ground", "ground_radio")}
    plan = {"time_scale": 1.0, "epoch_s": epoch_s,
            "relays": [{"name": "relay_a", "period_s": 30.0, "lander_windows_s": [[0, 20]], "rate_bps": 1_000_000,
                        "latency_ms": LATENCY_MS}]}
    return write_config({
        "version": 1,
        "endpoints": {"bus_pub": f"tcp://127.0.0.1:{free_port()}", "ground_cmd": "ipc://ground_cmd",
                      "uplink": "ipc://uplink", "ingest_cmd": "ipc://ingest_cmd", **udp},
        "bus": {"sndhwm": 1000, "rcvhwm": 1000},
        "processes": {
            # never started: it gives the dictionary its APID (the stand-in speaks for it)
            "ingest": {"kind": "fsw.ingest", "endpoints": {"uplink": "uplink", "bus_pub": "bus_pub",
                                                           "command": "ingest_cmd"}, "sa_file": str(sa_file)},
            "relay": {"kind": "hil.relay", "endpoints": {"lander_in": "relay_lander", "ground_in": "relay_ground",
                                                        "lander": "lander_radio", "ground": "ground_radio"}, **plan},
            "ground": {"kind": "ground.station",
                       "endpoints": {"radio": "ground_radio", "relay": "relay_ground", "bus_pub": "bus_pub",
                                     "command": "ground_cmd"},
                       "sa_file": str(sa_file), **plan},
        },
    })


class StandInLander:
    """The lander's radio port: checks each TC packet as ingest does, answers through the relay."""

    def __init__(self, config: Any, keys_dir: Path, sa_file: Path, state: Path) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(udp_address(config.endpoint("relay", "lander"), bind=True))
        self.relay = udp_address(config.endpoint("relay", "lander_in"))
        sas = load_associations(sa_file)
        self.verifier = Verifier(sas, load_keys(keys_dir, sas), SequenceStore(state))
        self.dictionary = Dictionary.from_config(config)
        self.received: list[tuple[float, bytes, tuple[str, int]]] = []
        self.count = 0

    def recv(self, timeout_s: float) -> bytes | None:
        self.sock.settimeout(timeout_s)
        try:
            data, sender = self.sock.recvfrom(65535)
        except socket.timeout:
            return None
        self.received.append((time.time(), data, sender[:2]))
        return data

    def answer(self, packet: bytes) -> None:
        """Check it; verification stages back to the ground: received, accepted, completed (or duplicate)."""
        try:
            got = self.verifier.check(packet)
            stages, spi, seq, apid = ("received", "accepted", "completed"), got.spi, got.seq, got.apid
        except TcDuplicate as dup:
            stages, spi, seq, apid = ("duplicate",), dup.spi, dup.seq, dup.apid or 0
        ingest = self.dictionary.apid_of("ingest")
        for stage in stages:
            self.count += 1
            self.sock.sendto(encode_verification(ingest, self.count, time.time(), spi, seq, apid, 0, stage, ""),
                             self.relay)

    def close(self) -> None:
        self.sock.close()


def pdh(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pdh.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def test_a_command_queued_outside_a_window_goes_when_it_opens_through_the_relay_and_is_verified(
        tmp_path: Path, write_config: Callable[..., Path], processes: Processes) -> None:
    window_opens = time.time() + LEAD_S
    cfg = uplink_config(write_config, tmp_path, window_opens)
    out = processes.out
    config = load_config(cfg).for_run(out)
    keys_dir = ensure_keys(config, out)  # as the supervisor does at run start: the CLI's operator key
    assert keys_dir is not None
    generate_key(keys_dir, "ops1")  # pdh keys --sdls ops1
    lander = StandInLander(config, keys_dir, tmp_path / "sa.yaml", tmp_path / "board_sequences.json")
    cli: subprocess.Popen[str] | None = None
    try:
        processes.start(cfg, "relay")
        processes.start(cfg, "ground")
        common = ("--out", str(out), "--config", str(cfg), "--timeout", "10")
        cli = pdh("uplink", "ingest", "NOOP", "--wait", "--wait-s", str(WAIT_S), *common)
        first = lander.recv(WAIT_S)
        assert first is not None, "the command never reached the lander"
        assert lander.received[0][0] >= window_opens, "it left the ground before the window opened"
        assert lander.received[0][2] == udp_address(config.endpoint("relay", "lander_in")), "it came through the relay"
        again = lander.recv(WAIT_S)  # the first one is "lost": no answer, so the ground sends it again
        assert again == first, "a resend is the same bytes (same sequence number)"
        lander.answer(again)
        stdout, stderr = cli.communicate(timeout=WAIT_S)
        assert cli.returncode == 0, (stdout, stderr)
        printed = [line.split()[1] for line in stdout.splitlines()[1:]]
        assert printed == ["queued", "sent#1", "sent#2", "received", "accepted", "completed"], stdout
        listing = pdh("queue", "list", "--all", *common)
        shown, err = listing.communicate(timeout=WAIT_S)
        assert listing.returncode == 0, err
        assert "completed" in shown and " ingest NOOP " in shown, shown
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
            cli.communicate(timeout=5)
        lander.close()
        assert processes.stop("ground") == 0
        assert processes.stop("relay") == 0


def chain_config(write_config: Callable[..., Path], tmp_path: Path, epoch_s: float) -> Path:
    """The real lander side: the downlink's radio hands TC packets to ingest, which commands the broker;
    the downlink records the verification (vrf.ingest) and sends it realtime to the ground."""
    sa_file = tmp_path / "sa.yaml"
    sa_file.write_text(SA_YAML)
    udp = {n: f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
           for n in ("lander_radio", "relay_lander", "relay_ground", "ground_radio")}
    plan = {"time_scale": 1.0, "epoch_s": epoch_s,
            "relays": [{"name": "relay_a", "period_s": 30.0, "lander_windows_s": [[0, 20]], "rate_bps": 1_000_000,
                        "latency_ms": LATENCY_MS}]}
    tcp = {n: f"tcp://127.0.0.1:{free_port()}" for n in ("bus_pub", "bus_sub")}
    return write_config({
        "version": 1,
        "endpoints": {**tcp, **udp, "products": "ipc://products", "downlink_cmd": "ipc://downlink_cmd",
                      "broker_cmd": "ipc://broker_cmd", "uplink": "ipc://uplink", "ingest_cmd": "ipc://ingest_cmd",
                      "ground_cmd": "ipc://ground_cmd"},
        "bus": {"sndhwm": 1000, "rcvhwm": 1000},
        "processes": {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub",
                                                           "command": "broker_cmd"}},
            "ingest": {"kind": "fsw.ingest", "endpoints": {"uplink": "uplink", "bus_pub": "bus_pub",
                                                           "command": "ingest_cmd"}, "sa_file": str(sa_file)},
            "downlink": {"kind": "fsw.downlink",
                         "endpoints": {"bus_pub": "bus_pub", "products": "products", "radio": "lander_radio",
                                       "relay": "relay_lander", "command": "downlink_cmd", "uplink": "uplink"},
                         "links": {"bus_sub": "bus_sub"}, "reencode": {"enabled": False},
                         "telemetry": {"exclude_sources": ["ground"]}, **plan},
            "relay": {"kind": "hil.relay", "endpoints": {"lander_in": "relay_lander", "ground_in": "relay_ground",
                                                        "lander": "lander_radio", "ground": "ground_radio"}, **plan},
            "ground": {"kind": "ground.station",
                       "endpoints": {"radio": "ground_radio", "relay": "relay_ground", "bus_pub": "bus_pub",
                                     "command": "ground_cmd"},
                       "sa_file": str(sa_file), **plan},
        },
    })


def test_through_the_real_downlink_and_ingest_the_command_acts_on_board_and_its_stages_come_back(
        tmp_path: Path, write_config: Callable[..., Path], processes: Processes) -> None:
    window_opens = time.time() + LEAD_S
    cfg = chain_config(write_config, tmp_path, window_opens)
    out = processes.out
    config = load_config(cfg).for_run(out)
    keys_dir = ensure_keys(config, out)
    assert keys_dir is not None
    generate_key(keys_dir, "ops1")
    cli: subprocess.Popen[str] | None = None
    try:
        for name in ("broker", "ingest", "downlink", "relay", "ground"):
            processes.start(cfg, name)
        common = ("--out", str(out), "--config", str(cfg), "--timeout", "10")
        cli = pdh("uplink", "broker", "NOOP", "--wait", "--wait-s", str(WAIT_S), *common)
        stdout, stderr = cli.communicate(timeout=WAIT_S + 10)
        assert cli.returncode == 0, (stdout, stderr)
        printed = [line.split() for line in stdout.splitlines()[1:]]
        stages = [p[1] for p in printed]
        assert stages[0] == "queued" and stages[1] == "sent#1" and stages[-1] == "completed", stdout
        assert {"received", "accepted"} <= set(stages), stdout
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
            cli.communicate(timeout=5)
        for name in ("ground", "relay", "downlink", "ingest", "broker"):
            assert processes.stop(name) == 0, name
    stopped = [json.loads(line) for line in (out / "logs" / "ingest.jsonl").read_text().splitlines()
               if '"ingest_stopped"' in line]
    assert stopped and stopped[-1]["tc_dispatched"] == 1 and stopped[-1]["tc_completed"] == 1, \
        "the command acted on board once"
