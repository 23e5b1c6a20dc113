"""The console's commands: none beyond NOOP and RESET_COUNTERS (the CommandServer's).

What an operator sends from the page is the lander's commands, checked by
:mod:`ground.console.desk` and queued at the ground station (UPLINK); the console's own
optional command port answers only the standard two, registered the one way
(:func:`framework.bus.commands.register_table`) like every component's.
"""

from __future__ import annotations

from typing import Any

from framework.bus.commands import Handler

__all__ = ["handlers"]


def handlers(console: Any) -> dict[str, Handler]:
    """One handler per command of the console's table other than NOOP and RESET_COUNTERS: none."""
    return {}
