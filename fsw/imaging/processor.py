"""The imaging core's engine, free of sockets: frames in, products out, in order, nothing dropped silently.

Frames wait in a bounded queue; each is graded and thumbnailed on the caller's
thread (thumbnail out first), then its lossless product is encoded by a worker
thread (the codecs release the GIL, so workers run on separate cores). A frame
arriving when the queue is full keeps only its thumbnail, and an event names it.
The process adapter (:mod:`fsw.imaging.process`) and the benchmarks drive this same object.

Frames may be used in place in the camera driver's shared-memory ring (no copy):
every product checks, once its work is done, that the slot still holds the frame
(:meth:`~fsw.imaging.frame.Frame.check_intact`). A frame found rewritten is
handled as one found rewritten at the bus boundary: what was made of it is
dropped and the frame is named (``frames_lost``, reason ``shm_overwritten``, the
products it lacks); frames held for requests are let go once their slot is rewritten.

So that this stays the exception, the processor sees a frame falling behind its ring
before the slot is rewritten (:class:`~fsw.imaging.ringwatch.RingWatch`: how long
until the camera's writer claims the slot again, from the handles of the frames
that arrived): a frame that waits or is about to start while that is less than
``ring_margin`` times what a frame of its camera lately took at most (front end and
lossless, wall time, the longest of the last few) is copied out of the ring (one memcpy,
checked intact after it; ``frames_copied_out``) while at most ``ring_copies`` such copies
are held, and keeps its full product. Beyond that bound it keeps only its thumbnail, made at
once while the pixels are there: named ``frames_thumbnail_only`` (reason ``falling_behind``),
counted per reason in ``thumbnail_only_by``, and said to the operator by a rate-limited
``capture_degraded``. A writer overdue by two frame times (a burst that ended, a camera that its
reader triggers) is no threat (:mod:`fsw.imaging.ringwatch`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from framework.errors import PdhError
from fsw.imaging.autoexposure import AutoExposure, AutoExposureConfig, ExposureCommand
from fsw.imaging.calibration import CalibrationManager
from fsw.imaging.frame import Frame, FrameRejected, PixelsOverwritten
from fsw.imaging.grades import grade_frame_and_blocks, thumbnail_only
from fsw.imaging.near_lossless import capture_codec, make_near_lossless
from fsw.imaging.pipeline import make_lossless, make_thumbnail
from fsw.imaging.product import Product
from fsw.imaging.ringwatch import RingWatch

__all__ = ["FrameProcessor", "Held"]

Held = tuple[Frame, dict[str, Any]]
"""A frame kept on board for requests, with its grades."""
Emit = Callable[[Product], None]
Event = Callable[[str, dict[str, Any]], object]  # an EventReporter's emit (it returns the event's body)
Expose = Callable[[str, ExposureCommand, Frame], None]
Named = Callable[[str, Frame, frozenset[str], dict[str, Any]], None]
"""Called when a frame will not have some of its products: (event name, frame, the product kinds it will
lack, the event's fields). The imaging core makes it a durable report; the default emits the event."""
FULL, THUMBNAIL = frozenset({"full"}), frozenset({"thumbnail", "full"})
VERIFY_THREADS_MIN_PX = 1 << 21  # frames this large (2 Mpix) verify-decode on the idle cores too
RING_MARGIN = 1.5  # default of the setting ring_margin
RING_COPIES = 4  # default of the setting ring_copies
_WORK_WINDOW = 8  # a camera's work time: the longest of its last this many frames


def _same_ring(a: Frame, b: Frame) -> bool:
    return a.lease is not None and b.lease is not None and a.lease.ring.name == b.lease.ring.name


class FrameProcessor:
    def __init__(self, settings: dict[str, Any], emit: Emit, event: Event, expose: Expose | None = None,
                 calibration_dir: Path | None = None, monotonic: Callable[[], float] = time.monotonic,
                 named: Named | None = None, wake: Callable[[], None] | None = None,
                 limited: Event | None = None) -> None:
        """``wake``: called (from a worker thread) when an encoding finishes, so a loop that sleeps on its
        sockets can call :meth:`step` at once instead of at its next timeout. ``limited``: a rate-limited
        event sink (an EventReporter's ``limited``) for ``capture_degraded``; None: not said."""
        self.s = settings
        self.cameras: list[str] = list(settings["cameras"])
        self.codec: str = settings["lossless_codec"]
        self._emit, self._event, self._expose = emit, event, expose
        self._named: Named = named or (lambda name, frame, kinds, fields: self._event(name, fields))
        self._monotonic = monotonic
        self._wake = wake
        self._limited = limited
        self._cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.waiting: collections.deque[tuple[Frame, float, bool]] = collections.deque()
        self.inflight: collections.deque[tuple[Frame, Future[Product]]] = collections.deque()
        self.pool = ThreadPoolExecutor(max_workers=settings["workers"], thread_name_prefix="lossless")
        self.recent: dict[str, collections.deque[Held]] = {
            c: collections.deque(maxlen=settings["recent_frames"]) for c in self.cameras}
        ae = dict(settings["autoexposure"])
        enabled = ae.pop("enabled", False)
        self.ae = {c: AutoExposure(AutoExposureConfig(**ae), enabled=enabled) for c in self.cameras}
        self.calibration = CalibrationManager(calibration_dir) if calibration_dir else None
        self.counters = dict(frames_accepted=0, frames_thumbnail_only=0, products_made=0, products_failed=0,
                             ae_commands=0, frames_copied_out=0)
        self._copies: set[tuple[str, int]] = set()  # (camera, counter) of frames copied out of their ring, in work
        self.overwritten = 0  # frames used in place whose slot was rewritten during their work
        self.rings = RingWatch()  # where each camera's ring writer is, from the handles that arrived
        self.work_s: dict[str, dict[str, float]] = {}  # camera -> {front, lossless}: recent wall seconds (max)
        self._work_seen: dict[tuple[str, str], collections.deque[float]] = {}
        self.thumbnail_only_by: dict[str, int] = {}  # reason -> frames kept as thumbnail only
        self.stage_ms: dict[str, float] = {}
        self._blocks: dict[str, Any] = {}  # per camera: block means of the last frame, for the change grade
        self.last_error = ""

    # -- in ---------------------------------------------------------------------------------------
    def accept(self, frame: Frame, replay: bool = False) -> None:
        """Queue a validated frame; when the queue is full it keeps only its thumbnail.

        ``replay``: a frame taken again after a restart (from the journal): it neither feeds
        auto-exposure nor calibration, which saw it the first time. FrameRejected for a camera
        this processor does not serve (the caller checks first; this keeps a bad one from killing it)."""
        if frame.camera not in self.recent:
            raise FrameRejected("camera_unknown", f"camera {frame.camera!r} is not one of {self.cameras}")
        self.counters["frames_accepted"] += 1
        if frame.lease is not None:
            lease = frame.lease
            self.rings.seen(lease.ring.name, lease.slot, lease.generation, lease.ring.slots, frame.t_capture,
                            self._monotonic())
        if self._waiting_for(frame) >= self._room(frame):
            self._thumbnail_only(frame, "queue_full", {"queue_depth": len(self.waiting)}, replay)
            return
        if frame.priority == "confirmation":
            self.waiting.appendleft((frame, self._monotonic(), replay))  # a deployment waits for this one
        else:
            self.waiting.append((frame, self._monotonic(), replay))

    def _room(self, frame: Frame) -> int:
        """Frames that may wait. For a frame used in place, also what its ring can hold: with more, the
        oldest waiting frame's slot would be rewritten (the writer holds the slot it is filling) before
        its turn while the camera keeps sending; a frame that is found rewritten anyway is named lost."""
        if frame.lease is None:
            return self.s["queue_max"]
        running = sum(not f.done() for fr, f in self.inflight if _same_ring(fr, frame))
        return max(1, min(self.s["queue_max"], frame.lease.ring.slots - 1 - running))

    def _waiting_for(self, frame: Frame) -> int:
        """The frames ahead of ``frame`` that count against its room: all of them for a frame with pixels of
        its own; for one used in place, those of its own ring (its camera). So a slow camera's frame never
        keeps only its thumbnail because a fast camera filled the queue: each ring is bounded by its own
        slots, and every camera by ``queue_max``."""
        if frame.lease is None:
            return len(self.waiting)
        return sum(_same_ring(f, frame) for f, _, _ in self.waiting)

    def step(self) -> None:
        """Emit finished products in frame order; then start what the workers have room for.

        Finished ones go first so that their places are free, and a worker that finishes before an older
        frame's worker takes the next frame at once: a worker never idles while a frame waits. Products
        still leave in frame order, so at most twice as many frames as workers are in flight."""
        while self.inflight and self.inflight[0][1].done():
            frame, fut = self.inflight.popleft()
            try:
                self._made(fut.result())
            except PixelsOverwritten:
                self._overwritten(frame, FULL)
            except Exception as exc:  # noqa: BLE001 - whatever a frame's encoding raises, it names the frame
                self._fail(frame, exc, FULL)
        if self._copies:  # copies that left the queue and the workers (made, thumbnailed, failed) are gone
            self._copies &= ({(f.camera, f.counter) for f, _, _ in self.waiting}
                             | {(f.camera, f.counter) for f, _ in self.inflight})
        self._degrade_behind()
        workers = self.s["workers"]
        while (self.waiting and len(self.inflight) < 2 * workers
               and sum(not f.done() for _, f in self.inflight) < workers):
            frame, _, replay = self.waiting.popleft()
            if not frame.intact():  # rewritten while it waited: no work is spent on it
                self._overwritten(frame, THUMBNAIL)
                continue
            behind = self._behind(frame)
            if behind is not None:
                rescued = self._rescue(frame, behind, replay)
                if rescued is None:
                    continue
                frame = rescued
            self._front_end(frame, replay=replay)

    def _degrade_behind(self) -> None:
        """Waiting frames whose slot will be rewritten before their work could be done, even if it started
        now, keep only their thumbnail, made now while the pixels are still theirs (waiting longer only
        shortens the time left). Frames already rewritten are left for :meth:`step`, which names them."""
        if not any(f.lease is not None for f, _, _ in self.waiting):
            return
        keep: collections.deque[tuple[Frame, float, bool]] = collections.deque()
        while self.waiting:
            entry = self.waiting.popleft()
            frame, _, replay = entry
            behind = self._behind(frame) if frame.intact() else None
            if behind is None:
                keep.append(entry)
                continue
            rescued = self._rescue(frame, behind, replay)
            if rescued is not None:
                keep.append((rescued, entry[1], replay))
        self.waiting = keep

    def _rescue(self, frame: Frame, behind: dict[str, Any], replay: bool) -> Frame | None:
        """A frame whose slot is due too soon: copied out of the ring while ``ring_copies`` allows (a copy
        costs a memcpy, its full product is kept; checked intact after the copy), else kept as thumbnail
        only. The frame to go on with, or None when it was dealt with here (thumbnail only, or found
        rewritten and named lost)."""
        if len(self._copies) < self.s.get("ring_copies", RING_COPIES):
            try:
                own = frame.detached()
            except PixelsOverwritten:
                self._overwritten(frame, THUMBNAIL)
                return None
            self._copies.add((own.camera, own.counter))
            self.counters["frames_copied_out"] += 1
            return own
        self._thumbnail_only(frame, "falling_behind", behind, replay)
        return None

    def _behind(self, frame: Frame) -> dict[str, Any] | None:
        """What says a frame used in place cannot have its full product before its ring slot is rewritten
        (the event's fields), or None: it can, its pixels are its own, or its camera's cost is not known
        yet. The time it needs: its camera's recent front end and lossless work (wall seconds, so a busy
        machine counts), times ``ring_margin``."""
        lease, work = frame.lease, self.work_s.get(frame.camera)
        margin = self.s.get("ring_margin", RING_MARGIN)
        if lease is None or not work or "lossless" not in work or margin <= 0:
            return None
        need_s = margin * (work.get("front", 0.0) + work["lossless"])
        left_s = self.rings.seconds_left(lease.ring.name, lease.slot, lease.generation, lease.ring.slots,
                                         self._monotonic())
        if left_s >= need_s:
            return None
        return {"seconds_left": round(max(left_s, 0.0), 3), "seconds_needed": round(need_s, 3),
                "writes_left": self.rings.writes_left(lease.ring.name, lease.slot, lease.generation,
                                                      lease.ring.slots)}

    def _thumbnail_only(self, frame: Frame, reason: str, fields: dict[str, Any], replay: bool = False) -> None:
        """The policy keeps only the frame's thumbnail (made now): named, counted by reason, and said once
        in a while to the operator (``capture_degraded``, rate-limited, when the event sink can)."""
        if not self._front_end(frame, full_frame=False, replay=replay):
            return  # rewritten under its thumbnail: named lost already
        self.degraded(reason, frame.camera)
        self._named("frames_thumbnail_only", frame, FULL,
                    {"camera": frame.camera, "counters": [frame.counter], "reason": reason, **fields})

    def degraded(self, reason: str, camera: str) -> None:
        """One frame of ``camera`` kept as thumbnail only by the policy, for ``reason``: counted, and said
        (rate-limited) through the ``limited`` sink given at construction, if any."""
        self.counters["frames_thumbnail_only"] += 1
        self.thumbnail_only_by[reason] = self.thumbnail_only_by.get(reason, 0) + 1
        if self._limited is not None:
            self._limited("capture_degraded", {"camera": camera, "reason": reason,
                                               "thumbnail_only_by": dict(self.thumbnail_only_by)})

    def busy(self) -> bool:
        return bool(self.waiting or self.inflight)

    def wait(self, timeout_s: float) -> None:
        """Block until an encoding finishes (or ``timeout_s``): for callers with no socket to poll."""
        running = [f for _, f in self.inflight if not f.done()]
        if running:
            concurrent.futures.wait(running, timeout=timeout_s, return_when=concurrent.futures.FIRST_COMPLETED)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.step()

    # -- per frame ----------------------------------------------------------------------------------
    def recent_frame(self, camera: str, counter: int | None) -> Held | None:
        self.let_go_overwritten()
        for frame, grades in reversed(self.recent.get(camera, ())):
            if counter is None or frame.counter == counter:
                return frame, grades
        return None

    def let_go_overwritten(self) -> None:
        """Frames held for requests whose ring slot has been rewritten are no longer held."""
        for camera, held in self.recent.items():
            if any(not f.intact() for f, _ in held):
                kept = [(f, g) for f, g in held if f.intact()]
                held.clear()
                held.extend(kept)

    def _front_end(self, frame: Frame, full_frame: bool = True, replay: bool = False) -> bool:
        """Grades and thumbnail now, the lossless product queued; False if the frame's slot was rewritten."""
        t0 = time.perf_counter()
        try:
            grades, blocks = grade_frame_and_blocks(frame.pixels, frame.bit_depth, frame.pattern,
                                                    self._blocks.get(frame.camera))
            t1 = time.perf_counter()
            if self.calibration is not None:
                cal = self.calibration.active.get(frame.camera)
                # The raw pixels stay raw; the set on board is named so the ground can apply it.
                grades["calibration"] = cal.id if cal else "none"
            thumb, _ = make_thumbnail(frame, self.s["thumbnail_px"], grades, blocks)  # checks the frame intact
            if self.calibration is not None and not replay and self.calibration.collecting(frame.camera):
                self.calibration.offer(frame.camera, frame.pixels, frame.exposure_us, frame.temp_c)
                frame.check_intact()  # (only while collecting) the copy it kept is this frame's
            t2 = time.perf_counter()
            # Only grades of the frame's own pixels go on: the change grade, auto-exposure, the held frames.
            self._blocks[frame.camera] = blocks
            self.recent[frame.camera].append((frame, grades))
            if not replay:
                self._autoexpose(frame, grades)
            self._made(thumb)
        except PixelsOverwritten:
            self._overwritten(frame, THUMBNAIL)
            return False
        except Exception as exc:  # noqa: BLE001 - a frame must never end the process; it is named instead
            self._fail(frame, exc, THUMBNAIL)
            return True
        self.stage_ms.update(grade=(t1 - t0) * 1000, thumbnail=(t2 - t1) * 1000)
        self._work_time(frame.camera, "front", t2 - t0)
        if full_frame and thumbnail_only(grades, self.s["thumbnail_only_rule"]):
            self.degraded("rule", frame.camera)
            self._named("frames_thumbnail_only", frame, FULL,
                        {"camera": frame.camera, "counters": [frame.counter], "reason": "rule",
                         "score": grades["score"]})
            return True
        if full_frame:
            fut = self.pool.submit(self._lossless, frame, grades, self._verify_threads(frame))
            if self._wake is not None:
                fut.add_done_callback(lambda _: self._wake())  # type: ignore[misc]
            self.inflight.append((frame, fut))
        return True

    def _lossless(self, frame: Frame, grades: dict[str, Any], verify_threads: int = 1) -> Product:
        t0 = time.perf_counter()
        k = self.s.get("near_lossless_max_error", 0)
        if k:  # the capture path set near-lossless: the frame's full product bounds each pixel by k DN
            codec, params = capture_codec(self.codec, self.s["lossless_params"])
            p = make_near_lossless(frame, k, grades, kind="full", codec=codec, params=params)
        else:
            p = make_lossless(frame, self.codec, grades, self.s["lossless_params"], verify_threads)
        frame.check_intact()  # in place: the slot still held the frame when its product was done
        took = time.perf_counter() - t0
        self.stage_ms["lossless"] = took * 1000
        self._work_time(frame.camera, "lossless", took)
        return p

    def _work_time(self, camera: str, stage: str, seconds: float) -> None:
        """A camera's recent wall time of a stage: the longest of its last frames, not an average, since a
        frame must finish before its slot comes round even when the machine is busiest (measured: with an
        average, a machine whose load jumped still lost frames mid-work). Called from the workers too."""
        seen = self._work_seen.setdefault((camera, stage), collections.deque(maxlen=_WORK_WINDOW))
        seen.append(seconds)
        self.work_s.setdefault(camera, {})[stage] = max(seen)

    def _verify_threads(self, frame: Frame) -> int:
        """Threads for the verify decode of the frame about to start: the cores no other frame's encoding is
        using (the check is the same; only the wait for it shortens when the camera leaves cores idle). A
        small frame decodes on one: starting threads costs more than they save below VERIFY_THREADS_MIN_PX
        (measured: 512x512 takes 1.8 ms on one thread, 5.5 ms on two; 2048x2048 25 ms and 16 ms)."""
        if frame.pixels.size < VERIFY_THREADS_MIN_PX:
            return 1
        running = sum(not f.done() for _, f in self.inflight)
        return max(1, self._cores // (running + 1))

    def _autoexpose(self, frame: Frame, grades: dict[str, Any]) -> None:
        if self._expose is None:
            return
        cmd = self.ae[frame.camera].update(grades, frame.bit_depth, frame.exposure_us, frame.gain)
        if cmd is not None:
            self.counters["ae_commands"] += 1
            self._expose(frame.camera, cmd, frame)

    def _overwritten(self, frame: Frame, kinds: frozenset[str]) -> None:
        """The frame's slot was rewritten during its work: named lost, as a frame found rewritten on arrival."""
        self.overwritten += 1
        self._named("frames_lost", frame, kinds, {"camera": frame.camera, "ranges": [[frame.counter, frame.counter]],
                                                  "reason": "shm_overwritten", "products": sorted(kinds)})
        self.let_go_overwritten()

    def _made(self, p: Product) -> None:
        self.counters["products_made"] += 1
        self._emit(p)

    def _fail(self, frame: Frame, exc: Exception, kinds: frozenset[str]) -> None:
        self.counters["products_failed"] += 1
        self.last_error = str(exc) if isinstance(exc, PdhError) else f"{type(exc).__name__}: {exc}"
        self._named("product_failed", frame, kinds, {"camera": frame.camera, "counter": frame.counter,
                                                     "products": sorted(kinds), "reason": self.last_error[:300]})

    def sample(self) -> dict[str, Any]:
        oldest = self._monotonic() - self.waiting[0][1] if self.waiting else 0.0
        return dict(self.counters, queue_depth=len(self.waiting), encoding=len(self.inflight),
                    thumbnail_only_by=dict(self.thumbnail_only_by),
                    oldest_waiting_s=round(oldest, 3), stage_ms={k: round(v, 1) for k, v in self.stage_ms.items()},
                    autoexposure={c: a.enabled for c, a in self.ae.items()})
