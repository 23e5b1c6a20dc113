"""The broker's commands: none beyond the two every component answers.

NOOP and RESET_COUNTERS are the command server's own (RESET_COUNTERS reaches the
forwarder through the server's ``reset_counters``); :func:`handlers` is here so the
broker registers its table the one way every component does
(:func:`framework.bus.commands.register_table`), and a command added to
:data:`fsw.broker.interface.INTERFACE` gets its handler here.
"""

from __future__ import annotations

from framework.bus.commands import Handler
from fsw.broker.forwarder import Forwarder

__all__ = ["handlers"]


def handlers(forwarder: Forwarder) -> dict[str, Handler]:
    """One handler per command of the broker's table other than NOOP and RESET_COUNTERS: none."""
    return {}
