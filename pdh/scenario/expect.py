"""Expectations against recorded bus messages. Pure: no sockets, no clock.

A :class:`Condition` selects messages by topic (``evt.<process>``, ``tlm.<process>``,
``frame.<camera>``, ...) and requires some of their fields to satisfy a
:class:`Predicate`. :class:`Recording` holds what the runner heard on the bus,
indexed by topic, each message stamped with the runner's clock when it arrived.
:func:`find_matches` and :func:`explain` answer "did it happen, and if not, what
did happen instead" for the report.

Predicates, as written in a scenario file (a plain value means ``eq``)::

    outcome: partial                    # equal
    angle_deg: {approx: 47, tol: 3}     # |x - 47| <= 3
    angle_deg: {gt: 80}                 # also ge, lt, le, ne
    reason: {contains: "partially"}     # substring (strings) or member (lists)
    state: {in: [deployed, failed]}
    text: {matches: "^partially .* deg$"}
    evidence: {exists: true}
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OPS", "Predicate", "Condition", "Record", "Recording", "find_matches", "explain", "parse_predicate",
           "field_value", "MISSING"]

OPS = ("eq", "ne", "gt", "ge", "lt", "le", "approx", "tol", "in", "contains", "matches", "exists")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@dataclass(frozen=True)
class Predicate:
    """Every (op, operand) pair must hold."""

    terms: tuple[tuple[str, Any], ...]

    def holds(self, value: Any) -> bool:
        return all(self._term(op, arg, value) for op, arg in self.terms if op != "tol")

    def _term(self, op: str, arg: Any, value: Any) -> bool:
        if op == "exists":
            return (value is not MISSING) == bool(arg)
        if value is MISSING:
            return False
        if op == "eq":
            return value == arg
        if op == "ne":
            return value != arg
        if op in ("gt", "ge", "lt", "le"):
            if not _num(value):
                return False
            return {"gt": value > arg, "ge": value >= arg, "lt": value < arg, "le": value <= arg}[op]
        if op == "approx":
            tol = dict(self.terms).get("tol", 1e-6)
            return _num(value) and math.isfinite(value) and abs(value - arg) <= tol
        if op == "in":
            return value in arg
        if op == "contains":
            if isinstance(value, str):
                return isinstance(arg, str) and arg in value
            return isinstance(value, (list, tuple, dict)) and arg in value
        if op == "matches":
            return isinstance(value, str) and re.search(arg, value) is not None
        raise AssertionError(f"unknown op {op}")  # parse_predicate admits only OPS

    def describe(self) -> str:
        if len(self.terms) == 1 and self.terms[0][0] == "eq":
            return repr(self.terms[0][1])
        return "{" + ", ".join(f"{op}: {arg!r}" for op, arg in self.terms) + "}"


def parse_predicate(spec: Any) -> tuple[Predicate | None, str]:
    """A predicate from its scenario-file form; on error (None, what was expected)."""
    if not isinstance(spec, dict):
        return Predicate((("eq", spec),)), ""
    if not spec:
        return None, f"a value, or a mapping of operators {list(OPS)}"
    unknown = sorted(set(spec) - set(OPS))
    if unknown:
        return None, f"operators among {list(OPS)} (unknown: {unknown})"
    for op in ("gt", "ge", "lt", "le", "approx", "tol"):
        if op in spec and not _num(spec[op]):
            return None, f"a number for '{op}'"
    if "tol" in spec and "approx" not in spec:
        return None, "'tol' only together with 'approx'"
    if "in" in spec and not isinstance(spec["in"], list):
        return None, "a list for 'in'"
    if "matches" in spec:
        if not isinstance(spec["matches"], str):
            return None, "a regular expression string for 'matches'"
        try:
            re.compile(spec["matches"])
        except re.error as exc:
            return None, f"a valid regular expression for 'matches' ({exc})"
    if "exists" in spec and not isinstance(spec["exists"], bool):
        return None, "true or false for 'exists'"
    return Predicate(tuple(spec.items())), ""


def field_value(fields: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (``evidence.basis``), or MISSING."""
    value: Any = fields
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


@dataclass(frozen=True)
class Condition:
    """Messages on ``topic`` (and of ``kind``, if given) whose fields satisfy every predicate."""

    topic: str
    fields: tuple[tuple[str, Predicate], ...] = ()
    kind: str | None = None
    label: str = ""

    def matches(self, rec: "Record") -> bool:
        if rec.topic != self.topic or (self.kind is not None and rec.kind != self.kind):
            return False
        return all(p.holds(field_value(rec.fields, path)) for path, p in self.fields)

    def describe(self) -> str:
        if self.label:
            return self.label
        where = ", ".join(f"{k}: {p.describe()}" for k, p in self.fields)
        return f"{self.topic}" + (f" {{{where}}}" if where else "")


@dataclass(frozen=True)
class Record:
    """One bus message as the runner heard it: its arrival time (runner clock), topic and header."""

    t: float
    topic: str
    src: str
    kind: str
    fields: dict[str, Any]


@dataclass
class Recording:
    """Every message heard, in arrival order, indexed by topic."""

    records: list[Record] = field(default_factory=list)
    by_topic: dict[str, list[Record]] = field(default_factory=dict)

    def add(self, rec: Record) -> None:
        self.records.append(rec)
        self.by_topic.setdefault(rec.topic, []).append(rec)

    def on_topic(self, topic: str, t_from: float, t_to: float) -> list[Record]:
        return [r for r in self.by_topic.get(topic, ()) if t_from <= r.t <= t_to]


def find_matches(cond: Condition, rec: Recording, t_from: float, t_to: float) -> list[Record]:
    """Messages heard in [t_from, t_to] that satisfy ``cond``."""
    return [r for r in rec.on_topic(cond.topic, t_from, t_to) if cond.matches(r)]


def _summary(r: Record) -> str:
    if r.kind == "evt":
        return str(r.fields.get("name", "?"))
    return r.kind


def explain(cond: Condition, rec: Recording, t_from: float, t_to: float, limit: int = 12, t0: float = 0.0) -> str:
    """What was heard on the condition's topic instead: counts, names, and the nearest miss (times from ``t0``)."""
    heard = rec.on_topic(cond.topic, t_from, t_to)
    if not heard:
        topics = sorted(rec.by_topic)
        return f"nothing on {cond.topic} (topics heard: {topics[:12]}{' ...' if len(topics) > 12 else ''})"
    names: dict[str, int] = {}
    for r in heard:
        names[_summary(r)] = names.get(_summary(r), 0) + 1
    parts = [f"{len(heard)} on {cond.topic}: " + ", ".join(f"{n} x{c}" if c > 1 else n
                                                           for n, c in list(names.items())[:limit])]
    near = _nearest_miss(cond, heard)
    if near is not None:
        r, path, value = near
        parts.append(f"last near miss at t={r.t - t0:.2f} s: {path}={value!r}")
    return "; ".join(parts)


def _nearest_miss(cond: Condition, heard: list[Record]) -> tuple[Record, str, Any] | None:
    """The latest message failing the fewest predicates, with the first predicate it fails.

    The first predicate is the selector (an event's name): messages failing it are no near miss.
    """
    best: tuple[int, Record, str, Any] | None = None
    for r in reversed(heard):
        if cond.kind is not None and r.kind != cond.kind:
            continue
        failing = [(i, path, field_value(r.fields, path)) for i, (path, p) in enumerate(cond.fields)
                   if not p.holds(field_value(r.fields, path))]
        if not failing or (failing[0][0] == 0 and len(cond.fields) > 1):
            continue
        if best is None or len(failing) < best[0]:
            best = (len(failing), r, failing[0][1], failing[0][2])
    return None if best is None else (best[1], best[2], best[3])
