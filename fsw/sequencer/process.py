"""The sequencer process: the command port, the clients of the targets' command ports, the loop.

``run(ctx)`` restores the state file (``<state_dir>/<name>.state.json``), binds
the command port (SEQ_* commands, :mod:`fsw.sequencer.commands`) and then,
every turn, hands the wall clock to the I/O-free
:class:`~fsw.sequencer.sequences.Sequencer`, sends each step it hands back
through a client of the target's command port (``ctx.command_client``: with
CURVE, as this process, acting for the operator who loaded the sequence) and
feeds the targets' replies back to it. Nothing here needs the ground: the
sequences run through contact and outage alike.
"""

from __future__ import annotations

import math
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from framework.bus.commands import CommandClient, CommandNotSent, register_table
from framework.process import ProcessContext
from framework.reporters import EventReporter, HealthReporter
from fsw.sequencer.commands import WITH_CLIENT, handlers
from fsw.sequencer.interface import INTERFACE
from fsw.sequencer.sequences import Dispatch, Sequencer, StateUnreadable
from fsw.sequencer.statefile import StateFile
from fsw.sequencer.steps import StepCheck, step_checker
from link.contacts import load_plan
from link.dictionary import Dictionary

__all__ = ["run", "SequencerProcess"]

_REPLIES_PER_TURN = 64
_HOLD_EVENTS_S = 5.0  # events wait at most this long for the bus connection at start
_HOLD_EVENTS_MAX = 1000


def _checker(ctx: ProcessContext) -> StepCheck:
    """Steps may command the processes of this host that have a command port, as their tables allow."""
    config = ctx.config
    interfaces = {e.process: e.interface for e in Dictionary.from_config(config)}
    host = ctx.settings.get("host")
    commandable = {n for n, p in config.processes.items() if "command" in p["endpoints"] and p.get("host") == host}
    return step_checker(interfaces, commandable, ctx.name)


class SequencerProcess:
    """Owns the command port, the target clients and the reporters; one :meth:`turn` at a time."""

    def __init__(self, ctx: ProcessContext) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.pub = ctx.publisher()
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic)
        # The first events (a restart's unknown steps, resumed sequences) are held until the bus connection
        # is up: a PUB drops what it sends before that, and these are the ones an operator must see.
        self._held: list[tuple[str, Any, Any]] | None = []
        self._held_since = ctx.monotonic()
        self._monitor: Any = self.pub.sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        state_dir = ctx.out_dir / s["state_dir"]
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state = StateFile(state_dir / f"{ctx.name}.state.json")
        self.core = Sequencer(_checker(ctx), load_plan(s, ctx.config.file), self.state.save, self.emit,
                              s["late_after_s"], s["reply_timeout_s"], s["max_sequences"])
        self._restore()
        security = ctx.config.security
        # a delegate's request may name the operator it acts for; a port without CURVE refuses the field
        self.delegate = bool(security["curve"]) and ctx.name in security["delegates"]
        self.commands = ctx.command_server(on_event=self.emit, interface=INTERFACE,
                                           reset_counters=self._reset_counters)
        register_table(self.commands, INTERFACE, handlers(self), with_client=WITH_CLIENT)
        self.poller = zmq.Poller()
        self.poller.register(self.commands.sock, zmq.POLLIN)
        self.clients: dict[str, CommandClient] = {}
        self.pending: dict[tuple[str, int], tuple[str, int, int]] = {}  # (target, command id) -> step
        self.health = HealthReporter(ctx, self.pub, self.sample, channels=INTERFACE.telemetry,
                                     events=self.events, commands=self.commands)
        ctx.log.info("sequencer_started", state=str(self.state.path), sequences=len(self.core.records),
                     delegate=self.delegate)

    def now(self) -> float:
        return self.ctx.clock()

    def emit(self, name: str, fields: dict[str, Any] | None = None, severity: str | None = None) -> None:
        """An event now, or held (in order) while the bus connection is not yet up."""
        if self._held is not None and len(self._held) < _HOLD_EVENTS_MAX:
            self._held.append((name, fields, severity))
            return
        self.events.emit(name, fields, severity)

    def _release_events(self) -> None:
        """Publish the held events once the publisher's connection is up (or after a bound)."""
        if self._held is None:
            return
        connected = False
        while self._monitor.poll(0):
            connected = connected or recv_monitor_message(self._monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
        if not connected and self.ctx.monotonic() - self._held_since < _HOLD_EVENTS_S:
            return
        held, self._held = self._held, None
        self.pub.sock.disable_monitor()
        self._monitor.close()
        for name, fields, severity in held:
            self.events.emit(name, fields, severity)

    def _restore(self) -> None:
        """The previous life's sequences; an unreadable state file is set aside (nothing runs twice from it)."""
        try:
            data = self.state.load()
            if data is not None:
                self.core.restore(data, self.now())
        except (ValueError, StateUnreadable) as exc:
            self.core.records = {}
            aside = self.state.set_aside() if self.state.path.exists() else None
            self.emit("state_unreadable", {"reason": str(exc)[:300], "path": str(aside)})

    def _reset_counters(self) -> None:
        for key in self.core.counters:
            self.core.counters[key] = 0
        self.events.reset()

    def sample(self) -> dict[str, Any]:
        return {**self.core.sample(self.now()), "state_write_us": round(self.state.last_write_us, 1)}

    # -- the loop ------------------------------------------------------------------------------
    def turn(self) -> None:
        self._release_events()
        wait_s = min(self.ctx.settings["poll_s"], self.core.wait_s(self.now()))
        self.poller.poll(max(0, math.ceil(wait_s * 1000)))
        self.commands.poll(0)
        self.take_replies()
        for dispatch in self.core.poll(self.now()):
            self.send(dispatch)
        self.forget_expired()
        self.health.tick()

    def _client(self, target: str) -> CommandClient:
        client = self.clients.get(target)
        if client is None:
            client = self.ctx.command_client(self.ctx.config.endpoint(target, "command"))
            self.poller.register(client.sock, zmq.POLLIN)
            self.clients[target] = client
        return client

    def send(self, d: Dispatch) -> None:
        """Send one step (already durable as dispatched); a port not taking it is the step's outcome."""
        try:
            cid = self._client(d.target).send(d.cmd, d.args, d.operator if self.delegate else None)
        except CommandNotSent as exc:
            self.core.record(d.sequence, d.run, d.index, "not_sent", str(exc), self.now())
            return
        self.pending[(d.target, cid)] = (d.sequence, d.run, d.index)

    def take_replies(self) -> None:
        for target, client in list(self.clients.items()):
            for _ in range(_REPLIES_PER_TURN):
                reply = client.recv(0)
                if reply is None:
                    break
                step = self.pending.get((target, reply.id)) if reply.id is not None else None
                if step is None:
                    continue
                self.core.record(*step, reply.status, reply.reason, self.now())
                if reply.status != "accepted":
                    del self.pending[(target, reply.id)]

    def forget_expired(self) -> None:
        """Steps the engine gave up waiting for (reported unknown): drop them, and the client of their
        target, so a command still queued to a port that never answered is not delivered later."""
        for key, (name, run, index) in list(self.pending.items()):
            rec = self.core.records.get(name)
            if rec is not None and rec.run == run and rec.outstanding() == index:
                continue
            del self.pending[key]
            client = self.clients.pop(key[0], None)
            if client is not None:
                self.poller.unregister(client.sock)
                client.close()

    def close(self) -> None:
        if self._held:  # stopping before the bus was up: publish what was held anyway (and log it)
            self._held_since = -_HOLD_EVENTS_S
            self._release_events()
        self.health.tick(force=True)
        for closer in [self.commands.close, *(c.close for c in self.clients.values()), self.pub.close]:
            try:
                closer()
            except Exception:  # closing must not hide the reason we stop
                pass


def run(ctx: ProcessContext) -> None:
    """Entry point of kind ``fsw.sequencer``; returns when ``ctx.stop`` is set."""
    process = SequencerProcess(ctx)
    try:
        while not ctx.stop.is_set():
            process.turn()
    finally:
        ctx.log.info("sequencer_stopping", sequences=len(process.core.records))
        process.close()
