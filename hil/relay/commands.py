"""The relay emulator's command handlers: the bench's control of the link.

One handler per command of :data:`hil.relay.interface.INTERFACE` other than NOOP and
RESET_COUNTERS (the command server's own). They act on the I/O-free override layer
(:class:`link.contacts.PlanOverrides`) and link models (:class:`hil.relay.link.Constellation`)
the process holds; times come from the process's clock. A handler refuses with CommandRejected
naming what is wrong (an unknown relay, SET_LINK with nothing to set); every change raises an
``override_set`` event so a run's log says when the bench bent the link.
"""

from __future__ import annotations

from typing import Any, Protocol

from framework.bus.commands import Handler
from framework.errors import CommandRejected
from link.contacts import Burst, PlanOverrides


class RelayEmulator(Protocol):
    """What the handlers use of the relay process (hil.relay.process.RelayEmulator): its override layer,
    link models, clock, event reporter and status. A protocol, so commands.py never imports process.py."""

    overrides: PlanOverrides
    events: Any
    ctx: Any
    up: Any
    down: Any
    net: Any
    link_changed: bool

    def link_status(self) -> dict[str, Any]: ...

__all__ = ["handlers"]

_BURST_ARGS = ("burst_enter", "burst_leave", "burst_loss")


def _relay(relay: "RelayEmulator", name: str) -> int:
    try:
        return relay.overrides.relay_index(name)
    except KeyError as exc:
        raise CommandRejected(str(exc.args[0])) from None


def handlers(relay: "RelayEmulator") -> dict[str, Handler]:
    """WINDOW, RELAY_OUT, RELAY_IN, SET_LINK, STEP_CLOCK, CLEAR_OVERRIDES, LINK_STATUS."""

    def changed(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        status = relay.link_status()
        relay.events.emit("override_set", {"cmd": cmd, "args": args, "overrides": status["overrides"]})
        return status

    def window(args: dict[str, Any]) -> dict[str, Any]:
        name = args.get("relay")
        if name is not None:
            _relay(relay, name)
        if args["state"] == "plan":
            relay.overrides.forced = None
        else:
            relay.overrides.force(args["state"], relay.ctx.clock(), args.get("duration_s"), name)
        return changed("WINDOW", args)

    def relay_out(args: dict[str, Any]) -> dict[str, Any]:
        _relay(relay, args["relay"])
        relay.overrides.take_out(args["relay"], relay.ctx.clock(), args.get("duration_s"))
        return changed("RELAY_OUT", args)

    def relay_in(args: dict[str, Any]) -> dict[str, Any]:
        _relay(relay, args["relay"])
        relay.overrides.put_back(args["relay"])
        return changed("RELAY_IN", args)

    def set_link(args: dict[str, Any]) -> dict[str, Any]:
        given = {k: v for k, v in args.items() if k != "relay" and v is not None}
        if not given:
            raise CommandRejected("SET_LINK needs at least one of loss, corrupt, rate_bps, burst_enter, "
                                  "burst_leave, burst_loss")
        index = None if args.get("relay") is None else _relay(relay, args["relay"])
        burst = None
        if any(k in given for k in _BURST_ARGS):
            now = relay.down.models[index or 0].burst
            burst = Burst(given.get("burst_enter", now.enter), given.get("burst_leave", now.leave),
                          given.get("burst_loss", now.loss))
        relay.net.set_link([relay.down, relay.up], index, given.get("loss"), given.get("corrupt"), burst,
                           given.get("rate_bps"))
        relay.link_changed = True
        return changed("SET_LINK", args)

    def step_clock(args: dict[str, Any]) -> dict[str, Any]:
        relay.overrides.step_clock(args["seconds"])
        return changed("STEP_CLOCK", args)

    def clear(args: dict[str, Any]) -> dict[str, Any]:
        relay.overrides.clear()
        relay.net.clear_link([relay.down, relay.up])
        relay.link_changed = False
        return changed("CLEAR_OVERRIDES", args)

    def status(args: dict[str, Any]) -> dict[str, Any]:
        return relay.link_status()

    return {"WINDOW": window, "RELAY_OUT": relay_out, "RELAY_IN": relay_in, "SET_LINK": set_link,
            "STEP_CLOCK": step_clock, "CLEAR_OVERRIDES": clear, "LINK_STATUS": status}
