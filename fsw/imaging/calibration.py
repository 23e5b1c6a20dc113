"""On-board calibration: master dark, flat field and bad-pixel map, built from the camera's own frames.

Raw pixels are never changed for the lossless product; a calibration is an
optional view, and every product names the calibration set it was made with
(``calibration`` = the set's id) so the ground can apply or undo it.

Build: darks are averaged (the dark current and DSNU at that exposure and
temperature); flats have the dark subtracted and are normalised to a mean of
1 (PRNU and optics vignetting). Bad pixels: hot where the master dark stands
more than ``hot_sigma`` robust sigmas above its median; dead or stuck where the
flat response is below ``dead_below`` or above ``hot_above`` of the mean.
A set is saved as one ``.npz`` written to a temp file, fsync'd and renamed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from framework.errors import PdhError

__all__ = ["CalibrationError", "CalibrationSet", "build_dark", "build_flat", "build_bad_pixels",
           "build_set", "apply", "save", "load"]


class CalibrationError(PdhError):
    """Calibration frames are unusable (too few, mismatched shapes)."""


@dataclass(frozen=True)
class CalibrationSet:
    id: str
    dark: np.ndarray          # float32, DN
    flat: np.ndarray          # float32, mean 1
    bad: np.ndarray           # bool, True = bad
    exposure_us: int
    temp_c: float


def _stack(frames: list[np.ndarray], what: str) -> np.ndarray:
    if len(frames) < 2:
        raise CalibrationError(f"{what}: need at least 2 frames, got {len(frames)}")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise CalibrationError(f"{what}: frames differ in shape {sorted(shapes)}")
    return np.stack([f.astype(np.float32) for f in frames])


def build_dark(darks: list[np.ndarray]) -> np.ndarray:
    return np.median(_stack(darks, "dark"), axis=0) if len(darks) >= 5 else _stack(darks, "dark").mean(axis=0)


def build_flat(flats: list[np.ndarray], dark: np.ndarray) -> np.ndarray:
    s = _stack(flats, "flat").mean(axis=0) - dark
    if s.shape != dark.shape:
        raise CalibrationError(f"flat: shape {s.shape} differs from the dark's {dark.shape}")
    m = float(np.median(s))
    if m <= 0:
        raise CalibrationError("flat: no signal above the dark")
    return (s / m).astype(np.float32)


def build_bad_pixels(dark: np.ndarray, flat: np.ndarray, hot_sigma: float = 8.0, dead_below: float = 0.5,
                     hot_above: float = 1.5) -> np.ndarray:
    med = float(np.median(dark))
    sigma = 1.4826 * float(np.median(np.abs(dark - med))) + 1e-6
    return (dark > med + hot_sigma * sigma) | (flat < dead_below) | (flat > hot_above)


def build_set(darks: list[np.ndarray], flats: list[np.ndarray], exposure_us: int, temp_c: float) -> CalibrationSet:
    dark = build_dark(darks).astype(np.float32)
    flat = build_flat(flats, dark)
    bad = build_bad_pixels(dark, flat)
    flat = np.where(bad, 1.0, flat).astype(np.float32)
    digest = hashlib.sha256(dark.tobytes() + flat.tobytes() + bad.tobytes()).hexdigest()[:12]
    return CalibrationSet(id=f"cal-{digest}", dark=dark, flat=flat, bad=bad, exposure_us=exposure_us, temp_c=temp_c)


def apply(raw: np.ndarray, cal: CalibrationSet, bit_depth: int) -> np.ndarray:
    """(raw - dark) / flat, bad pixels replaced by the median of their 3x3 neighbours; same dtype as raw."""
    if raw.shape != cal.dark.shape:
        raise CalibrationError(f"frame shape {raw.shape} differs from calibration {cal.id} {cal.dark.shape}")
    out = (raw.astype(np.float32) - cal.dark) / cal.flat
    if cal.bad.any():
        med = cv2.medianBlur(np.clip(out, 0, 65535).astype(np.uint16), 3).astype(np.float32)
        out = np.where(cal.bad, med, out)
    return np.clip(np.round(out), 0, (1 << bit_depth) - 1).astype(raw.dtype)


def save(cal: CalibrationSet, directory: Path, name: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    name = name or cal.id
    path = directory / f"{name}.npz"
    tmp = directory / f".{name}.npz.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, id=cal.id, dark=cal.dark, flat=cal.flat, bad=cal.bad, exposure_us=cal.exposure_us,
                 temp_c=cal.temp_c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def load(path: Path) -> CalibrationSet:
    try:
        with np.load(path) as z:
            return CalibrationSet(id=str(z["id"]), dark=z["dark"], flat=z["flat"], bad=z["bad"],
                                  exposure_us=int(z["exposure_us"]), temp_c=float(z["temp_c"]))
    except (OSError, KeyError, ValueError) as exc:
        raise CalibrationError(f"{path}: not a calibration set: {exc}") from None


class CalibrationManager:
    """Collects dark and flat frames on command, builds sets, keeps the active set per camera on disk.

    ``collect(camera, role, count)`` arms collection of the next ``count`` frames;
    ``offer(camera, pixels, ...)`` is called with every frame; ``build(camera)``
    makes, saves and activates a set. Sets survive a restart (loaded at start).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.active: dict[str, CalibrationSet] = {}
        self._want: dict[tuple[str, str], int] = {}
        self._frames: dict[tuple[str, str], list[np.ndarray]] = {}
        self._meta: dict[str, tuple[int, float]] = {}
        for p in sorted(directory.glob("*/active.npz")) if directory.exists() else []:
            try:
                self.active[p.parent.name] = load(p)
            except CalibrationError:
                continue

    def collect(self, camera: str, role: str, count: int) -> None:
        if role not in ("dark", "flat"):
            raise CalibrationError(f"role must be 'dark' or 'flat', got {role!r}")
        if not 2 <= count <= 64:
            raise CalibrationError(f"count must be 2..64, got {count}")
        self._want[(camera, role)] = count
        self._frames[(camera, role)] = []

    def collecting(self, camera: str) -> dict[str, int]:
        return {role: n - len(self._frames.get((camera, role), [])) for (cam, role), n in self._want.items()
                if cam == camera}

    def offer(self, camera: str, pixels: np.ndarray, exposure_us: int, temp_c: float) -> None:
        for role in ("dark", "flat"):
            key = (camera, role)
            if key in self._want and len(self._frames[key]) < self._want[key]:
                self._frames[key].append(np.array(pixels, copy=True))
                self._meta[camera] = (exposure_us, temp_c)

    def build(self, camera: str) -> CalibrationSet:
        darks = self._frames.get((camera, "dark"), [])
        flats = self._frames.get((camera, "flat"), [])
        exposure_us, temp_c = self._meta.get(camera, (0, 0.0))
        s = build_set(darks, flats, exposure_us, temp_c)
        save(s, self.directory / camera)  # the history of sets
        save(s, self.directory / camera, "active")
        self.active[camera] = s
        for role in ("dark", "flat"):
            self._want.pop((camera, role), None)
            self._frames.pop((camera, role), None)
        return s

    def clear(self, camera: str) -> None:
        self.active.pop(camera, None)
        p = self.directory / camera / "active.npz"
        if p.exists():
            p.unlink()
