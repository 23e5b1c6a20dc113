"""The imaging core's commands: products on request, auto-exposure and calibration control.

:func:`handlers` gives one handler per command of :data:`fsw.imaging.interface.INTERFACE`
(NOOP and RESET_COUNTERS are the command server's own); the process registers them
with :func:`framework.bus.commands.register_table`, which checks every command's
arguments against the table (types, ranges, choices) before its handler runs. The
handlers then check what the table cannot say and raise CommandRejected naming what
is wrong: the camera is not configured, the region is not [x, y, width, height], the
frame is no longer held (rejected, never guessed).

A product command answers ``accepted`` at once and ``completed`` (with the product's id and size) or
``failed`` when the encoding is done: the work runs on a :class:`CommandWork` thread, and the process
calls :meth:`CommandWork.finish` from its loop, so the replies, the product's hand-off and its events
stay on the loop's thread (a caller no longer waits out a long encoding for its first reply). A core
without ``command_work`` (a test's namespace) makes the product at once, as before.

The handlers reach the component through :class:`ImagingControl`, a small protocol
the process adapter meets (mostly by handing on its FrameProcessor), so this module
imports nothing of :mod:`fsw.imaging.process` and a test can drive it with a plain
namespace.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Mapping, Protocol, Sequence

from framework.bus.commands import Deferred, Handler
from framework.errors import CommandRejected, PdhError
from fsw.imaging.autoexposure import AutoExposure
from fsw.imaging.calibration import CalibrationError, CalibrationManager
from fsw.imaging.pipeline import make_lossy, make_preview, make_roi
from fsw.imaging.near_lossless import make_near_lossless
from fsw.imaging.processor import Held
from fsw.imaging.product import Product

__all__ = ["ImagingControl", "CommandWork", "handlers"]


class ImagingControl(Protocol):
    """What the command handlers use of the imaging core (the process adapter provides it)."""

    cameras: list[str]
    codec: str

    @property
    def ae(self) -> Mapping[str, AutoExposure]: ...

    @property
    def calibration(self) -> CalibrationManager | None: ...

    @property
    def recent(self) -> Mapping[str, Sequence[Held]]: ...

    def recent_frame(self, camera: str, counter: int | None) -> Held | None: ...

    def emit(self, product: Product, requested: bool = False) -> None: ...


class CommandWork:
    """Product commands worked off the loop: :meth:`submit` answers with a Deferred at once and encodes on
    a thread; :meth:`finish` (the loop's thread) hands each made product on and completes its command,
    or fails it naming why. ``wake`` is called from the worker when one is done (the loop's wake-up)."""

    def __init__(self, wake: Callable[[], None] = lambda: None, workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="command")
        self._wake = wake
        self._running: list[tuple[Deferred, Future[Product], Callable[[Product], dict[str, Any]]]] = []

    def submit(self, make: Callable[[], Product], done: Callable[[Product], dict[str, Any]]) -> Deferred:
        deferred = Deferred()
        future = self._pool.submit(make)
        future.add_done_callback(lambda _f: self._wake())
        self._running.append((deferred, future, done))
        return deferred

    @property
    def running(self) -> int:
        return len(self._running)

    def finish(self) -> int:
        """Complete or fail every command whose work is done; return how many."""
        finished = [r for r in self._running if r[1].done()]
        self._running = [r for r in self._running if not r[1].done()]
        for deferred, future, done in finished:
            try:
                deferred.complete(done(future.result()))
            except PdhError as exc:
                deferred.fail(str(exc))
            except Exception as exc:  # an encoder's own error: the command failed, the core goes on
                deferred.fail(f"{type(exc).__name__}: {exc}")
        return len(finished)

    def close(self) -> None:
        """Wait for the work in hand and answer it."""
        self._pool.shutdown(wait=True)
        self.finish()


def _camera(core: ImagingControl, args: dict[str, Any]) -> str:
    cam = args.get("camera")
    if cam not in core.cameras:
        raise CommandRejected(f"'camera' must be one of {core.cameras}, got {cam!r}")
    return cam


def _region(args: dict[str, Any]) -> tuple[int, int, int, int]:
    r = args.get("region")
    if not (isinstance(r, list) and len(r) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in r)):
        raise CommandRejected(f"'region' must be [x, y, width, height] in pixels, got {r!r}")
    return (r[0], r[1], r[2], r[3])


def _calibration(core: ImagingControl) -> CalibrationManager:
    cal = core.calibration
    if cal is None:  # the process always has one; a core built without a calibration dir refuses
        raise CommandRejected("no calibration on this imaging core")
    return cal


def _best_held(core: ImagingControl, cam: str) -> Held | None:
    """The held frame of ``cam`` with the highest grade score (the newest of equals), or None."""
    def score(held: Held) -> float:
        s = held[1].get("score")
        return float(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else -1.0

    return max(reversed(list(core.recent.get(cam, ()))), key=score, default=None)


def _frame_for(core: ImagingControl, args: dict[str, Any]) -> Held:
    cam = _camera(core, args)
    counter = args.get("counter")  # the table made it an int, or it was left out: the newest frame
    if args.get("pick") == "best" and counter is not None:
        raise CommandRejected("give 'counter' or pick='best', not both")
    found = _best_held(core, cam) if args.get("pick") == "best" else core.recent_frame(cam, counter)
    if found is None:
        held = [f.counter for f, _ in core.recent.get(cam, [])]
        raise CommandRejected(f"frame {counter!r} of {cam} is not held on board; held: {held}")
    return found


def _made(core: ImagingControl, product: Product) -> dict[str, Any]:
    """Send a requested product on its way; the reply names it and what the codec chose."""
    core.emit(product, requested=True)
    return {"id": product.id, "bytes": len(product.payload),
            **{k: product.meta.get(k) for k in ("psnr_db", "scale", "region", "binning", "max_error_dn",
                                                "max_error_measured_dn") if k in product.meta}}


def _product_handler(core: ImagingControl, make: Callable[[Held, dict[str, Any]], Product]) -> Handler:
    """A command that makes a product of a held frame; a product that cannot be made is a rejection."""

    def handle(args: dict[str, Any]) -> dict[str, Any] | Deferred:
        held = _frame_for(core, args)
        if "region" in args:
            _region(args)  # a malformed region is refused now, not failed later
        work: CommandWork | None = getattr(core, "command_work", None)
        if work is not None:  # accepted now; completed or failed when the encoding is done
            return work.submit(lambda: make(held, args), lambda product: _made(core, product))
        try:
            return _made(core, make(held, args))
        except PdhError as exc:
            raise CommandRejected(str(exc)) from None

    return handle


def _product_handlers(core: ImagingControl) -> dict[str, Handler]:
    def lossy(held: Held, args: dict[str, Any]) -> Product:
        frame, grades = held
        return make_lossy(frame, args["budget_bytes"], grades, _region(args) if "region" in args else None)

    def roi(held: Held, args: dict[str, Any]) -> Product:
        frame, grades = held
        return make_roi(frame, _region(args), core.codec, grades)

    def preview(held: Held, args: dict[str, Any]) -> Product:
        frame, grades = held
        return make_preview(frame, args["factor"], core.codec, grades)

    def near_lossless(held: Held, args: dict[str, Any]) -> Product:
        frame, grades = held
        return make_near_lossless(frame, args["max_error"], grades, _region(args) if "region" in args else None)

    return {"MAKE_LOSSY": _product_handler(core, lossy), "MAKE_ROI": _product_handler(core, roi),
            "MAKE_PREVIEW": _product_handler(core, preview),
            "MAKE_NEAR_LOSSLESS": _product_handler(core, near_lossless)}


def _ae_handler(core: ImagingControl, enabled: bool) -> Handler:
    def handle(args: dict[str, Any]) -> dict[str, Any]:
        cam = _camera(core, args)
        core.ae[cam].enabled = enabled
        return {"camera": cam, "autoexposure": enabled}

    return handle


def _calibration_handlers(core: ImagingControl) -> dict[str, Handler]:
    def collect(args: dict[str, Any]) -> dict[str, Any]:
        cam = _camera(core, args)
        cal = _calibration(core)
        try:
            cal.collect(cam, args["role"], args["count"])
        except CalibrationError as exc:
            raise CommandRejected(str(exc)) from None
        return {"camera": cam, "collecting": cal.collecting(cam)}

    def build(args: dict[str, Any]) -> dict[str, Any]:
        cam = _camera(core, args)
        try:
            s = _calibration(core).build(cam)
        except CalibrationError as exc:
            raise CommandRejected(str(exc)) from None
        return {"camera": cam, "calibration": s.id, "bad_pixels": int(s.bad.sum())}

    def clear(args: dict[str, Any]) -> dict[str, Any]:
        cam = _camera(core, args)
        _calibration(core).clear(cam)
        return {"camera": cam, "calibration": "none"}

    return {"CAL_COLLECT": collect, "CAL_BUILD": build, "CAL_CLEAR": clear}


def handlers(core: ImagingControl) -> dict[str, Handler]:
    """One handler per command of the imaging table other than NOOP and RESET_COUNTERS.

    The handlers read ``core`` only when a command arrives, so building them touches nothing."""
    return {**_product_handlers(core), "AE_ENABLE": _ae_handler(core, True), "AE_DISABLE": _ae_handler(core, False),
            **_calibration_handlers(core)}
