"""Camera emulator process: the camera wire protocol over TCP or a paced serial line, plus a control port.

:class:`~hil.camera.device.CameraDevice` is the camera's logic (no I/O), and
:mod:`hil.camera.commands` the control port's handlers. This module is the
thin adapter: the device link (a TCP server serving one client at a time, a
new connection replacing the old; or a pseudo-terminal paced at the
profile's baud rate), the control port (a command ROUTER; its commands are
the table in :mod:`hil.camera.interface`), power cycling (the link goes down
for the boot time), events through one
:class:`~framework.reporters.EventReporter`, health when the config gives a
``bus_pub`` endpoint, and ``OUT/hil/manifest.jsonl``
(:class:`~hil.camera.manifest.Manifest`), one line per frame put on the line.
A frame goes out as its envelope's pieces (header, metadata, the pixel
buffer itself, trailer) with one scatter-gather ``sendmsg``; up to
:data:`FRAMES_IN_FLIGHT` frames are queued so the link never waits for the
next frame to be made.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Any, Sequence

import zmq

from drivers.camera import protocol as p
from drivers.camera.decoder import StreamDecoder
from drivers.camera.profile import profile_for_process
from drivers.links.serial import PtyLine
from drivers.links.tcp import SendQueue, listen_tcp
from framework.bus.commands import CommandServer, register_table
from framework.config import parse_endpoint
from framework.reporters import EventReporter, HealthReporter
from hil.camera.commands import handlers, inject_fault
from hil.camera.device import CameraDevice
from hil.camera.faults import FaultInjector
from hil.camera.frames import FrameSource
from hil.camera.interface import INTERFACE
from hil.camera.manifest import Manifest
from hil.camera.view import SceneOptions

__all__ = ["CameraEmulator", "run", "FRAMES_IN_FLIGHT"]

_RECV_BYTES = 1 << 16
FRAMES_IN_FLIGHT = 2  # frames queued on the link at once (a camera's frame buffer)
MAX_QUEUED = 1024
"""Messages queued on the link at most: a driver that sends commands but never reads its replies is dropped."""


class _TcpSession:
    """One connected TCP client."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.queue = SendQueue()

    def fileno(self) -> int:
        return self.sock.fileno()

    def push(self, data: bytes | Sequence[bytes | memoryview], on_sent: Any = None) -> None:
        self.queue.push(data, on_sent)

    def pump(self, now: float) -> None:
        self.queue.pump(self.sock)

    def pending(self) -> int:
        return len(self.queue)

    def read(self) -> bytes | None:
        """Bytes from the driver; None when the peer closed."""
        try:
            data = self.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return b""
        return data or None

    def close(self) -> None:
        self.queue.clear()
        self.sock.close()


class CameraEmulator:
    """Device link + control port + device + manifest + reporters, pumped by :meth:`step`."""

    def __init__(self, ctx: Any) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.log = ctx.log
        self.camera = s["camera"]
        self.profile = profile_for_process(s, ctx.config.file)
        self.pub = ctx.optional_publisher()
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic)
        self.manifest = Manifest(Path(ctx.out_dir) / "hil" / "manifest.jsonl", clock=ctx.monotonic)
        last = self.manifest.last_counter(self.camera)
        self.source = FrameSource(self.profile, s["seed"], SceneOptions.from_settings(s["scene"]))
        now = ctx.monotonic()
        self.faults = FaultInjector(s["seed"])
        self.device = CameraDevice(self.camera, self.source, ctx.clock, now, self.faults,
                                   first_counter=0 if last is None else last + 1, max_rate_hz=s["max_frame_rate_hz"])
        inject = INTERFACE.checked("inject_fault", lambda args: inject_fault(self, args))
        for f in s["faults"]:  # checked as the control port checks them
            inject(f)
        self.device.pixel_cache_size = s["frame_cache"]
        self.serial = self.profile.interface == "serial"
        self.listener: socket.socket | None = None
        self.line: PtyLine | None = None
        if self.serial:
            path = Path(s["serial_path"].format(camera=self.camera))
            self.line = PtyLine(path if path.is_absolute() else Path(ctx.out_dir) / path, self.profile.link_rate_bps,
                                now)
        else:
            _, host, port = parse_endpoint(ctx.endpoint("link"))
            self.listener = listen_tcp(host, port)
        self.session: Any = self.line  # the serial line is always "connected"
        self.decoder = StreamDecoder(p.MAX_COMMAND_PAYLOAD_BYTES)
        self.seq = 0
        self.unsent: list[int] = []
        self.held: list[tuple[float, tuple[bytes | memoryview, ...], p.Frame, int]] = []  # late frames
        self.off_until = 0.0  # power cycling
        self.wire_errors = 0
        self.link_clients = 0
        self.control = ctx.command_server(role="control", on_event=self.events.emit,
                                     reset_counters=lambda: (self._reset_counters(), self.events.reset()), interface=INTERFACE)
        register_table(self.control, INTERFACE, handlers(self))
        self.health = (HealthReporter(ctx, self.pub, self.sample, channels=INTERFACE.telemetry, events=self.events,
                                      commands=self.control)
                       if ctx.has_endpoint("bus_pub") else None)
        self.poller = zmq.Poller()
        self.poller.register(self.control.sock, zmq.POLLIN)
        for fd in (self.listener, self.line):
            if fd is not None:
                self.poller.register(fd.fileno(), zmq.POLLIN)
        self.log.info("camera_emulator_ready", camera=self.camera, profile=self.profile.name,
                      interface=self.profile.interface, link=str(self.line.link_path) if self.line else
                      ctx.endpoint("link"), first_counter=self.device.next_counter)

    # --- state, health --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.session is not None

    def powered(self, now: float) -> bool:
        return now >= self.off_until

    def _reset_counters(self) -> None:
        self.wire_errors = 0

    def sample(self) -> dict[str, Any]:
        now = self.ctx.monotonic()
        d = self.device
        return {"connected": self.connected, "powered": self.powered(now), "latched": d.latched,
                "streaming": d.streaming, "temp_c": round(d.temp_c(now), 2), "frames_sent": d.frames_sent,
                "next_counter": d.next_counter, "frames_in_flight": len(self.unsent), "frames_held": len(self.held),
                "boom_angle_deg": self.source.scene.boom_angle_deg,
                "faults_injected": sum(self.faults.injected.values()), "link_clients": self.link_clients,
                "wire_errors": self.wire_errors}

    # --- device link --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self.seq = self.seq % 0xFFFFFFFF + 1  # 1..2**32-1: seq 0 means "none"
        return self.seq

    def send(self, msg: p.Message) -> None:
        if self.session is None:
            return
        if self.session.pending() >= MAX_QUEUED:  # a camera's output buffer is finite too
            try:
                self.session.pump(self.ctx.monotonic())
            except OSError as exc:
                self.drop(f"send: {exc}")
                return
            if self.session.pending() >= MAX_QUEUED:
                self.drop("peer not reading")
                return
        msg = dataclasses.replace(msg, seq=self._next_seq())
        enc = p.encode_parts(msg)
        if not isinstance(msg, p.Frame):
            self.session.push(enc.parts)
            return
        assert enc.pixels_crc32c is not None
        fate = self.faults.frame_fate(enc.parts)
        if not fate.send:
            self.events.emit("frame_dropped_by_fault", {"counter": msg.counter})
            return
        if fate.delay_s > 0:
            self.held.append((self.ctx.monotonic() + fate.delay_s, fate.parts, msg, enc.pixels_crc32c))
            return
        self._push_frame(fate.parts, msg, enc.pixels_crc32c, fate.fault)

    def _push_frame(self, parts: tuple[bytes | memoryview, ...], msg: p.Frame, pixels_crc: int, fault: str) -> None:
        self.unsent.append(msg.counter)
        self.session.push(parts, lambda: self._frame_sent(msg, pixels_crc, fault))

    def _frame_sent(self, frame: p.Frame, pixels_crc: int, fault: str) -> None:
        if frame.counter in self.unsent:
            self.unsent.remove(frame.counter)
        self.device.frame_sent()
        rec = {"camera": frame.camera, "counter": frame.counter, "shape": [frame.height, frame.width],
               "crc32c": pixels_crc, "t_capture": frame.t_capture}
        if fault:
            rec["fault"] = fault  # never a sound frame downstream
        self.manifest.append(rec)

    def accept(self) -> None:
        assert self.listener is not None
        try:
            sock, peer = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if self.ctx.monotonic() < self.off_until:
            sock.close()  # still booting
            return
        if self.session is not None:
            self.drop("replaced")
        self.session = _TcpSession(sock)
        self.poller.register(self.session.fileno(), zmq.POLLIN)
        self.link_clients += 1
        self.events.emit("client_connected", {"peer": f"{peer[0]}:{peer[1]}"})

    def drop(self, reason: str) -> None:
        """The link is lost: unsent frames give their counters back, streaming stops."""
        for counter in self.unsent:
            self.device.frame_unsent(counter)
        self.unsent.clear()
        self.held.clear()
        self.decoder = StreamDecoder(p.MAX_COMMAND_PAYLOAD_BYTES)
        self.seq = 0
        self.device.link_lost()
        if self.line is not None:
            self.poller.unregister(self.line.fileno())
            self.line.hang_up()
            self.poller.register(self.line.fileno(), zmq.POLLIN)
        elif self.session is not None:
            self.poller.unregister(self.session.fileno())
            self.session.close()
            self.session = None
        self.events.emit("client_dropped", {"reason": reason, "frames_sent": self.device.frames_sent})

    def read(self) -> None:
        if self.decoder.busy:  # bytes already received wait to be looked at: a bounded step of that first
            self._handle(self.decoder.pump(), self.ctx.monotonic())
            return
        try:
            data = self.session.read()
        except OSError as exc:
            self.drop(f"recv: {exc}")
            return
        if data is None:
            self.drop("peer closed")
            return
        now = self.ctx.monotonic()
        if now < self.off_until or self.faults.stalled(now):
            return  # powered off or stalled: the bytes are lost
        self._handle(self.decoder.feed(data), now)

    def _handle(self, items: list[p.Message | p.WireError], now: float) -> None:
        """What the driver's bytes completed: commands answered, bad bytes counted (a rate-limited event)."""
        for item in items:
            if self.session is None:
                return  # dropped while answering
            if isinstance(item, p.WireError):
                self.wire_errors += 1
                self.events.limited("command_bytes_rejected", {"error": type(item).__name__, "detail": str(item)})
            for reply in self.device.handle(item, now):
                self.send(reply)
            if self.device.power_cycle_pending and self.session is not None:
                self._power_cycle(now)
                return

    def _power_cycle(self, now: float) -> None:
        self.session.pump(now)  # the ACK goes out before the power does
        self.drop("power cycle")
        self.off_until = now + self.profile.boot_s
        self.device.rebooted(now)
        self.events.emit("camera_power_cycled", {"boot_s": self.profile.boot_s, "boot_count": self.device.boot_count})

    def _line_faults(self, now: float) -> None:
        if self.faults.disconnect_now:
            self.faults.disconnect_now = False
            if self.session is not None:
                self.drop("fault: disconnect")
        if self.session is None:
            return
        garbage = self.faults.take_garbage()
        if garbage:
            self.session.push(garbage)
        ready = [h for h in self.held if h[0] <= now]
        for h in ready:
            self.held.remove(h)
            self._push_frame(h[1], h[2], h[3], "")

    def step(self) -> None:
        now = self.ctx.monotonic()
        if isinstance(self.session, _TcpSession):  # wake when the socket takes more bytes
            self.poller.register(self.session.fileno(), zmq.POLLIN | (zmq.POLLOUT if self.session.pending() else 0))
        busy = self.session is not None and self.decoder.busy
        events = dict(self.poller.poll(0 if busy else int(self.timeout_s(now) * 1000)))
        if events.get(self.control.sock):
            self.control.poll(0)
        if self.listener is not None and events.get(self.listener.fileno()):
            self.accept()
        if self.session is not None and (busy or events.get(self.session.fileno())):
            self.read()
        now = self.ctx.monotonic()
        self.manifest.tick()
        if self.health is not None:
            self.health.tick()
        if self.faults.stalled(now) or now < self.off_until:
            return
        self._line_faults(now)
        if self.session is None:
            return
        while len(self.unsent) < FRAMES_IN_FLIGHT and not self.held and self.device.frames_ready(now):
            self.send(self.device.take_frame(now))
        try:
            self.session.pump(now)
        except OSError as exc:
            self.drop(f"send: {exc}")

    def timeout_s(self, now: float) -> float:
        if self.session is None or self.faults.stalled(now):
            return 0.05
        wait = 0.05
        if len(self.unsent) < FRAMES_IN_FLIGHT and not self.held:  # else a due frame waits for the link
            wait = min(wait, self.device.next_event_s(now))
        if self.held:
            wait = min(wait, max(0.0, min(h[0] for h in self.held) - now))
        if self.line is not None and self.line.pending():
            return min(wait, self.line.wait_s())
        return wait

    def close(self) -> None:
        if self.session is not None and self.line is None:
            self.drop("stopping")
        if self.line is not None:
            self.line.close()
        if self.listener is not None:
            self.listener.close()
        self.control.close()
        self.manifest.close()
        self.pub.close()


def run(ctx: Any) -> None:
    """Serve the camera until ``ctx.stop`` is set."""
    server = CameraEmulator(ctx)
    try:
        while not ctx.stop.is_set():
            server.step()
    finally:
        server.close()
        ctx.log.info("camera_emulator_stopped", frames_sent=server.device.frames_sent)
