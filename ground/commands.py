"""The ground station's commands: only NOOP and RESET_COUNTERS so far, which the CommandServer answers itself.

:func:`handlers` is where the next commands go (the uplink queue, re-requests); the
process registers what it returns through :func:`framework.bus.commands.register_table`,
which checks it against :data:`ground.interface.INTERFACE`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from framework.bus.commands import Handler

if TYPE_CHECKING:
    from ground.station import Station

__all__ = ["handlers"]


def handlers(station: "Station") -> dict[str, Handler]:
    """One handler per table command other than NOOP and RESET_COUNTERS (none yet)."""
    return {}
