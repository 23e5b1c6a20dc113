"""The console process: the ground bus in, the ground's command port, the HTTP server; the loop.

``run(ctx)`` subscribes to the ground bus (``bus_sub``: the ground's own telemetry and events and
the lander's, which the ground publishes as ``lander.*`` as it decodes TM packets), reads the
ground station's archive (its ``archive.url``, :func:`ground.station.archive_url`, relative to the
run's output directory) for products, commands, transfers, events, parameter history and what is
missing, connects a command client to the ground station's command port (``ground_command``) with
this process's key for UPLINK, and serves the app of :mod:`ground.console.app` with uvicorn on
``http`` in a thread of its own. This loop owns every ZeroMQ socket: the app's requests to the
ground come here through a queue and go back as futures. The http endpoint must be a loopback
address unless the config says ``allow_remote: true``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from typing import Any

import uvicorn

from framework.bus.client import Subscriber
from framework.bus.commands import CommandServer, register_table
from framework.config import parse_endpoint
from framework.errors import CommandRejected, ConfigError
from framework.kinds import KINDS
from framework.process import ProcessContext
from framework.reporters import EventReporter, HealthReporter
from ground.console.app import Console, GroundUnreachable, build_app
from ground.console.archive_view import ArchiveUnavailable, ArchiveView
from ground.console.commands import handlers
from ground.console.desk import CommandDesk
from ground.console.interface import INTERFACE
from ground.console.linkview import windows
from ground.console.model import SUBSCRIPTIONS, ConsoleModel, Feed
from ground.console.bind import check_bind
from link.contacts import load_plan

__all__ = ["run", "ConsoleProcess"]

_GROUND_TIMEOUT_S = 5.0
_ARCHIVE_POLL_S = 2.0
_MESSAGES_PER_TURN = 500
_REQUESTS_PER_TURN = 16


class _QueuedGround:
    """The ground's command port as the app sees it: each call queued for the loop's thread, awaited."""

    def __init__(self) -> None:
        self.requests: queue.Queue[tuple[str, dict[str, Any], Future[Any]]] = queue.Queue(maxsize=256)

    async def call(self, cmd: str, args: dict[str, Any]) -> Any:
        fut: Future[Any] = Future()
        try:
            self.requests.put_nowait((cmd, args, fut))
        except queue.Full:
            raise GroundUnreachable("too many requests waiting for the ground") from None
        return await asyncio.wrap_future(fut)


class ConsoleProcess:
    """Owns the subscriber, the ground client, the HTTP server thread and the reporters."""

    def __init__(self, ctx: ProcessContext) -> None:
        self.ctx = ctx
        s = ctx.settings
        scheme, host, port = parse_endpoint(ctx.endpoint("http"))
        self.host, self.port = check_bind(host, port, s["allow_remote"], f"processes.{ctx.name}.endpoints.http")
        cfg = ctx.config
        ground = s["ground"]
        if ground not in cfg.processes or cfg.processes[ground]["kind"] != "ground.station":
            raise ConfigError(cfg.file, f"processes.{ctx.name}.ground", "a ground.station process", ground)
        gs = cfg.processes[ground]
        self.archive = ArchiveView.of_config(cfg, ground, ctx.out_dir)
        self.plan = load_plan(gs, cfg.file)
        self.horizon_s = s["contact_horizon_s"]
        tables = {n: KINDS[p["kind"]].interface for n, p in cfg.processes.items()
                  if p["kind"] in KINDS and KINDS[p["kind"]].interface is not None}
        lander = _lander_processes(cfg)
        self.pub = ctx.publisher()
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic)
        self.model = ConsoleModel(tables, set(lander), Feed(), history_points=s["history_points"],
                                  events_kept=s["events_kept"], on_product=self._card)
        self._pending: set[str] = set()  # products announced before the archive could be read
        key_file = ctx.keys_dir / f"{s['operator']}.key_secret"
        operator_key = key_file.read_text() if key_file.is_file() else None
        downlink = next((n for n in lander if cfg.processes[n]["kind"] == "fsw.downlink"), None)
        self.desk = CommandDesk({n: tables[n] for n in lander if n in tables}, downlink, operator_key)
        self.port_ground = _QueuedGround()
        self.console = Console(self.model, self.desk, self.archive, self.port_ground, self.windows,
                               report=self.events.emit, station=ground)
        self.sub = Subscriber(ctx.zmq, ctx.endpoint("bus_sub"), list(SUBSCRIPTIONS), cfg.bus["rcvhwm"])
        self.client = ctx.command_client(ctx.endpoint("ground_command"))
        self.commands: CommandServer | None = None
        if ctx.has_endpoint("command"):
            self.commands = ctx.command_server(on_event=self.events.emit, reset_counters=self.events.reset,
                                               interface=INTERFACE)
            register_table(self.commands, INTERFACE, handlers(self))
        self.health = HealthReporter(ctx, self.pub, self.sample, channels=INTERFACE.telemetry,
                                     events=self.events, commands=self.commands)
        self.server = uvicorn.Server(uvicorn.Config(build_app(self.console), host=self.host, port=self.port,
                                                    log_config=None, access_log=False, lifespan="off",
                                                    timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, name="console-http", daemon=True)
        self._next_look = 0.0
        self.url = f"http://{self.host}:{self.port}/"

    def windows(self) -> dict[str, Any]:
        return windows(self.plan, self.ctx.clock(), self.horizon_s)

    def _card(self, pid: str) -> dict[str, Any] | None:
        """A product the ground announced, from the archive (tried again at the next look if it cannot be read)."""
        try:
            card = self.archive.card(pid)
        except ArchiveUnavailable as exc:
            self.ctx.log.warning("archive_unavailable", reason=str(exc))
            card = None
        if card is None:
            self._pending.add(pid)
        return card

    def sample(self) -> dict[str, Any]:
        return {**self.model.sample(), **self.console.sample(), "bus_gaps": len(self.sub.gaps)}

    def start(self) -> None:
        self.thread.start()
        self.events.emit("console_serving", {"url": self.url, "remote": self.host not in ("127.0.0.1", "::1")})

    def turn(self) -> None:
        msg = self.sub.recv(timeout_ms=20)
        for _ in range(_MESSAGES_PER_TURN):
            if msg is None:
                break
            h = msg.header
            self.model.take(msg.topic, h.src, h.t, h.fields)
            msg = self.sub.recv(timeout_ms=0)
        for _ in range(_REQUESTS_PER_TURN):
            try:
                cmd, args, fut = self.port_ground.requests.get_nowait()
            except queue.Empty:
                break
            self._answer(cmd, args, fut)
        if self.ctx.monotonic() >= self._next_look:
            self._next_look = self.ctx.monotonic() + _ARCHIVE_POLL_S
            self._look()
        if self.commands is not None:
            self.commands.poll(0)
        self.health.tick()

    def _call(self, cmd: str, args: dict[str, Any]) -> Any:
        replies = self.client.call(cmd, args, timeout_s=_GROUND_TIMEOUT_S)
        if not replies:
            raise GroundUnreachable(f"no reply from the ground's command port within {_GROUND_TIMEOUT_S:g} s")
        last = replies[-1]
        if last.status != "completed":
            raise CommandRejected(f"the ground {last.status} {cmd}: {last.reason}")
        return last.result

    def _answer(self, cmd: str, args: dict[str, Any], fut: Future[Any]) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(self._call(cmd, args))
        except (GroundUnreachable, CommandRejected) as exc:
            fut.set_exception(exc)

    def _look(self) -> None:
        """What the archive has that the bus did not bring: products (all of them at start, then any
        whose ``product_received`` was lost or came before the archive could be read) and every
        command's stages. An archive that cannot be read is logged; the next look tries again."""
        try:
            self._catch_up_products()
            self._refresh_commands()
        except ArchiveUnavailable as exc:
            self.ctx.log.warning("archive_unavailable", reason=str(exc))

    def _catch_up_products(self) -> None:
        known = set(self.model.products)
        for pid in sorted((self.archive.product_ids() - known) | (self._pending - known)):
            card = self.archive.card(pid)
            if card is not None:
                self.model.product(card)
                self._pending.discard(pid)

    def _refresh_commands(self) -> None:
        """The ground's commands as the archive has them: stages a lost bus message would have left out."""
        for c in self.archive.commands():
            stages = [{"stage": s["stage"], "t": s["t"], "detail": s.get("detail", "")} for s in c["stages"]]
            spec = self.desk.tables.get(c["target"])
            hazardous = bool(spec and c["cmd"] in spec.commands and spec.commands[c["cmd"]].hazardous)
            have = self.model.commands.get(c["id"])
            if have is None or len(have["stages"]) != len(stages) or have["state"] != c["state"]:
                self.model.command(c["id"], c["target"], c["cmd"], c["args"], hazardous, stages, c["state"])

    def close(self) -> None:
        self.console.stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=5.0)
        while not self.port_ground.requests.empty():
            _cmd, _args, fut = self.port_ground.requests.get_nowait()
            fut.cancel()
        self.health.tick(force=True)
        if self.commands is not None:
            self.commands.close()
        self.client.close()
        self.archive.close()
        self.sub.close()
        self.pub.close()


def _lander_processes(config: Any) -> list[str]:
    """The lander's processes: those on the downlink's host, its hardware emulators left out (config order)."""
    downlinks = config.processes_of_kind("fsw.downlink")
    if not downlinks:
        return []
    host = config.processes[downlinks[0]].get("host")
    return [n for n, p in config.processes.items()
            if p.get("host") == host and not p["kind"].startswith("hil.")]


def run(ctx: ProcessContext) -> None:
    """Entry point of kind ``ground.console``; returns when ``ctx.stop`` is set."""
    process = ConsoleProcess(ctx)
    process.start()
    ctx.log.info("console_started", url=process.url, ground=process.ctx.settings["ground"],
                 hazardous_enabled=process.desk.hazardous_enabled)
    try:
        while not ctx.stop.is_set():
            if not process.thread.is_alive():
                raise RuntimeError(f"the console's HTTP server stopped (is {process.url} free?)")
            process.turn()
    finally:
        ctx.log.info("console_stopping")
        process.close()
