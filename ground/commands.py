"""The ground station's commands: the operator's uplink queue (NOOP and RESET_COUNTERS are the CommandServer's).

:func:`handlers` returns one handler per table command; the process registers them through
:func:`framework.bus.commands.register_table`, which checks them against
:data:`ground.interface.INTERFACE` (so each handler gets its arguments checked and coerced).
A handler refuses with CommandRejected, whose reason the operator sees at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framework.bus.commands import Handler
from framework.errors import CommandRejected

if TYPE_CHECKING:
    from ground.station import Station
    from ground.uplink import Uplink

__all__ = ["handlers"]


def handlers(station: "Station") -> dict[str, Handler]:
    """UPLINK, QUEUE_LIST, QUEUE_MOVE, QUEUE_CANCEL on the station's uplink."""

    def uplink() -> "Uplink":
        if station.uplink is None:
            raise CommandRejected("this ground station has no uplink (no dictionary was given to it)")
        return station.uplink

    def enqueue(args: dict[str, Any]) -> dict[str, Any]:
        cid = uplink().enqueue(args["target"], args["cmd"], args.get("args_json", "{}"), args.get("spi"))
        return {"id": cid}

    def listing(args: dict[str, Any]) -> dict[str, Any]:
        return {"commands": uplink().listing(args.get("id"), args.get("all", False))}

    def move(args: dict[str, Any]) -> dict[str, Any]:
        return {"waiting": uplink().move(args["id"], args["position"])}

    def cancel(args: dict[str, Any]) -> dict[str, Any]:
        uplink().cancel(args["id"])
        return {"id": args["id"], "state": "cancelled"}

    return {"UPLINK": enqueue, "QUEUE_LIST": listing, "QUEUE_MOVE": move, "QUEUE_CANCEL": cancel}
