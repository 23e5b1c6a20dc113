"""The stored-command engine, free of sockets and files: sequences in, steps to dispatch out, at their time.

:class:`Sequencer` holds the loaded sequences and their progress. The process
adapter (:mod:`fsw.sequencer.process`) feeds it commands (load, append, start,
stop, cancel), the wall clock (:meth:`Sequencer.poll`) and the replies of the targets
(:meth:`Sequencer.record`), and sends the :class:`Dispatch` es it hands back.

Crash safety is the point of its shape. Every change is handed to ``persist``
(the state file: written, fsync'd, renamed, directory fsync'd) *before* it takes
effect: a load, an append or a start is answered only once it is durable, and a step is
recorded as dispatched, with the step pointer past it, before it is handed out
to be sent. A change that cannot be made durable does not happen (the command is
rejected; the step is not sent and is tried again on the next poll). So after a
SIGKILL the state file says, for each step, that it was never sent, or that it
was (and perhaps its outcome); :meth:`Sequencer.restore` reports a step sent
whose final outcome was not recorded as ``unknown`` and never sends it again:
a step runs at most once, whatever happens to the process.

Replies are recorded as they come (accepted, then completed or failed; or
rejected); a step with no final reply within ``reply_timeout_s`` becomes
``unknown``. The next step of a sequence goes only once the previous one has its
final outcome, so the order of effects is the order of the steps.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from framework.errors import CommandRejected
from fsw.sequencer.records import (ERRORS, FINAL, STATES, Dispatch, Record, StateUnreadable, StepResult,
                                   record_from_json)
from fsw.sequencer.steps import StepCheck, check_name, due_time, parse_append, parse_sequence
from link.contacts import ContactPlan

__all__ = ["Sequencer", "Dispatch", "StepResult", "Record", "StateNotWritten", "StateUnreadable", "STATES",
           "FINAL", "ERRORS", "STATE_VERSION", "APPENDABLE"]

STATE_VERSION = 1
APPENDABLE = ("loaded", "stopped")
"""States in which SEQ_APPEND adds steps (not while running; a done or cancelled one is loaded again)."""
_REASON_CHARS = 200

Persist = Callable[[dict[str, Any]], None]  # raises OSError when the state could not be made durable
Emit = Callable[..., object]  # an EventReporter's emit: (name, fields, severity=None)


class StateNotWritten(CommandRejected):
    """The state file could not be written: the change was not made (a command is rejected with this)."""


class Sequencer:
    """The loaded sequences, their timing and their outcomes; see the module docstring.

    ``check``: a step's target and arguments (at load, and again just before it is sent, in case the
    config changed across a restart). ``plan``: the contact plan for ``pass_end`` steps. ``persist``:
    makes the state durable or raises OSError. ``emit``: events. ``late_after_s``: a step reached more
    than this after its time is late (its sequence's ``late`` policy runs or skips it, with an event).
    """

    def __init__(self, check: StepCheck, plan: ContactPlan | None, persist: Persist, emit: Emit,
                 late_after_s: float = 5.0, reply_timeout_s: float = 60.0, max_sequences: int = 16) -> None:
        self._check, self._plan, self._persist, self._emit = check, plan, persist, emit
        self.late_after_s, self.reply_timeout_s, self.max_sequences = late_after_s, reply_timeout_s, max_sequences
        self.records: dict[str, Record] = {}
        self._dirty = False  # a recorded outcome not yet durable (written again on the next poll)
        self.counters = dict(steps_dispatched=0, steps_completed=0, steps_failed=0, steps_skipped=0,
                             steps_unknown=0, state_writes=0, state_write_errors=0)

    # -- the state file ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "sequences": [r.to_json() for r in self.records.values()]}

    def restore(self, data: dict[str, Any], now: float) -> None:
        """Take the state a previous life wrote. A step it dispatched whose final outcome it did not record
        becomes ``unknown`` (reported, never sent again); running sequences go on from the next step."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION or not isinstance(
                data.get("sequences"), list):
            raise StateUnreadable(f"not a sequencer state of version {STATE_VERSION}")
        records = [record_from_json(r) for r in data["sequences"]]
        self.records = {r.seq.name: r for r in records}
        for rec in records:
            i = rec.outstanding()
            if i is not None:
                self._finish(rec, i, "unknown", f"{rec.results[i].status} before a restart; its outcome was "
                                                 "not recorded (not sent again)", now)
            if rec.state == "running":
                self._emit("seq_resumed", {"sequence": rec.seq.name, "next_step": rec.pointer,
                                           "steps": len(rec.seq.steps)})
        self._flush()

    def _write(self) -> None:
        try:
            self._persist(self.to_json())
        except OSError as exc:
            self.counters["state_write_errors"] += 1
            raise StateNotWritten(f"the sequencer state could not be written: {exc}") from None
        self.counters["state_writes"] += 1
        self._dirty = False

    def _change(self, mutate: Callable[[], None]) -> None:
        """Make a change durable before it counts: on a write failure the state is as it was, and
        StateNotWritten says so."""
        before = self.to_json()
        mutate()
        try:
            self._write()
        except StateNotWritten:
            self.records = {r.seq.name: r for r in (record_from_json(x) for x in before["sequences"])}
            raise

    def _flush(self) -> None:
        """Write the outcomes recorded since the last write, if any (best effort: retried next poll)."""
        if not self._dirty:
            return
        try:
            self._write()
        except StateNotWritten as exc:
            self._emit("state_write_failed", {"reason": str(exc)[:_REASON_CHARS]})

    # -- commands ------------------------------------------------------------------------------
    def _get(self, name: str) -> Record:
        rec = self.records.get(check_name(name))
        if rec is None:
            raise CommandRejected(f"no sequence '{name}'; loaded: {sorted(self.records)}")
        return rec

    def load(self, name: str, steps_json: str, now: float, operator: str = "sequencer") -> dict[str, Any]:
        """Load (or replace) a sequence; every step checked first, the whole load refused if one is wrong.
        ``operator``: who loads it; its steps are sent on their behalf."""
        seq = parse_sequence(name, steps_json, self._check, self._plan)
        old = self.records.get(name)
        if old is not None and (old.state == "running" or old.outstanding() is not None):
            raise CommandRejected(f"sequence '{name}' is {old.state}: cancel it before loading it again")
        evict = None
        if old is None and len(self.records) >= self.max_sequences:
            evict = next((r.seq.name for r in self.records.values() if r.state in ("done", "cancelled")
                          and r.outstanding() is None), None)
            if evict is None:
                raise CommandRejected(f"{self.max_sequences} sequences are loaded and none is done or cancelled")

        def mutate() -> None:
            if evict is not None:
                del self.records[evict]
            self.records[name] = Record(seq, now, operator or "sequencer", results=[StepResult() for _ in seq.steps])

        self._change(mutate)
        self._emit("seq_loaded", {"sequence": name, "steps": len(seq.steps), "operator": operator, "late": seq.late,
                                  "on_error": seq.on_error, "replaced": old is not None, "evicted": evict})
        return {"sequence": name, "steps": len(seq.steps), "state": "loaded"}

    def append(self, name: str, steps_json: str, now: float, operator: str = "sequencer") -> dict[str, Any]:
        """Add steps to the end of a sequence that is loaded or stopped, for whoever loaded it only; every
        new step checked first, the whole append refused if one is wrong (named by its index in the
        sequence), and answered only once durable, like a load."""
        rec = self._get(name)
        if rec.state not in APPENDABLE:
            hint = "stop it first" if rec.state == "running" else "load it again"
            raise CommandRejected(f"sequence '{name}' is {rec.state}: steps are appended to a sequence "
                                  f"{' or '.join(APPENDABLE)} ({hint})")
        if (operator or "sequencer") != rec.operator:
            raise CommandRejected(f"sequence '{name}' was loaded by '{rec.operator}': only they append to it "
                                  "(its steps act for them)")
        first = len(rec.seq.steps)
        added = parse_append(steps_json, first, self._check, self._plan)

        def mutate() -> None:
            rec.seq = dataclasses.replace(rec.seq, steps=rec.seq.steps + added)
            rec.results += [StepResult() for _ in added]

        self._change(mutate)
        self._emit("seq_appended", {"sequence": name, "first_step": first, "added": len(added),
                                    "steps": len(rec.seq.steps), "state": rec.state})
        return {"sequence": name, "first_step": first, "added": len(added), "steps": len(rec.seq.steps),
                "state": rec.state}

    def start(self, name: str, now: float) -> dict[str, Any]:
        """Start a sequence from its first step, or resume a stopped one at its next step (its relative
        timing counting from now)."""
        rec = self._get(name)
        if rec.state == "running":
            raise CommandRejected(f"sequence '{name}' is already running")
        if rec.state != "stopped" and rec.outstanding() is not None:
            raise CommandRejected(f"sequence '{name}' still waits for step {rec.outstanding()}'s outcome")
        resume = rec.state == "stopped"

        def mutate() -> None:
            if not resume:
                rec.run += 1
                rec.pointer = 0
                rec.results = [StepResult() for _ in rec.seq.steps]
            rec.state, rec.ref_t = "running", now

        self._change(mutate)
        self._emit("seq_started", {"sequence": name, "next_step": rec.pointer, "resumed": resume, "run": rec.run})
        return {"sequence": name, "state": "running", "next_step": rec.pointer}

    def stop(self, name: str, now: float) -> dict[str, Any]:
        """Pause a running sequence (SEQ_START resumes it); a step already sent still reports its outcome."""
        rec = self._get(name)
        if rec.state != "running":
            raise CommandRejected(f"sequence '{name}' is {rec.state}, not running")
        self._change(lambda: setattr(rec, "state", "stopped"))
        self._emit("seq_stopped", {"sequence": name, "next_step": rec.pointer, "reason": "operator"})
        return {"sequence": name, "state": "stopped", "next_step": rec.pointer}

    def cancel(self, name: str, now: float) -> dict[str, Any]:
        rec = self._get(name)
        if rec.state in ("done", "cancelled"):
            raise CommandRejected(f"sequence '{name}' is already {rec.state}")
        self._change(lambda: setattr(rec, "state", "cancelled"))
        self._emit("seq_cancelled", {"sequence": name, "next_step": rec.pointer})
        return {"sequence": name, "state": "cancelled", "next_step": rec.pointer}

    def next_due(self, rec: Record) -> float | None:
        """When the next step of a running sequence is due (None: not running, waiting, or at the end)."""
        if rec.state != "running" or rec.pointer >= len(rec.seq.steps) or rec.ref_t is None:
            return None
        return due_time(rec.seq.steps[rec.pointer], rec.ref_t, self._plan)

    def listing(self) -> list[dict[str, Any]]:
        return [{"sequence": r.seq.name, "state": r.state, "steps": len(r.seq.steps),
                 "next_step": r.pointer if r.pointer < len(r.seq.steps) else None, "next_t": self.next_due(r),
                 "late": r.seq.late, "on_error": r.seq.on_error} for r in self.records.values()]

    def show(self, name: str) -> dict[str, Any]:
        rec = self._get(name)
        return {**rec.to_json(), "next_t": self.next_due(rec)}

    # -- time ----------------------------------------------------------------------------------
    def poll(self, now: float) -> list[Dispatch]:
        """Everything due at ``now``: steps to send (each already durable as dispatched), late and
        skipped steps reported, reply timeouts expired, finished sequences closed."""
        self._flush()
        out: list[Dispatch] = []
        for rec in list(self.records.values()):
            i = rec.outstanding()
            if i is not None:
                sent = rec.results[i].dispatched_t or now
                if now - sent >= self.reply_timeout_s:
                    self._finish(rec, i, "unknown", f"no final reply within {self.reply_timeout_s:g} s", now)
                continue
            if rec.state != "running":
                continue
            try:
                got = self._advance(rec, now)
            except StateNotWritten as exc:
                self._emit("state_write_failed", {"sequence": rec.seq.name, "reason": str(exc)[:_REASON_CHARS]})
                continue
            if got is not None:
                out.append(got)
        self._flush()
        return out

    def _advance(self, rec: Record, now: float) -> Dispatch | None:
        """The running sequence's next step if it is due: dispatched (durably) or skipped or ended."""
        name, i = rec.seq.name, rec.pointer
        if i >= len(rec.seq.steps):
            self._change(lambda: setattr(rec, "state", "done"))
            self._emit("seq_completed", {"sequence": name, "outcomes": rec.outcomes()})
            return None
        step = rec.seq.steps[i]
        due = due_time(step, rec.ref_t if rec.ref_t is not None else now, self._plan)
        if due is None:
            self._settle(rec, i, "failed", "no contact ahead in the contact plan", now)
            return None
        if now < due:
            return None
        late_s = now - due
        if late_s > self.late_after_s and rec.seq.late == "skip":
            self._settle(rec, i, "skipped", f"late by {late_s:.1f} s (late: skip)", now)
            self._emit("step_late", {"sequence": name, "step": i, "due_t": due, "late_s": round(late_s, 3),
                                     "action": "skip"})
            return None
        try:
            args = self._check(step.target, step.cmd, step.args)
        except CommandRejected as exc:
            self._settle(rec, i, "rejected", f"no longer valid: {exc}", now)
            return None

        def mutate() -> None:
            rec.results[i] = StepResult("dispatched", "", now, None)
            rec.pointer, rec.ref_t = i + 1, now

        self._change(mutate)
        self.counters["steps_dispatched"] += 1
        if late_s > self.late_after_s:
            self._emit("step_late", {"sequence": name, "step": i, "due_t": due, "late_s": round(late_s, 3),
                                     "action": "run"})
        self._emit("step_dispatched", {"sequence": name, "step": i, "target": step.target, "cmd": step.cmd})
        return Dispatch(name, rec.run, i, step.target, step.cmd, args, rec.operator)

    def _settle(self, rec: Record, i: int, status: str, reason: str, now: float) -> None:
        """A step that is not sent (skipped, or refused on board): past it, durably, with its outcome."""
        stopped = False

        def mutate() -> None:
            nonlocal stopped
            rec.results[i] = StepResult(status, reason[:_REASON_CHARS], None, now)
            rec.pointer, rec.ref_t = i + 1, now
            stopped = self._stop_on_error(rec, status)

        self._change(mutate)
        self._report(rec, i, status, reason, stopped)

    # -- outcomes ------------------------------------------------------------------------------
    def record(self, name: str, run: int, index: int, status: str, reason: str, now: float) -> bool:
        """A target's reply (accepted, rejected, completed, failed) or ``not_sent`` for a step this engine
        dispatched; False if it is not one of a step still waiting (a late reply, an earlier run's)."""
        rec = self.records.get(name)
        if rec is None or rec.run != run or rec.outstanding() != index:
            return False
        if status == "accepted":
            if rec.results[index].status != "dispatched":
                return False
            rec.results[index].status = "accepted"
            self._dirty = True
            self._flush()
            self._emit("step_result", {"sequence": name, "step": index, "target": rec.seq.steps[index].target,
                                       "cmd": rec.seq.steps[index].cmd, "status": status, "reason": ""})
            return True
        self._finish(rec, index, status, reason, now)
        return True

    def _finish(self, rec: Record, i: int, status: str, reason: str, now: float) -> None:
        """A sent step's final outcome: recorded, written (before it is reported), then reported."""
        r = rec.results[i]
        r.status, r.reason, r.finished_t = status, reason[:_REASON_CHARS], now
        stopped = self._stop_on_error(rec, status)
        self._dirty = True
        self._flush()
        self._report(rec, i, status, reason, stopped)

    @staticmethod
    def _stop_on_error(rec: Record, status: str) -> bool:
        """Stop a running sequence at an error outcome if its ``on_error`` says so; True if it did."""
        if status in ERRORS and rec.seq.on_error == "stop" and rec.state == "running":
            rec.state = "stopped"
            return True
        return False

    def _report(self, rec: Record, i: int, status: str, reason: str, stopped: bool) -> None:
        """Count and report a step's final outcome (and the stop it caused)."""
        key = {"completed": "steps_completed", "skipped": "steps_skipped", "unknown": "steps_unknown"}.get(
            status, "steps_failed")
        self.counters[key] += 1
        step = rec.seq.steps[i]
        self._emit("step_result", {"sequence": rec.seq.name, "step": i, "target": step.target, "cmd": step.cmd,
                                   "status": status, "reason": reason[:_REASON_CHARS]},
                   severity="info" if status in ("completed", "skipped") else "warning")
        if stopped:
            self._emit("seq_stopped", {"sequence": rec.seq.name, "next_step": rec.pointer,
                                       "reason": f"step {i} {status}"})

    # -- telemetry -----------------------------------------------------------------------------
    def wait_s(self, now: float) -> float:
        """Seconds until something is due (a step, a reply timeout), for the loop's poll; inf if nothing."""
        times = [d for r in self.records.values() if r.outstanding() is None and (d := self.next_due(r)) is not None]
        times += [(r.results[i].dispatched_t or now) + self.reply_timeout_s
                  for r in self.records.values() if (i := r.outstanding()) is not None]
        return max(0.0, min(times) - now) if times else math.inf

    def sample(self, now: float) -> dict[str, Any]:
        running = [r for r in self.records.values() if r.state == "running"]
        nxt = [d for r in running if r.outstanding() is None and (d := self.next_due(r)) is not None]
        out: dict[str, Any] = dict(self.counters, sequences_loaded=len(self.records),
                                   sequences_running=len(running))
        if nxt:
            out["next_step_in_s"] = round(max(0.0, min(nxt) - now), 3)
        return out
