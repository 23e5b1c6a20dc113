"""The command ingest process: the zmq adapter around :class:`~fsw.ingest.ingest.Ingest`.

It binds a PULL socket on ``uplink`` (the downlink pushes every TC space packet its radio
reads there), reads at most :data:`MAX_PACKETS_PER_TURN` packets a turn (each at most
:data:`link.tmtc.MAX_TC_BYTES`: the socket's MAXMSGSIZE drops a larger one's connection),
and hands each to the core. The core's dispatches go out through one CommandClient per
target command port (``ctx.command_client``: CURVE with the ingest's own key, and the SA's
operator named in each request, which the port honours from its delegates only); the
replies come back to the core; its verification stages go out on ``vrf.<name>``.

The keys are read at start from the run's key directory (``<keys_dir>/sdls``); an SA whose key
is missing is taken as disabled (``sa_key_missing``), never as a reason to stop: the ingest is
the ground's only way in. Its key is looked for again every :data:`KEY_RETRY_S`, and once it
is there the SA takes commands as its file and the operators' enables say (``sa_key_loaded``):
a run whose keys are made after its processes start needs no restart.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Hashable

import zmq

from framework.bus.commands import CommandClient, CommandServer, register_table
from framework.config import find_config
from framework.errors import ConfigError
from framework.process import ProcessContext
from framework.reporters import EventReporter, HealthReporter
from fsw.ingest.commands import handlers
from fsw.ingest.enables import EnableStore, EnableStoreDamaged
from fsw.ingest.ingest import MAX_REMEMBERED, Ingest, Stage
from fsw.ingest.interface import INTERFACE
from link.dictionary import Dictionary
from link.sdls import SecurityAssociation, SequenceStore, Verifier, load_associations, load_key
from link.tmtc import MAX_TC_BYTES

__all__ = ["run", "IngestProcess", "SEQUENCE_FILE", "ENABLES_FILE"]

POLL_MS = 100
"""How long the loop waits for a packet or a reply before it looks at the timers and the stop flag."""
MAX_PACKETS_PER_TURN = 32
"""Uplink packets one turn reads at most, so a flood cannot starve the replies, commands and health."""
MAX_REPLIES_PER_TURN = 256
UPLINK_RCVHWM = 256
KEY_RETRY_S = 5.0
SEQUENCE_FILE = "sdls_sequences.json"
ENABLES_FILE = "sa_enables.json"


class _Clients:
    """The core's dispatcher: one CommandClient per target command port, made on first use.
    A ticket is ``(process, request id)``."""

    def __init__(self, ctx: ProcessContext, ports: dict[str, str]) -> None:
        self._ctx = ctx
        self._ports = ports
        self._clients: dict[str, CommandClient] = {}
        # without CURVE no port knows who is asking, so none may be told whom it is for (it would refuse)
        self._name_operator = bool(ctx.config.security["curve"])

    def send(self, process: str, cmd: str, args: dict[str, Any], operator: str) -> Hashable:
        client = self._clients.get(process)
        if client is None:
            client = self._clients[process] = self._ctx.command_client(self._ports[process])
        cid = client.send(cmd, args, operator if self._name_operator else None)
        return (process, cid)

    def sockets(self) -> list[zmq.Socket]:
        return [c.sock for c in self._clients.values()]

    def replies(self) -> list[tuple[Hashable, str, str]]:
        """The replies waiting now, at most :data:`MAX_REPLIES_PER_TURN`: ``(ticket, status, reason)``."""
        out: list[tuple[Hashable, str, str]] = []
        for process, client in self._clients.items():
            while len(out) < MAX_REPLIES_PER_TURN:
                reply = client.recv(0)
                if reply is None:
                    break
                out.append(((process, reply.id), reply.status, reply.reason))
        return out

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _command_ports(ctx: ProcessContext, dictionary: Dictionary) -> tuple[dict[str, bool], dict[str, str]]:
    """The processes of this ingest's host a command may go to (with whether each has a command
    port), and the address of each port. A process of another host (the ground) is no target."""
    host = ctx.settings["host"]
    targets: dict[str, bool] = {}
    ports: dict[str, str] = {}
    for name in dictionary.processes():
        proc = ctx.config.processes[name]
        if proc["host"] != host:
            continue
        targets[name] = "command" in proc["endpoints"]
        if targets[name]:
            ports[name] = ctx.config.reach(name, "command")
    return targets, ports


class IngestProcess:
    """The process: the uplink PULL, the optional command ROUTER, the dispatch clients, the bus."""

    def __init__(self, ctx: ProcessContext) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.pub = ctx.publisher()
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic)
        state_dir = Path(ctx.out_dir) / s["state_dir"]
        state_dir.mkdir(parents=True, exist_ok=True)
        self.enables = EnableStore(state_dir / ENABLES_FILE)
        self._waiting: dict[int, bool] = {}  # SPIs whose key is missing -> enabled in the SA file
        self._next_key_look = ctx.monotonic() + KEY_RETRY_S
        overrides = self._overrides()
        associations, keys = self._associations(find_config(s["sa_file"]), overrides)
        dictionary = Dictionary.from_config(ctx.config)
        verifier = Verifier(associations, keys, SequenceStore(state_dir / SEQUENCE_FILE),
                            known_apids=dictionary.apids(), memory=MAX_REMEMBERED)
        targets, ports = _command_ports(ctx, dictionary)
        self.clients = _Clients(ctx, ports)
        self.core = Ingest(verifier, dictionary, targets, self.clients, self.events, self._publish, ctx.monotonic,
                           reply_timeout_s=s["reply_timeout_s"], completion_timeout_s=s["completion_timeout_s"],
                           max_pending=s["max_pending"], enables=overrides, save_enables=self.enables.save)
        self.uplink = ctx.zmq.socket(zmq.PULL)
        self.uplink.setsockopt(zmq.LINGER, 0)
        self.uplink.setsockopt(zmq.MAXMSGSIZE, MAX_TC_BYTES)
        self.uplink.setsockopt(zmq.RCVHWM, UPLINK_RCVHWM)
        self.uplink.bind(ctx.endpoint("uplink"))
        self.cmd: CommandServer | None = None
        if ctx.has_endpoint("command"):
            self.cmd = ctx.command_server(on_event=self.events.emit, interface=INTERFACE,
                                          reset_counters=lambda: (self.core.reset(), self.events.reset()))
            register_table(self.cmd, INTERFACE, handlers(self.core))
        self.health = HealthReporter(ctx, self.pub, self.core.counters, channels=INTERFACE.telemetry,
                                     events=self.events, commands=self.cmd)

    def _overrides(self) -> dict[int, bool]:
        try:
            return self.enables.load()
        except EnableStoreDamaged as exc:  # the SA file's enables stand; operators are told
            self.events.emit("sa_state_damaged", {"detail": str(exc)})
            return {}

    def _associations(self, sa_file: Path, overrides: dict[int, bool]) -> tuple[list[SecurityAssociation],
                                                                                dict[str, bytes]]:
        """The SA table with the operators' overrides applied, and the keys that could be read; an
        enabled SA whose key cannot be read is taken as disabled (and reported), the others go on."""
        keys_dir = self.ctx.keys_dir
        out: list[SecurityAssociation] = []
        keys: dict[str, bytes] = {}
        for sa in load_associations(sa_file):
            file_enabled = sa.enabled
            sa = replace(sa, enabled=overrides.get(sa.spi, sa.enabled))
            try:
                keys[sa.key_id] = load_key(keys_dir, sa.key_id)
            except ConfigError as exc:
                if sa.enabled:
                    self.events.emit("sa_key_missing", {"spi": sa.spi, "key_id": sa.key_id, "detail": str(exc)})
                self._waiting[sa.spi] = file_enabled
                sa = replace(sa, enabled=False)
            out.append(sa)
        self.ctx.log.info("associations_loaded", sa_file=str(sa_file), keys_dir=str(keys_dir),
                          spis=[sa.spi for sa in out], enabled=[sa.spi for sa in out if sa.enabled])
        return out, keys

    def _look_for_keys(self) -> None:
        """Every KEY_RETRY_S: load the keys that were missing; each SA found takes commands again as
        its file and the operators' enables say."""
        if not self._waiting or self.ctx.monotonic() < self._next_key_look:
            return
        self._next_key_look = self.ctx.monotonic() + KEY_RETRY_S
        verifier = self.core.verifier
        for spi, file_enabled in list(self._waiting.items()):
            sa = verifier.associations[spi]
            try:
                verifier.keys[sa.key_id] = load_key(self.ctx.keys_dir, sa.key_id)
            except ConfigError:
                continue
            del self._waiting[spi]
            enabled = self.core.enables.get(spi, file_enabled)
            verifier.associations[spi] = replace(sa, enabled=enabled)
            self.events.emit("sa_key_loaded", {"spi": spi, "key_id": sa.key_id, "enabled": enabled})

    def _publish(self, stage: Stage) -> None:
        self.pub.publish(f"vrf.{self.ctx.name}", "vrf", stage.fields())

    def loop(self) -> None:
        self.ctx.log.info("ingest_started", uplink=self.ctx.endpoint("uplink"),
                          command=self.ctx.endpoint("command") if self.cmd else None)
        poller = zmq.Poller()
        while not self.ctx.stop.is_set():
            self._register(poller)
            ready = dict(poller.poll(POLL_MS))
            if self.uplink in ready:
                self._read_uplink()
            if self.cmd is not None:
                self.cmd.poll()
            for ticket, status, reason in self.clients.replies():
                if self.core.reply(ticket, status, reason) is None and status in ("accepted", "rejected",
                                                                                  "completed", "failed"):
                    self.events.limited("dispatch_late_reply", {"target": ticket[0], "status": status})  # type: ignore[index]
            self.core.expire()
            self._look_for_keys()
            self.health.tick()
        self.close()
        self.ctx.log.info("ingest_stopped", **{k: v for k, v in self.core.counts.items() if v})

    def _register(self, poller: zmq.Poller) -> None:
        """Poll the uplink, the command port and every client made so far (clients appear on first use)."""
        wanted = [self.uplink, *([self.cmd.sock] if self.cmd else []), *self.clients.sockets()]
        for sock in wanted:
            if sock not in poller:
                poller.register(sock, zmq.POLLIN)

    def _read_uplink(self) -> None:
        for _ in range(MAX_PACKETS_PER_TURN):
            try:
                parts = self.uplink.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            for packet in parts:  # a sender's multipart message: each part is one packet
                try:
                    self.core.receive(packet)
                except Exception:  # a bug must not let one packet end the ground's only way in
                    self.ctx.log.exception("packet_not_handled", size=len(packet))

    def close(self) -> None:
        self.clients.close()
        if self.cmd is not None:
            self.cmd.close()
        self.uplink.close()
        self.pub.close()


def run(ctx: ProcessContext) -> None:
    IngestProcess(ctx).loop()
