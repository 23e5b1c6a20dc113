"""Camera emulator process: the camera wire protocol over TCP or a paced serial line, plus a control port.

:class:`~hil.camera.device.CameraDevice` is the camera's logic (no I/O).
This module is the thin adapter: the device link (a TCP server serving one
client at a time, a new connection replacing the old; or a pseudo-terminal
paced at the profile's baud rate), the control port (a command ROUTER:
faults, boom angle, scene), power cycling (the link goes down for the boot
time), and ``OUT/hil/manifest.jsonl``, one line per frame put on the line.
A frame goes out as its envelope's pieces (header, metadata, the pixel
buffer itself, trailer) with one scatter-gather ``sendmsg``; up to
:data:`FRAMES_IN_FLIGHT` frames are queued so the link never waits for the
next frame to be made.
Control commands are listed in :data:`CONTROL_COMMANDS` and in docs/cameras.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import zmq

from drivers.camera import protocol as p
from drivers.camera.profile import profile_for_process
from drivers.links.serial import PtyLine
from drivers.links.tcp import SendQueue, listen_tcp
from framework.config import parse_endpoint
from framework.bus.commands import CommandServer
from framework.errors import CommandRejected
from hil.camera.device import EXPOSURE_RANGE_US, GAIN_RANGE, CameraDevice
from hil.camera.faults import FAULTS, FaultInjector
from hil.camera.frames import FrameSource
from hil.camera.view import SceneOptions

__all__ = ["Manifest", "run", "CONTROL_COMMANDS", "CameraDevice", "EXPOSURE_RANGE_US", "GAIN_RANGE",
           "FRAMES_IN_FLIGHT", "MANIFEST_SYNC_S"]

_RECV_BYTES = 1 << 16
FRAMES_IN_FLIGHT = 2  # frames queued on the link at once (a camera's frame buffer)
MANIFEST_SYNC_S = 0.2  # the manifest is fsynced at least this often while it has unsynced records
CONTROL_COMMANDS = {
    "inject_fault": "{fault, ...its arguments}: arm a fault (hil/camera/faults.py FAULTS)",
    "clear_faults": "disarm pending link faults",
    "set_boom_angle": "{deg}: the boom's angle in the scene, 0 stowed .. 90 deployed",
    "set_scene": "{key: value}: change scene options (dust, pointing_azimuth_deg, flat_level, kind, ...)",
    "status": "the emulator's state: link, streaming, temperature, faults injected",
}


class Manifest:
    """``OUT/hil/manifest.jsonl``: one JSON line per frame sent; append-only, fsynced in batches.

    :meth:`append` writes the line at once (``os.write``: a crash of this
    process loses nothing); ``fsync`` runs when ``sync_s`` has passed since
    the last one, from :meth:`append` or :meth:`tick` (the emulator ticks
    every loop), and on :meth:`close`. So a crash of the machine loses at
    most the records of frames sent in the last ``sync_s`` seconds (plus one
    loop iteration); ``sync_s=0`` fsyncs every record.
    """

    def __init__(self, path: Path, sync_s: float = MANIFEST_SYNC_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sync_s = sync_s
        self._clock = clock
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.unsynced = 0
        self._synced_at = clock()

    def last_counter(self, camera: str) -> int | None:
        """The highest counter already recorded for ``camera``; unreadable lines are ignored."""
        last: int | None = None
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("camera") == camera and isinstance(rec.get("counter"), int):
                    last = rec["counter"] if last is None else max(last, rec["counter"])
        return last

    def append(self, record: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
        self.unsynced += 1
        self.tick()

    def tick(self) -> None:
        """fsync if records are waiting and ``sync_s`` has passed since the last fsync."""
        if self.unsynced and self._clock() - self._synced_at >= self.sync_s:
            self.sync()

    def sync(self) -> None:
        os.fsync(self._fd)
        self.unsynced = 0
        self._synced_at = self._clock()

    def close(self) -> None:
        if self.unsynced:
            self.sync()
        os.close(self._fd)


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


class _Server:
    """Device link + control port + device + manifest, pumped by :meth:`step`."""

    def __init__(self, ctx: Any) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.log = ctx.log
        self.camera = s["camera"]
        self.profile = profile_for_process(s, ctx.config.file)
        self.manifest = Manifest(Path(ctx.out_dir) / "hil" / "manifest.jsonl", clock=ctx.monotonic)
        last = self.manifest.last_counter(self.camera)
        self.source = FrameSource(self.profile, s["seed"], SceneOptions.from_settings(s["scene"]))
        now = ctx.monotonic()
        self.faults = FaultInjector(s["seed"])
        self.device = CameraDevice(self.camera, self.source, ctx.clock, now, self.faults,
                                   first_counter=0 if last is None else last + 1, max_rate_hz=s["max_frame_rate_hz"])
        for f in s["faults"]:
            self._inject(dict(f))
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
        self.decoder = p.StreamDecoder()
        self.seq = 0
        self.unsent: list[int] = []
        self.held: list[tuple[float, tuple[bytes | memoryview, ...], p.Frame, int]] = []  # late frames
        self.off_until = 0.0  # power cycling
        self.control = CommandServer(ctx.zmq, ctx.endpoint("control"))
        for name in CONTROL_COMMANDS:
            self.control.register(name, getattr(self, f"_ctl_{name}"))
        self.poller = zmq.Poller()
        self.poller.register(self.control.sock, zmq.POLLIN)
        for fd in (self.listener, self.line):
            if fd is not None:
                self.poller.register(fd.fileno(), zmq.POLLIN)
        self.log.info("camera_emulator_ready", camera=self.camera, profile=self.profile.name,
                      interface=self.profile.interface, link=str(self.line.link_path) if self.line else
                      ctx.endpoint("link"), first_counter=self.device.next_counter)

    # --- control port -------------------------------------------------------------------------

    def _inject(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args.pop("fault", None)
        if not isinstance(name, str):
            raise CommandRejected(f"inject_fault needs 'fault', one of {sorted(FAULTS)}")
        armed = self.faults.inject(name, args, self.ctx.monotonic())
        self.log.warning("fault_injected", fault=name, **armed)
        return {"fault": name, **armed}

    def _ctl_inject_fault(self, args: dict[str, Any]) -> Any:
        return self._inject(dict(args))

    def _ctl_clear_faults(self, args: dict[str, Any]) -> Any:
        self.faults.clear()
        return {"cleared": True}

    def _ctl_set_boom_angle(self, args: dict[str, Any]) -> Any:
        deg = args.get("deg")
        if isinstance(deg, bool) or not isinstance(deg, (int, float)) or not 0.0 <= deg <= 180.0:
            raise CommandRejected(f"set_boom_angle: 'deg' must be a number in 0..180, got {deg!r}")
        self.source.scene = dataclasses.replace(self.source.scene, boom_angle_deg=round(float(deg), 2))
        self.device.pixel_cache.clear()
        return {"boom_angle_deg": self.source.scene.boom_angle_deg}

    def _ctl_set_scene(self, args: dict[str, Any]) -> Any:
        fields = SceneOptions.__dataclass_fields__
        unknown = sorted(set(args) - set(fields))
        if unknown:
            raise CommandRejected(f"set_scene: unknown option(s) {unknown}; known: {sorted(fields)}")
        try:
            self.source.scene = dataclasses.replace(self.source.scene, **args)
            hash(self.source.scene)
        except TypeError as exc:
            raise CommandRejected(f"set_scene: {exc}") from None
        self.device.pixel_cache.clear()
        return dataclasses.asdict(self.source.scene)

    def _ctl_status(self, args: dict[str, Any]) -> Any:
        now = self.ctx.monotonic()
        return {"camera": self.camera, "connected": self.session is not None, "powered": now >= self.off_until,
                "latched": self.device.latched, "streaming": self.device.streaming,
                "temp_c": round(self.device.temp_c(now), 2), "frames_sent": self.device.frames_sent,
                "next_counter": self.device.next_counter, "boom_angle_deg": self.source.scene.boom_angle_deg,
                "faults_injected": {k: v for k, v in self.faults.injected.items() if v}}

    # --- device link --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self.seq = self.seq % 0xFFFFFFFF + 1  # 1..2**32-1: seq 0 means "none"
        return self.seq

    def send(self, msg: p.Message) -> None:
        msg = dataclasses.replace(msg, seq=self._next_seq())
        enc = p.encode_parts(msg)
        if not isinstance(msg, p.Frame):
            self.session.push(enc.parts)
            return
        assert enc.pixels_crc32c is not None
        fate = self.faults.frame_fate(enc.parts)
        if not fate.send:
            self.log.warning("frame_dropped_by_fault", counter=msg.counter)
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
        self.log.info("client_connected", peer=f"{peer[0]}:{peer[1]}")

    def drop(self, reason: str) -> None:
        """The link is lost: unsent frames give their counters back, streaming stops."""
        for counter in self.unsent:
            self.device.frame_unsent(counter)
        self.unsent.clear()
        self.held.clear()
        self.decoder = p.StreamDecoder()
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
        self.log.info("client_dropped", reason=reason, frames_sent=self.device.frames_sent)

    def read(self) -> None:
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
        for item in self.decoder.feed(data):
            if isinstance(item, p.WireError):
                self.log.warning("command_bytes_rejected", error=type(item).__name__, detail=str(item))
            for reply in self.device.handle(item, now):
                self.send(reply)
            if self.device.power_cycle_pending:
                self._power_cycle(now)
                return

    def _power_cycle(self, now: float) -> None:
        self.session.pump(now)  # the ACK goes out before the power does
        self.drop("power cycle")
        self.off_until = now + self.profile.boot_s
        self.device.rebooted(now)
        self.log.warning("camera_power_cycled", boot_s=self.profile.boot_s, boot_count=self.device.boot_count)

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
        events = dict(self.poller.poll(int(self.timeout_s(now) * 1000)))
        if events.get(self.control.sock):
            self.control.poll(0)
        if self.listener is not None and events.get(self.listener.fileno()):
            self.accept()
        if self.session is not None and events.get(self.session.fileno()):
            self.read()
        now = self.ctx.monotonic()
        self.manifest.tick()
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


def run(ctx: Any) -> None:
    """Serve the camera until ``ctx.stop`` is set."""
    server = _Server(ctx)
    try:
        while not ctx.stop.is_set():
            server.step()
    finally:
        server.close()
        ctx.log.info("camera_emulator_stopped", frames_sent=server.device.frames_sent)
