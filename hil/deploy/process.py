"""Mechanism emulator process: a TCP device port speaking the mechanism protocol, plus a control port.

- ``link`` (TCP server): the driver connects here, exactly as to the real
  mechanism controller. One client at a time; a new one replaces the old.
- ``control`` (command ROUTER): the scenario runner and tests inject faults
  at run time; the commands are the table in :mod:`hil.deploy.interface`,
  the handlers in :mod:`hil.deploy.commands`.
- ``bus_pub``: health telemetry and events (an event per injected fault),
  through one :class:`~framework.reporters.EventReporter`.
- ``camera_controls`` (optional key: camera id -> endpoint of that camera
  emulator's control port): the boom's true angle goes to each camera scene
  as ``set_boom_angle {deg}`` (:mod:`hil.deploy.view` decides when), so the
  frames show the boom where it really is. Never blocks the physics loop; a
  camera emulator that is down only costs a counted, retried update.

Physics runs at ``physics_hz`` steps of simulated time; simulated time runs
``time_scale`` times faster than the wall clock (tests use 5 to 20).
:class:`~hil.deploy.device.DeviceCore` is the pure part: messages in, replies
out, clock given. This module is the thin adapter around it.
"""

from __future__ import annotations

import selectors
import socket
from typing import Any

import msgpack
import zmq

from drivers.deploy import protocol as p
from drivers.deploy.profile import load_profile
from drivers.links.tcp import SendQueue
from framework.bus.commands import MAX_REQUEST_BYTES, CommandServer, decode_reply, register_table
from framework.config import parse_endpoint
from framework.errors import BusError, CommandRejected, ConfigError
from framework.process import ProcessContext
from framework.reporters import EventReporter, HealthReporter
from hil.deploy.commands import handlers
from hil.deploy.device import DeviceCore
from hil.deploy.interface import INTERFACE
from hil.deploy.mechanism import FAULTS
from hil.deploy.view import BoomViewPolicy

__all__ = ["MechanismEmulator", "CameraViewLink", "run"]

_MOVING_STATES = ("releasing", "deploying")
_RECV_BYTES = 65536
MAX_QUEUED = 256
"""Replies queued for the driver at most: one that sends but never reads is dropped (never waited for)."""
_REPLIES_PER_UPDATE = 64  # replies from a camera control port read per view update, at most


class _Link:
    """The device's TCP port: one client at a time, bytes in, replies out (queued, never waited for)."""

    def __init__(self, address: str) -> None:
        _, host, port = parse_endpoint(address)
        self.server = socket.create_server((host, port), reuse_port=False)
        self.server.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.server, selectors.EVENT_READ)
        self.client: socket.socket | None = None
        self.queue = SendQueue()
        self.decoder = p.StreamDecoder()
        self.wire_errors = 0
        self.clients = 0

    def _drop(self) -> None:
        if self.client is not None:
            self.sel.unregister(self.client)
            self.client.close()
            self.client = None
        self.queue.clear()

    def poll(self, timeout_s: float, core: DeviceCore) -> None:
        for key, _ in self.sel.select(timeout_s):
            if key.fileobj is self.server:
                self._accept()
            elif key.fileobj is self.client:
                self._read(core)
        self._pump()

    def _accept(self) -> None:
        try:
            conn, _addr = self.server.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # the peer gave up before we took it
        self._drop()
        conn.setblocking(False)
        self.client = conn
        self.decoder = p.StreamDecoder()
        self.clients += 1
        self.sel.register(conn, selectors.EVENT_READ)

    def _read(self, core: DeviceCore) -> None:
        assert self.client is not None
        try:
            data = self.client.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop()
            return
        for item in self.decoder.feed(data):
            reply = core.nak_for(item) if isinstance(item, p.WireError) else core.handle(item)
            if isinstance(item, p.WireError):
                self.wire_errors += 1
            if reply is not None and self.client is not None:
                if len(self.queue) >= MAX_QUEUED:
                    self._pump()
                if self.client is None or len(self.queue) >= MAX_QUEUED:  # it sends but does not read: let it go
                    self._drop()
                    return
                self.queue.push(p.encode(reply))

    def _pump(self) -> None:
        """Send what the socket takes now; a broken link is dropped."""
        if self.client is None or not len(self.queue):
            return
        try:
            self.queue.pump(self.client)
        except OSError:
            self._drop()

    def close(self) -> None:
        self._drop()
        self.sel.close()
        self.server.close()


class CameraViewLink:
    """DEALERs to the camera emulators' control ports: fire-and-forget ``set_boom_angle``.

    ``IMMEDIATE`` keeps nothing queued for a camera that is not connected (no stale angle
    arrives when it comes back) and sends never block; replies are read and dropped.
    """

    def __init__(self, zctx: zmq.Context, addresses: dict[str, str], curve: Any = None) -> None:
        """``curve``: this process's CurveClientKeys for the emulators' CURVE control ports (None: plain)."""
        self.socks: dict[str, zmq.Socket] = {}
        self.policies: dict[str, BoomViewPolicy] = {}
        for camera, address in addresses.items():
            s = zctx.socket(zmq.DEALER)
            if curve is not None:
                s.curve_publickey, s.curve_secretkey, s.curve_serverkey = curve.public, curve.secret, curve.server_public
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)  # replies to set_boom_angle are small
            s.setsockopt(zmq.IMMEDIATE, 1)
            s.setsockopt(zmq.SNDHWM, 4)
            s.connect(address)
            self.socks[camera] = s
            self.policies[camera] = BoomViewPolicy()
        self.sent = 0
        self.unsent = 0
        self.rejected = 0
        self._id = 0

    def reset_counters(self) -> None:
        self.sent = 0
        self.unsent = 0
        self.rejected = 0

    def update(self, now_s: float, angle_deg: float, moving: bool) -> None:
        for camera, sock in self.socks.items():
            self._drain(sock)
            policy = self.policies[camera]
            deg = policy.due(now_s, angle_deg, moving)
            if deg is None:
                continue
            self._id += 1
            body = msgpack.packb({"id": self._id, "cmd": "set_boom_angle", "args": {"deg": deg}})
            try:
                sock.send_multipart([b"", body], flags=zmq.NOBLOCK)
            except zmq.Again:
                self.unsent += 1
                continue
            policy.sent(now_s, deg)
            self.sent += 1

    def _drain(self, sock: zmq.Socket) -> None:
        for _ in range(_REPLIES_PER_UPDATE):
            try:
                frames = sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                status = decode_reply(frames[-1]).status
            except BusError:
                status = "malformed"
            if status in ("rejected", "failed", "malformed"):
                self.rejected += 1

    def close(self) -> None:
        for s in self.socks.values():
            s.close()


class MechanismEmulator:
    """Device port + control port + camera views + reporters around one :class:`DeviceCore`."""

    def __init__(self, ctx: ProcessContext) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.time_scale = s["time_scale"]
        self.profile = load_profile(s["profile"], ctx.config.file, s["profile_overrides"])
        self.core = DeviceCore(self.profile, s["seed"], s["physics_hz"])
        self._start_faults(s["faults"])
        self.pub = ctx.publisher()
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic)
        self.link = _Link(ctx.endpoint("link"))
        self.control = ctx.command_server(role="control", on_event=self.events.emit,
                                     reset_counters=lambda: (self._reset_counters(), self.events.reset()), interface=INTERFACE)
        register_table(self.control, INTERFACE, handlers(self))
        self.views = CameraViewLink(ctx.zmq, {cam: ctx.config.endpoints[ref]
                                              for cam, ref in s["camera_controls"].items()}, ctx.client_keys())
        self.health = HealthReporter(ctx, self.pub, self.sample, channels=INTERFACE.telemetry,
                                     events=self.events, commands=self.control)

    def _start_faults(self, faults: list[Any]) -> None:
        """Faults a scenario config asks for from the start: a bad one is a config error."""
        where = f"processes.{self.ctx.name}.faults"
        for spec in faults:
            if not isinstance(spec, dict) or spec.get("fault") not in FAULTS:
                raise ConfigError(self.ctx.config.file, where, f"entries with 'fault' in {list(FAULTS)}", spec)
            try:
                self.core.mech.inject(spec["fault"], {k: v for k, v in spec.items() if k != "fault"})
            except CommandRejected as exc:
                raise ConfigError(self.ctx.config.file, where, "valid fault arguments", str(exc)) from None

    def _reset_counters(self) -> None:
        self.core.reset_counters()
        self.link.wire_errors = 0
        self.views.reset_counters()

    def sample(self) -> dict[str, Any]:
        m = self.core.mech
        return {"state": m.state, "angle_deg": round(m.angle_deg, 3), "sim_t_s": round(m.t_s, 3),
                "link_clients": self.link.clients, "link_connected": self.link.client is not None,
                "wire_errors": self.link.wire_errors, "device_commands": self.core.commands,
                "device_naks": self.core.naks, "physics_overruns": self.core.overruns,
                "view_updates_sent": self.views.sent, "view_updates_unsent": self.views.unsent,
                "view_updates_rejected": self.views.rejected}

    def serve(self) -> None:
        """Run until ``ctx.stop`` is set: device bytes, control commands, physics, views, health."""
        ctx = self.ctx
        ctx.log.info("emulator_ready", mechanism=self.profile.name, type=self.profile.type,
                     link=ctx.endpoint("link"), time_scale=self.time_scale)
        t0 = ctx.monotonic()
        while not ctx.stop.is_set():
            self.link.poll(0.005, self.core)
            self.control.poll(0)
            self.core.advance_to((ctx.monotonic() - t0) * self.time_scale)
            if self.views.socks:
                self.views.update(ctx.monotonic(), self.core.mech.angle_deg, self.core.mech.state in _MOVING_STATES)
            self.health.tick()

    def close(self) -> None:
        self.link.close()
        self.control.close()
        self.views.close()
        self.pub.close()


def run(ctx: ProcessContext) -> None:
    """Entry point of kind ``hil.deploy``; returns when ``ctx.stop`` is set."""
    emulator = MechanismEmulator(ctx)
    try:
        emulator.serve()
    finally:
        emulator.close()
