"""The relay emulator's command handlers: none beyond the two every component answers.

Its table (:data:`hil.relay.interface.INTERFACE`) declares only NOOP and
RESET_COUNTERS, which the command server answers itself; this room exists so
the relay is built like every other component, and a command added to the
table gets its handler here (:func:`framework.bus.commands.register_table`
refuses to start a process whose table and handlers disagree).
"""

from __future__ import annotations

from typing import Any

from framework.bus.commands import Handler

__all__ = ["handlers"]


def handlers(relay: Any) -> dict[str, Handler]:
    """One handler per command of the table other than NOOP and RESET_COUNTERS: none yet."""
    return {}
