"""The deploy driver's command handlers: STATUS and the hazardous ARM, FIRE, DISARM, INHIBIT, ENABLE, ABORT.

Every hazardous command goes through :class:`~drivers.deploy.arming.ArmFireGuard`
with the client's identity (its key's name, or the operator a delegate acts for:
:class:`~framework.bus.commands.CommandServer`), so those handlers take ``(args, client)``
and are registered ``with_client`` (:data:`WITH_CLIENT`, the table's hazardous
commands). FIRE is answered ``accepted`` at once (a
:class:`~framework.bus.commands.Deferred`) and finished with the deployment's
verdict by the process. The process registers :func:`handlers` with
:func:`framework.bus.commands.register_table`, which checks every command's
arguments against the table before its handler runs.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Protocol

from drivers.deploy.arming import ArmFireGuard
from drivers.deploy.interface import INTERFACE
from drivers.deploy.profile import MechanismProfile
from drivers.deploy.sequencer import Action, Sequencer
from framework.bus.commands import ClientHandler, Deferred, Handler
from framework.errors import CommandRejected
from framework.reporters import EventReporter

__all__ = ["DeployPort", "WITH_CLIENT", "handlers"]

WITH_CLIENT = tuple(name for name, spec in INTERFACE.commands.items() if spec.hazardous)
"""The commands whose handler needs the client's identity: every hazardous one."""


class DeployPort(Protocol):
    """What the handlers need of the process: the guard, the sequencer, the link state and the events."""

    mech: str
    profile: MechanismProfile
    guard: ArmFireGuard
    seq: Sequencer
    events: EventReporter
    pending: Deferred | None
    sample_now: bool

    @property
    def link_up(self) -> bool: ...

    def monotonic(self) -> float: ...

    def save_state(self) -> None:
        """Persist the fired and inhibited mechanisms (they survive a restart)."""

    def execute(self, actions: list[Action]) -> None:
        """Carry out the sequencer's actions (device commands, events, the verdict)."""


def handlers(driver: DeployPort) -> dict[str, Handler | ClientHandler]:
    """One handler per table command but NOOP and RESET_COUNTERS, bound to ``driver``."""
    return {"STATUS": partial(status, driver), "ARM": partial(arm, driver), "FIRE": partial(fire, driver),
            "DISARM": partial(disarm, driver), "INHIBIT": partial(inhibit, driver),
            "ENABLE": partial(enable, driver), "ABORT": partial(abort, driver)}


def status(d: DeployPort, _args: dict[str, Any]) -> dict[str, Any]:
    """Guard state, last sample and last verdict."""
    last = d.seq.last
    return {"mechanism": d.mech, "type": d.profile.type, "link_up": d.link_up,
            **d.guard.status(d.mech, d.monotonic()),
            "sample": None if last is None else {k: v for k, v in last.__dict__.items() if k != "seq"},
            "verdict": None if d.seq.verdict is None else d.seq.verdict.as_fields()}


def arm(d: DeployPort, args: dict[str, Any], client: str) -> dict[str, Any]:
    m, now = args["mechanism"], d.monotonic()
    _check_device_ready(d)
    d.guard.arm(m, client, now)
    d.events.emit("armed", {"client": client, "window_s": d.guard.window_s})
    return d.guard.status(m, now)


def disarm(d: DeployPort, args: dict[str, Any], client: str) -> dict[str, Any]:
    m, now = args["mechanism"], d.monotonic()
    had = d.guard.disarm(m, client, now)
    d.events.emit("disarmed", {"client": client, "had_arm": had})
    return d.guard.status(m, now)


def inhibit(d: DeployPort, args: dict[str, Any], client: str) -> dict[str, Any]:
    m, now = args["mechanism"], d.monotonic()
    d.guard.inhibit(m, client, now)
    d.save_state()
    d.events.emit("inhibited", {"client": client})
    return d.guard.status(m, now)


def enable(d: DeployPort, args: dict[str, Any], client: str) -> dict[str, Any]:
    m, now = args["mechanism"], d.monotonic()
    d.guard.enable(m, client, now)
    d.save_state()
    d.events.emit("enabled", {"client": client})
    return d.guard.status(m, now)


def abort(d: DeployPort, args: dict[str, Any], client: str) -> dict[str, Any]:
    m, now = args["mechanism"], d.monotonic()
    d.guard.check(m, client)
    if not d.seq.active:
        raise CommandRejected(f"ABORT {m}: no deployment in progress")
    d.execute(d.seq.abort(f"aborted by operator {client}"))
    return d.guard.status(m, now)


def fire(d: DeployPort, args: dict[str, Any], client: str) -> Deferred:
    """Consume the client's arm and start the deployment; the verdict completes (or fails) the command."""
    m, now = args["mechanism"], d.monotonic()
    _check_device_ready(d)
    d.guard.fire(m, client, now)
    d.save_state()
    d.guard.busy.add(m)
    d.pending = Deferred()
    d.sample_now = True  # supervise at the moving rate from the first instant
    d.execute(d.seq.start())
    return d.pending


def _check_device_ready(d: DeployPort) -> None:
    if not d.link_up:
        raise CommandRejected("mechanism link is down")
    last = d.seq.last
    if last is not None and last.state in ("releasing", "deploying"):
        raise CommandRejected(f"mechanism is {last.state}")
