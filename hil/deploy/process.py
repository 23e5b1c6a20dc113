"""Mechanism emulator process: a TCP device port speaking the mechanism protocol, plus a control port.

- ``link`` (TCP server): the driver connects here, exactly as to the real
  mechanism controller. One client at a time; a new one replaces the old.
- ``control`` (command ROUTER): the scenario runner and tests inject faults
  at run time: ``INJECT {fault, ...}``, ``CLEAR_FAULTS``, ``SET_AMBIENT
  {temp_c}``, ``TRUTH`` (noiseless state, e.g. for the camera scene), ``RESET``.
- ``bus_pub``: health telemetry and an event per injected fault.
- ``camera_controls`` (optional key: camera id -> endpoint of that camera
  emulator's control port): the boom's true angle goes to each camera scene
  as ``set_boom_angle {deg}`` (:mod:`hil.deploy.view` decides when), so the
  frames show the boom where it really is. Never blocks the physics loop; a
  camera emulator that is down only costs a counted, retried update.

Physics runs at ``physics_hz`` steps of simulated time; simulated time runs
``time_scale`` times faster than the wall clock (tests use 5 to 20).
:class:`DeviceCore` is the pure part: messages in, replies out, clock given.
"""

from __future__ import annotations

import selectors
import socket
from typing import Any

import msgpack
import zmq

from drivers.deploy import protocol as p
from drivers.deploy.profile import MechanismProfile, load_profile
from framework.config import parse_endpoint
from framework.process import ProcessContext
from framework.reporters import HealthReporter
from framework.bus.commands import CommandServer
from framework.errors import CommandRejected, ConfigError
from hil.deploy.mechanism import FAULTS, Mechanism
from hil.deploy.view import BoomViewPolicy

__all__ = ["DeviceCore", "CameraViewLink", "run"]

_MAX_STEPS_PER_TICK = 5000
_MOVING_STATES = ("releasing", "deploying")


class DeviceCore:
    """The mechanism controller's firmware: answers protocol messages and steps the physics. No I/O."""

    def __init__(self, profile: MechanismProfile, seed: int, physics_hz: float) -> None:
        self.profile = profile
        self.seed = seed
        self.dt_s = 1.0 / physics_hz
        self.mech = Mechanism(profile, seed)
        self._seq = 0
        self.commands = 0
        self.naks = 0
        self.overruns = 0

    def reset(self) -> None:
        old = self.mech
        self.mech = Mechanism(self.profile, self.seed)
        self.mech.faults, self.mech.t_s, self.mech.ambient_c = old.faults, old.t_s, old.ambient_c

    def advance_to(self, sim_t_s: float) -> int:
        """Step the physics at the fixed rate until simulated time reaches ``sim_t_s``; return steps."""
        n = 0
        while self.mech.t_s + self.dt_s <= sim_t_s:
            if n >= _MAX_STEPS_PER_TICK:
                self.overruns += 1
                break
            self.mech.step(self.dt_s)
            n += 1
        return n

    def _next_seq(self) -> int:
        s = self._seq
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return s

    def handle(self, msg: p.Message) -> p.Message | None:
        """One reply per command; replies and samples sent to the device are ignored."""
        if not isinstance(msg, p.COMMAND_TYPES):
            return None
        self.commands += 1
        seq = self._next_seq()
        if isinstance(msg, p.StatusRequest):
            s = self.mech.sample()
            return p.Sample(ref_seq=msg.seq, t_s=s.t_s, state=s.state, circuit=s.circuit, released=s.released,
                            angle_valid=s.angle_valid, stowed_switch=s.stowed_switch,
                            deployed_switch=s.deployed_switch, angle_deg=s.angle_deg, current_a=s.current_a,
                            temp_c=s.temp_c, element_temp_c=s.element_temp_c, reason=s.reason, seq=seq)
        if isinstance(msg, p.Ping):
            return p.Ack(ref_seq=msg.seq, reason=f"{self.profile.type} {self.profile.name}", seq=seq)
        name = {p.Arm: "ARM", p.Disarm: "DISARM", p.Fire: "FIRE", p.Stop: "STOP"}[type(msg)]
        try:
            note = self.mech.command(name, getattr(msg, "circuit", ""))
        except CommandRejected as exc:
            self.naks += 1
            return p.Nak(ref_seq=msg.seq, code=p.Code.NOT_ALLOWED, reason=str(exc), seq=seq)
        return p.Ack(ref_seq=msg.seq, reason=note, seq=seq)

    def nak_for(self, error: p.WireError) -> p.Message | None:
        """A NAK for a message that arrived sound but could not be decoded."""
        if error.seq is None or isinstance(error, (p.CrcError, p.HeaderCrcError)):
            return None  # nothing trustworthy to answer
        self.naks += 1
        code = p.Code.UNKNOWN_TYPE if isinstance(error, p.UnknownMessageType) else p.Code.MALFORMED
        return p.Nak(ref_seq=error.seq, code=code, reason=str(error), seq=self._next_seq())


class _Link:
    """The device's TCP port: one client at a time, bytes in, replies out."""

    def __init__(self, address: str) -> None:
        _, host, port = parse_endpoint(address)
        self.server = socket.create_server((host, port), reuse_port=False)
        self.server.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.server, selectors.EVENT_READ)
        self.client: socket.socket | None = None
        self.decoder = p.StreamDecoder()
        self.wire_errors = 0
        self.clients = 0

    def _drop(self) -> None:
        if self.client is not None:
            self.sel.unregister(self.client)
            self.client.close()
            self.client = None

    def poll(self, timeout_s: float, core: DeviceCore) -> None:
        for key, _ in self.sel.select(timeout_s):
            if key.fileobj is self.server:
                conn, _addr = self.server.accept()
                self._drop()
                conn.setblocking(True)
                conn.settimeout(1.0)
                self.client = conn
                self.decoder = p.StreamDecoder()
                self.clients += 1
                self.sel.register(conn, selectors.EVENT_READ)
            elif key.fileobj is self.client:
                self._read(core)

    def _read(self, core: DeviceCore) -> None:
        assert self.client is not None
        try:
            data = self.client.recv(65536)
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
                try:
                    self.client.sendall(p.encode(reply))
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

    def __init__(self, zctx: zmq.Context, addresses: dict[str, str]) -> None:
        self.socks: dict[str, zmq.Socket] = {}
        self.policies: dict[str, BoomViewPolicy] = {}
        for camera, address in addresses.items():
            s = zctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.IMMEDIATE, 1)
            s.setsockopt(zmq.SNDHWM, 4)
            s.connect(address)
            self.socks[camera] = s
            self.policies[camera] = BoomViewPolicy()
        self.sent = 0
        self.unsent = 0
        self.rejected = 0
        self._id = 0

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
        while True:
            try:
                frames = sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                reply = msgpack.unpackb(frames[-1], raw=False)
            except Exception:  # msgpack raises several unrelated types on bad bytes
                reply = None
            if not isinstance(reply, dict) or reply.get("status") in ("rejected", "failed"):
                self.rejected += 1

    def close(self) -> None:
        for s in self.socks.values():
            s.close()


def _control(ctx: ProcessContext, core: DeviceCore, pub: Any) -> CommandServer:
    def on_event(name: str, fields: dict[str, Any]) -> None:
        pub.publish(f"evt.{ctx.name}", "evt", {"name": name, "severity": "warning", **fields})

    server = CommandServer(ctx.zmq, ctx.endpoint("control"), on_event=on_event)

    def inject(args: dict[str, Any]) -> dict[str, Any]:
        fault = args.get("fault")
        core.mech.inject(fault, {k: v for k, v in args.items() if k != "fault"})
        ctx.log.info("fault_injected", fault=fault, args=args)
        pub.publish(f"evt.{ctx.name}", "evt", {"name": "fault_injected", "severity": "info", **args})
        return {"faults": _faults(core)}

    def clear(_args: dict[str, Any]) -> dict[str, Any]:
        core.mech.clear_faults()
        return {"faults": _faults(core)}

    def set_ambient(args: dict[str, Any]) -> None:
        t = args.get("temp_c")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not -200.0 <= t <= 200.0:
            raise CommandRejected(f"SET_AMBIENT: 'temp_c' must be a number in [-200, 200], got {t!r}")
        core.mech.ambient_c = float(t)

    def reset(_args: dict[str, Any]) -> None:
        core.reset()

    server.register("INJECT", inject)
    server.register("CLEAR_FAULTS", clear)
    server.register("SET_AMBIENT", set_ambient)
    server.register("TRUTH", lambda args: {**core.mech.truth(), "faults": _faults(core)})
    server.register("RESET", reset)
    return server


def _faults(core: DeviceCore) -> dict[str, Any]:
    f = core.mech.faults
    return {"jam_deg": f.jam_deg, "slow_factor": f.slow_factor, "stuck_switches": dict(f.stuck_switches),
            "angle_dropout": f.angle_dropout, "open_circuits": sorted(f.open_circuits),
            "short_circuits": dict(f.short_circuits)}


def run(ctx: ProcessContext) -> None:
    s = ctx.settings
    profile = load_profile(s["profile"], ctx.config.file, s["profile_overrides"])
    core = DeviceCore(profile, s["seed"], s["physics_hz"])
    for spec in s["faults"]:  # faults a scenario config asks for from the start
        if not isinstance(spec, dict) or spec.get("fault") not in FAULTS:
            raise ConfigError(ctx.config.file, f"processes.{ctx.name}.faults", f"entries with 'fault' in {list(FAULTS)}",
                              spec)
        try:
            core.mech.inject(spec["fault"], {k: v for k, v in spec.items() if k != "fault"})
        except CommandRejected as exc:
            raise ConfigError(ctx.config.file, f"processes.{ctx.name}.faults", "valid fault arguments", str(exc)) from None
    pub = ctx.publisher()
    link = _Link(ctx.endpoint("link"))
    control = _control(ctx, core, pub)
    views = CameraViewLink(ctx.zmq, {cam: ctx.config.endpoints[ref] for cam, ref in s["camera_controls"].items()})

    def sample() -> dict[str, Any]:
        m = core.mech
        return {"state": m.state, "angle_deg": round(m.angle_deg, 3), "sim_t_s": round(m.t_s, 3),
                "link_clients": link.clients, "link_connected": link.client is not None,
                "wire_errors": link.wire_errors, "device_commands": core.commands, "device_naks": core.naks,
                "control_accepted": control.accepted, "control_rejected": control.rejected,
                "physics_overruns": core.overruns, "view_updates_sent": views.sent,
                "view_updates_unsent": views.unsent, "view_updates_rejected": views.rejected}

    health = HealthReporter(ctx, pub, sample)
    ctx.log.info("emulator_ready", mechanism=profile.name, type=profile.type, link=ctx.endpoint("link"),
                 time_scale=s["time_scale"])
    t0 = ctx.monotonic()
    try:
        while not ctx.stop.is_set():
            link.poll(0.005, core)
            control.poll(0)
            core.advance_to((ctx.monotonic() - t0) * s["time_scale"])
            if views.socks:
                views.update(ctx.monotonic(), core.mech.angle_deg, core.mech.state in _MOVING_STATES)
            health.tick()
    finally:
        link.close()
        control.close()
        views.close()
        pub.close()
