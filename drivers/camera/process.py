"""Camera driver process: commands the camera, checks every frame, publishes good ones.

:class:`~drivers.camera.core.DriverCore` is the logic with no I/O (bytes
from the link in; frames, events and replies out), tested against byte
transcripts; :mod:`drivers.camera.commands` holds the command handlers.
:class:`CameraDriver` is the adapter: the device link (TCP or serial,
reconnect with exponential backoff), the bus publisher, the command server,
one :class:`~framework.reporters.EventReporter` and the health telemetry,
and what silence means (a stall is a timeout and a truncated frame; a camera
silent past the latch timeout is power-cycled). :func:`run` is the process entry.

With ``frame_transport: shm`` the pixels do not ride the bus: a frame
message large enough to matter is received by the kernel straight into a
slot of a shared-memory ring (:mod:`framework.bus.frames_shm`), and
``frame.<camera>`` carries the usual header fields plus ``shm: {name, slot,
generation, length, offset}`` and no buffer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import zmq

from drivers.camera import protocol as p
from drivers.camera.commands import handlers
from drivers.camera.core import HUNT_RECV_BYTES, DriverCore, RingDecoder
from drivers.camera.decoder import StreamDecoder
from drivers.camera.interface import INTERFACE, TELEMETRY
from drivers.camera.profile import profile_for_process
from drivers.links.serial import SerialLink
from drivers.links.tcp import Backoff, TcpLink
from framework.bus.commands import CommandServer, register_table
from framework.bus.frames_shm import FrameRing
from framework.config import parse_endpoint
from framework.errors import CommandRejected
from framework.reporters import EventReporter, HealthReporter

__all__ = ["CameraDriver", "run"]

_SHM_MESSAGE_MARGIN = 4096  # a slot holds a whole FRAME message: envelope, metadata, camera id, pixels, trailer


class CameraDriver:
    """The process adapter: device link (TCP or serial), bus, commands, health, timeouts."""

    def __init__(self, ctx: Any) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.log = ctx.log
        self.s = s
        self.camera = s["camera"]
        self.profile = profile_for_process(s, ctx.config.file)
        self.reply_timeout_s = s["reply_timeout_s"]
        self.want_streaming = s["stream_on_start"]
        self.rate_hz = s["frame_rate_hz"]
        self.link = self._make_link()
        self.pub = ctx.publisher()
        max_temp = s["max_temp_c"] if s["max_temp_c"] is not None else self.profile.max_temp_c
        self.ring = self._make_ring() if s["frame_transport"] == "shm" else None
        largest = self.max_payload_bytes()
        decoder = ((lambda: RingDecoder(self.ring, max_payload_bytes=largest)) if self.ring is not None
                   else (lambda: StreamDecoder(largest)))
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic)
        self.core = DriverCore(self.camera, self._publish_frame, self.events.emit, max_temp, s["defect_check"],
                               decoder, limited=self.events.limited)
        self.commands = ctx.command_server(on_event=self.events.emit,
                                      reset_counters=lambda: (self._reset_counters(), self.events.reset()), interface=INTERFACE)
        register_table(self.commands, INTERFACE, handlers(self))
        self.health = HealthReporter(ctx, self.pub, self._sample, channels=INTERFACE.telemetry,
                                     events=self.events, commands=self.commands)
        self.backoff = Backoff(0.1, s["reconnect_max_s"])
        self.connected = False
        self.link_state = "down"
        self.reconnects = 0
        self.next_connect = ctx.monotonic()
        self._buf = bytearray(HUNT_RECV_BYTES)
        self._poller = zmq.Poller()
        self._poller.register(self.commands.sock, zmq.POLLIN)
        self._link_poller = zmq.Poller()  # the link alone, while a command waits for its reply
        self._reset_timing_counters()
        self.last_rx = ctx.monotonic()
        self.last_frame_at: float | None = None
        self.priority_from: tuple[str, float] | None = None  # (priority, wall time of the CAPTURE command)
        self.silent = False
        self.next_keepalive = ctx.monotonic()
        self.settings_sent: dict[str, p.Message] = {}

    def _make_link(self) -> Any:
        if self.profile.interface == "serial":
            path = Path(self.s["serial_path"].format(camera=self.camera))
            if not path.is_absolute():
                path = Path(self.ctx.out_dir) / path
            return SerialLink(str(path), int(self.profile.link_rate_bps))
        _, host, port = parse_endpoint(self.ctx.endpoint("link"))
        return TcpLink(host, port, timeout_s=1.0)

    def _make_ring(self) -> FrameRing:
        name = self.s["shm_ring"]
        if not name:  # unique per run: two runs on one host with the same process names must not share it
            run_id = hashlib.sha256(str(Path(self.ctx.out_dir).resolve()).encode()).hexdigest()[:10]
            name = f"{self.ctx.name}-{run_id}"
        slot_bytes = self.profile.width * self.profile.height * self.profile.bytes_per_pixel + _SHM_MESSAGE_MARGIN
        ring = FrameRing(name, self.s["shm_slots"], slot_bytes)
        self.log.info("frame_ring_created", ring=name, slots=ring.slots, slot_bytes=slot_bytes)
        return ring

    def max_payload_bytes(self) -> int:
        """The longest message the camera may send: a full-sensor frame (metadata, the longest camera id,
        pixels). A header announcing more is refused at once, so a link read never grows beyond it."""
        pixels = self.profile.width * self.profile.height * self.profile.bytes_per_pixel
        return min(p.MAX_PAYLOAD_BYTES, pixels + p.FRAME_META_LEN + 255)

    def _reset_timing_counters(self) -> None:
        self.timeouts = 0
        self.late_frames = 0
        self.power_cycles = 0

    def _reset_counters(self) -> None:
        self.core.reset_counters()
        self._reset_timing_counters()

    # --- timing ------------------------------------------------------------------------------

    def line_time_s(self) -> float:
        """How long the current frame size takes on the line."""
        frame = self.profile.width * self.profile.height * self.profile.bytes_per_pixel
        frame //= self.profile.binning ** 2
        return frame / self.profile.line_bytes_per_s()

    def frame_timeout_s(self) -> float:
        if self.s["frame_timeout_s"] > 0:
            return self.s["frame_timeout_s"]
        return 2.0 / self.rate_hz + self.line_time_s() + 1.0

    def late_frame_s(self) -> float:
        if self.s["late_frame_s"] > 0:
            return self.s["late_frame_s"]
        return 0.5 / self.rate_hz + self.line_time_s()

    # --- bus --------------------------------------------------------------------------------

    def _publish_frame(self, fields: dict[str, Any], pixels: memoryview) -> None:
        now = self.ctx.monotonic()
        if self.want_streaming and self.last_frame_at is not None:
            late_s = now - self.last_frame_at - 1.0 / self.rate_hz
            if late_s > self.late_frame_s():
                self.late_frames += 1
                self.events.emit("frame_late", {"counter": fields["counter"], "late_s": round(late_s, 3)})
        self.last_frame_at = now
        if self.priority_from is not None and fields["t_capture"] >= self.priority_from[1]:
            # The first frame exposed after a priority CAPTURE carries the tag (imaging and downlink send it first).
            fields = dict(fields, priority=self.priority_from[0])
            self.priority_from = None
        if self.ring is None or pixels.nbytes > self.ring.slot_bytes:  # bigger than the profile: inline
            self.pub.publish(f"frame.{self.camera}", "frame", fields, buffers=[pixels], t=fields["t_capture"])
            return
        fields = dict(fields, shm=self._to_ring(pixels).fields())
        self.pub.publish(f"frame.{self.camera}", "frame", fields, t=fields["t_capture"])

    def _to_ring(self, pixels: memoryview) -> Any:
        """Commit the slot the pixels were received into; pixels from anywhere else are copied into one."""
        assert self.ring is not None
        for slot in self.ring.open_slots():
            offset = self.ring.offset_in(slot, pixels)
            if offset is not None:
                return self.ring.commit(slot, pixels.nbytes, offset)
        return self.ring.put(pixels)

    def _sample(self) -> dict[str, Any]:
        c = self.core
        values = {"link_state": self.link_state, "frames_good": c.frames_good, "frames_bad": c.frames_bad,
                  "counter_gaps": c.counter_gaps, "frames_missing": c.frames_missing,
                  "bytes_skipped": c.bytes_skipped, "last_error": c.last_error, "temp_c": c.temp_c,
                  "camera_naks": c.camera_naks, "reconnects": self.reconnects, "streaming": self.want_streaming,
                  "last_counter": -1 if c.last_counter is None else c.last_counter,
                  "frames_truncated": c.frames_truncated, "crc_errors": c.crc_errors, "timeouts": self.timeouts,
                  "late_frames": self.late_frames, "power_cycles": self.power_cycles, "dead_pixels": c.defects[0],
                  "stuck_pixels": c.defects[1], "interface": self.link.kind}
        assert set(values) <= set(TELEMETRY)
        return values

    # --- link -------------------------------------------------------------------------------

    def _connect(self) -> None:
        self.link_state = "connecting"
        try:
            self.link.open()
        except OSError as exc:
            delay = self.backoff.next_delay()
            self.next_connect = self.ctx.monotonic() + delay
            self.link_state = "down"
            self.log.info("link_connect_failed", error=str(exc), retry_in_s=round(delay, 3))
            return
        self.connected = True
        self.link_state = "up"
        self.backoff.reset()
        self.last_rx = self.ctx.monotonic()
        self.last_frame_at = None
        self.silent = False
        self._poller.register(self.link.fileno(), zmq.POLLIN)
        self._link_poller.register(self.link.fileno(), zmq.POLLIN)
        self.events.emit("link_up", self.link.describe())
        try:
            for msg in self.settings_sent.values():  # a power-cycled camera forgot them
                self._send(msg, await_reply=False)
            if self.want_streaming:
                self._send(p.StreamStart(rate_hz=self.rate_hz), await_reply=False)
        except CommandRejected:
            pass  # the link dropped again at once; _send has counted it and will reconnect

    def _disconnect(self, reason: str, quiet: bool = False) -> None:
        if not self.connected:
            return
        self._poller.unregister(self.link.fileno())
        self._link_poller.unregister(self.link.fileno())
        self.link.close()
        self.connected = False
        self.core.on_link_closed(drain=not quiet)  # stopping: what is half received is dropped unread
        self.link_state = "down"
        self.reconnects += 1
        self.next_connect = self.ctx.monotonic() + self.backoff.next_delay()
        if quiet:
            self.log.info("link_closed", reason=reason)
        else:
            self.events.emit("link_down", {"reason": reason})

    def _send(self, msg: p.Message, await_reply: bool = True) -> int:
        seq, data = self.core.command(msg, await_reply)
        try:
            self.link.send(data)
        except OSError as exc:
            self._disconnect(f"send: {exc}")
            raise CommandRejected(f"camera link lost while sending: {exc}") from None
        return seq

    def _read(self) -> None:
        if self.core.busy:  # the decoder has bytes still to look at: a bounded step of that, nothing read
            self.core.pump()
            return
        # Inside a message the bytes go straight into the decoder's buffer for it (no copy); between
        # messages into a small buffer of ours, which the decoder copies from.
        target = self.core.recv_target()
        try:
            n = self.link.read_into(self._buf if target is None else target)
        except OSError as exc:
            self._disconnect(f"recv: {exc}")
            return
        if n < 0:
            return
        if n == 0:
            self._disconnect("camera closed the link")
            return
        self.last_rx = self.ctx.monotonic()
        self.silent = False
        if target is not None:
            self.core.on_received(n)
        else:  # the decoder copies what it keeps, so self._buf is reused safely
            self.core.on_bytes(memoryview(self._buf)[:n])

    def _watch(self) -> None:
        """Stalls, latch-up and keep-alive: what silence from the camera means."""
        if not self.connected:
            return
        now = self.ctx.monotonic()
        quiet_s = now - self.last_rx
        if self.want_streaming and not self.silent and quiet_s > self.frame_timeout_s():
            self.silent = True
            self.timeouts += 1
            self.events.emit("frame_timeout", {"silent_s": round(quiet_s, 3), "timeout_s": round(self.frame_timeout_s(), 3)})
            self.core.on_silence()
        if quiet_s > self.s["latch_timeout_s"] and self.s["power_cycle_on_latch"]:
            self.power_cycles += 1
            self.events.emit("camera_power_cycled", {"silent_s": round(quiet_s, 3)})
            self.last_rx = now  # give it the boot time plus a latch timeout again
            try:
                self._send(p.PowerCycle(), await_reply=False)
            except CommandRejected:
                pass
            return
        if not self.want_streaming and now >= self.next_keepalive:
            self.next_keepalive = now + self.s["ping_interval_s"]
            try:
                self._send(p.StatusRequest(), await_reply=False)
            except CommandRejected:
                pass

    def step(self, timeout_ms: int) -> None:
        if not self.connected and self.ctx.monotonic() >= self.next_connect:
            self._connect()
        events = dict(self._poller.poll(0 if self.core.busy else timeout_ms))
        if self.connected and (self.core.busy or events.get(self.link.fileno())):
            self._read()
        if events.get(self.commands.sock):
            self.commands.poll(0)
        self._watch()
        self.health.tick()

    # --- commands (the handlers are drivers.camera.commands; this is their link) ----------------

    def exchange(self, msg: p.Message) -> p.Message:
        """Send one command to the camera and wait for its reply (frames arriving meanwhile are published)."""
        return self._await_reply(self._send(msg))

    def wall_time(self) -> float:
        return self.ctx.clock()

    def _await_reply(self, seq: int) -> p.Message:
        """Pump the link until the camera answers ``seq``; frames arriving meanwhile are published."""
        deadline = self.ctx.monotonic() + self.reply_timeout_s
        while self.ctx.monotonic() < deadline and not self.ctx.stop.is_set():
            reply = self.core.take_reply(seq)
            if reply is not None:
                return reply
            if not self.connected:
                raise RuntimeError("camera link lost before the reply")
            if self.core.busy or self._link_poller.poll(50):
                self._read()
            self.health.tick()
        self.core.awaiting.discard(seq)
        self.events.emit("reply_timeout", {"wire_seq": seq, "timeout_s": self.reply_timeout_s})
        raise TimeoutError(f"no reply from the camera within {self.reply_timeout_s} s")

    def close(self) -> None:
        if self.connected:
            self._disconnect("stopping", quiet=True)
        self.health.tick(force=True)
        self.commands.close()
        self.pub.close()
        if self.ring is not None:
            self.ring.close()


def run(ctx: Any) -> None:
    """Drive the camera until ``ctx.stop`` is set."""
    driver = CameraDriver(ctx)
    ctx.log.info("camera_driver_started", camera=driver.camera, **driver.link.describe())
    try:
        while not ctx.stop.is_set():
            driver.step(50)
    finally:
        driver.close()
        ctx.log.info("camera_driver_stopped", frames_good=driver.core.frames_good, frames_bad=driver.core.frames_bad)
