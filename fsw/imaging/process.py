"""The imaging core process: the socket adapter around :class:`~fsw.imaging.processor.FrameProcessor`.

Frames come off the bus at once (validated at the boundary; a bad one is an
event), go to the processor's bounded queue, and the products it makes go to
the downlink over PUSH. A product the downlink cannot take yet waits here,
never dropped. Exposure commands go to each camera driver's command ROUTER.
Commands come in on this process's ROUTER (handlers: :mod:`fsw.imaging.commands`);
events go out through one :class:`~framework.reporters.EventReporter`.
"""

from __future__ import annotations

import collections
from typing import Any

import msgpack
import zmq

from framework.bus.commands import CommandClient, CommandServer, register_table
from framework.process import ProcessContext
from framework.reporters import EventReporter, HealthReporter
from fsw.imaging.autoexposure import AutoExposure, ExposureCommand
from fsw.imaging.calibration import CalibrationManager
from fsw.imaging.commands import handlers
from fsw.imaging.frame import Frame, FrameRejected, frame_from_message
from fsw.imaging.interface import INTERFACE
from fsw.imaging.processor import FrameProcessor, Held
from fsw.imaging.product import Product, encode_product

__all__ = ["run", "ImagingCore"]


class ImagingCore:
    """The process: bus, PUSH and command sockets around one FrameProcessor (the commands' ImagingControl)."""

    def __init__(self, ctx: ProcessContext) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.pub = ctx.publisher()
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic)
        self.proc = FrameProcessor(s, self.emit, self.events.emit, self.expose, ctx.out_dir / s["calibration_dir"],
                                   ctx.monotonic)
        self.cameras, self.codec = self.proc.cameras, self.proc.codec
        self.sub = ctx.subscriber([f"frame.{c}" for c in self.cameras])
        self.push = ctx.zmq.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 16)
        self.push.setsockopt(zmq.LINGER, 2000)
        self.push.connect(ctx.endpoint("products"))
        self.pending: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self.camera_cmd = {c: CommandClient(ctx.zmq, ctx.config.endpoints[ref])
                           for c, ref in s["camera_commands"].items()}
        self.rejected = 0
        self.last_error = ""
        self._gaps_seen = 0
        self.cmd = CommandServer(ctx.zmq, ctx.endpoint("command"), on_event=self.events.emit,
                                 reset_counters=lambda: (self.reset_counters(), self.events.reset()), interface=INTERFACE)
        register_table(self.cmd, INTERFACE, handlers(self))
        self.health = HealthReporter(ctx, self.pub, self.sample, channels=INTERFACE.telemetry)

    # what the command handlers reach through the adapter (fsw.imaging.commands.ImagingControl)
    @property
    def ae(self) -> dict[str, AutoExposure]:
        return self.proc.ae

    @property
    def calibration(self) -> CalibrationManager | None:
        return self.proc.calibration

    @property
    def recent(self) -> dict[str, collections.deque[Held]]:
        return self.proc.recent

    def recent_frame(self, camera: str, counter: int | None) -> Held | None:
        return self.proc.recent_frame(camera, counter)

    def reset_counters(self) -> None:
        for k in self.proc.counters:
            self.proc.counters[k] = 0
        self.rejected = 0

    def sample(self) -> dict[str, Any]:
        cal = self.proc.calibration
        return dict(self.proc.sample(), frames_in=self.proc.counters["frames_accepted"] + self.rejected,
                    frames_rejected=self.rejected, products_pending=len(self.pending),
                    bus_gaps=self.sub.gaps.missing, bus_malformed=self.sub.malformed,
                    last_error=self.last_error or self.proc.last_error,
                    commands_accepted=self.cmd.accepted, commands_rejected=self.cmd.rejected,
                    calibration={c: cal.active[c].id if c in cal.active else "none" for c in self.cameras},
                    **self.events.counters())

    def emit(self, p: Product, requested: bool = False) -> None:
        head = msgpack.packb({"id": p.id, "kind": p.kind, "camera": p.camera, "counter": p.counter,
                              "score": p.grades.get("score"), "requested": requested,
                              "priority": p.meta.get("priority", "")}, use_bin_type=True)
        self.pending.append((head, encode_product(p)))
        self.pub.publish(f"product.{p.kind}", "product",
                         {"id": p.id, "camera": p.camera, "counter": p.counter, "codec": p.codec,
                          "bytes": len(p.payload), "crc32c": p.crc32c, "grades": p.grades,
                          "priority": p.meta.get("priority", "")})
        self.flush()

    def flush(self) -> None:
        while self.pending:
            head, body = self.pending[0]
            try:
                self.push.send_multipart([head, body], flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.pending.popleft()

    def expose(self, camera: str, cmd: ExposureCommand, frame: Frame) -> None:
        client = self.camera_cmd.get(camera)
        if client is None:
            return
        client.send("SET_EXPOSURE", {"exposure_us": cmd.exposure_us})
        if abs(cmd.gain - frame.gain) > 1e-6:
            client.send("SET_GAIN", {"gain": cmd.gain})
        self.ctx.log.info("ae_command", camera=camera, exposure_us=cmd.exposure_us, gain=cmd.gain)

    def accept(self, msg: Any) -> None:
        try:
            frame = frame_from_message(msg)
        except FrameRejected as exc:
            self.rejected += 1
            self.last_error = str(exc)
            self.events.emit("frame_rejected", {"reason": exc.reason, "detail": str(exc), "from_src": msg.header.src,
                                          "from_seq": msg.header.seq})
            return
        self.proc.accept(frame)

    def drain_camera_replies(self) -> None:
        for cam, client in self.camera_cmd.items():
            r = client.recv(0)
            while r is not None:
                if r.status in ("rejected", "failed"):
                    self.events.emit("ae_command_refused", {"camera": cam, "status": r.status, "reason": r.reason})
                r = client.recv(0)

    def loop(self) -> None:
        self.ctx.log.info("imaging_started", cameras=self.cameras, codec=self.codec,
                          workers=self.ctx.settings["workers"])
        while not self.ctx.stop.is_set():
            msg = self.sub.recv(timeout_ms=5 if self.proc.busy() else 50)
            n = 0
            while msg is not None:
                self.accept(msg)
                n += 1
                msg = self.sub.recv(timeout_ms=0) if n < 64 else None
            self.proc.step()
            if self.sub.gaps.missing > self._gaps_seen:
                self.events.emit("frame_gap", {"missing": self.sub.gaps.missing - self._gaps_seen})
                self._gaps_seen = self.sub.gaps.missing
            self.flush()
            self.cmd.poll()
            self.drain_camera_replies()
            self.health.tick()
        self.proc.close()
        self.flush()
        if self.pending or self.proc.waiting:
            self.ctx.log.warning("products_unsent_at_stop", products=len(self.pending),
                                 frames=len(self.proc.waiting))


def run(ctx: ProcessContext) -> None:
    ImagingCore(ctx).loop()
