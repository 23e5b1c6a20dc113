"""The sequencer engine: steps at their time, outcomes recorded, and never a step run twice across a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.errors import CommandRejected
from fsw.sequencer.sequences import Dispatch, StateNotWritten
from link.contacts import ContactPlan, Relay
from tests.unit.fsw.sequencer.helpers import T0, Board, rel_step

_TMP = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


def _run(board: Board, start: float, end: float, dt: float = 0.1, reply: bool = True) -> list[tuple[float, Dispatch]]:
    """Tick the engine from ``start`` to ``end``; every step sent is answered at once (``reply``)."""
    sent: list[tuple[float, Dispatch]] = []
    n = 0
    while start + n * dt <= end:
        now = start + n * dt
        got = board.core.poll(now)
        sent += [(now, d) for d in got]
        if reply:
            board.complete_all(got, now)
        n += 1
    return sent


# -- timing -------------------------------------------------------------------------------------------
@_TMP
@given(gaps=st.lists(st.integers(0, 50), min_size=1, max_size=8), abs_at=st.integers(0, 30))
def test_steps_go_at_the_times_a_model_of_rel_and_abs_timing_gives(tmp_path: Path, gaps: list[int],
                                                                    abs_at: int) -> None:
    """Model: a rel step is due its offset after the previous step went (the start for the first); the
    abs step at its time; each goes at the first tick at or after it is due (ticks every 0.125 s), and
    not before the tick after the previous step went (its outcome, answered at once, comes first)."""
    board = Board(tmp_path / f"s{len(list(tmp_path.iterdir()))}.json", late_after_s=1e6)
    steps: list[dict[str, Any]] = [rel_step(g / 8) for g in gaps]  # eighths: exact in binary, as the ticks
    steps.insert(1, {"abs": T0 + abs_at, "target": "navcam_driver", "cmd": "NOOP"})
    board.core.load("s", json.dumps(steps), T0)
    board.core.start("s", T0)
    horizon = abs_at + sum(gaps) / 8 + len(steps)  # every step due within it (each waits at most a tick more)
    sent = _run(board, T0, T0 + horizon, dt=0.125)
    ticks = [round(t * 8) for t, _ in sent]
    want: list[int] = []
    prev = round(T0 * 8)
    for step in steps:
        due = round(step["abs"] * 8) if "abs" in step else prev + round(step["rel"] * 8)
        prev = max(due, prev + 1 if want else prev)  # an abs time already past goes at once
        want.append(prev)
    assert [d.index for _, d in sent] == list(range(len(steps)))
    assert ticks == want


def test_pass_end_step_waits_for_the_end_of_the_contact(tmp_path: Path) -> None:
    plan = ContactPlan((Relay("a", 100.0, ((10.0, 40.0),), ((0.0, 100.0),), (8e6,), 50.0),), 1.0, T0)
    board = Board(tmp_path / "s.json", plan=plan)
    board.core.load("s", json.dumps([{"pass_end": 5, "target": "navcam_driver", "cmd": "NOOP"}, rel_step(2)]), T0)
    board.core.start("s", T0 + 20)  # in contact: the current pass ends at T0 + 40
    sent = _run(board, T0 + 20, T0 + 60)
    assert [round(t - T0, 1) for t, _ in sent] == [45.0, 47.0]


# -- outcomes -----------------------------------------------------------------------------------------
def test_each_outcome_is_an_event_and_counted_and_the_sequence_completes(tmp_path: Path) -> None:
    board = Board(tmp_path / "s.json")
    board.core.load("s", json.dumps([rel_step(0), rel_step(1)]), T0)
    board.core.start("s", T0)
    _run(board, T0, T0 + 3)
    statuses = [(e["step"], e["status"]) for e in board.named("step_result")]
    assert statuses == [(0, "accepted"), (0, "completed"), (1, "accepted"), (1, "completed")]
    assert board.named("seq_completed")[0]["outcomes"] == {"completed": 2}
    assert board.core.records["s"].state == "done"
    sample = board.core.sample(T0 + 3)
    assert sample["steps_dispatched"] == 2 and sample["steps_completed"] == 2 and sample["sequences_running"] == 0


def test_a_rejected_step_stops_the_sequence_unless_it_says_continue(tmp_path: Path) -> None:
    for policy, want_state, want_sent in (("stop", "stopped", 1), ("continue", "done", 2)):
        board = Board(tmp_path / f"{policy}.json")
        board.core.load("s", json.dumps({"on_error": policy, "steps": [rel_step(0), rel_step(1)]}), T0)
        board.core.start("s", T0)
        sent = []
        for k in range(40):
            for d in board.core.poll(T0 + k * 0.1):
                sent.append(d)
                board.core.record(d.sequence, d.run, d.index, "rejected", "camera busy", T0 + k * 0.1)
        assert len(sent) == want_sent and board.core.records["s"].state == want_state
        assert board.core.counters["steps_failed"] == want_sent


def test_the_next_step_waits_for_the_previous_ones_final_outcome(tmp_path: Path) -> None:
    board = Board(tmp_path / "s.json", reply_timeout_s=10)
    board.core.load("s", json.dumps([rel_step(0), rel_step(0)]), T0)
    board.core.start("s", T0)
    first = board.core.poll(T0)
    assert len(first) == 1 and board.core.poll(T0 + 5) == []
    later = board.core.poll(T0 + 10)  # no reply in 10 s: unknown, and the sequence goes on
    assert board.named("step_result")[-1]["status"] == "unknown"
    assert [d.index for d in later] == [1] or [d.index for d in board.core.poll(T0 + 10.1)] == [1]
    assert not board.core.record("s", first[0].run, 0, "completed", "", T0 + 11)  # too late: not this step's now


def test_late_steps_run_at_once_or_are_skipped_as_the_sequence_says(tmp_path: Path) -> None:
    for policy in ("run", "skip"):
        board = Board(tmp_path / f"{policy}.json", late_after_s=5)
        steps = [{"abs": T0 + 10, "target": "navcam_driver", "cmd": "NOOP"}, rel_step(1)]
        board.core.load("s", json.dumps({"late": policy, "steps": steps}), T0)
        board.core.start("s", T0)
        sent = _run(board, T0 + 100, T0 + 102)  # the engine was not looking at T0 + 10
        late = board.named("step_late")
        assert late and late[0]["action"] == policy and late[0]["step"] == 0
        assert [d.index for _, d in sent] == ([0, 1] if policy == "run" else [1])


def test_stop_pauses_and_start_resumes_at_the_next_step_cancel_ends(tmp_path: Path) -> None:
    board = Board(tmp_path / "s.json")
    board.core.load("s", json.dumps([rel_step(0), rel_step(1), rel_step(1)]), T0)
    board.core.start("s", T0)
    board.complete_all(board.core.poll(T0), T0)
    board.core.stop("s", T0 + 0.5)
    assert _run(board, T0 + 0.5, T0 + 10) == []
    board.core.start("s", T0 + 10)
    sent = _run(board, T0 + 10, T0 + 11.5)
    assert [d.index for _, d in sent] == [1]
    board.core.cancel("s", T0 + 11.5)
    assert _run(board, T0 + 11.5, T0 + 20) == []
    listing = board.core.listing()
    assert listing[0]["state"] == "cancelled" and listing[0]["next_step"] == 2
    with pytest.raises(CommandRejected, match="already cancelled"):
        board.core.cancel("s", T0 + 20)


def test_loading_over_a_running_sequence_is_refused_and_unknown_names_are_named(tmp_path: Path) -> None:
    board = Board(tmp_path / "s.json")
    board.core.load("s", json.dumps([rel_step(100)]), T0)
    board.core.start("s", T0)
    with pytest.raises(CommandRejected, match="running"):
        board.core.load("s", json.dumps([rel_step(0)]), T0)
    with pytest.raises(CommandRejected, match="no sequence 'x'"):
        board.core.start("x", T0)
    shown = board.core.show("s")
    assert shown["state"] == "running" and shown["next_t"] == T0 + 100


# -- durability ---------------------------------------------------------------------------------------
def test_a_change_that_cannot_be_made_durable_does_not_happen(tmp_path: Path) -> None:
    board = Board(tmp_path / "s.json")
    board.core.load("s", json.dumps([rel_step(0)]), T0)
    board.core.start("s", T0)

    def refuse(state: dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")

    board.core._persist = refuse
    assert board.core.poll(T0 + 1) == []  # not recorded as dispatched: not sent
    assert board.core.records["s"].pointer == 0 and board.named("state_write_failed")
    with pytest.raises(StateNotWritten):
        board.core.load("t", json.dumps([rel_step(0)]), T0)
    assert "t" not in board.core.records
    board.core._persist = board.file.save
    assert [d.index for d in board.core.poll(T0 + 2)] == [0]


@_TMP
@given(n=st.integers(2, 6), crash_after=st.integers(0, 5), outcome=st.sampled_from([None, "accepted", "completed"]))
def test_after_a_crash_no_dispatched_step_runs_again_and_the_rest_run_once(tmp_path: Path, n: int, crash_after: int,
                                                                           outcome: str | None) -> None:
    """Crash just after step ``crash_after`` was recorded as dispatched, with its outcome recorded or not;
    the reopened state runs every later step exactly once and reports the cut-off step unknown if its
    final outcome was not on disk."""
    crash_after = min(crash_after, n - 1)
    path = tmp_path / f"crash-{n}-{crash_after}-{outcome}.json"
    path.unlink(missing_ok=True)
    board = Board(path)
    board.core.load("s", json.dumps([rel_step(1) for _ in range(n)]), T0)
    board.core.start("s", T0)
    sent: list[Dispatch] = []
    now = T0
    while not sent or sent[-1].index < crash_after:
        now += 0.1
        got = board.core.poll(now)
        sent += got
        for d in got:
            if d.index < crash_after:
                board.complete_all([d], now)
    last = sent[-1]
    if outcome is not None:
        board.core.record("s", last.run, last.index, "accepted", "", now)
        if outcome == "completed":
            board.core.record("s", last.run, last.index, "completed", "", now)
        board.core.poll(now)  # the outcome reaches the disk on the next poll
    # SIGKILL: the old engine is gone; only the file remains
    after = board.reopen(now + 3)
    resent = [d for _, d in _run(after, now + 3, now + 3 + 2 * n)]
    indices = [d.index for d in sent + resent]
    assert sorted(indices) == list(range(n)), indices  # every step once, none twice
    unknown = [e["step"] for e in after.named("step_result") if e["status"] == "unknown"]
    assert unknown == ([] if outcome == "completed" else [crash_after])
    assert after.core.records["s"].state == "done"


def test_an_unreadable_state_file_is_refused_by_restore(tmp_path: Path) -> None:
    from fsw.sequencer.sequences import StateUnreadable

    board = Board(tmp_path / "s.json")
    for bad in ({"version": 99, "sequences": []}, {"version": 1, "sequences": [{"name": "s"}]}, {"version": 1}):
        with pytest.raises(StateUnreadable):
            board.core.restore(bad, T0)


def test_the_state_file_is_replaced_whole_and_reads_back(tmp_path: Path) -> None:
    board = Board(tmp_path / "s.json")
    board.core.load("s", json.dumps([rel_step(3)]), T0)
    assert not (tmp_path / "s.json.tmp").exists()
    again = board.reopen(T0)
    assert again.core.show("s")["steps"] == board.core.show("s")["steps"]
    (tmp_path / "s.json").write_text("{not json")
    with pytest.raises(ValueError, match="does not parse"):
        again.file.load()
    aside = again.file.set_aside()
    assert aside.exists() and not (tmp_path / "s.json").exists()


def test_the_documented_example_on_the_demo_plan_bursts_ten_mission_minutes_after_the_pass_then_picks_the_best(
        tmp_path: Path) -> None:
    """docs/sequences.md: at pass end + 10 min a burst of 5, then MAKE_LOSSY pick=best of 200 kB, on the
    contact plan of configs/demo.yaml (relay_a sees the lander for orbit seconds 0-3000 of 7200, 360x fast):
    the offsets are mission seconds, so the burst goes 600 / 360 wall seconds after the pass ends."""
    import pdh.topology  # noqa: F401  (registers the kinds the config names)
    from framework.config import load_config
    from link.contacts import load_plan

    config = load_config(str(Path(__file__).parents[4] / "configs" / "demo.yaml"))
    plan = load_plan(config.processes["sequencer"])
    assert plan.time_scale == 360.0
    board = Board(tmp_path / "s.json", plan=plan)
    text = (Path(__file__).parents[4] / "docs" / "sequences.md").read_text()
    example = text.split("```json\n", 1)[1].split("```", 1)[0]
    board.core.load("best_of_burst", example, T0)
    start = 7200 / 360 * 1000 + 1.0  # 1 s into relay_a's pass of orbit 1000 (wall time, epoch 0)
    board.core.start("best_of_burst", start)
    pass_end = 7200 / 360 * 1000 + 3000 / 360
    sent = _run(board, start, pass_end + 3, dt=0.01)
    assert [(d.target, d.cmd) for _, d in sent] == [("navcam_driver", "CAPTURE_BURST"), ("imaging", "MAKE_LOSSY")]
    assert (sent[0][0] - pass_end) * 360 == pytest.approx(600, abs=0.01 * 360)  # ten mission minutes
    assert (sent[1][0] - sent[0][0]) * 360 == pytest.approx(30, abs=0.01 * 360)
    assert sent[1][1].args == {"camera": "navcam", "pick": "best", "budget_bytes": 200000}


@_TMP
@given(gaps=st.lists(st.integers(0, 400), min_size=1, max_size=6), scale=st.sampled_from([1, 8, 40]))
def test_rel_offsets_are_mission_seconds_at_the_plans_time_scale(tmp_path: Path, gaps: list[int], scale: int) -> None:
    """Model: each rel step is due its offset / time_scale wall seconds after the previous step went
    (ticks every 1/8 s; offsets multiples of scale/8 mission s, so due times fall on ticks)."""
    plan = ContactPlan((Relay("a", 100.0, ((0.0, 100.0),), ((0.0, 100.0),), (8e6,), 50.0),), float(scale), T0)
    board = Board(tmp_path / f"m{len(list(tmp_path.iterdir()))}.json", plan=plan, late_after_s=1e6)
    board.core.load("s", json.dumps([rel_step(g * scale / 8) for g in gaps]), T0)
    board.core.start("s", T0)
    sent = _run(board, T0, T0 + sum(gaps) / 8 + len(gaps), dt=0.125)
    want, prev = [], 0
    for k, g in enumerate(gaps):
        prev = max(prev + g, prev + 1 if k else 0)  # not before the tick after the previous step went
        want.append(prev)
    assert [round((t - T0) * 8) for t, _ in sent] == want


# -- building a sequence from several commands ------------------------------------------------------
def test_a_long_sequence_is_built_from_a_load_and_appends_and_runs_in_order(tmp_path: Path) -> None:
    board = Board(tmp_path / "s.json")
    board.core.load("long", json.dumps({"on_error": "continue", "steps": [["r", 0, "navcam_driver", "NOOP"]]}), T0,
                    "ops")
    for k in range(1, 10, 3):
        steps = [["r", 1, "navcam_driver", "CAPTURE_BURST", [n]] for n in (k, k + 1, k + 2)]
        text = json.dumps({"at": k, "steps": steps})
        assert len(text) <= 255
        got = board.core.append("long", text, T0, "ops")
        assert got == {"sequence": "long", "first_step": k, "added": 3, "steps": k + 3, "state": "loaded"}
    assert [e["first_step"] for e in board.named("seq_appended")] == [1, 4, 7]
    again = board.reopen(T0)  # durable: the appended steps are in the file
    assert len(again.core.show("long")["steps"]) == 10 and again.core.records["long"].operator == "ops"
    again.core.start("long", T0)
    sent = [d for _, d in _run(again, T0, T0 + 20)]
    assert [d.index for d in sent] == list(range(10))
    assert [d.args.get("count") for d in sent] == [None, *range(1, 10)]
    assert {d.operator for d in sent} == {"ops"}


def test_an_append_is_refused_whole_and_only_where_it_is_safe(tmp_path: Path) -> None:
    board = Board(tmp_path / "s.json")
    board.core.load("s", json.dumps([rel_step(0), rel_step(100)]), T0, "ops")
    with pytest.raises(CommandRejected, match=r"^step 3 \(navcam_driver CAPTURE_BURST\).*'count'=0"):
        board.core.append("s", json.dumps([rel_step(1), rel_step(1, count=0)]), T0, "ops")
    with pytest.raises(CommandRejected, match="loaded by 'ops'"):
        board.core.append("s", json.dumps([rel_step(1)]), T0, "someone")
    with pytest.raises(CommandRejected, match="no sequence 'x'"):
        board.core.append("x", json.dumps([rel_step(1)]), T0, "ops")
    assert len(board.core.records["s"].seq.steps) == 2 and not board.named("seq_appended")
    board.core.start("s", T0)
    with pytest.raises(CommandRejected, match="running.*stop it first"):
        board.core.append("s", json.dumps([rel_step(1)]), T0, "ops")
    board.complete_all(board.core.poll(T0), T0)
    board.core.stop("s", T0 + 1)
    board.core.append("s", json.dumps({"at": 2, "steps": [rel_step(1, count=7)]}), T0 + 1, "ops")
    with pytest.raises(CommandRejected, match="'at' is 2 but the sequence has 3 steps"):  # the same append again
        board.core.append("s", json.dumps({"at": 2, "steps": [rel_step(1, count=7)]}), T0 + 1, "ops")
    board.core.start("s", T0 + 2)  # resumes at step 1; the appended step 2 runs after it
    sent = [d for _, d in _run(board, T0 + 2, T0 + 110)]
    assert [(d.index, d.args["count"]) for d in sent] == [(1, 1), (2, 7)]
    assert board.core.records["s"].state == "done"
    with pytest.raises(CommandRejected, match="done.*load it again"):
        board.core.append("s", json.dumps([rel_step(1)]), T0 + 110, "ops")


def test_an_append_that_cannot_be_made_durable_does_not_happen(tmp_path: Path) -> None:
    board = Board(tmp_path / "s.json")
    board.core.load("s", json.dumps([rel_step(0)]), T0)

    def refuse(state: dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")

    board.core._persist = refuse
    with pytest.raises(StateNotWritten):
        board.core.append("s", json.dumps([rel_step(1)]), T0)
    rec = board.core.records["s"]
    assert len(rec.seq.steps) == 1 and len(rec.results) == 1
    assert len(board.reopen(T0).core.records["s"].seq.steps) == 1
