"""Frames for the benchmarks: the HIL camera's FrameSource, or a stand-in.

The benchmarks measure on the same synthetic lunar frames the camera
emulator sends. When :mod:`hil.camera.frames` cannot be imported, a small
stand-in with the same statistics (smooth terrain, craters, shot noise,
12-bit) is used instead, and :func:`frame_maker` says which one it gave.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

__all__ = ["FrameMaker", "frame_maker", "standin_frame"]

FrameMaker = Callable[[int], np.ndarray]


def frame_maker(width: int, height: int, bit_depth: int = 12, seed: int = 2026) -> tuple[FrameMaker, str]:
    """Return ``(make(counter) -> uint16 frame, source name)``.

    Prefers ``hil.camera.frames.FrameSource``; falls back to :func:`standin_frame`
    (named ``"stand-in (reason)"``) when that cannot be imported or built.
    """
    profile = {"width": width, "height": height, "bit_depth": bit_depth, "pattern": "mono"}
    try:
        from hil.camera.frames import FrameSource

        source = FrameSource(profile=profile, seed=seed)
    except Exception as exc:  # missing module or an early version: fall back, and say so
        reason = f"{type(exc).__name__}: {exc}"

        def make_standin(counter: int) -> np.ndarray:
            return standin_frame(width, height, bit_depth, seed, counter)

        return make_standin, f"stand-in ({reason})"
    return source.frame, "hil.camera.frames.FrameSource"


def standin_frame(width: int, height: int, bit_depth: int = 12, seed: int = 2026, counter: int = 0) -> np.ndarray:
    """A lunar-looking frame: smooth terrain with craters, low sun, Poisson shot noise."""
    rng = np.random.default_rng([seed, counter])
    height_map = _terrain(rng, width, height)
    for _ in range(max(4, width * height // 40_000)):
        _add_crater(rng, height_map)
    # Lambertian shading of the height map with the sun low in the east.
    gy, gx = np.gradient(height_map)
    shade = np.clip(0.45 + 1.5 * gx - 0.3 * gy, 0.0, 1.0)
    full_scale = (1 << bit_depth) - 1
    electrons = shade * 0.7 * full_scale + 0.02 * full_scale
    noisy = rng.poisson(electrons).astype(np.float32) + rng.normal(0.0, 2.0, electrons.shape)
    return np.clip(noisy, 0, full_scale).astype(np.uint16)


def _terrain(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    terrain = np.zeros((height, width), np.float32)
    for octave in range(7):
        cells = 4 << octave
        coarse = rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32)
        terrain += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) * (24.0 / (2 ** octave))
    return terrain


def _add_crater(rng: np.random.Generator, height_map: np.ndarray) -> None:
    h, w = height_map.shape
    radius = float(rng.pareto(2.0) + 1.0) * min(h, w) / 160
    radius = min(radius, min(h, w) / 6)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    y0, y1 = int(max(0, cy - 2 * radius)), int(min(h, cy + 2 * radius + 1))
    x0, x1 = int(max(0, cx - 2 * radius)), int(min(w, cx + 2 * radius + 1))
    if y1 <= y0 or x1 <= x0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    r = np.hypot(yy - cy, xx - cx) / radius
    depth = radius * 0.12
    bowl = np.where(r < 1.0, depth * (r ** 2 - 1.0), 0.0)
    rim = 0.25 * depth * np.exp(-((r - 1.0) / 0.25) ** 2)
    height_map[y0:y1, x0:x1] += (bowl + rim).astype(np.float32)
