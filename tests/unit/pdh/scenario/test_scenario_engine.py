"""The timeline engine on a fake clock with a fake IO: scheduling, judging replies and expectations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pdh.scenario.engine import Engine, Reply
from pdh.scenario.expect import Record, Recording
from pdh.scenario.spec import parse_scenario
from tests.unit.pdh.scenario.test_scenario_spec import CONFIG


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeIO:
    """Answers each request from a script: (cmd) -> [(delay_s, Reply), ...]."""

    def __init__(self, clock: FakeClock, script: dict[str, list[tuple[float, Reply]]]) -> None:
        self.clock = clock
        self.script = script
        self.sent: list[tuple[float, str, str, str, dict[str, Any], Path | None]] = []
        self.pending: dict[int, list[tuple[float, Reply]]] = {}

    def request(self, process: str, role: str, cmd: str, args: dict[str, Any], keys_dir: Path | None) -> int:
        self.sent.append((self.clock.t, process, role, cmd, args, keys_dir))
        token = len(self.sent)
        self.pending[token] = [(self.clock.t + d, r) for d, r in self.script.get(cmd, [])]
        return token

    def replies(self, token: int) -> list[Reply]:
        due = [r for t, r in self.pending[token] if t <= self.clock.t]
        self.pending[token] = [(t, r) for t, r in self.pending[token] if t > self.clock.t]
        return due


def run(steps: list[dict[str, Any]], script: dict[str, list[tuple[float, Reply]]],
        bus: list[tuple[float, str, str, dict[str, Any]]] = (), timeout_s: float = 100.0,
        dt: float = 0.05) -> tuple[Engine, FakeIO]:
    """Tick the engine every ``dt`` fake seconds; ``bus`` messages (t from start) appear when due."""
    sc = parse_scenario({"config": CONFIG, "steps": steps, "timeout_s": timeout_s}, "s.yaml")
    clock = FakeClock()
    io = FakeIO(clock, script)
    rec = Recording()
    eng = Engine(sc, io, rec, clock, keys_dir=Path("/keys"))
    eng.start()
    t0 = clock.t
    waiting = sorted(bus)
    for _ in range(100_000):
        while waiting and waiting[0][0] <= clock.t - t0:
            t, topic, kind, fields = waiting.pop(0)
            rec.add(Record(t0 + t, topic, topic.split(".")[1], kind, fields))
        if eng.tick():
            break
        clock.t += dt
    return eng, io


OK = [(0.01, Reply("accepted")), (0.02, Reply("completed", "", {"outcome": "deployed"}))]
ARM = {"command": {"process": "drv", "cmd": "ARM", "args": {"mechanism": "boom"}, "curve": True}}


def test_command_completed_as_expected_passes_and_uses_the_scenario_keys() -> None:
    eng, io = run([ARM], {"ARM": OK})
    assert eng.ok()
    assert io.sent[0][1:] == ("drv", "command", "ARM", {"mechanism": "boom"}, Path("/keys"))


def test_command_rejected_when_completion_was_expected_fails_with_the_reason() -> None:
    eng, _ = run([ARM], {"ARM": [(0.01, Reply("rejected", "FIRE: not armed"))]})
    assert not eng.ok()
    assert "rejected (expected completed)" in eng.results[0].detail and "not armed" in eng.results[0].detail


def test_command_without_a_final_reply_fails_at_its_timeout() -> None:
    steps = [{"command": {"process": "drv", "cmd": "ARM", "timeout_s": 2.0}}]
    eng, _ = run(steps, {"ARM": [(0.01, Reply("accepted"))]})
    assert not eng.ok()
    assert eng.results[0].detail.startswith("no final reply within 2 s (last reply: accepted)")
    assert eng.results[0].finished_s is not None and eng.results[0].finished_s >= 2.0


def test_result_predicates_are_checked_on_the_final_reply() -> None:
    steps = [{"command": {"process": "drv", "cmd": "FIRE", "result": {"outcome": "partial"}}}]
    eng, _ = run(steps, {"FIRE": OK})
    assert not eng.ok() and "result.outcome" in eng.results[0].detail


def test_background_command_lets_later_steps_run_and_is_judged_when_its_reply_comes() -> None:
    steps = [
        {"command": {"process": "drv", "cmd": "FIRE", "wait": "accepted", "expect": "failed",
                     "reason": {"contains": "partially"}}},
        {"at": 1.0, "inject": {"process": "emu", "fault": "jam", "params": {"angle_deg": 40}}},
    ]
    script = {"FIRE": [(0.01, Reply("accepted")), (5.0, Reply("failed", "partially deployed at 40.0 deg"))],
              "INJECT": [(0.01, Reply("accepted")), (0.01, Reply("completed"))]}
    eng, io = run(steps, script)
    assert eng.ok(), [r.detail for r in eng.results]
    inject = io.sent[1]
    assert inject[1:5] == ("emu", "control", "INJECT", {"fault": "jam", "angle_deg": 40})
    assert inject[0] - io.sent[0][0] >= 1.0  # at its time, long before FIRE's final reply
    assert "final reply at t=5.0" in eng.results[0].detail


def test_clear_fault_uses_the_emulators_clear_command() -> None:
    steps = [{"inject": {"process": "emu", "fault": "clear"}}]
    eng, io = run(steps, {"CLEAR_FAULTS": OK})
    assert eng.ok() and io.sent[0][3:5] == ("CLEAR_FAULTS", {})


def test_expectation_met_by_a_later_message_passes_at_that_time() -> None:
    steps = [{"expect": {"event": "deployment_verdict", "from": "drv", "fields": {"outcome": "partial"},
                         "within_s": 10}}]
    bus = [(1.0, "evt.drv", "evt", {"name": "armed"}),
           (3.0, "evt.drv", "evt", {"name": "deployment_verdict", "outcome": "partial"})]
    eng, _ = run(steps, {}, bus)
    assert eng.ok()
    assert 3.0 <= eng.results[0].finished_s < 3.2
    assert eng.results[0].seen[0]["fields"]["outcome"] == "partial"


def test_expectation_not_met_fails_at_its_timeout_saying_what_was_heard() -> None:
    steps = [{"expect": {"event": "deployment_verdict", "from": "drv", "fields": {"outcome": "partial"},
                         "within_s": 4}}]
    bus = [(1.0, "evt.drv", "evt", {"name": "deployment_verdict", "outcome": "deployed"})]
    eng, _ = run(steps, {}, bus)
    r = eng.results[0]
    assert not eng.ok() and r.ok is False and r.finished_s >= 4.0
    assert "not seen within 4 s" in r.detail and "outcome='deployed'" in r.detail


def test_since_step_ignores_messages_heard_before_the_step_began() -> None:
    steps = [{"wait": 2.0}, {"expect": {"topic": "frame.cam", "since": "step", "within_s": 1}}]
    eng, _ = run(steps, {}, [(0.5, "frame.cam", "frame", {"counter": 1})])
    assert not eng.ok() and eng.results[1].ok is False


def test_absent_expectation_fails_when_the_message_appears() -> None:
    steps = [{"expect": {"event": "command_failed", "from": "drv", "absent": True, "within_s": 5}}]
    bus = [(2.0, "evt.drv", "evt", {"name": "command_failed"})]
    eng, _ = run(steps, {}, bus)
    assert not eng.ok() and "expected none" in eng.results[0].detail
    eng, _ = run(steps, {}, [])
    assert eng.ok()


def test_telemetry_count_expectation_needs_that_many_matching_samples() -> None:
    steps = [{"expect": {"telemetry": "drv", "channel": "angle_deg", "value": {"gt": 10}, "count": 3,
                         "within_s": 10}}]
    bus = [(float(i), "tlm.drv", "deploy", {"angle_deg": 5.0 * i}) for i in range(6)]
    eng, _ = run(steps, {}, bus)
    assert eng.ok() and 5.0 <= eng.results[0].finished_s < 5.2


def test_steps_start_at_their_time_or_after_the_previous_one() -> None:
    steps = [{"at": 2.0, "wait": 1.0}, {"after": 0.5, "wait": 2.0}, {"at": 4.0, "wait": 0.0}]
    eng, _ = run(steps, {})
    starts = [r.started_s for r in eng.results]
    assert 2.0 <= starts[0] < 2.1 and 3.5 <= starts[1] < 3.7
    assert eng.results[2].late_s > 1.0  # its time passed while step 2 waited: runs at once, marked late


def test_scenario_timeout_fails_the_running_step_and_leaves_the_rest_not_run() -> None:
    steps = [{"wait": 50.0}, ARM]
    eng, io = run(steps, {"ARM": OK}, timeout_s=3.0)
    assert eng.timed_out and not eng.ok()
    assert eng.results[0].ok is False and "scenario timeout" in eng.results[0].detail
    assert eng.results[1].started_s is None and io.sent == []
