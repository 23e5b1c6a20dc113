"""Camera driver process: commands the camera, checks every frame, publishes good ones.

:class:`DriverCore` is the logic with no I/O: bytes from the link go in,
frames, events and replies come out through callbacks, so it is tested
against byte transcripts. :class:`CameraDriver` is the adapter: the TCP
link (reconnect with exponential backoff), the bus publisher, the command
server and health telemetry. :func:`run` is the process entry.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import crc32c
import zmq

from drivers.camera import protocol as p
from drivers.camera.interface import COMMANDS, EVENTS, TELEMETRY, validate_args
from drivers.links.tcp import Backoff, connect_tcp
from fsw.app.config import parse_endpoint
from fsw.app.process import HealthReporter
from fsw.bus.commands import CommandServer
from fsw.errors import CommandRejected

__all__ = ["DriverCore", "CameraDriver", "run", "frame_fields"]

PublishFrame = Callable[[dict[str, Any], memoryview], None]
Emit = Callable[[str, dict[str, Any]], None]
_RECV_BYTES = 4 << 20
_BAD_FRAME_ERRORS = (p.CrcError, p.TruncatedError, p.HeaderCrcError, p.LengthError)


def frame_fields(f: p.Frame, crc: int) -> dict[str, Any]:
    """The bus header fields of a ``frame`` message."""
    return {"camera": f.camera, "counter": f.counter, "shape": [f.height, f.width], "dtype": f.dtype,
            "bit_depth": f.bit_depth, "pattern": f.pattern, "exposure_us": f.exposure_us, "gain": f.gain,
            "temp_c": f.temp_c, "t_capture": f.t_capture, "crc32c": crc}


class DriverCore:
    """Decodes the link, validates frames, counts faults; no sockets, no clock."""

    def __init__(self, camera: str, publish_frame: PublishFrame, emit: Emit) -> None:
        self.camera = camera
        self._publish_frame = publish_frame
        self._emit = emit
        self.decoder = p.StreamDecoder()
        self._seq = 0
        self.awaiting: set[int] = set()
        self.replies: dict[int, p.Message] = {}
        self.temp_c = float("nan")
        self.last_counter: int | None = None
        self.reset_counters()

    def reset_counters(self) -> None:
        self.frames_good = 0
        self.frames_bad = 0
        self.counter_gaps = 0
        self.frames_missing = 0
        self.protocol_errors = 0
        self.camera_naks = 0
        self.bytes_skipped = 0
        self.last_error = ""

    def command(self, msg: p.Message, await_reply: bool = True) -> tuple[int, bytes]:
        """Assign the next sequence number (1..2**32-1) and encode; the reply is kept if awaited."""
        self._seq = self._seq % 0xFFFFFFFF + 1
        if await_reply:
            self.awaiting.add(self._seq)
        return self._seq, p.encode(dataclasses.replace(msg, seq=self._seq))

    def take_reply(self, seq: int) -> p.Message | None:
        reply = self.replies.pop(seq, None)
        if reply is not None:
            self.awaiting.discard(seq)
        return reply

    def on_bytes(self, data: bytes | bytearray | memoryview) -> None:
        for item in self.decoder.feed(data):
            self._on_item(item)

    def on_link_closed(self) -> None:
        """The link ended: whatever was half received is truncated; start afresh."""
        for item in self.decoder.finish():
            self._on_item(item)
        self.decoder = p.StreamDecoder()
        self.awaiting.clear()
        self.replies.clear()

    def _on_item(self, item: p.Message | p.WireError) -> None:
        if isinstance(item, p.Frame):
            self._on_frame(item)
        elif isinstance(item, (p.Ack, p.Nak, p.StatusReply)):
            self._on_reply(item)
        elif isinstance(item, p.WireError):
            self._on_error(item)
        else:
            self._fault("protocol_error", f"camera sent a command: {type(item).__name__}", seq=item.seq)

    def _on_reply(self, reply: p.Ack | p.Nak | p.StatusReply) -> None:
        if isinstance(reply, p.StatusReply):
            self.temp_c = reply.temp_c
        if isinstance(reply, p.Nak):
            self.camera_naks += 1
            self.last_error = f"camera NAK {reply.code}: {reply.reason}"
            self._emit("camera_nak", {"ref_seq": reply.ref_seq, "code": reply.code, "reason": reply.reason})
        if reply.ref_seq in self.awaiting:
            self.replies[reply.ref_seq] = reply

    def _on_error(self, err: p.WireError) -> None:
        if isinstance(err, p.SyncLostError):
            self.bytes_skipped += err.skipped_bytes
            self._fault("link_garbage", str(err), skipped_bytes=err.skipped_bytes, count=False)
            return
        if isinstance(err, _BAD_FRAME_ERRORS) or (isinstance(err, p.MalformedPayload)
                                                  and err.msg_type == p.MsgType.FRAME):
            self.frames_bad += 1
            name = "frame_truncated" if isinstance(err, p.TruncatedError) else "frame_crc_error"
            if isinstance(err, p.MalformedPayload):
                name = "protocol_error"
            self._fault(name, f"{type(err).__name__}: {err}", seq=err.seq, count=False)
            return
        self._fault("protocol_error", f"{type(err).__name__}: {err}", seq=err.seq)

    def _fault(self, name: str, detail: str, count: bool = True, **details: Any) -> None:
        if count:
            self.protocol_errors += 1
        self.last_error = detail
        self._emit(name, {"detail": detail, **details})

    def _on_frame(self, f: p.Frame) -> None:
        if f.camera != self.camera:
            self.frames_bad += 1
            self._fault("protocol_error", f"frame from camera '{f.camera}', expected '{self.camera}'",
                        counter=f.counter, count=False)
            return
        self._check_counter(f.counter)
        self.frames_good += 1
        self.temp_c = f.temp_c
        pixels = memoryview(f.pixels)
        self._publish_frame(frame_fields(f, crc32c.crc32c(pixels)), pixels)

    def _check_counter(self, counter: int) -> None:
        last = self.last_counter
        self.last_counter = counter
        if last is None:
            return
        if counter <= last:
            self._emit("frame_counter_reset", {"counter": counter, "previous": last})
        elif counter > last + 1:
            missing = counter - last - 1
            self.counter_gaps += 1
            self.frames_missing += missing
            self._emit("frame_counter_gap", {"counter": counter, "previous": last, "missing": missing})


class CameraDriver:
    """The process adapter: link socket, bus, commands, health."""

    def __init__(self, ctx: Any) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.log = ctx.log
        self.camera = s["camera"]
        self.reply_timeout_s = s["reply_timeout_s"]
        self.want_streaming = s["stream_on_start"]
        self.rate_hz = s["frame_rate_hz"]
        _, self.host, self.port = parse_endpoint(ctx.endpoint("link"))
        self.pub = ctx.publisher()
        self.core = DriverCore(self.camera, self._publish_frame, self._emit)
        self.commands = CommandServer(ctx.zmq, ctx.endpoint("command"), on_event=self._emit,
                                      reset_counters=self.core.reset_counters)
        for name in COMMANDS:
            if name not in ("NOOP", "RESET_COUNTERS"):
                self.commands.register(name, self._handler(name))
        self.health = HealthReporter(ctx, self.pub, self._sample)
        self.backoff = Backoff(0.1, s["reconnect_max_s"])
        self.sock: Any = None
        self.link_state = "down"
        self.reconnects = 0
        self.next_connect = ctx.monotonic()
        self._buf = bytearray(_RECV_BYTES)
        self._poller = zmq.Poller()
        self._poller.register(self.commands.sock, zmq.POLLIN)
        self._link_poller = zmq.Poller()  # the link alone, while a command waits for its reply

    # --- bus --------------------------------------------------------------------------------

    def _publish_frame(self, fields: dict[str, Any], pixels: memoryview) -> None:
        self.pub.publish(f"frame.{self.camera}", "frame", fields, buffers=[pixels], t=fields["t_capture"])

    def _emit(self, name: str, details: dict[str, Any]) -> None:
        spec = EVENTS.get(name)
        severity = spec.severity if spec else "warning"
        fields = {"name": name, "severity": severity, "event_id": spec.id if spec else 0, **details}
        self.pub.publish(f"evt.{self.ctx.name}", "evt", fields)
        getattr(self.log, "info" if severity == "info" else "warning")(name, **details)

    def _sample(self) -> dict[str, Any]:
        c = self.core
        values = {"link_state": self.link_state, "frames_good": c.frames_good, "frames_bad": c.frames_bad,
                  "counter_gaps": c.counter_gaps, "frames_missing": c.frames_missing,
                  "bytes_skipped": c.bytes_skipped, "last_error": c.last_error, "temp_c": c.temp_c,
                  "commands_accepted": self.commands.accepted, "commands_rejected": self.commands.rejected,
                  "camera_naks": c.camera_naks, "reconnects": self.reconnects, "streaming": self.want_streaming,
                  "last_counter": -1 if c.last_counter is None else c.last_counter}
        assert set(values) <= set(TELEMETRY)
        return values

    # --- link -------------------------------------------------------------------------------

    def _connect(self) -> None:
        self.link_state = "connecting"
        try:
            sock = connect_tcp(self.host, self.port, timeout_s=1.0)
        except OSError as exc:
            delay = self.backoff.next_delay()
            self.next_connect = self.ctx.monotonic() + delay
            self.link_state = "down"
            self.log.info("link_connect_failed", error=str(exc), retry_in_s=round(delay, 3))
            return
        sock.settimeout(self.reply_timeout_s)
        self.sock = sock
        self.link_state = "up"
        self.backoff.reset()
        self._poller.register(sock.fileno(), zmq.POLLIN)
        self._link_poller.register(sock.fileno(), zmq.POLLIN)
        self._emit("link_up", {"host": self.host, "port": self.port})
        if self.want_streaming:
            self._send(p.StreamStart(rate_hz=self.rate_hz), await_reply=False)

    def _disconnect(self, reason: str, quiet: bool = False) -> None:
        if self.sock is None:
            return
        self._poller.unregister(self.sock.fileno())
        self._link_poller.unregister(self.sock.fileno())
        self.sock.close()
        self.sock = None
        self.core.on_link_closed()
        self.link_state = "down"
        self.reconnects += 1
        self.next_connect = self.ctx.monotonic() + self.backoff.next_delay()
        if quiet:
            self.log.info("link_closed", reason=reason)
        else:
            self._emit("link_down", {"reason": reason})

    def _send(self, msg: p.Message, await_reply: bool = True) -> int:
        seq, data = self.core.command(msg, await_reply)
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self._disconnect(f"send: {exc}")
            raise CommandRejected(f"camera link lost while sending: {exc}") from None
        return seq

    def _read(self) -> None:
        try:
            n = self.sock.recv_into(self._buf)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError as exc:
            self._disconnect(f"recv: {exc}")
            return
        if n == 0:
            self._disconnect("camera closed the link")
            return
        # The decoder copies into a buffer of its own per message, so this one is reused safely.
        self.core.on_bytes(memoryview(self._buf)[:n])

    def step(self, timeout_ms: int) -> None:
        if self.sock is None and self.ctx.monotonic() >= self.next_connect:
            self._connect()
        events = dict(self._poller.poll(timeout_ms))
        if self.sock is not None and events.get(self.sock.fileno()):
            self._read()
        if events.get(self.commands.sock):
            self.commands.poll(0)
        self.health.tick()

    # --- commands ---------------------------------------------------------------------------

    def _handler(self, name: str) -> Callable[[dict[str, Any]], Any]:
        def handle(args: dict[str, Any]) -> Any:
            return self._execute(name, validate_args(name, args))
        return handle

    def _execute(self, name: str, args: dict[str, Any]) -> Any:
        if name == "STREAM_STOP":
            self.want_streaming = False
            if self.sock is None:
                return {"link": "down", "note": "streaming will not start on reconnect"}
        if self.sock is None:
            raise CommandRejected(f"{name}: camera link is {self.link_state}")
        if name == "STREAM_START":
            self.rate_hz = args["rate_hz"]
        msg = {"STREAM_START": lambda: p.StreamStart(rate_hz=args["rate_hz"]),
               "STREAM_STOP": p.StreamStop, "CAPTURE": p.Capture, "STATUS": p.StatusRequest,
               "SET_EXPOSURE": lambda: p.SetExposure(exposure_us=args["exposure_us"]),
               "SET_GAIN": lambda: p.SetGain(gain=args["gain"])}[name]()
        reply = self._await_reply(self._send(msg))
        if isinstance(reply, p.Nak):
            raise RuntimeError(f"camera refused {name}: code {reply.code}: {reply.reason}")
        if name == "STREAM_START":
            self.want_streaming = True
        if isinstance(reply, p.StatusReply):
            return {k: getattr(reply, k) for k in ("temp_c", "exposure_us", "gain", "frames_sent", "streaming",
                                                    "rate_hz")}
        return {"camera_seq": reply.ref_seq, "note": getattr(reply, "reason", "")}

    def _await_reply(self, seq: int) -> p.Message:
        """Pump the link until the camera answers ``seq``; frames arriving meanwhile are published."""
        deadline = self.ctx.monotonic() + self.reply_timeout_s
        while self.ctx.monotonic() < deadline and not self.ctx.stop.is_set():
            reply = self.core.take_reply(seq)
            if reply is not None:
                return reply
            if self.sock is None:
                raise RuntimeError("camera link lost before the reply")
            if self._link_poller.poll(50):
                self._read()
            self.health.tick()
        self.core.awaiting.discard(seq)
        self._emit("reply_timeout", {"seq": seq, "timeout_s": self.reply_timeout_s})
        raise TimeoutError(f"no reply from the camera within {self.reply_timeout_s} s")

    def close(self) -> None:
        if self.sock is not None:
            self._disconnect("stopping", quiet=True)
        self.health.tick(force=True)
        self.commands.close()
        self.pub.close()


def run(ctx: Any) -> None:
    """Drive the camera until ``ctx.stop`` is set."""
    driver = CameraDriver(ctx)
    ctx.log.info("camera_driver_started", camera=driver.camera, link=f"{driver.host}:{driver.port}")
    try:
        while not ctx.stop.is_set():
            driver.step(100)
    finally:
        driver.close()
        ctx.log.info("camera_driver_stopped", frames_good=driver.core.frames_good, frames_bad=driver.core.frames_bad)
