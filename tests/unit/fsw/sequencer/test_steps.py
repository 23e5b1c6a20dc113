"""Sequences as written: every step checked at load (a bad one refuses the whole load, named), and timed
by the contact plan as a simple model of the plan says."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from framework.errors import CommandRejected
from fsw.sequencer.steps import (MAX_STEPS, MAX_STEPS_JSON_BYTES, Step, due_time, parse_append, parse_sequence,
                                  pass_end_after)
from link.contacts import ContactPlan, Relay
from tests.unit.fsw.sequencer.helpers import CHECK, rel_step

PLAN = ContactPlan((Relay("a", 100.0, ((10.0, 40.0),), ((0.0, 100.0),), (8e6,), 50.0),), 1.0, 0.0)
EXAMPLE = json.dumps({"late": "run", "steps": [
    {"pass_end": 600, "target": "navcam_driver", "cmd": "CAPTURE_BURST", "args": {"count": 5}},
    {"rel": 30, "target": "imaging", "cmd": "MAKE_LOSSY",
     "args": {"camera": "navcam", "pick": "best", "budget_bytes": 200000}}]})


def test_the_documented_example_loads_with_its_arguments_checked() -> None:
    seq = parse_sequence("best_of_burst", EXAMPLE, CHECK, PLAN)
    assert [(s.timing, s.at_s, s.target, s.cmd) for s in seq.steps] == [
        ("pass_end", 600.0, "navcam_driver", "CAPTURE_BURST"), ("rel", 30.0, "imaging", "MAKE_LOSSY")]
    assert seq.steps[1].args == {"camera": "navcam", "pick": "best", "budget_bytes": 200000}
    assert len(EXAMPLE.encode()) <= 255  # fits one uplinked TC string argument


COMPACT = ('[["p",600,"navcam_driver","CAPTURE_BURST",[5]],'
           '["r",30,"imaging","MAKE_LOSSY",["navcam",null,200000,null,"best"]]]')


def test_the_compact_form_is_the_same_sequence_in_half_the_bytes() -> None:
    """docs/sequences.md's compact example: [timing, offset, target, cmd, args], args in the table's order."""
    long = parse_sequence("s", EXAMPLE, CHECK, PLAN)
    short = parse_sequence("s", COMPACT, CHECK, PLAN)
    assert short.steps == long.steps
    assert len(COMPACT.encode()) < 0.6 * len(json.dumps(json.loads(EXAMPLE), separators=(",", ":")))
    mixed = json.dumps([rel_step(1), ["rel", 2, "navcam_driver", "CAPTURE_BURST", {"count": 3}],
                        ["a", 1.9e9, "navcam_driver", "NOOP"]])
    steps = parse_sequence("s", mixed, CHECK, PLAN).steps
    assert [(x.timing, x.at_s, x.args) for x in steps] == [("rel", 1.0, {"count": 1}), ("rel", 2.0, {"count": 3}),
                                                           ("abs", 1.9e9, {})]


def test_the_documented_compact_example_is_the_compact_form() -> None:
    text = (Path(__file__).parents[4] / "docs" / "sequences.md").read_text()
    assert COMPACT in text.replace("\n", "").replace(" ", "")


def test_an_append_names_its_steps_by_their_place_in_the_sequence_and_guards_against_a_resend() -> None:
    added = parse_append(json.dumps({"at": 3, "steps": [["r", 5, "navcam_driver", "CAPTURE_BURST", [2]]]}), 3,
                         CHECK, PLAN)
    assert [(s.timing, s.at_s, s.args) for s in added] == [("rel", 5.0, {"count": 2})]
    assert parse_append(json.dumps([rel_step(1), rel_step(2)]), 7, CHECK, PLAN)[1].at_s == 2.0
    with pytest.raises(CommandRejected, match=r"^step 4 \(navcam_driver FLY\)"):
        parse_append(json.dumps([rel_step(1), {"rel": 1, "target": "navcam_driver", "cmd": "FLY"}]), 3, CHECK, PLAN)
    with pytest.raises(CommandRejected, match="'at' is 3 but the sequence has 4 steps"):
        parse_append(json.dumps({"at": 3, "steps": [rel_step(1)]}), 4, CHECK, PLAN)
    with pytest.raises(CommandRejected, match="policies are the load's"):
        parse_append(json.dumps({"late": "skip", "steps": [rel_step(1)]}), 1, CHECK, PLAN)
    with pytest.raises(CommandRejected, match="1 to 2 steps"):
        parse_append(json.dumps([rel_step(1)] * 3), MAX_STEPS - 2, CHECK, PLAN)
    with pytest.raises(CommandRejected, match="the most it may hold"):
        parse_append(json.dumps([rel_step(1)]), MAX_STEPS, CHECK, PLAN)
    with pytest.raises(CommandRejected, match="1 to"):
        parse_append("[]", 1, CHECK, PLAN)


@pytest.mark.parametrize("step,words", [
    ({"rel": 1, "target": "nobody", "cmd": "NOOP"}, "no process 'nobody'"),
    ({"rel": 1, "target": "quiet", "cmd": "NOOP"}, "has no command port"),
    ({"rel": 1, "target": "sequencer", "cmd": "SEQ_LIST"}, "cannot command the sequencer"),
    ({"rel": 1, "target": "navcam_driver", "cmd": "CAPTURE_BURST", "args": {"count": 0}}, "'count'=0 is below 1"),
    ({"rel": 1, "target": "navcam_driver", "cmd": "FLY"}, "unknown command 'FLY'"),
    ({"rel": 1, "target": "imaging", "cmd": "MAKE_LOSSY",
      "args": {"camera": "navcam", "budget_bytes": 5000, "pick": "prettiest"}}, "'pick' must be one of"),
    ({"target": "navcam_driver", "cmd": "NOOP"}, "exactly one of"),
    ({"rel": 1, "abs": 5, "target": "navcam_driver", "cmd": "NOOP"}, "exactly one of"),
    ({"rel": -1, "target": "navcam_driver", "cmd": "NOOP"}, "'rel'=-1 is not within"),
    ({"rel": float("nan"), "target": "navcam_driver", "cmd": "NOOP"}, "finite number"),
    ({"rel": 1, "target": "navcam_driver", "cmd": "NOOP", "when": 3}, "unknown key"),
    ({"rel": 1, "target": "navcam_driver", "cmd": "NOOP", "args": "count=1"}, "'args' must be a map"),
    ("NOOP", "must be a map"),
    (["r", 1, "navcam_driver"], "a compact step is"),
    (["x", 1, "navcam_driver", "NOOP"], "compact step's timing"),
    (["r", -1, "navcam_driver", "NOOP"], "'rel'=-1 is not within"),
    (["r", 1, "navcam_driver", "CAPTURE_BURST", [5, 6]], "takes at most 1 argument"),
    (["r", 1, "navcam_driver", "FLY", [5]], "unknown command 'FLY'"),
    (["r", 1, "imaging", "MAKE_LOSSY", ["navcam", None, 200000, None, "prettiest"]], "'pick' must be one of"),
    (["r", 1, "imaging", "MAKE_LOSSY", ["navcam"]], "missing argument 'budget_bytes'"),
])
def test_a_bad_step_refuses_the_whole_load_naming_the_step_and_why(step: Any, words: str) -> None:
    steps = [rel_step(1), rel_step(2), step]
    with pytest.raises(CommandRejected) as err:
        parse_sequence("s", json.dumps(steps), CHECK, PLAN)
    assert str(err.value).startswith("step 2"), err.value
    assert words in str(err.value), err.value


def test_a_hazardous_command_is_never_stored() -> None:
    from drivers.deploy.interface import INTERFACE as DEPLOY_TABLE
    from fsw.sequencer.steps import step_checker

    hazardous = [c.name for c in DEPLOY_TABLE.commands.values() if c.hazardous]
    assert hazardous
    check = step_checker({"deploy": DEPLOY_TABLE}, {"deploy"}, "sequencer")
    with pytest.raises(CommandRejected, match="hazardous"):
        parse_sequence("s", json.dumps([{"rel": 0, "target": "deploy", "cmd": hazardous[0], "args": {}}]), check,
                       PLAN)


@pytest.mark.parametrize("text,words", [
    ("[", "not JSON"), ("5", "list of steps or a map"), ("[]", "1 to"),
    (json.dumps([rel_step(0)] * (MAX_STEPS + 1)), "1 to"),
    (json.dumps({"steps": [rel_step(0)], "late": "maybe"}), "'late' must be one of"),
    (json.dumps({"steps": [rel_step(0)], "on_error": "panic"}), "'on_error' must be one of"),
    (json.dumps({"steps": [rel_step(0)], "repeat": 2}), "unknown key"),
    (" " * (MAX_STEPS_JSON_BYTES + 1), "over"),
    ("[" * 5000 + "]" * 5000, "not JSON"),
])
def test_a_malformed_sequence_is_refused_whole(text: str, words: str) -> None:
    with pytest.raises(CommandRejected, match=words):
        parse_sequence("s", text, CHECK, PLAN)


@pytest.mark.parametrize("name", ["", "a b", "x" * 33, "../etc", "-lead"])
def test_a_sequence_name_is_a_plain_short_word(name: str) -> None:
    with pytest.raises(CommandRejected, match="sequence name"):
        parse_sequence(name, json.dumps([rel_step(0)]), CHECK, PLAN)


def test_pass_end_needs_a_plan_with_passes() -> None:
    always = ContactPlan((Relay("r", 1.0, ((0.0, 1.0),), ((0.0, 1.0),), (8e6,), 50.0),))
    with pytest.raises(CommandRejected, match="pass_end"):
        parse_sequence("s", json.dumps([{"pass_end": 5, "target": "navcam_driver", "cmd": "NOOP"}]), CHECK, always)


# -- timing against a model -------------------------------------------------------------------------
def _model_pass_end(relays: list[tuple[float, list[tuple[int, int]]]], scale: float, epoch: float,
                    t_wall: float) -> float:
    """Every relay's windows laid out in orbit time, joined where they touch or overlap: the end of the one
    holding t, else of the next one."""
    t = (t_wall - epoch) * scale
    spans: list[list[float]] = []
    for period, windows in relays:
        first = math.floor(t / period) - 1
        for k in range(first, first + 4):
            spans += [[k * period + lo, k * period + hi] for lo, hi in windows]
    spans.sort()
    merged: list[list[float]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    end = next(hi for lo, hi in merged if hi > t and (lo <= t or lo > t))
    return end / scale + epoch


@st.composite
def _relays(draw: Any) -> list[tuple[float, list[tuple[int, int]]]]:
    period = draw(st.sampled_from([100, 120]))
    out = []
    for _ in range(draw(st.integers(1, 2))):
        cuts = sorted(draw(st.sets(st.integers(0, period), min_size=2, max_size=6)))
        windows = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2)]
        out.append((float(period), windows))
    return out


@given(relays=_relays(), scale=st.sampled_from([1.0, 10.0, 360.0]), epoch=st.integers(0, 10**9),
       offset=st.floats(0, 1000, allow_nan=False))
def test_pass_end_is_the_end_of_the_open_or_next_contact_as_the_model_says(
        relays: list[tuple[float, list[tuple[int, int]]]], scale: float, epoch: int, offset: float) -> None:
    plan = ContactPlan(tuple(Relay(f"r{i}", p, tuple((float(a), float(b)) for a, b in w), ((0.0, p),), (8e6,), 50.0)
                             for i, (p, w) in enumerate(relays)), scale, float(epoch))
    assume(not plan.always_open)
    t = epoch + offset / scale
    orbit = offset  # the boundaries are whole orbit seconds: keep clear of them
    assume(abs(orbit - round(orbit)) > 1e-3)
    got = pass_end_after(plan, t)
    want = _model_pass_end(relays, scale, float(epoch), t)
    assert got is not None and got == pytest.approx(want, abs=1e-6 * max(1.0, 1 / scale) + 1e-6)


@given(ref=st.floats(1e9, 2e9), at=st.floats(0, 1e6), timing=st.sampled_from(["abs", "rel", "pass_end"]),
       scale=st.sampled_from([1.0, 10.0, 360.0]))
def test_due_time_is_absolute_or_mission_seconds_after_the_reference_or_the_pass_end(
        ref: float, at: float, timing: str, scale: float) -> None:
    """Model, in the plan's orbit (mission) time: rel is due ``at`` mission seconds after the reference,
    pass_end ``at`` mission seconds after the pass ends; abs is a Unix time whatever the scale."""
    plan = ContactPlan(PLAN.relays, scale, 1e9)
    step = Step(timing, at if timing != "abs" else ref + at, "navcam_driver", "NOOP")
    due = due_time(step, ref, plan)
    assert due is not None
    if timing == "abs":
        assert due == ref + at
        return
    orbit = (due - plan.epoch_s) * scale
    end = pass_end_after(plan, ref)
    assert end is not None
    anchor = (ref if timing == "rel" else end) - plan.epoch_s
    assert orbit == pytest.approx(anchor * scale + at, rel=1e-12, abs=1e-6 * scale)
    if timing == "pass_end":
        assert end > ref and not plan.is_open(end + 1e-3 / scale)


def test_a_plan_at_scale_one_keeps_offsets_in_wall_seconds() -> None:
    assert due_time(Step("rel", 600.0, "navcam_driver", "NOOP"), 1e9, PLAN) == 1e9 + 600
    assert due_time(Step("rel", 600.0, "navcam_driver", "NOOP"), 1e9, None) == 1e9 + 600
    fast = ContactPlan(PLAN.relays, 360.0, 0.0)
    assert due_time(Step("rel", 600.0, "navcam_driver", "NOOP"), 1e9, fast) == pytest.approx(1e9 + 600 / 360)
