"""Predicates and expectation matching against a recorded message list (no sockets)."""

from __future__ import annotations

import pytest

from pdh.scenario.expect import (MISSING, Condition, Predicate, Record, Recording, explain, field_value,
                                 find_matches, parse_predicate)


def _pred(spec):
    p, why = parse_predicate(spec)
    assert p is not None, why
    return p


@pytest.mark.parametrize("spec,value,holds", [
    ("partial", "partial", True),
    ("partial", "deployed", False),
    ({"approx": 47, "tol": 3}, 45.2, True),
    ({"approx": 47, "tol": 3}, 50.5, False),
    ({"gt": 80}, 80.5, True),
    ({"gt": 80}, "81", False),
    ({"ge": 1, "lt": 2}, 2, False),
    ({"in": ["deployed", "failed"]}, "failed", True),
    ({"contains": "partially"}, "partially deployed at 40.0 deg", True),
    ({"contains": 3}, [1, 2, 3], True),
    ({"matches": r"^partially .* deg$"}, "partially deployed at 40.0 deg", True),
    ({"exists": True}, MISSING, False),
    ({"exists": False}, MISSING, True),
    ({"ne": 0}, MISSING, False),
])
def test_predicate_holds_as_written(spec, value, holds) -> None:
    assert _pred(spec).holds(value) is holds


@pytest.mark.parametrize("spec", [{}, {"bogus": 1}, {"gt": "x"}, {"tol": 1}, {"in": "abc"}, {"matches": "("},
                                  {"exists": "yes"}])
def test_malformed_predicate_is_refused_with_what_was_expected(spec) -> None:
    p, why = parse_predicate(spec)
    assert p is None and why


def test_dotted_path_reaches_nested_fields_and_missing_is_missing() -> None:
    fields = {"evidence": {"basis": "switch"}}
    assert field_value(fields, "evidence.basis") == "switch"
    assert field_value(fields, "evidence.nope") is MISSING
    assert field_value(fields, "name.x") is MISSING


def _rec(t, topic, kind="evt", **fields):
    return Record(t, topic, topic.split(".", 1)[1], kind, fields)


def _recording(*recs):
    r = Recording()
    for x in recs:
        r.add(x)
    return r


VERDICT = Condition("evt.drv", (("name", Predicate((("eq", "deployment_verdict"),))),
                                ("outcome", Predicate((("eq", "partial"),)))), kind="evt")


def test_event_with_matching_fields_is_found_in_its_window_only() -> None:
    rec = _recording(_rec(1.0, "evt.drv", name="armed"),
                     _rec(2.0, "evt.drv", name="deployment_verdict", outcome="partial"),
                     _rec(2.5, "evt.other", name="deployment_verdict", outcome="partial"))
    assert [m.t for m in find_matches(VERDICT, rec, 0.0, 3.0)] == [2.0]
    assert find_matches(VERDICT, rec, 2.1, 3.0) == []


def test_explain_lists_what_was_heard_and_the_nearest_miss() -> None:
    rec = _recording(_rec(1.0, "evt.drv", name="armed"),
                     _rec(2.0, "evt.drv", name="deployment_verdict", outcome="deployed"))
    text = explain(VERDICT, rec, 0.0, 3.0)
    assert "armed" in text and "deployment_verdict" in text
    assert "outcome='deployed'" in text


def test_explain_names_the_topics_heard_when_the_topic_was_silent() -> None:
    rec = _recording(_rec(1.0, "tlm.cam", kind="health"))
    assert "nothing on evt.drv" in explain(VERDICT, rec, 0.0, 3.0)
    assert "tlm.cam" in explain(VERDICT, rec, 0.0, 3.0)


def test_telemetry_condition_checks_the_channel_and_kind() -> None:
    cond = Condition("tlm.drv", (("angle_deg", Predicate((("gt", 80),))),), kind="deploy")
    rec = _recording(_rec(1.0, "tlm.drv", kind="health", angle_deg=90.0),
                     _rec(2.0, "tlm.drv", kind="deploy", angle_deg=45.0),
                     _rec(3.0, "tlm.drv", kind="deploy", angle_deg=89.9))
    assert [m.t for m in find_matches(cond, rec, 0.0, 9.0)] == [3.0]
