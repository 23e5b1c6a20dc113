"""The imaging core process: frames in from the bus, products out to the downlink.

Frames are taken off the bus at once into a bounded queue (so the bus never
backs up); each is graded and thumbnailed in the main thread (thumbnail sent
first), then its lossless product is encoded by a worker thread (the codecs
release the GIL). When the queue is full a frame keeps only its thumbnail and
an event names it: nothing is dropped silently. Products go to the downlink
over PUSH; one the downlink cannot take yet waits here, never dropped.
"""

from __future__ import annotations

import collections
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import msgpack
import zmq

from fsw.app.process import HealthReporter, ProcessContext
from fsw.bus.commands import CommandClient, CommandServer
from fsw.errors import PdhError
from fsw.imaging.autoexposure import AutoExposure, AutoExposureConfig
from fsw.imaging.calibration import CalibrationManager
from fsw.imaging.frame import Frame, FrameRejected, frame_from_message
from fsw.imaging.grades import grade_frame, thumbnail_only
from fsw.imaging.interface import EVENTS
from fsw.imaging.pipeline import make_lossless, make_thumbnail
from fsw.imaging.product import Product, encode_product
from fsw.imaging.requests import register_requests

__all__ = ["run", "ImagingCore"]


class ImagingCore:
    def __init__(self, ctx: ProcessContext) -> None:
        self.ctx = ctx
        s = self.s = ctx.settings
        self.cameras: list[str] = list(s["cameras"])
        self.codec: str = s["lossless_codec"]
        self.pub = ctx.publisher()
        self.sub = ctx.subscriber([f"frame.{c}" for c in self.cameras])
        self.push = ctx.zmq.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 16)
        self.push.setsockopt(zmq.LINGER, 2000)
        self.push.connect(ctx.endpoint("products"))
        self.pending: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self.waiting: collections.deque[tuple[Frame, float]] = collections.deque()
        self.inflight: collections.deque[tuple[Frame, Future[Product]]] = collections.deque()
        self.pool = ThreadPoolExecutor(max_workers=s["workers"], thread_name_prefix="lossless")
        self.recent: dict[str, collections.deque[tuple[Frame, dict[str, Any]]]] = {
            c: collections.deque(maxlen=s["recent_frames"]) for c in self.cameras}
        ae_cfg = {k: v for k, v in s["autoexposure"].items() if k != "enabled"}
        self.ae = {c: AutoExposure(AutoExposureConfig(**ae_cfg), enabled=s["autoexposure"]["enabled"])
                   for c in self.cameras}
        self.camera_cmd = {c: CommandClient(ctx.zmq, ctx.config.endpoints[ref])
                           for c, ref in s["camera_commands"].items()}
        self.calibration = CalibrationManager(ctx.out_dir / s["calibration_dir"])
        self.counters = dict(frames_in=0, frames_rejected=0, frames_thumbnail_only=0, products_made=0,
                             products_failed=0, ae_commands=0)
        self.last_frame_ms = 0.0
        self.last_error = ""
        self._gaps_seen = 0
        self.cmd = CommandServer(ctx.zmq, ctx.endpoint("command"), on_event=self.event,
                                 reset_counters=self.reset_counters)
        register_requests(self)
        self.health = HealthReporter(ctx, self.pub, self.sample)

    # -- telemetry and events -------------------------------------------------------------------
    def reset_counters(self) -> None:
        for k in self.counters:
            self.counters[k] = 0

    def sample(self) -> dict[str, Any]:
        now = self.ctx.monotonic()
        oldest = now - self.waiting[0][1] if self.waiting else 0.0
        return dict(self.counters, queue_depth=len(self.waiting), encoding=len(self.inflight),
                    oldest_waiting_s=round(oldest, 3), products_pending=len(self.pending),
                    bus_gaps=self.sub.gaps.missing, bus_malformed=self.sub.malformed,
                    last_frame_ms=round(self.last_frame_ms, 1), last_error=self.last_error,
                    commands_accepted=self.cmd.accepted, commands_rejected=self.cmd.rejected,
                    autoexposure={c: a.enabled for c, a in self.ae.items()},
                    calibration={c: self.calibration.active[c].id if c in self.calibration.active else "none"
                                 for c in self.cameras})

    def event(self, name: str, fields: dict[str, Any]) -> None:
        spec = EVENTS.get(name, {"id": 0, "severity": "info"})
        self.pub.publish(f"evt.{self.ctx.name}", "evt",
                         {"name": name, "event_id": spec["id"], "severity": spec["severity"], **fields})
        (self.ctx.log.info if spec["severity"] == "info" else self.ctx.log.warning)(name, **fields)

    # -- products out ---------------------------------------------------------------------------
    def emit(self, p: Product, requested: bool = False) -> None:
        head = msgpack.packb({"id": p.id, "kind": p.kind, "camera": p.camera, "counter": p.counter,
                              "score": p.grades.get("score"), "requested": requested}, use_bin_type=True)
        self.pending.append((head, encode_product(p)))
        self.counters["products_made"] += 1
        self.pub.publish(f"product.{p.kind}", "product",
                         {"id": p.id, "camera": p.camera, "counter": p.counter, "codec": p.codec,
                          "bytes": len(p.payload), "crc32c": p.crc32c, "grades": p.grades})
        self.flush()

    def flush(self) -> None:
        while self.pending:
            head, body = self.pending[0]
            try:
                self.push.send_multipart([head, body], flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.pending.popleft()

    # -- frames in ------------------------------------------------------------------------------
    def recent_frame(self, camera: str, counter: int | None) -> tuple[Frame, dict[str, Any]] | None:
        for frame, grades in reversed(self.recent.get(camera, ())):
            if counter is None or frame.counter == counter:
                return frame, grades
        return None

    def accept(self, msg: Any) -> None:
        self.counters["frames_in"] += 1
        try:
            frame = frame_from_message(msg)
        except FrameRejected as exc:
            self.counters["frames_rejected"] += 1
            self.last_error = str(exc)
            self.event("frame_rejected", {"reason": exc.reason, "detail": str(exc), "from_src": msg.header.src,
                                          "from_seq": msg.header.seq})
            return
        if len(self.waiting) >= self.s["queue_max"]:
            self.front_end(frame, full_frame=False)
            self.counters["frames_thumbnail_only"] += 1
            self.event("frames_thumbnail_only", {"camera": frame.camera, "counters": [frame.counter],
                                                 "reason": "queue_full", "queue_depth": len(self.waiting)})
            return
        self.waiting.append((frame, self.ctx.monotonic()))

    def front_end(self, frame: Frame, full_frame: bool = True) -> None:
        """Grade, command exposure, feed calibration, thumbnail; then hand the full frame to a worker."""
        t0 = time.perf_counter()
        previous = self.recent_frame(frame.camera, None)
        try:
            grades = grade_frame(frame.pixels, frame.bit_depth, frame.pattern,
                                 previous[0].pixels if previous else None)
            cal = self.calibration.active.get(frame.camera)
            grades["calibration"] = cal.id if cal else "none"
            self.recent[frame.camera].append((frame, grades))
            self.calibration.offer(frame.camera, frame.pixels, frame.exposure_us, frame.temp_c)
            self.autoexpose(frame, grades)
            thumb, _ = make_thumbnail(frame, self.s["thumbnail_px"], grades)
            self.emit(thumb)
        except PdhError as exc:
            self.fail(frame, exc)
            return
        if full_frame and thumbnail_only(grades, self.s["thumbnail_only_rule"]):
            self.counters["frames_thumbnail_only"] += 1
            self.event("frames_thumbnail_only", {"camera": frame.camera, "counters": [frame.counter],
                                                 "reason": "rule", "score": grades["score"]})
            full_frame = False
        if full_frame:
            fut = self.pool.submit(make_lossless, frame, self.codec, grades, self.s["lossless_params"])
            self.inflight.append((frame, fut))
        self.last_frame_ms = (time.perf_counter() - t0) * 1000

    def autoexpose(self, frame: Frame, grades: dict[str, Any]) -> None:
        client = self.camera_cmd.get(frame.camera)
        if client is None:
            return
        cmd = self.ae[frame.camera].update(grades, frame.bit_depth, frame.exposure_us, frame.gain)
        if cmd is None:
            return
        client.send("SET_EXPOSURE", {"exposure_us": cmd.exposure_us})
        if abs(cmd.gain - frame.gain) > 1e-6:
            client.send("SET_GAIN", {"gain": cmd.gain})
        self.counters["ae_commands"] += 1
        self.ctx.log.info("ae_command", camera=frame.camera, exposure_us=cmd.exposure_us, gain=cmd.gain)

    def fail(self, frame: Frame, exc: Exception) -> None:
        self.counters["products_failed"] += 1
        self.last_error = str(exc)
        self.event("product_failed", {"camera": frame.camera, "counter": frame.counter, "reason": str(exc)})

    def collect_done(self) -> None:
        """Emit finished lossless products in frame order."""
        while self.inflight and self.inflight[0][1].done():
            frame, fut = self.inflight.popleft()
            try:
                self.emit(fut.result())
            except PdhError as exc:
                self.fail(frame, exc)

    def drain_camera_replies(self) -> None:
        for cam, client in self.camera_cmd.items():
            r = client.recv(0)
            while r is not None:
                if r.status in ("rejected", "failed"):
                    self.event("ae_command_refused", {"camera": cam, "status": r.status, "reason": r.reason})
                r = client.recv(0)

    def loop(self) -> None:
        self.ctx.log.info("imaging_started", cameras=self.cameras, codec=self.codec, workers=self.s["workers"])
        while not self.ctx.stop.is_set():
            msg = self.sub.recv(timeout_ms=5 if (self.waiting or self.inflight) else 50)
            n = 0
            while msg is not None:
                self.accept(msg)
                n += 1
                msg = self.sub.recv(timeout_ms=0) if n < 64 else None
            while self.waiting and len(self.inflight) < self.s["workers"]:
                self.front_end(self.waiting.popleft()[0])
            self.collect_done()
            if self.sub.gaps.missing > self._gaps_seen:
                self.event("frame_gap", {"missing": self.sub.gaps.missing - self._gaps_seen})
                self._gaps_seen = self.sub.gaps.missing
            self.flush()
            self.cmd.poll()
            self.drain_camera_replies()
            self.health.tick()
        self.pool.shutdown(wait=True)
        self.collect_done()
        self.flush()
        if self.pending or self.waiting:
            self.ctx.log.warning("products_unsent_at_stop", products=len(self.pending), frames=len(self.waiting))


def run(ctx: ProcessContext) -> None:
    ImagingCore(ctx).loop()
