"""The imaging core process: the socket adapter around :class:`~fsw.imaging.processor.FrameProcessor`.

Frames come off the bus at once (every field checked at the boundary; a bad one is
dropped with a rate-limited ``frame_rejected``), go to the processor's bounded queue,
and the products it makes go to the downlink over PUSH through a
:class:`~fsw.imaging.handoff.Handoff`, which keeps each until the downlink says it
stored it. :class:`~fsw.imaging.accounts.FrameAccounts` keeps the books of every
frame in a journal (one fsync per loop turn), so that after a crash of this process
or of the broker each frame the camera sent is either stored or named by an event
(``frames_lost``); the reports that name frames are published until this process
hears them back on the bus. Exposure commands go to each camera driver's command
ROUTER. Commands come in on this process's ROUTER (handlers:
:mod:`fsw.imaging.commands`); events go out through one
:class:`~framework.reporters.EventReporter`.

On the bus this process listens to its cameras' frames, its own events (the echo
that ends a report's resending), the downlink's events (``product_stored``) and the
camera drivers' health (``last_counter``, which shows frames that never arrived).

Frames whose pixels come through a camera driver's shared-memory ring are used
in place (no copy; :mod:`fsw.imaging.frame`): a slot rewritten before or during
a frame's work names that frame lost (``shm_overwritten``), whichever products it lacks;
a frame seen falling behind its ring before that keeps only its thumbnail, by policy
(:class:`~fsw.imaging.processor.FrameProcessor`, reason ``falling_behind``).

A full product the downlink's store refuses by its quota (``product_rejected`` whose
reason starts ``store full: ``, :class:`fsw.downlink.store.StoreFull`) is the store's
policy too: its frame keeps the thumbnail and is named ``frames_thumbnail_only``
(reason ``store_full``), not lost.
"""

from __future__ import annotations

import re
import socket
from typing import Any

import msgpack
import zmq

from framework.bus.commands import CommandClient, CommandServer, register_table
from framework.bus.message import Header, Message
from framework.errors import NotSent
from framework.process import ProcessContext
from framework.reporters import EventReporter, HealthReporter
from fsw.imaging.accounts import FRAME_PRODUCTS, FrameAccounts, OpenFrame
from fsw.imaging.autoexposure import AutoExposure, ExposureCommand
from fsw.imaging.calibration import CalibrationManager
from fsw.imaging.commands import CommandWork, handlers
from fsw.imaging.frame import FRAME_FIELDS, Frame, FrameRejected, frame_from_message, frame_identity
from fsw.imaging.handoff import Handoff, Outgoing
from fsw.imaging.interface import INTERFACE
from fsw.imaging.journal import Journal, JournalError
from fsw.imaging.processor import FrameProcessor, Held
from fsw.imaging.product import Product, encode_product

__all__ = ["run", "ImagingCore"]

_REPORTS = ("frames_lost", "frames_thumbnail_only", "product_failed")
_ALREADY_STORED = re.compile(r"^product (\S+) is already stored$")
_STORE_FULL = "store full: "  # how the downlink's refusal by its quota reads (fsw.downlink.store.STORE_FULL_PREFIX)
_KEPT_FIELDS = (*FRAME_FIELDS, "priority")  # what the journal keeps of a frame message, to take it again
_SHM_KEYS = ("name", "slot", "generation", "length", "offset")
_DETAIL_CHARS = 200
_STOP_WAIT_S = 0.5  # at a stop, how long confirmations of pushed products are awaited (SIGTERM within a second)


def _kept(msg: Message) -> dict[str, Any]:
    """The fields of a checked frame message that take it again after a restart: the frame's, and the
    handle of its pixels when they came through the shared-memory ring (nothing else a sender added)."""
    f = msg.header.fields
    kept = {k: f[k] for k in _KEPT_FIELDS if k in f}
    if "shm" in f and not msg.buffers:
        kept["shm"] = {k: f["shm"][k] for k in _SHM_KEYS if k in f["shm"]}
    return kept


def _downlinks(ctx: ProcessContext) -> set[str]:
    """The downlink processes that pull this core's products (they confirm each with ``product_stored``)."""
    mine = ctx.settings["endpoints"]["products"]
    return {n for n, p in ctx.config.processes.items()
            if p["kind"] == "fsw.downlink" and p["endpoints"].get("products") == mine}


def _drivers(ctx: ProcessContext, cameras: list[str]) -> dict[str, str]:
    """Camera driver process -> the camera it drives, for the cameras this core serves."""
    return {n: p["camera"] for n, p in ctx.config.processes.items()
            if p["kind"] == "drivers.camera" and p.get("camera") in cameras}


class ImagingCore:
    """The process: bus, PUSH and command sockets around one FrameProcessor (the commands' ImagingControl)."""

    def __init__(self, ctx: ProcessContext) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.pub = ctx.publisher()
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic)
        self.journal = Journal(ctx.out_dir / s["journal_dir"] / f"{ctx.name}.journal")
        self.accounts = FrameAccounts(s["cameras"], self.journal, ctx.monotonic, s["report_retry_s"],
                                      s["tail_grace_s"])
        # A worker that finishes an encoding wakes the loop (a byte on this pair), so products go out and the
        # next frame starts at once, not at the next poll timeout.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.proc = FrameProcessor(s, self.emit, self.events.emit, self.expose, ctx.out_dir / s["calibration_dir"],
                                   ctx.monotonic, named=self.named, wake=self._woken, limited=self.events.limited)
        self.cameras, self.codec = self.proc.cameras, self.proc.codec
        self.downlinks = _downlinks(ctx)
        self.drivers = _drivers(ctx, self.cameras)
        self.sub = ctx.subscriber([f"frame.{c}" for c in self.cameras] + [f"evt.{ctx.name}"]
                                  + [f"evt.{d}" for d in sorted(self.downlinks)]
                                  + [f"tlm.{d}" for d in sorted(self.drivers)])
        self.poller = zmq.Poller()
        self.poller.register(self.sub.sock, zmq.POLLIN)
        self.poller.register(self._wake_r, zmq.POLLIN)
        self.push = ctx.zmq.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 16)
        self.push.setsockopt(zmq.LINGER, 2000)
        self.push.connect(ctx.endpoint("products"))
        self.handoff = Handoff(self._push, ctx.monotonic, acked=bool(self.downlinks), on_stored=self.accounts.stored,
                               on_dropped=self._dropped, timeout_s=s["handoff_timeout_s"], max_held=s["handoff_max"])
        self.camera_cmd = {c: ctx.command_client(ctx.config.endpoints[ref])
                           for c, ref in s["camera_commands"].items()}
        self.rejected = 0
        self.remade = 0
        self.journal_errors = 0
        self.last_error = ""
        self._gaps_seen = 0
        self.cmd = ctx.command_server(on_event=self.events.emit,
                                 reset_counters=lambda: (self.reset_counters(), self.events.reset()), interface=INTERFACE)
        # product commands: accepted at once, completed/failed when their encoding is done (on this loop)
        self.command_work = CommandWork(wake=self._woken)
        register_table(self.cmd, INTERFACE, handlers(self))
        self.health = HealthReporter(ctx, self.pub, self.sample, channels=INTERFACE.telemetry,
                                     events=self.events, commands=self.cmd)
        self.recover()

    # what the command handlers reach through the adapter (fsw.imaging.commands.ImagingControl)
    @property
    def ae(self) -> dict[str, AutoExposure]:
        return self.proc.ae

    @property
    def calibration(self) -> CalibrationManager | None:
        return self.proc.calibration

    @property
    def recent(self) -> dict[str, Any]:
        self.proc.let_go_overwritten()
        return self.proc.recent

    def recent_frame(self, camera: str, counter: int | None) -> Held | None:
        return self.proc.recent_frame(camera, counter)

    def reset_counters(self) -> None:
        for k in self.proc.counters:
            self.proc.counters[k] = 0
        self.proc.thumbnail_only_by.clear()
        self.rejected = 0

    def sample(self) -> dict[str, Any]:
        cal = self.proc.calibration
        acc = self.accounts.sample()
        return dict(self.proc.sample(), frames_in=self.proc.counters["frames_accepted"] + self.rejected,
                    frames_rejected=self.rejected, bus_gaps=self.sub.gaps.missing, bus_malformed=self.sub.malformed,
                    last_error=self.last_error or self.proc.last_error,
                    calibration={c: cal.active[c].id if c in cal.active else "none" for c in self.cameras},
                    **{k: acc[k] for k in ("frames_lost", "frames_open", "reports_unechoed", "frames_duplicate")},
                    **self.handoff.sample(), frames_remade=self.remade,
                    journal_commit_us=round(self.journal.last_commit_us, 1), journal_errors=self.journal_errors)

    # -- products out ------------------------------------------------------------------------------
    def emit(self, p: Product, requested: bool = False) -> None:
        if not requested and self.accounts.is_stored(p.id):
            return  # a frame taken again after a restart: this product of it is stored already
        head = msgpack.packb({"id": p.id, "kind": p.kind, "camera": p.camera, "counter": p.counter,
                              "score": p.grades.get("score"), "requested": requested,
                              "priority": p.meta.get("priority", "")}, use_bin_type=True)
        body = encode_product(p)
        self.pub.publish(f"product.{p.kind}", "product",
                         {"id": p.id, "camera": p.camera, "counter": p.counter, "codec": p.codec,
                          "bytes": len(p.payload), "crc32c": p.crc32c, "grades": p.grades,
                          "priority": p.meta.get("priority", "")})
        self.handoff.offer(Outgoing(p.id, p.kind, p.camera, p.counter, head, body))

    def _push(self, head: bytes, body: bytes) -> bool:
        try:
            self.push.send_multipart([head, body], flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False
        return True

    def _dropped(self, out: Outgoing) -> None:
        if out.kind in FRAME_PRODUCTS:
            self.accounts.lost(out.camera, [out.counter], "handoff_backlog", {out.kind}, product=out.id)
        else:
            self.ctx.log.warning("product_given_up", id=out.id, reason="handoff_backlog")

    def named(self, name: str, frame: Frame, kinds: frozenset[str], fields: dict[str, Any]) -> None:
        """The processor will not make ``kinds`` of ``frame``: a report (journalled, sent until heard back).
        A frame lost in work (its slot rewritten) is named as one lost at the boundary is."""
        if name == "frames_lost":
            self.accounts.lost(frame.camera, [frame.counter], str(fields.get("reason", "")), kinds)
            return
        self.accounts.lacks(name, frame.camera, frame.counter, kinds, fields)

    def expose(self, camera: str, cmd: ExposureCommand, frame: Frame) -> None:
        client = self.camera_cmd.get(camera)
        if client is None:
            return
        try:  # sends never wait: a driver that is down makes its queue full, and the command is refused here
            client.send("SET_EXPOSURE", {"exposure_us": cmd.exposure_us})
            if abs(cmd.gain - frame.gain) > 1e-6:
                client.send("SET_GAIN", {"gain": cmd.gain})
        except NotSent as exc:
            self.events.limited("ae_command_refused", {"camera": camera, "status": "not_sent", "reason": str(exc)})
            return
        self.ctx.log.info("ae_command", camera=camera, exposure_us=cmd.exposure_us, gain=cmd.gain)

    # -- messages in -------------------------------------------------------------------------------
    def take(self, msg: Message) -> None:
        """One bus message: a frame, our own event coming back, the downlink's, or a camera driver's health."""
        h = msg.header
        if msg.topic.startswith("frame."):
            self.accept(msg)
        elif msg.topic == f"evt.{self.ctx.name}" and h.src == self.ctx.name:
            if h.fields.get("name") in _REPORTS:
                self.accounts.echoed(h.fields.get("report"))
        elif msg.topic.startswith("evt.") and h.src in self.downlinks:
            self._downlink_event(h.fields)
        elif msg.topic.startswith("tlm.") and h.src in self.drivers:
            self.accounts.driver_counter(self.drivers[h.src], h.fields.get("last_counter"), self.ctx.monotonic())

    def _downlink_event(self, f: dict[str, Any]) -> None:
        """``product_stored`` confirms a product; ``product_rejected`` too when the downlink had it already
        (a product pushed again), and otherwise refuses it for good: its frame is named."""
        if not self.handoff.acked:
            return
        pid, reason = f.get("id"), f.get("reason")
        if f.get("name") == "product_rejected" and isinstance(reason, str):
            m = _ALREADY_STORED.match(reason)
            if m is None:
                if isinstance(pid, str):
                    self._refused(pid, reason)
                return
            pid = m.group(1)
        elif f.get("name") != "product_stored":
            return
        if isinstance(pid, str) and not self.handoff.ack(pid):
            self.accounts.stored(pid)  # pushed before a restart of ours, confirmed after it

    def _refused(self, pid: str, reason: str) -> None:
        """The downlink will not store ``pid``. A full frame its store has no room for by the quota's
        policy leaves its frame thumbnail only (the thumbnail is a class the store never evicts); any other
        refusal of a frame's product names the frame lost."""
        out = self.handoff.forget(pid)
        if out is not None and out.kind == "full" and reason.startswith(_STORE_FULL):
            self.proc.degraded("store_full", out.camera)
            self.accounts.lacks("frames_thumbnail_only", out.camera, out.counter, {"full"},
                                {"camera": out.camera, "counters": [out.counter], "reason": "store_full",
                                 "product": pid, "detail": reason[:_DETAIL_CHARS]})
            return
        if out is not None and out.kind in FRAME_PRODUCTS:
            self.accounts.lost(out.camera, [out.counter], "downlink_refused", {out.kind}, product=pid,
                               detail=reason[:_DETAIL_CHARS])

    def accept(self, msg: Message) -> None:
        """A frame message: checked; a good one is journalled and processed, a bad one dropped and, when it
        names a frame of ours, that frame named lost."""
        try:
            camera, counter = frame_identity(msg, self.cameras)
        except FrameRejected as exc:
            self._rejected(msg, exc)
            return
        if self.accounts.arrived(camera, counter) == "duplicate":
            self._rejected(msg, FrameRejected("duplicate", f"frame {camera}/{counter} was taken already"))
            return
        try:
            frame = frame_from_message(msg, cameras=self.cameras, in_place=True)
        except FrameRejected as exc:
            self._rejected(msg, exc)
            self.accounts.lost(camera, [counter], exc.reason)
            return
        try:
            self.accounts.accepted(camera, counter, msg.header.src, _kept(msg))
        except JournalError as exc:
            self._journal_failed(exc)
        self.proc.accept(frame)

    def _rejected(self, msg: Message, exc: FrameRejected) -> None:
        self.rejected += 1
        self.last_error = str(exc)[:_DETAIL_CHARS]
        self.events.limited("frame_rejected", {"reason": exc.reason, "detail": str(exc)[:_DETAIL_CHARS],
                                               "from_src": msg.header.src[:64], "from_seq": msg.header.seq,
                                               "topic": msg.topic[:64]})

    # -- restart -----------------------------------------------------------------------------------
    def recover(self) -> None:
        """Read the journal: frames left open are taken again from the camera driver's ring where their
        slots still hold them, else named lost; reports not heard back go out again."""
        try:
            records = self.journal.load()
            if self.journal.torn_bytes:
                self.ctx.log.warning("journal_tail_cut", bytes=self.journal.torn_bytes)
        except JournalError as exc:
            self._journal_failed(exc)
            records = []
        left = self.accounts.restore(records)
        try:
            self.accounts.compact()
        except JournalError as exc:
            self._journal_failed(exc)
        lost: dict[tuple[str, str], list[OpenFrame]] = {}
        for f in left:
            reason = self._take_again(f)
            if reason:
                lost.setdefault((f.camera, reason), []).append(f)
        for (camera, reason), frames in lost.items():
            kinds = set().union(*(f.missing() for f in frames))
            self.accounts.lost(camera, [f.counter for f in frames], reason, kinds)
        self.commit()
        self.ctx.log.info("imaging_recovered", journal_records=len(records), open_frames=len(left),
                          remade=self.remade, lost=sum(len(v) for v in lost.values()),
                          reports_unechoed=len(self.accounts.reports))

    def _take_again(self, f: OpenFrame) -> str:
        """Process an open frame again from its journalled message; '' if it could be, else why not."""
        if f.camera not in self.cameras:
            return "restart_camera_not_served"
        if "shm" not in f.fields:
            return "restart_pixels_not_held"  # inline transport: the pixels died with the process
        msg = Message(f"frame.{f.camera}", Header(f.src, 0, 0.0, "frame", dict(f.fields)))
        try:
            frame = frame_from_message(msg, cameras=self.cameras, in_place=True)
            self.proc.accept(frame, replay=True)
        except FrameRejected as exc:
            return "restart_pixels_overwritten" if exc.reason == "shm_overwritten" else f"restart_{exc.reason}"
        self.remade += 1
        return ""

    # -- the journal -------------------------------------------------------------------------------
    def commit(self) -> None:
        try:
            self.accounts.commit()
            if self.accounts.compact_due():
                self.accounts.compact()
        except JournalError as exc:
            self._journal_failed(exc)

    def _journal_failed(self, exc: JournalError) -> None:
        self.journal_errors += 1
        self.last_error = str(exc)[:_DETAIL_CHARS]
        self.events.limited("journal_failed", {"reason": str(exc)[:_DETAIL_CHARS]})

    def drain_camera_replies(self) -> None:
        for cam, client in self.camera_cmd.items():
            r = client.recv(0)
            while r is not None:
                if r.status in ("rejected", "failed"):
                    self.events.emit("ae_command_refused", {"camera": cam, "status": r.status, "reason": r.reason})
                r = client.recv(0)

    def _woken(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # the pair is full (the loop is awake already) or closed (stopping)

    def _wait(self, wait_ms: int) -> None:
        """Until a message comes, a worker finishes, or ``wait_ms``."""
        if self.poller.poll(wait_ms):
            try:
                while self._wake_r.recv(4096):
                    pass
            except OSError:
                pass  # drained

    def turn(self, wait_ms: int | None = None) -> None:
        """One loop turn: messages in (waiting up to ``wait_ms``, by default 50 ms, for the first one or for
        a worker to finish), processing, hand-off, reports, one journal commit, commands, health."""
        self._wait(wait_ms if wait_ms is not None else 50)
        msg = self.sub.recv(timeout_ms=0)
        n = 0
        while msg is not None:
            self.take(msg)
            n += 1
            msg = self.sub.recv(timeout_ms=0) if n < 64 else None
        self.proc.step()
        if self.sub.gaps.missing > self._gaps_seen:
            self.events.emit("frame_gap", {"missing": self.sub.gaps.missing - self._gaps_seen})
            self._gaps_seen = self.sub.gaps.missing
        now = self.ctx.monotonic()
        self.accounts.tick(now)
        self.handoff.tick()
        self.handoff.flush()
        for name, fields in self.accounts.due(now):
            self.events.emit(name, fields)
        self.commit()
        self.cmd.poll()
        self.command_work.finish()
        self.drain_camera_replies()
        self.health.tick()

    def _await_confirmations(self, for_s: float) -> None:
        """At a stop: a little while for the downlink to confirm what was pushed (what it does not stays
        open in the journal, to be made again or named at the next start)."""
        end = self.ctx.monotonic() + for_s
        while (self.handoff.unacked or self.handoff.pending) and self.ctx.monotonic() < end:
            msg = self.sub.recv(timeout_ms=20)
            if msg is not None and msg.topic.startswith("evt."):
                self.take(msg)
            self.handoff.flush()

    def loop(self) -> None:
        self.ctx.log.info("imaging_started", cameras=self.cameras, codec=self.codec,
                          workers=self.ctx.settings["workers"], downlinks=sorted(self.downlinks),
                          drivers=sorted(self.drivers))
        while not self.ctx.stop.is_set():
            self.turn()
        self.command_work.close()
        self.proc.close()
        self.handoff.flush()
        self._await_confirmations(_STOP_WAIT_S)
        self.commit()
        self.journal.close()
        self._wake_r.close()
        self._wake_w.close()
        if self.handoff.pending or self.handoff.unacked or self.proc.waiting:
            self.ctx.log.warning("products_unsent_at_stop", products=len(self.handoff.pending),
                                 unconfirmed=len(self.handoff.unacked), frames=len(self.proc.waiting))


def run(ctx: ProcessContext) -> None:
    ImagingCore(ctx).loop()
