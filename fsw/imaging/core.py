"""The imaging core process: frames in from the bus, products out to the downlink.

For each frame: validate, grade, thumbnail (sent first), lossless full frame.
Products go to the downlink over a PUSH socket; a product the downlink cannot
take yet waits in a local queue and is never dropped.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import msgpack
import zmq

from fsw.app.process import HealthReporter, ProcessContext
from fsw.errors import PdhError
from fsw.imaging.frame import FrameRejected, frame_from_message
from fsw.imaging.interface import EVENTS
from fsw.imaging.pipeline import grade, make_lossless, make_thumbnail
from fsw.imaging.product import Product, encode_product

__all__ = ["run"]


class _Core:
    def __init__(self, ctx: ProcessContext) -> None:
        self.ctx = ctx
        self.s = ctx.settings
        self.pub = ctx.publisher()
        self.sub = ctx.subscriber([f"frame.{c}" for c in self.s["cameras"]])
        self.push = ctx.zmq.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 16)
        self.push.setsockopt(zmq.LINGER, 2000)
        self.push.connect(ctx.endpoint("products"))
        self.pending: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self.counters = dict(frames_in=0, frames_rejected=0, products_made=0, products_failed=0)
        self.last_frame_ms = 0.0
        self.last_error = ""
        self._gaps_seen = 0
        from fsw.bus.commands import CommandServer

        self.cmd = CommandServer(ctx.zmq, ctx.endpoint("command"), on_event=self.event,
                                 reset_counters=self.reset_counters)
        self.health = HealthReporter(ctx, self.pub, self.sample)

    def reset_counters(self) -> None:
        for k in self.counters:
            self.counters[k] = 0

    def sample(self) -> dict[str, Any]:
        return dict(self.counters, products_pending=len(self.pending), bus_gaps=self.sub.gaps.missing,
                    bus_malformed=self.sub.malformed, last_frame_ms=round(self.last_frame_ms, 1),
                    last_error=self.last_error, commands_accepted=self.cmd.accepted,
                    commands_rejected=self.cmd.rejected)

    def event(self, name: str, fields: dict[str, Any]) -> None:
        spec = EVENTS.get(name, {"id": 0, "severity": "info"})
        self.pub.publish(f"evt.{self.ctx.name}", "evt",
                         {"name": name, "event_id": spec["id"], "severity": spec["severity"], **fields})
        self.ctx.log.warning(name, **fields) if spec["severity"] != "info" else self.ctx.log.info(name, **fields)

    def queue(self, p: Product) -> None:
        head = msgpack.packb({"id": p.id, "kind": p.kind, "camera": p.camera, "counter": p.counter},
                             use_bin_type=True)
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

    def handle(self, msg: Any) -> None:
        self.counters["frames_in"] += 1
        t0 = time.perf_counter()
        try:
            frame = frame_from_message(msg)
        except FrameRejected as exc:
            self.counters["frames_rejected"] += 1
            self.last_error = str(exc)
            self.event("frame_rejected", {"reason": exc.reason, "detail": str(exc), "src": msg.header.src,
                                          "seq": msg.header.seq})
            return
        try:
            g = grade(frame)
            thumb, _ = make_thumbnail(frame, self.s["thumbnail_px"], g)
            self.queue(thumb)
            self.queue(make_lossless(frame, self.s["lossless_codec"], g))
        except PdhError as exc:
            self.counters["products_failed"] += 1
            self.last_error = str(exc)
            self.event("product_failed", {"camera": frame.camera, "counter": frame.counter, "reason": str(exc)})
            return
        self.last_frame_ms = (time.perf_counter() - t0) * 1000
        self.ctx.log.info("frame_processed", camera=frame.camera, counter=frame.counter,
                          ms=round(self.last_frame_ms, 1))

    def loop(self) -> None:
        self.ctx.log.info("imaging_started", cameras=self.s["cameras"], codec=self.s["lossless_codec"])
        while not self.ctx.stop.is_set():
            msg = self.sub.recv(timeout_ms=50)
            if msg is not None:
                self.handle(msg)
            if self.sub.gaps.missing > self._gaps_seen:
                self.event("frame_gap", {"missing": self.sub.gaps.missing - self._gaps_seen})
                self._gaps_seen = self.sub.gaps.missing
            self.flush()
            self.cmd.poll()
            self.health.tick()
        self.flush()
        if self.pending:
            self.ctx.log.warning("products_unsent_at_stop", count=len(self.pending))


def run(ctx: ProcessContext) -> None:
    _Core(ctx).loop()
