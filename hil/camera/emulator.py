"""Camera emulator: a TCP server that speaks the camera wire protocol like the hardware.

:class:`CameraDevice` is the device's logic (no I/O): it answers commands
and makes frames. :func:`run` is the thin adapter: it listens on the
``link`` endpoint, serves one client at a time (a new connection replaces
the old), streams at the commanded rate (capped by ``max_frame_rate_hz``)
and appends one line per frame sent to ``OUT/hil/manifest.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import socket
from pathlib import Path
from typing import Any, Callable

from drivers.camera import protocol as p
from drivers.links.tcp import SendQueue, listen_tcp
from fsw.app.config import parse_endpoint
from fsw.imaging.product import pixels_crc32c
from hil.camera.frames import FrameSource, sensor_temp_c

__all__ = ["CameraDevice", "Manifest", "run", "EXPOSURE_RANGE_US", "GAIN_RANGE"]

EXPOSURE_RANGE_US = (1, 10_000_000)
GAIN_RANGE = (0.1, 64.0)
_RECV_BYTES = 1 << 16


class Manifest:
    """``OUT/hil/manifest.jsonl``: one flushed, fsynced JSON line per frame sent; append-only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

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
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


class CameraDevice:
    """The camera's state and behaviour: commands in, replies and frames out."""

    def __init__(self, camera: str, source: FrameSource, max_rate_hz: float, clock: Callable[[], float],
                 first_counter: int = 0) -> None:
        self.camera = camera
        self.source = source
        self.max_rate_hz = max_rate_hz
        self.clock = clock
        self.next_counter = first_counter
        self.exposure_us = 20_000
        self.gain = 1.0
        self.streaming = False
        self.rate_hz = 0.0
        self.frames_sent = 0
        self.next_due = 0.0  # monotonic time of the next streamed frame

    @property
    def temp_c(self) -> float:
        return sensor_temp_c(self.next_counter)

    def handle(self, item: p.Message | p.WireError, now: float) -> list[p.Message]:
        """Replies (and, for CAPTURE, a frame) to one decoded message or decoding error."""
        if isinstance(item, p.WireError):
            return [self._nak_for_error(item)]
        if isinstance(item, p.Ping):
            return [p.Ack(ref_seq=item.seq)]
        if isinstance(item, p.StatusRequest):
            return [p.StatusReply(ref_seq=item.seq, temp_c=self.temp_c, exposure_us=self.exposure_us, gain=self.gain,
                                  frames_sent=self.frames_sent, streaming=self.streaming, rate_hz=self.rate_hz)]
        if isinstance(item, p.SetExposure):
            return [self._set_exposure(item)]
        if isinstance(item, p.SetGain):
            return [self._set_gain(item)]
        if isinstance(item, p.Capture):
            return [p.Ack(ref_seq=item.seq), self.make_frame()]
        if isinstance(item, p.StreamStart):
            return [self._stream_start(item, now)]
        if isinstance(item, p.StreamStop):
            self.streaming = False
            return [p.Ack(ref_seq=item.seq)]
        return [p.Nak(ref_seq=item.seq, code=p.Code.NOT_ALLOWED,
                      reason=f"{type(item).__name__} is not a command the camera accepts")]

    def _nak_for_error(self, err: p.WireError) -> p.Nak:
        code = {p.UnknownMessageType: p.Code.UNKNOWN_TYPE, p.CrcError: p.Code.CRC}.get(type(err), p.Code.MALFORMED)
        ref = err.seq if err.seq is not None else 0
        return p.Nak(ref_seq=ref, code=code, reason=f"{type(err).__name__}: {err}")

    def _set_exposure(self, cmd: p.SetExposure) -> p.Message:
        lo, hi = EXPOSURE_RANGE_US
        if not lo <= cmd.exposure_us <= hi:
            return p.Nak(ref_seq=cmd.seq, code=p.Code.OUT_OF_RANGE,
                         reason=f"exposure_us={cmd.exposure_us} outside {lo}..{hi}")
        self.exposure_us = cmd.exposure_us
        return p.Ack(ref_seq=cmd.seq)

    def _set_gain(self, cmd: p.SetGain) -> p.Message:
        lo, hi = GAIN_RANGE
        if not lo <= cmd.gain <= hi:
            return p.Nak(ref_seq=cmd.seq, code=p.Code.OUT_OF_RANGE, reason=f"gain={cmd.gain} outside {lo}..{hi}")
        self.gain = cmd.gain
        return p.Ack(ref_seq=cmd.seq)

    def _stream_start(self, cmd: p.StreamStart, now: float) -> p.Message:
        if cmd.rate_hz <= 0:
            return p.Nak(ref_seq=cmd.seq, code=p.Code.OUT_OF_RANGE, reason=f"rate_hz={cmd.rate_hz} is not positive")
        self.rate_hz = min(cmd.rate_hz, self.max_rate_hz)
        note = f"rate capped to {self.max_rate_hz} Hz" if cmd.rate_hz > self.max_rate_hz else ""
        if not self.streaming:
            self.next_due = now
        self.streaming = True
        return p.Ack(ref_seq=cmd.seq, reason=note)

    def frame_due(self, now: float) -> bool:
        return self.streaming and now >= self.next_due

    def stream_frame(self, now: float) -> p.Frame:
        """The next streamed frame; schedules the one after (late frames are not made up in a burst)."""
        self.next_due = max(self.next_due + 1.0 / self.rate_hz, now)
        return self.make_frame()

    def make_frame(self) -> p.Frame:
        counter = self.next_counter
        self.next_counter += 1
        pixels = self.source.frame(counter, self.exposure_us, self.gain)
        return p.Frame(camera=self.camera, counter=counter, width=self.source.width, height=self.source.height,
                       bit_depth=self.source.bit_depth, pattern=self.source.pattern, exposure_us=self.exposure_us,
                       gain=self.gain, temp_c=sensor_temp_c(counter), t_capture=self.clock(), pixels=pixels)

    def frame_sent(self) -> None:
        self.frames_sent += 1

    def frame_unsent(self, counter: int) -> None:
        """A frame was dropped before its last byte left: its counter is used again."""
        self.next_counter = min(self.next_counter, counter)

    def link_lost(self) -> None:
        self.streaming = False


class _Session:
    """One connected client: its socket, decoder, send queue and the frames not yet sent."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.decoder = p.StreamDecoder()
        self.queue = SendQueue()
        self.unsent_frames: list[int] = []
        self.seq = 0

    def next_seq(self) -> int:
        self.seq = self.seq % 0xFFFFFFFF + 1  # 1..2**32-1: seq 0 means "none"
        return self.seq


class _Server:
    def __init__(self, ctx: Any) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.log = ctx.log
        self.manifest = Manifest(Path(ctx.out_dir) / "hil" / "manifest.jsonl")
        last = self.manifest.last_counter(s["camera"])
        source = FrameSource(s["profile"], s["seed"])
        self.device = CameraDevice(s["camera"], source, s["max_frame_rate_hz"], ctx.clock,
                                   first_counter=0 if last is None else last + 1)
        _, host, port = parse_endpoint(ctx.endpoint("link"))
        self.listener = listen_tcp(host, port)
        self.session: _Session | None = None
        self.log.info("camera_emulator_listening", host=host, port=port, camera=s["camera"],
                      first_counter=self.device.next_counter, profile=s["profile"])

    def send(self, msg: p.Message) -> None:
        assert self.session is not None
        sess = self.session
        msg = dataclasses.replace(msg, seq=sess.next_seq())
        data = p.encode(msg)
        if isinstance(msg, p.Frame):
            sess.unsent_frames.append(msg.counter)
            sess.queue.push(data, lambda m=msg: self._frame_sent(m))
        else:
            sess.queue.push(data)

    def _frame_sent(self, frame: p.Frame) -> None:
        assert self.session is not None
        self.session.unsent_frames.remove(frame.counter)
        self.device.frame_sent()
        self.manifest.append({"camera": frame.camera, "counter": frame.counter, "shape": [frame.height, frame.width],
                              "crc32c": pixels_crc32c(frame.pixels), "t_capture": frame.t_capture})

    def accept(self) -> None:
        try:
            sock, peer = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if self.session is not None:
            self.drop("replaced")
        self.session = _Session(sock)
        self.log.info("client_connected", peer=f"{peer[0]}:{peer[1]}")

    def drop(self, reason: str) -> None:
        sess = self.session
        if sess is None:
            return
        for counter in sess.unsent_frames:
            self.device.frame_unsent(counter)
        sess.queue.clear()
        sess.sock.close()
        self.session = None
        self.device.link_lost()
        self.log.info("client_dropped", reason=reason, frames_sent=self.device.frames_sent)

    def read(self) -> None:
        assert self.session is not None
        try:
            data = self.session.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.drop(f"recv: {exc}")
            return
        if not data:
            self.drop("peer closed")
            return
        for item in self.session.decoder.feed(data):
            self.on_item(item)

    def on_item(self, item: p.Message | p.WireError) -> None:
        if isinstance(item, p.WireError):
            self.log.warning("command_bytes_rejected", error=type(item).__name__, detail=str(item))
        else:
            self.log.info("command_received", cmd=type(item).__name__, seq=item.seq)
        for reply in self.device.handle(item, self.ctx.monotonic()):
            self.send(reply)

    def step(self, timeout_s: float) -> None:
        sess = self.session
        rlist: list[socket.socket] = [self.listener] + ([sess.sock] if sess else [])
        wlist = [sess.sock] if sess and len(sess.queue) else []
        readable, writable, _ = select.select(rlist, wlist, [], timeout_s)
        if self.listener in readable:
            self.accept()
        if self.session is not None and self.session.sock in readable:
            self.read()
        if self.session is not None and (self.session.sock in writable or len(self.session.queue)):
            try:
                self.session.queue.pump(self.session.sock)
            except OSError as exc:
                self.drop(f"send: {exc}")
        now = self.ctx.monotonic()
        if self.session is not None and not self.session.unsent_frames and self.device.frame_due(now):
            self.send(self.device.stream_frame(now))

    def timeout_s(self) -> float:
        if self.session is not None and self.device.streaming and not self.session.unsent_frames:
            return min(0.1, max(0.0, self.device.next_due - self.ctx.monotonic()))
        return 0.1

    def close(self) -> None:
        self.drop("stopping")
        self.listener.close()
        self.manifest.close()


def run(ctx: Any) -> None:
    """Serve the camera on the ``link`` endpoint until ``ctx.stop`` is set."""
    server = _Server(ctx)
    try:
        while not ctx.stop.is_set():
            server.step(server.timeout_s())
    finally:
        server.close()
        ctx.log.info("camera_emulator_stopped", frames_sent=server.device.frames_sent)
