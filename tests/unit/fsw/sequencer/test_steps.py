"""Sequences as written: every step checked at load (a bad one refuses the whole load, named), and timed
by the contact plan as a simple model of the plan says."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from framework.errors import CommandRejected
from fsw.sequencer.steps import MAX_STEPS, MAX_STEPS_JSON_BYTES, Step, due_time, parse_sequence, pass_end_after
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
    ({"rel": 1, "target": "navcam_driver", "cmd": "NOOP", "args": [1]}, "'args' must be a map"),
    ("NOOP", "must be a map"),
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


@given(ref=st.floats(1e9, 2e9), at=st.floats(0, 1e6), timing=st.sampled_from(["abs", "rel", "pass_end"]))
def test_due_time_is_absolute_relative_or_after_the_pass_end(ref: float, at: float, timing: str) -> None:
    step = Step(timing, at if timing != "abs" else ref + at, "navcam_driver", "NOOP")
    due = due_time(step, ref, PLAN)
    end = pass_end_after(PLAN, ref)
    assert due == {"abs": ref + at, "rel": ref + at, "pass_end": (end or 0) + at}[timing]
    if timing == "pass_end":
        assert end is not None and end > ref and not PLAN.is_open(end + 1e-3)
