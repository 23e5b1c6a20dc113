"""A loaded sequence's progress as data, and how it is written to and read from the state file. Pure.

:class:`Record` is one sequence and how far it has got (state, step pointer,
each step's :class:`StepResult`); :class:`Dispatch` is one step handed to the
process to send. :meth:`Record.to_json` and :func:`record_from_json` are the
state file's format (:mod:`fsw.sequencer.statefile` writes it whole): a record
that does not read back exactly is :class:`StateUnreadable`, never half taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from framework.errors import CommandRejected
from fsw.sequencer.steps import TIMINGS, Sequence, Step, check_name

__all__ = ["Dispatch", "StepResult", "Record", "StateUnreadable", "record_from_json", "STATES", "OUTSTANDING",
           "FINAL", "ERRORS"]

STATES = ("loaded", "running", "stopped", "done", "cancelled")
OUTSTANDING = ("dispatched", "accepted")
FINAL = ("completed", "rejected", "failed", "not_sent", "unknown", "skipped")
ERRORS = ("rejected", "failed", "not_sent")
"""Final outcomes that stop a sequence whose ``on_error`` is ``stop`` (unknown does not: it may have acted)."""


class StateUnreadable(ValueError):
    """The state file does not hold a sequencer state this version reads."""


@dataclass(frozen=True)
class Dispatch:
    """One step to send now (already recorded as dispatched): where, what, and whose step it is."""

    sequence: str
    run: int  # which start of the sequence: a reply to an earlier run is not this step's
    index: int
    target: str
    cmd: str
    args: dict[str, Any]
    operator: str  # who loaded the sequence: the step acts for them


@dataclass
class StepResult:
    status: str = "pending"  # pending, dispatched, accepted, or one of FINAL
    reason: str = ""
    dispatched_t: float | None = None
    finished_t: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "dispatched_t": self.dispatched_t,
                "finished_t": self.finished_t}


@dataclass
class Record:
    """A loaded sequence and how far it has got."""

    seq: Sequence
    loaded_t: float
    operator: str = "sequencer"  # who loaded it (the command port's client identity), or the sequencer
    state: str = "loaded"
    run: int = 0
    pointer: int = 0  # the next step to consider; every step before it was dispatched or skipped
    ref_t: float | None = None  # the reference of the next step's timing: the start or the last dispatch
    results: list[StepResult] = field(default_factory=list)

    def outstanding(self) -> int | None:
        """The step sent and still waiting for its final outcome, if any."""
        i = self.pointer - 1
        return i if i >= 0 and self.results[i].status in OUTSTANDING else None

    def outcomes(self) -> dict[str, int]:
        """How many steps have each status."""
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {**self.seq.to_json(), "loaded_t": self.loaded_t, "operator": self.operator, "state": self.state,
                "run": self.run, "pointer": self.pointer, "ref_t": self.ref_t,
                "results": [r.to_json() for r in self.results]}


def record_from_json(raw: Any) -> Record:
    """One record as :meth:`Record.to_json` wrote it; StateUnreadable for anything else."""
    try:
        steps = []
        for s in raw["steps"]:
            timing = next(t for t in TIMINGS if t in s)
            steps.append(Step(timing, float(s[timing]), str(s["target"]), str(s["cmd"]), dict(s["args"])))
        seq = Sequence(check_name(raw["name"]), tuple(steps), str(raw["late"]), str(raw["on_error"]))
        results = [StepResult(str(r["status"]), str(r["reason"]), r["dispatched_t"], r["finished_t"])
                   for r in raw["results"]]
        rec = Record(seq, float(raw["loaded_t"]), str(raw["operator"]), str(raw["state"]), int(raw["run"]),
                     int(raw["pointer"]), None if raw["ref_t"] is None else float(raw["ref_t"]), results)
    except (KeyError, TypeError, ValueError, StopIteration, CommandRejected) as exc:
        raise StateUnreadable(f"a sequence record is malformed: {type(exc).__name__}: {exc}") from None
    if rec.state not in STATES or len(results) != len(steps) or not 0 <= rec.pointer <= len(steps):
        raise StateUnreadable(f"sequence {seq.name}: state, results or pointer out of range")
    return rec
