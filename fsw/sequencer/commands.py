"""The sequencer's commands: load, append to, start, stop, cancel, list and show stored sequences.

:func:`handlers` gives one handler per command of :data:`fsw.sequencer.interface.INTERFACE`
(NOOP and RESET_COUNTERS are the command server's own); the process registers them
with :func:`framework.bus.commands.register_table`, which checks the arguments'
types first. Each handler acts on the I/O-free :class:`~fsw.sequencer.sequences.Sequencer`,
which refuses (CommandRejected, naming the step and the reason) what it cannot do,
and answers only once the change is durable in the state file.
"""

from __future__ import annotations

from typing import Any, Protocol

from framework.bus.commands import Handler
from fsw.sequencer.sequences import Sequencer

__all__ = ["SequencerControl", "handlers", "WITH_CLIENT"]

WITH_CLIENT = ("SEQ_LOAD", "SEQ_APPEND")
"""Commands whose handler takes the client's identity (register_table's ``with_client``)."""


class SequencerControl(Protocol):
    """What the handlers use of the sequencer process: its engine and its wall clock."""

    core: Sequencer

    def now(self) -> float: ...


def handlers(seq: SequencerControl) -> dict[str, Handler]:
    """The sequencer's handlers by command name (``seq.core`` is read when a command arrives); SEQ_LOAD
    and SEQ_APPEND are registered ``with_client`` (:data:`WITH_CLIENT`)."""

    def load(args: dict[str, Any], client: str) -> dict[str, Any]:
        # who loads it (the CURVE key's name, or the operator an ingest acts for): the steps act for them
        return seq.core.load(args["name"], args["steps_json"], seq.now(), client or "sequencer")

    def append(args: dict[str, Any], client: str) -> dict[str, Any]:
        # only whoever loaded the sequence adds to it: the added steps act for the loader too
        return seq.core.append(args["name"], args["steps_json"], seq.now(), client or "sequencer")

    def start(args: dict[str, Any]) -> dict[str, Any]:
        return seq.core.start(args["name"], seq.now())

    def stop(args: dict[str, Any]) -> dict[str, Any]:
        return seq.core.stop(args["name"], seq.now())

    def cancel(args: dict[str, Any]) -> dict[str, Any]:
        return seq.core.cancel(args["name"], seq.now())

    def listing(args: dict[str, Any]) -> dict[str, Any]:
        return {"sequences": seq.core.listing()}

    def show(args: dict[str, Any]) -> dict[str, Any]:
        return seq.core.show(args["name"])

    return {"SEQ_LOAD": load, "SEQ_APPEND": append, "SEQ_START": start, "SEQ_STOP": stop, "SEQ_CANCEL": cancel,
            "SEQ_LIST": listing, "SEQ_SHOW": show}
