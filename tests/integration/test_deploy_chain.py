"""Broker + mechanism emulator + deploy driver as real processes, commanded over CURVE.

Every fault is injected at run time through the emulator's control port (one
through the config's ``faults`` list, as a scenario would) and the driver's
verdict and events are checked. Physics runs 10-20x faster than the wall clock.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.bus.auth import KeyPair, authorize, generate_keypair
from framework.bus.client import Subscriber
from framework.bus.commands import CommandClient, CommandReply, CommandServer, CurveClientKeys, CurveServerKeys
from tests.conftest import Processes, free_port, undeclared_in_logs

pytestmark = pytest.mark.integration

MECH = "m1"


class Rig:
    """One broker, one emulator, one driver, an operator client and a bus subscriber."""

    def __init__(self, tmp: Path, profile: str, time_scale: float, faults: list[dict[str, Any]] | None = None,
                 camera: bool = False) -> None:
        self.keys = tmp / "keys"
        self.service = generate_keypair(self.keys, "service")
        self.operator = generate_keypair(self.keys, "operator")
        self.other = generate_keypair(self.keys, "other_operator")
        authorize(self.keys, self.keys / "operator.key")
        authorize(self.keys, self.keys / "other_operator.key")
        self.harness = generate_keypair(self.keys, "harness")  # the test's own key for the emulator's control port
        authorize(self.keys, self.keys / "harness.key")
        names = ("bus_pub", "bus_sub", "link", "control", "cmd", "cam_cmd")
        self.ep = {n: f"tcp://127.0.0.1:{free_port()}" for n in names}
        procs: dict[str, Any] = {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
            "emu": {"kind": "hil.deploy", "endpoints": {"link": "link", "control": "control", "bus_pub": "bus_pub"},
                    "profile": profile, "time_scale": time_scale, "seed": 4, "faults": faults or []},
            "drv": {"kind": "drivers.deploy", "endpoints": {"link": "link", "bus_pub": "bus_pub", "command": "cmd"},
                    "mechanism": MECH, "profile": profile, "keys_dir": str(self.keys), "moving_rate_hz": 20.0},
        }
        if camera:  # declared so the driver can find its command port; the test plays the camera
            procs["navcam"] = {"kind": "drivers.camera", "camera": "navcam",
                               "endpoints": {"link": "link", "bus_pub": "bus_pub", "command": "cam_cmd"}}
        import yaml

        self.config = tmp / "deploy.yaml"
        self.config.write_text(yaml.safe_dump({"version": 1, "endpoints": self.ep, "processes": procs}))
        self.procs = Processes(tmp / "out")
        self.ctx = zmq.Context()
        self.events: list[dict[str, Any]] = []
        self.tlm: list[dict[str, Any]] = []

    def start(self) -> "Rig":
        for name in ("broker", "emu", "drv"):
            self.procs.start(self.config, name)
        self.sub = Subscriber(self.ctx, self.ep["bus_sub"], ["evt.drv", "tlm.drv"])
        self.op = self.client(self.operator)
        self.control = self.client(self.harness, "control")  # every port of the run is CURVE, the emulator's too
        self._wait_ready()
        return self

    def client(self, keys: KeyPair, endpoint: str = "cmd") -> CommandClient:
        return CommandClient(self.ctx, self.ep[endpoint], CurveClientKeys(keys.public, keys.secret, self.service.public))

    def _wait_ready(self) -> None:
        end = time.monotonic() + 20
        while time.monotonic() < end:
            r = self.op.call("STATUS", {}, 1.0)
            if r and r[-1].status == "completed" and r[-1].result["link_up"] and r[-1].result["sample"]:
                self.drain(0.3)  # the subscription has joined once telemetry flows
                if self.tlm:
                    return
        raise AssertionError("driver never became ready")

    def drain(self, for_s: float = 0.0) -> None:
        end = time.monotonic() + for_s
        while True:
            m = self.sub.recv(timeout_ms=max(0, int((end - time.monotonic()) * 1000)))
            if m is None:
                return
            (self.events if m.topic.startswith("evt.") else self.tlm).append(m.header.fields)

    def inject(self, fault: str, **args: Any) -> None:
        r = self.control.call("INJECT", {"fault": fault, **args}, 5.0)
        assert r and r[-1].status == "completed", r

    def deploy(self, timeout_s: float = 30.0) -> CommandReply:
        arm = self.op.call("ARM", {"mechanism": MECH}, 5.0)
        assert [x.status for x in arm] == ["accepted", "completed"], arm
        replies = self.op.call("FIRE", {"mechanism": MECH}, timeout_s)
        assert replies and replies[0].status == "accepted", replies
        assert replies[-1].status in ("completed", "failed"), replies
        self.drain(0.5)
        return replies[-1]

    def event_names(self) -> list[str]:
        return [e["name"] for e in self.events]

    def truth(self) -> dict[str, Any]:
        return self.control.call("TRUTH", {}, 5.0)[-1].result

    def close(self) -> None:
        try:
            self.procs.stop_all()
        finally:
            self.ctx.destroy(linger=0)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Any]:
    made: list[Rig] = []

    def make(profile: str, time_scale: float, **kw: Any) -> Rig:
        r = Rig(tmp_path, profile, time_scale, **kw)
        made.append(r)
        return r.start()

    try:
        yield make
    finally:
        for r in made:
            r.close()
    for r in made:  # every event and telemetry channel the driver published is in its interface table
        assert undeclared_in_logs(r.procs.out) == []


def test_boom_deploys_publishes_fast_telemetry_and_requests_a_confirmation_frame(rig, tmp_path) -> None:
    r = rig("spring_boom", 5.0, camera=True)
    camera = CommandServer(r.ctx, r.ep["cam_cmd"], curve=CurveServerKeys(r.service.public, r.service.secret))  # a port of the run
    captures: list[dict[str, Any]] = []
    camera.register("CAPTURE", lambda args: captures.append(args) or {"queued": True})
    before = len(r.tlm)
    final = r.deploy()
    assert final.status == "completed" and final.result["outcome"] == "deployed"
    assert final.result["angle_deg"] == pytest.approx(90.0, abs=2.0)
    names = r.event_names()
    for expected in ("armed", "deployment_started", "state_changed", "deployment_verdict",
                     "confirmation_capture_requested"):
        assert expected in names
    states = [e["to"] for e in r.events if e["name"] == "state_changed"]
    assert states[-3:] == ["releasing", "deploying", "deployed"]
    moving = [t for t in r.tlm[before:] if t["state"] in ("releasing", "deploying")]
    assert len(moving) >= 5, "telemetry at the moving rate while the boom moves"
    end = time.monotonic() + 5
    while not captures and time.monotonic() < end:
        camera.poll(50)
    assert captures == [{"priority": "confirmation"}]
    camera.close()


def test_jam_injected_at_run_time_gives_a_partial_verdict_at_the_jam_angle(rig) -> None:
    r = rig("spring_boom", 5.0)
    r.inject("jam", angle_deg=47.0)
    final = r.deploy()
    assert final.status == "failed" and final.result["outcome"] == "partial"
    assert final.result["angle_deg"] == pytest.approx(47.0, abs=1.5)
    assert "partially deployed at 4" in final.reason
    verdict = [e for e in r.events if e["name"] == "deployment_verdict"][-1]
    assert verdict["severity"] == "warning" and verdict["evidence"]["angle_valid"]


def test_slow_deployment_from_the_scenario_config_is_deployed_with_a_warning(rig) -> None:
    r = rig("spring_boom", 10.0, faults=[{"fault": "slow", "factor": 3.0}])
    final = r.deploy()
    assert final.result["outcome"] == "deployed"
    assert "deployment_slow" in r.event_names()


def test_angle_sensor_dropout_is_reported_and_the_switch_confirms_deployment(rig) -> None:
    r = rig("spring_boom", 5.0)
    r.inject("angle_dropout")
    final = r.deploy()
    assert final.result["outcome"] == "deployed" and final.result["angle_deg"] is None
    assert "angle_sensor_invalid" in r.event_names()
    assert "angle sensor invalid" in final.result["evidence"]["basis"]


def test_primary_circuit_failure_is_retried_on_the_secondary(rig) -> None:
    r = rig("holddown_release", 20.0)
    r.inject("circuit_open", circuit="primary")
    final = r.deploy()
    assert final.result["outcome"] == "deployed"
    assert [a["circuit"] for a in final.result["evidence"]["attempts"]] == ["primary", "secondary"]
    names = r.event_names()
    assert "circuit_no_current" in names and "circuit_switch" in names


def test_over_current_is_cut_off_and_the_secondary_releases(rig) -> None:
    r = rig("holddown_release", 20.0)
    r.inject("over_current", circuit="primary", factor=2.5)
    final = r.deploy()
    assert final.result["outcome"] == "deployed"
    oc = [e for e in r.events if e["name"] == "over_current"]
    assert oc and oc[0]["circuit"] == "primary" and oc[0]["current_a"] > 3.0
    assert final.result["evidence"]["attempts"][0]["outcome"] == "over_current"


def test_stuck_limit_switch_is_caught_and_the_angle_decides(rig) -> None:
    r = rig("motor_deployer", 10.0)
    r.inject("stuck_switch", switch="deployed", closed=False)
    final = r.deploy()
    assert final.result["outcome"] == "deployed"
    assert "limit_switch_disagrees" in r.event_names()
    assert r.truth()["current_a"] == 0.0, "the driver cut the motor"


def test_jammed_motor_is_cut_retried_and_judged_partial(rig) -> None:
    r = rig("motor_deployer", 10.0)
    r.inject("jam", angle_deg=60.0)
    final = r.deploy()
    assert final.result["outcome"] == "partial"
    assert final.result["angle_deg"] == pytest.approx(60.0, abs=1.5)
    names = r.event_names()
    assert names.count("over_current") == 2 and "circuit_switch" in names


def test_safe_commanding_over_curve(rig, tmp_path) -> None:
    """Out-of-order, foreign, malformed and unknown commands are refused with reasons and events;
    an unknown key gets no answer at all; a one-shot fires once; the services keep running."""
    r = rig("holddown_release", 20.0)
    other = r.client(r.other)
    stranger_keys = generate_keypair(tmp_path / "stranger", "stranger")
    stranger = r.client(stranger_keys)

    def status(replies: list[CommandReply]) -> list[str]:
        return [x.status for x in replies]

    assert status(r.op.call("FIRE", {"mechanism": MECH}, 5)) == ["rejected"]  # not armed
    assert status(r.op.call("ARM", {"mechanism": MECH}, 5)) == ["accepted", "completed"]
    foreign = other.call("FIRE", {"mechanism": MECH}, 5)
    assert status(foreign) == ["rejected"] and "another client" in foreign[0].reason
    assert stranger.call("ARM", {"mechanism": MECH}, 1.5) == []  # refused in the handshake
    assert stranger.call("FIRE", {"mechanism": MECH}, 1.5) == []
    for cmd, args in (("FIRE", {}), ("FIRE", {"mechanism": 3}), ("FIRE", {"mechanism": "nope"}),
                      ("LAUNCH", {}), ("ARM", {"mechanism": MECH, "extra": 1})):
        bad = r.op.call(cmd, args, 5)
        assert status(bad) == ["rejected"] and bad[0].reason
    r.op.sock.send_multipart([b"", b"\xc1garbage"])
    assert status(r.op.call("INHIBIT", {"mechanism": MECH}, 5)) == ["accepted", "completed"]
    inhibited = r.op.call("ARM", {"mechanism": MECH}, 5)
    assert status(inhibited) == ["rejected"] and "inhibited" in inhibited[0].reason
    assert status(r.op.call("ENABLE", {"mechanism": MECH}, 5)) == ["accepted", "completed"]
    assert r.truth()["state"] == "stowed", "nothing refused moved the mechanism"
    final = r.deploy()
    assert final.result["outcome"] == "deployed"
    again = r.op.call("ARM", {"mechanism": MECH}, 5)
    assert status(again) == ["rejected"] and "already fired" in again[0].reason
    r.drain(0.5)
    names = r.event_names()
    assert names.count("command_rejected") >= 9
    assert "auth_refused" in names
    refused = [e for e in r.events if e["name"] == "auth_refused"]
    assert refused[0]["client_key"] == stranger_keys.public_text
    assert status(r.op.call("NOOP", {}, 5)) == ["accepted", "completed"]


def test_one_shot_fired_state_survives_a_driver_restart(rig) -> None:
    r = rig("holddown_release", 20.0)
    assert r.deploy().result["outcome"] == "deployed"
    r.procs.stop("drv")
    r.procs.start(r.config, "drv")
    r.op.close()
    r.op = r.client(r.operator)
    r._wait_ready()
    again = r.op.call("ARM", {"mechanism": MECH}, 5)
    assert [x.status for x in again] == ["rejected"] and "already fired" in again[0].reason


_hazardous = st.sampled_from(["ARM", "FIRE", "DISARM", "INHIBIT", "ENABLE", "ABORT"])
_mech_arg = st.one_of(st.just(MECH), st.text(max_size=5), st.integers(-2**63, 2**63 - 1))


@pytest.fixture(scope="module")
def stranger_rig(tmp_path_factory) -> Iterator[Rig]:
    r = Rig(tmp_path_factory.mktemp("stranger_rig"), "spring_boom", 5.0)
    try:
        yield r.start()
    finally:
        r.close()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cmds=st.lists(st.tuples(_hazardous, _mech_arg), min_size=1, max_size=6))
def test_client_without_a_known_key_never_moves_anything(stranger_rig, tmp_path_factory, cmds) -> None:
    r = stranger_rig
    keys = generate_keypair(tmp_path_factory.mktemp("k"), "unknown")
    stranger = r.client(keys)
    try:
        for cmd, mech in cmds:
            try:
                stranger.send(cmd, {"mechanism": mech})
            except zmq.Again:
                break  # the handshake was refused: nobody to send to
        assert stranger.recv(1.0) is None, "an unknown key gets no reply"
    finally:
        stranger.close()
    truth = r.truth()
    assert truth["state"] == "stowed" and truth["angle_deg"] == 0.0 and truth["current_a"] == 0.0


_CLI = ("import argparse, sys; from pdh.cli_deploy import add_deploy_parser, add_keys_parser; "
        "ap = argparse.ArgumentParser(); s = ap.add_subparsers(required=True); add_deploy_parser(s); "
        "add_keys_parser(s); a = ap.parse_args(sys.argv[1:]); sys.exit(a.func(a))")


def test_operator_keys_then_deploy_go_from_a_terminal(rig, tmp_path) -> None:
    import subprocess
    import sys

    r = rig("holddown_release", 20.0)
    made = subprocess.run([sys.executable, "-c", _CLI, "keys", "--dir", str(r.keys), "--operator", "carol"],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0 and "authorized" in made.stdout
    go = subprocess.run([sys.executable, "-c", _CLI, "deploy", "drv", "go", "--config", str(r.config),
                         "--keys", str(r.keys), "--operator", "carol", "--timeout", "30"],
                        capture_output=True, text=True, timeout=90)
    assert go.returncode == 0, go.stdout + go.stderr
    assert "FIRE completed" in go.stdout and "TLM   releasing" in go.stdout
    assert "deployment_verdict" in go.stdout


def test_abort_mid_deployment_cuts_the_motor_and_judges_where_it_stopped(rig) -> None:
    r = rig("motor_deployer", 1.0)  # real time: the deployment takes long enough to be caught halfway
    arm = r.op.call("ARM", {"mechanism": MECH}, 5.0)
    assert [x.status for x in arm] == ["accepted", "completed"], arm
    fire_id = r.op.send("FIRE", {"mechanism": MECH})
    replies: list[CommandReply] = []
    deadline = time.monotonic() + 20
    moving = False
    while time.monotonic() < deadline and not moving:
        reply = r.op.recv(0.2)
        if reply is not None:
            replies.append(reply)
        r.drain(0.1)
        moving = any(t.get("state") == "deploying" and (t.get("angle_deg") or 0) > 10.0 for t in r.tlm)
    assert moving, "the deployment never got going"
    abort_id = r.op.send("ABORT", {"mechanism": MECH})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (
            any(x.id == abort_id and x.status == "completed" for x in replies)
            and any(x.id == fire_id and x.status in ("completed", "failed") for x in replies)):
        reply = r.op.recv(0.2)
        if reply is not None:
            replies.append(reply)
    fire_final = [x for x in replies if x.id == fire_id][-1]
    assert fire_final.status == "failed", replies  # not deployed
    assert fire_final.result["outcome"] == "partial"
    assert 10.0 < fire_final.result["angle_deg"] < 85.0
    assert "aborted by operator" in str(fire_final.result["evidence"])
    r.drain(1.0)
    assert r.truth()["current_a"] == 0.0, "the motor is off"
    assert "deployment_verdict" in r.event_names()
    # A second ABORT has nothing to stop: refused, with the reason.
    again = r.op.call("ABORT", {"mechanism": MECH}, 5.0)
    assert again[-1].status == "rejected" and "no deployment in progress" in again[-1].reason


def test_watch_from_a_terminal_shows_another_operators_deployment_and_ends_at_its_verdict(rig) -> None:
    import subprocess
    import sys

    r = rig("spring_boom", 5.0)
    watch = subprocess.Popen([sys.executable, "-u", "-c", _CLI, "deploy", "drv", "watch", "--config",
                              str(r.config), "--keys", str(r.keys), "--timeout", "120"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert watch.stdout is not None
        first = ""
        for _ in range(50):  # the stowed mechanism's telemetry: the watcher is subscribed
            line = watch.stdout.readline()
            first += line
            if not line or line.startswith("TLM   stowed"):
                break
        assert first.endswith("\n") and "TLM   stowed" in first, first
        assert r.deploy().result["outcome"] == "deployed"
        rest, _ = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    assert watch.returncode == 0, first + rest
    assert "TLM   deploying" in rest and "deployment_verdict" in rest
