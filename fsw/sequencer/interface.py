"""The sequencer's interface, as data: commands, events, telemetry channels (format: :mod:`framework.interface`).

Stored command sequences (cFS SC, F' CmdSequencer): loaded (and appended to), started, stopped,
cancelled, listed and shown by command; each step's outcome is a ``step_result``
event and counted in health. The sequence format and timing: :mod:`fsw.sequencer.steps`
and docs/sequences.md.
"""

from __future__ import annotations

from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from framework.kinds import Field, KindSpec
from link.contacts import CONTACT_PLAN_KEYS

__all__ = ["KIND", "INTERFACE", "COMMANDS", "EVENTS", "TELEMETRY"]

_NAME = Arg("name", str)  # a sequence name: letters, digits, '_' and '-', up to 32 (checked by the handler)

INTERFACE = Interface.build(
    "sequencer",
    commands=(
        CommandSpec(0x0B10, "SEQ_LOAD", (_NAME, Arg("steps_json", str)),
                    doc="load (or replace) a sequence: steps_json is a list of steps or {late, on_error, steps} "
                        "(docs/sequences.md; a step as a map or compact [timing, offset, target, cmd, args]); "
                        "every step is checked against its target's table, a bad one refuses the whole load"),
        CommandSpec(0x0B16, "SEQ_APPEND", (_NAME, Arg("steps_json", str)),
                    doc="add steps to the end of a loaded or stopped sequence (its loader only): steps_json is "
                        "a list of steps or {at, steps}, at = the sequence's step count (a resent append is "
                        "refused); a bad step refuses the whole append. Long sequences: SEQ_LOAD then SEQ_APPEND"),
        CommandSpec(0x0B11, "SEQ_START", (_NAME,), doc="start a sequence at its first step, or resume a stopped one"),
        CommandSpec(0x0B12, "SEQ_STOP", (_NAME,), doc="pause a running sequence (SEQ_START resumes it)"),
        CommandSpec(0x0B13, "SEQ_CANCEL", (_NAME,), doc="end a sequence where it is"),
        CommandSpec(0x0B14, "SEQ_LIST", doc="every sequence: state, steps, next step and its time"),
        CommandSpec(0x0B15, "SEQ_SHOW", (_NAME,), doc="one sequence: its steps and each step's outcome"),
    ),
    events=(
        EventSpec(0x01, "seq_loaded", "info", "a sequence was loaded: sequence, steps, late, on_error"),
        EventSpec(0x02, "seq_started", "info", "a sequence started (or resumed): sequence, next_step, run"),
        EventSpec(0x03, "seq_stopped", "warning", "a sequence was paused: by the operator, or by a step's error"),
        EventSpec(0x04, "seq_cancelled", "info", "a sequence was cancelled: sequence, next_step"),
        EventSpec(0x05, "seq_completed", "info", "a sequence ran its last step: sequence, outcomes"),
        EventSpec(0x06, "seq_resumed", "info", "after a restart, a running sequence goes on: sequence, next_step"),
        EventSpec(0x07, "step_dispatched", "info", "a step was sent: sequence, step, target, cmd"),
        EventSpec(0x08, "step_result", "info",
                  "a step's outcome: status accepted, completed, rejected, failed, not_sent, skipped or unknown "
                  "(sent before a restart, outcome not recorded: never sent again), with reason; warning "
                  "severity unless accepted, completed or skipped"),
        EventSpec(0x09, "step_late", "warning",
                  "a step reached after its time (the sequencer was down or busy): due_t, late_s, action run|skip"),
        EventSpec(0x0A, "state_write_failed", "error",
                  "the state file could not be written: the change was not made (no step is sent unrecorded)"),
        EventSpec(0x0B, "state_unreadable", "error",
                  "the state file did not parse at start: set aside (path), the sequencer starts empty"),
        EventSpec(0x0C, "seq_appended", "info", "steps were added to a sequence: sequence, first_step, added, steps"),
    ),
    telemetry=(
        ChannelSpec(0x01, "sequences_loaded", "count", int),
        ChannelSpec(0x02, "sequences_running", "count", int),
        ChannelSpec(0x03, "steps_dispatched", "count", int),
        ChannelSpec(0x04, "steps_completed", "count", int),
        ChannelSpec(0x05, "steps_failed", "count", int, doc="rejected, failed or not sent"),
        ChannelSpec(0x06, "steps_skipped", "count", int, doc="late steps of sequences whose late policy is skip"),
        ChannelSpec(0x07, "steps_unknown", "count", int,
                    doc="steps sent whose final outcome never came (timeout, or a restart)"),
        ChannelSpec(0x08, "next_step_in_s", "s", float, doc="time to the next step of a running sequence"),
        ChannelSpec(0x09, "state_writes", "count", int),
        ChannelSpec(0x0A, "state_write_errors", "count", int, high=0),
        ChannelSpec(0x0B, "state_write_us", "us", float, doc="last state file write (write, fsync, rename)"),
    ),
)

COMMANDS = INTERFACE.commands
EVENTS = INTERFACE.events
TELEMETRY = INTERFACE.telemetry

KIND = KindSpec(
    interface=INTERFACE,
    name="fsw.sequencer",
    entry="fsw.sequencer.process:run",
    endpoints={"bus_pub": "tcp|ipc", "command": "tcp|ipc"},
    binds=("command",),
    keys={
        "state_dir": Field(str, "sequencer", path="dir",
                           doc="directory (in the run's output) of the state file <process>.state.json"),
        "late_after_s": Field(float, 5.0, min=0.0, max=86400.0,
                              doc="a step reached more than this after its time is late (late policy, event)"),
        "reply_timeout_s": Field(float, 60.0, min=0.1, max=86400.0,
                                 doc="a step without its final reply in this time is reported unknown"),
        "max_sequences": Field(int, 16, min=1, max=256, doc="sequences held at once"),
        "poll_s": Field(float, 0.05, min=0.001, max=1.0, doc="longest wait of the loop between looks at the clock"),
        **CONTACT_PLAN_KEYS,
    },
    doc="Stored command sequences: absolute, relative and pass-end timed steps, crash-safe, run without ground.",
)
