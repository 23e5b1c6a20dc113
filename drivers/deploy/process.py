"""Deploy driver process: the mechanism link, the guarded command port, the bus. The only I/O of drivers/deploy.

- ``link`` (TCP client): the mechanism controller (the emulator in HIL).
  STATUS is polled at ``moving_rate_hz`` while anything moves or a
  deployment is supervised, at ``idle_rate_hz`` otherwise; every sample is
  published as ``tlm.<name>`` kind ``deploy``.
- ``command`` (ROUTER, the run's CURVE port: :meth:`~framework.process.ProcessContext.command_server`):
  ARM, FIRE, DISARM, INHIBIT, ENABLE, ABORT go through :class:`~drivers.deploy.arming.ArmFireGuard`
  with the client's identity: the name its key is authorised under, or the operator a delegate
  (the ground's command ingest, the sequencer) acts for, so the operator who ARMs is the one who
  must FIRE, whichever way the two commands came. ``auth: none`` refuses every hazardous command. FIRE is answered ``accepted`` at once and
  ``completed`` (deployed) or ``failed`` (partial, failed) with the verdict.
- ``bus_pub``: telemetry, health and ``evt.<name>`` events.

The deployment itself is run by the pure :class:`~drivers.deploy.sequencer.Sequencer`;
the command handlers are :mod:`drivers.deploy.commands`; this module carries the
sequencer's device commands, events and verdict, and publishes every event
through one :class:`~framework.reporters.EventReporter` (``mechanism`` in each).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from drivers.deploy import protocol as p
from drivers.deploy.arming import ArmFireGuard
from drivers.deploy.commands import WITH_CLIENT, handlers
from drivers.deploy.interface import COMMANDS, INTERFACE
from drivers.deploy.profile import MechanismProfile, load_profile
from drivers.deploy.sequencer import Action, DeviceCmd, Event, Sequencer, Verdict
from framework.bus.commands import CommandClient, Deferred, register_table
from framework.config import parse_endpoint
from framework.errors import NotSent
from framework.process import ProcessContext
from framework.reporters import EventReporter, HealthReporter

__all__ = ["DeviceLink", "DeployDriver", "run"]

_DEVICE_MSG = {"ARM": lambda c: p.Arm(), "DISARM": lambda c: p.Disarm(), "STOP": lambda c: p.Stop(),
               "FIRE": lambda c: p.Fire(circuit=c)}


class DeviceLink:
    """Request and reply over TCP to the mechanism controller; reconnects with backoff."""

    def __init__(self, address: str, reply_timeout_s: float, reconnect_max_s: float, monotonic: Any) -> None:
        _, self.host, self.port = parse_endpoint(address)
        self.reply_timeout_s = reply_timeout_s
        self.reconnect_max_s = reconnect_max_s
        self._mono = monotonic
        self.sock: socket.socket | None = None
        self.decoder = p.StreamDecoder()
        self._seq = 0
        self._backoff_s = 0.05
        self._next_try = 0.0
        self.errors: list[p.WireError] = []
        self.wire_errors = 0
        self.timeouts = 0
        self.reconnects = 0

    @property
    def up(self) -> bool:
        return self.sock is not None

    def try_connect(self) -> bool:
        now = self._mono()
        if self.sock is not None or now < self._next_try:
            return False
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=0.5)
        except OSError:
            self._next_try = now + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, self.reconnect_max_s)
            return False
        self.sock.settimeout(0.05)
        self.decoder = p.StreamDecoder()
        self._backoff_s = 0.05
        self.reconnects += 1
        return True

    def drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self._next_try = self._mono() + self._backoff_s

    def request(self, msg_factory: Any) -> p.Message | None:
        """Send one command (``msg_factory(seq)``); return its reply, or None on timeout or a lost link."""
        if self.sock is None:
            return None
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        try:
            self.sock.sendall(p.encode(msg_factory(seq)))
        except OSError:
            self.drop()
            return None
        deadline = self._mono() + self.reply_timeout_s
        while self._mono() < deadline and self.sock is not None:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            if not data:
                self.drop()
                return None
            for item in self.decoder.feed(data):
                if isinstance(item, p.WireError):
                    self.wire_errors += 1
                    self.errors.append(item)
                elif getattr(item, "ref_seq", None) == seq:
                    return item
        self.timeouts += 1
        return None


def _with_seq(msg: p.Message) -> Any:
    return lambda seq: type(msg)(**{**msg.__dict__, "seq": seq})


class DeployDriver:
    """The process adapter: profile, guard, sequencer, link, and the bus and command sockets."""

    def __init__(self, ctx: ProcessContext) -> None:
        s = ctx.settings
        self.ctx, self.s = ctx, s
        self.profile: MechanismProfile = load_profile(s["profile"], ctx.config.file, s["profile_overrides"])
        self.mech = s["mechanism"]
        self.state_path = Path(s["state_file"]) if s["state_file"] else ctx.out_dir / "state" / f"{ctx.name}.json"
        saved = self._load_state()
        self.seq = Sequencer(self.profile)
        self.pub = ctx.publisher()
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic,
                                    fixed={"mechanism": self.mech})
        self.link = DeviceLink(ctx.endpoint("link"), s["reply_timeout_s"], s["reconnect_max_s"], ctx.monotonic)
        self.guard = ArmFireGuard({self.mech: self.profile.one_shot}, s["arm_window_s"],
                                  authorized=self._authorized, fired=saved.get("fired", []),
                                  inhibited=saved.get("inhibited", [self.mech] if s["inhibited"] else []))
        self.server = ctx.command_server(on_event=self.events.emit, on_refused=self._refused,
                                         reset_counters=lambda: (self._reset(), self.events.reset()), interface=INTERFACE)
        register_table(self.server, INTERFACE, handlers(self), with_client=WITH_CLIENT)
        self.pending: Deferred | None = None
        self.sample_now = False
        self.camera: CommandClient | None = None
        self.counters = {"samples": 0, "verdicts": 0, "auth_refused": 0}
        self._events_at_reset = 0

    # --- what the command handlers (drivers.deploy.commands) use ------------------------------

    @property
    def link_up(self) -> bool:
        return self.link.up

    def monotonic(self) -> float:
        return self.ctx.monotonic()

    # --- counters and clients ---------------------------------------------------------------

    def _events_raised(self) -> int:
        return self.events.published + self.events.unpublished

    def _reset(self) -> None:
        for k in self.counters:
            self.counters[k] = 0
        self._events_at_reset = self._events_raised()

    def _authorized(self, client: str) -> bool:
        """Whether hazardous commands are taken at all (``auth: curve``) from an identified client: the
        command port has already checked the client's key against the allow-list as it is now, on this very
        command (a revoked key never reaches a handler), and named it (or the operator a delegate acts for)."""
        return self.s["auth"] == "curve" and bool(client)

    # --- deployment -------------------------------------------------------------------------

    def execute(self, actions: list[Action]) -> None:
        """Carry out the sequencer's actions in order; a refused device command ends the list."""
        for a in actions:
            if isinstance(a, Event):
                self.events.emit(a.name, a.fields, a.severity, log_exclude=("evidence",))
            elif isinstance(a, Verdict):
                self._on_verdict(a)
            elif isinstance(a, DeviceCmd):
                if not self._device(a):
                    return

    def _device(self, cmd: DeviceCmd) -> bool:
        if not self.link.up:
            return True  # the verdict that follows says the link was lost
        reply = self.link.request(_with_seq(_DEVICE_MSG[cmd.name](cmd.circuit)))
        if isinstance(reply, p.Ack):
            return True
        reason = reply.reason if isinstance(reply, p.Nak) else "no reply"
        if reply is None:
            self.events.emit("reply_timeout", {"cmd": cmd.name})
        self.execute(self.seq.on_nak(cmd, reason))
        return False

    def _on_verdict(self, v: Verdict) -> None:
        self.counters["verdicts"] += 1
        self.guard.busy.discard(self.mech)
        if self.pending is not None:
            if v.outcome == "deployed":
                self.pending.complete(v.as_fields())
            else:
                self.pending.fail(v.text, v.as_fields())
            self.pending = None
        if self.profile.moves and v.outcome in ("deployed", "partial"):
            self._request_confirmation(v)

    def _request_confirmation(self, v: Verdict) -> None:
        camera = self.s["confirm_camera"] or self.profile.view.get("camera", "")
        if not camera:
            return
        try:
            address = self.ctx.config.endpoint(camera, "command")
        except KeyError:
            self.events.emit("confirmation_capture_failed",
                             {"camera": camera, "reason": "no such camera process in the config"})
            return
        if self.camera is None:
            self.camera = self.ctx.command_client(address)
        try:  # sends never wait: a camera driver that is down refuses it here
            cid = self.camera.send("CAPTURE", {"priority": "confirmation"})
        except NotSent as exc:
            self.events.emit("confirmation_capture_failed", {"camera": camera, "reason": f"not sent: {exc}"})
            return
        self.events.emit("confirmation_capture_requested",
                         {"camera": camera, "id": cid, "outcome": v.outcome, "angle_deg": v.angle_deg})

    def poll_camera(self) -> None:
        if self.camera is None:
            return
        r = self.camera.recv(0)
        while r is not None:
            if r.status in ("rejected", "failed"):
                self.events.emit("confirmation_capture_failed", {"id": r.id, "reason": r.reason})
            r = self.camera.recv(0)

    # --- link and telemetry -----------------------------------------------------------------

    def sample_once(self) -> None:
        reply = self.link.request(lambda seq: p.StatusRequest(seq=seq))
        self._report_wire_errors()
        if reply is None:
            if not self.link.up:
                self.events.emit("link_down", {"reason": "connection lost"})
                self.execute(self.seq.abort("mechanism link lost"))
            else:
                self.events.emit("reply_timeout", {"cmd": "STATUS"})
            return
        if not isinstance(reply, p.Sample):
            self.events.emit("protocol_error", {"reason": f"STATUS answered by {type(reply).__name__}"})
            return
        self.counters["samples"] += 1
        if reply.released and self.profile.one_shot:
            self.guard.fired.add(self.mech)  # the device says it is spent, whatever we remember
        self.publish_sample(reply)
        self.execute(self.seq.on_sample(reply))

    def _report_wire_errors(self) -> None:
        for err in self.link.errors:
            self.events.emit("protocol_error", {"reason": str(err), "error": type(err).__name__})
        self.link.errors.clear()

    def publish_sample(self, s: p.Sample) -> None:
        st = self.guard.status(self.mech, self.ctx.monotonic())
        self.pub.publish(f"tlm.{self.ctx.name}", "deploy", {
            "mechanism": self.mech, "state": s.state, "reason": s.reason, "angle_deg": round(s.angle_deg, 3),
            "angle_valid": s.angle_valid, "current_a": round(s.current_a, 4), "temp_c": round(s.temp_c, 2),
            "element_temp_c": round(s.element_temp_c, 2), "stowed_switch": s.stowed_switch,
            "deployed_switch": s.deployed_switch, "circuit": s.circuit, "device_t_s": round(s.t_s, 3),
            "armed": st["armed"], "inhibited": st["inhibited"], "deploying": self.seq.active})

    def moving(self) -> bool:
        last = self.seq.last
        return self.seq.active or (last is not None and last.state in ("releasing", "deploying"))

    def _refused(self, refusal: dict[str, Any]) -> None:
        """Every refused handshake is counted; all of them, whatever the key, make one rate-limited
        ``auth_refused`` event (the first key of the period, and the count it stands for). Not one per
        key: random keys cost an attacker nothing, and ZeroMQ retries a refused handshake every
        reconnect interval. No table per key is kept."""
        self.counters["auth_refused"] += 1
        self.events.limited("auth_refused", refusal)

    def health(self) -> dict[str, Any]:
        return {"link_up": self.link.up, "wire_errors": self.link.wire_errors,
                "reply_timeouts": self.link.timeouts, "reconnects": self.link.reconnects,
                "state": self.seq.last.state if self.seq.last else "unknown", **self.counters,
                "events": self._events_raised() - self._events_at_reset}

    # --- persistent safety state ------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_state(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"fired": sorted(self.guard.fired), "inhibited": sorted(self.guard.inhibited)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)

    def close(self) -> None:
        self.link.drop()
        self.server.close()
        if self.camera is not None:
            self.camera.close()
        self.pub.close()


def run(ctx: ProcessContext) -> None:
    d = DeployDriver(ctx)
    health = HealthReporter(ctx, d.pub, d.health, channels=INTERFACE.telemetry, events=d.events, commands=d.server)
    ctx.log.info("driver_ready", mechanism=d.mech, type=d.profile.type, auth=ctx.settings["auth"],
                 commands=sorted(COMMANDS))
    next_sample = ctx.monotonic()
    try:
        while not ctx.stop.is_set():
            if d.link.try_connect():
                d.events.emit("link_up", {"host": d.link.host, "port": d.link.port})
                next_sample = ctx.monotonic()
            now = ctx.monotonic()
            if d.link.up and (now >= next_sample or d.sample_now):
                d.sample_now = False
                d.sample_once()
                rate = ctx.settings["moving_rate_hz"] if d.moving() else ctx.settings["idle_rate_hz"]
                next_sample = now + 1.0 / rate
            wait_ms = max(0, min(20, int((next_sample - ctx.monotonic()) * 1000)))
            d.server.poll(wait_ms)  # reports the handshakes it refused too (auth_refused)
            d.poll_camera()
            health.tick()
    finally:
        d.close()
