"""The imaging core's commands: products on request, auto-exposure and calibration control.

Every command's arguments are checked against :data:`fsw.imaging.interface.INTERFACE`
(types, ranges, choices) before its handler runs; the handlers then check what
the table cannot say and raise CommandRejected naming what is wrong: the camera
is not configured, the region is not [x, y, width, height], the frame is no
longer held (rejected, never guessed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framework.errors import CommandRejected, PdhError
from fsw.imaging.calibration import CalibrationError
from fsw.imaging.interface import INTERFACE
from fsw.imaging.pipeline import make_lossy, make_preview, make_roi

if TYPE_CHECKING:
    from fsw.imaging.process import ImagingCore

__all__ = ["register_requests"]


def _camera(core: "ImagingCore", args: dict[str, Any]) -> str:
    cam = args.get("camera")
    if cam not in core.cameras:
        raise CommandRejected(f"'camera' must be one of {core.cameras}, got {cam!r}")
    return cam


def _region(args: dict[str, Any]) -> tuple[int, int, int, int]:
    r = args.get("region")
    if not (isinstance(r, list) and len(r) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in r)):
        raise CommandRejected(f"'region' must be [x, y, width, height] in pixels, got {r!r}")
    return (r[0], r[1], r[2], r[3])


def register_requests(core: "ImagingCore") -> None:
    server = core.cmd

    def frame_for(args: dict[str, Any]) -> Any:
        cam = _camera(core, args)
        counter = args.get("counter")  # the table made it an int, or it was left out: the newest frame
        found = core.recent_frame(cam, counter)
        if found is None:
            held = [f.counter for f, _ in core.recent.get(cam, [])]
            raise CommandRejected(f"frame {counter!r} of {cam} is not held on board; held: {held}")
        return found

    def made(product: Any) -> dict[str, Any]:
        core.emit(product, requested=True)
        return {"id": product.id, "bytes": len(product.payload), **{k: product.meta.get(k) for k in
                                                                   ("psnr_db", "scale", "region", "binning")
                                                                   if k in product.meta}}

    def lossy(args: dict[str, Any]) -> dict[str, Any]:
        frame, grades = frame_for(args)
        budget = args["budget_bytes"]
        region = _region(args) if "region" in args else None
        try:
            return made(make_lossy(frame, budget, grades, region))
        except PdhError as exc:
            raise CommandRejected(str(exc)) from None

    def roi(args: dict[str, Any]) -> dict[str, Any]:
        frame, grades = frame_for(args)
        try:
            return made(make_roi(frame, _region(args), core.codec, grades))
        except PdhError as exc:
            raise CommandRejected(str(exc)) from None

    def preview(args: dict[str, Any]) -> dict[str, Any]:
        frame, grades = frame_for(args)
        try:
            return made(make_preview(frame, args["factor"], core.codec, grades))
        except PdhError as exc:
            raise CommandRejected(str(exc)) from None

    def ae(enabled: bool) -> Any:
        def handler(args: dict[str, Any]) -> dict[str, Any]:
            cam = _camera(core, args)
            core.ae[cam].enabled = enabled
            return {"camera": cam, "autoexposure": enabled}

        return handler

    def cal_collect(args: dict[str, Any]) -> dict[str, Any]:
        cam = _camera(core, args)
        try:
            core.calibration.collect(cam, args["role"], args["count"])
        except CalibrationError as exc:
            raise CommandRejected(str(exc)) from None
        return {"camera": cam, "collecting": core.calibration.collecting(cam)}

    def cal_build(args: dict[str, Any]) -> dict[str, Any]:
        cam = _camera(core, args)
        try:
            s = core.calibration.build(cam)
        except CalibrationError as exc:
            raise CommandRejected(str(exc)) from None
        return {"camera": cam, "calibration": s.id, "bad_pixels": int(s.bad.sum())}

    def cal_clear(args: dict[str, Any]) -> dict[str, Any]:
        cam = _camera(core, args)
        core.calibration.clear(cam)
        return {"camera": cam, "calibration": "none"}

    handlers = {"MAKE_LOSSY": lossy, "MAKE_ROI": roi, "MAKE_PREVIEW": preview, "AE_ENABLE": ae(True),
                "AE_DISABLE": ae(False), "CAL_COLLECT": cal_collect, "CAL_BUILD": cal_build, "CAL_CLEAR": cal_clear}
    for name, handler in handlers.items():
        server.register(name, INTERFACE.checked(name, handler))
