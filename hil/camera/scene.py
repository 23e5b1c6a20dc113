"""Synthetic lunar surface scenes, all from a seed.

A scene is a heightmap (fractal terrain plus craters drawn from a power-law
size-frequency distribution) lit by a low sun: Lambert/Lommel-Seeliger
shading, hard shadows cast along the sun azimuth, and regolith albedo
variation. The result is a float32 radiance map in [0, 1].

Heights are in pixel units, so slopes and shadow rays need no scale. Large
scenes are rendered at up to ``RENDER_MAX_PX`` a side and upscaled.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

__all__ = ["SceneParams", "scene_params", "render_scene", "lunar_scene", "RENDER_MAX_PX"]

RENDER_MAX_PX = 1024
_AMBIENT = 0.012  # earthshine and scattered light in shadow, as a fraction of full radiance


@dataclass(frozen=True)
class SceneParams:
    """Everything the seed decides about a scene."""

    sun_elevation_deg: float
    sun_azimuth_deg: float
    terrain_relief: float  # rms height of the fractal terrain, in pixels of the render
    crater_count: int
    crater_min_diameter_px: float
    crater_max_diameter_px: float
    sfd_slope: float  # cumulative N(>D) ~ D**-sfd_slope
    albedo_mean: float
    albedo_contrast: float


def scene_params(seed: int, render_side_px: int) -> SceneParams:
    """The seed's scene parameters for a render whose larger side is ``render_side_px``."""
    rng = np.random.default_rng([seed, 0x5CE4E])
    side = float(render_side_px)
    return SceneParams(
        sun_elevation_deg=float(rng.uniform(5.0, 15.0)),
        sun_azimuth_deg=float(rng.uniform(0.0, 360.0)),
        terrain_relief=side * float(rng.uniform(0.004, 0.009)),
        crater_count=int(side * side / 600 * rng.uniform(0.8, 1.3)),
        crater_min_diameter_px=4.0,
        crater_max_diameter_px=side * 0.35,
        sfd_slope=float(rng.uniform(1.8, 2.2)),
        albedo_mean=float(rng.uniform(0.10, 0.14)),
        albedo_contrast=float(rng.uniform(0.12, 0.22)),
    )


def _fractal_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Zero-mean, unit-rms noise with power spectrum ~ 1/f**beta (spectral synthesis)."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy, dtype=np.float64)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0)
    amp[0, 0] = 0.0
    spectrum = amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape))
    field = np.fft.irfft2(spectrum, s=shape).astype(np.float32)
    field /= max(float(field.std()), 1e-12)
    return field


def _crater_diameters(rng: np.random.Generator, p: SceneParams) -> np.ndarray:
    """Diameters from a truncated power law: N(>D) ~ D**-slope between min and max."""
    u = rng.uniform(0.0, 1.0, p.crater_count)
    lo, hi, a = p.crater_min_diameter_px, p.crater_max_diameter_px, p.sfd_slope
    ratio = (hi / lo) ** (-a)
    return lo * (1.0 - u * (1.0 - ratio)) ** (-1.0 / a)


def _stamp_crater(height: np.ndarray, albedo: np.ndarray, cy: float, cx: float, d: float,
                  freshness: float) -> None:
    """Add one crater: parabolic bowl, raised rim, ejecta falling off as r**-3; fresh ones are brighter."""
    r_px = d / 2.0
    reach = 3.0 * r_px
    h, w = height.shape
    y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 1)
    x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy = (np.arange(y0, y1, dtype=np.float32)[:, None] - cy) / r_px
    xx = (np.arange(x0, x1, dtype=np.float32)[None, :] - cx) / r_px
    r2 = yy * yy + xx * xx
    depth = 0.2 * d * freshness
    rim = 0.04 * d * freshness
    inside = r2 < 1.0
    r = np.sqrt(r2)
    profile = np.where(inside, depth * (r2 - 1.0) + rim, rim * np.maximum(r, 1.0) ** -3)
    height[y0:y1, x0:x1] += profile
    if freshness > 0.7:
        halo = np.exp(-np.maximum(r - 1.0, 0.0) * 2.0) * (freshness - 0.7) * 0.8
        albedo[y0:y1, x0:x1] *= 1.0 + halo.astype(np.float32)


def _add_craters(rng: np.random.Generator, height: np.ndarray, albedo: np.ndarray, p: SceneParams) -> None:
    diameters = np.sort(_crater_diameters(rng, p))[::-1]  # big first, so small ones overprint them
    h, w = height.shape
    ys = rng.uniform(-0.1 * h, 1.1 * h, diameters.size)
    xs = rng.uniform(-0.1 * w, 1.1 * w, diameters.size)
    fresh = rng.beta(2.0, 2.5, diameters.size)
    for d, cy, cx, f in zip(diameters, ys, xs, fresh):
        _stamp_crater(height, albedo, float(cy), float(cx), float(d), float(f))


def _hard_shadows(height: np.ndarray, elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """1 where the sun is visible, 0 where terrain up-sun rises above the ray to the sun.

    The heightmap is rotated so the sun shines along +x; then a point at x is lit
    unless some x' < x has h(x') - (x - x') tan(e) > h(x), i.e. unless
    g(x) = h(x) + x tan(e) is below the running maximum of g.
    """
    h, w = height.shape
    diag = int(math.ceil(math.hypot(h, w))) + 2
    centre = (diag / 2.0, diag / 2.0)
    # Light travels along t (image coords: x right, y down; azimuth counter-clockwise from +x).
    a = math.radians(azimuth_deg)
    tx, ty = -math.cos(a), math.sin(a)
    rot = np.array([[tx, ty], [-ty, tx]])  # maps t onto +x
    to_rot = np.hstack([rot, (np.array(centre) - rot @ np.array([w / 2.0, h / 2.0]))[:, None]])
    low = float(height.min()) - 1.0
    rotated = cv2.warpAffine(height, to_rot, (diag, diag), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=low)
    g = rotated + np.arange(diag, dtype=np.float32)[None, :] * np.float32(math.tan(math.radians(elevation_deg)))
    lit = (g >= np.maximum.accumulate(g, axis=1) - 1e-3).astype(np.float32)
    back = cv2.invertAffineTransform(to_rot)
    return cv2.warpAffine(lit, back, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)


def _shading(height: np.ndarray, elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """Lunar-Lambert reflectance for a nadir view: mix of Lommel-Seeliger and Lambert."""
    gy, gx = np.gradient(height)
    e, a = math.radians(elevation_deg), math.radians(azimuth_deg)
    sx, sy, sz = math.cos(e) * math.cos(a), -math.cos(e) * math.sin(a), math.sin(e)
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    mu0 = np.maximum((-gx * sx - gy * sy + sz) / norm, 0.0)  # cos(incidence)
    mu = 1.0 / norm  # cos(emission) for a camera looking straight down
    lunar_l = 0.6
    return (lunar_l * 2.0 * mu0 / (mu0 + mu) + (1.0 - lunar_l) * mu0).astype(np.float32)


def render_scene(seed: int, shape: tuple[int, int], sun_elevation_deg: float | None = None,
                 sun_azimuth_deg: float | None = None) -> np.ndarray:
    """Render a scene of exactly ``shape`` (height, width); see the module docstring.

    The sun's elevation and azimuth (relative to the image's +x axis) come from the seed unless given.
    """
    h, w = int(shape[0]), int(shape[1])
    scale = min(1.0, RENDER_MAX_PX / max(h, w))
    rh, rw = max(8, round(h * scale)), max(8, round(w * scale))
    p = scene_params(seed, max(rh, rw))
    if sun_elevation_deg is not None or sun_azimuth_deg is not None:
        p = replace(p, sun_elevation_deg=p.sun_elevation_deg if sun_elevation_deg is None else sun_elevation_deg,
                    sun_azimuth_deg=p.sun_azimuth_deg if sun_azimuth_deg is None else sun_azimuth_deg)
    rng = np.random.default_rng([seed, 0x7E44A])
    height = _fractal_noise(rng, (rh, rw), beta=3.6) * np.float32(p.terrain_relief)
    height += _fractal_noise(rng, (rh, rw), beta=2.4) * np.float32(p.terrain_relief * 0.03)
    albedo_field = _fractal_noise(rng, (rh, rw), beta=2.8)
    albedo = (p.albedo_mean * (1.0 + p.albedo_contrast * albedo_field)).astype(np.float32)
    _add_craters(rng, height, albedo, p)
    lit = _hard_shadows(height, p.sun_elevation_deg, p.sun_azimuth_deg)
    radiance = albedo * _shading(height, p.sun_elevation_deg, p.sun_azimuth_deg) * lit
    radiance += _AMBIENT * albedo
    top = float(np.percentile(radiance, 99.7))
    radiance *= np.float32(0.85 / max(top, 1e-9))
    if (rh, rw) != (h, w):
        radiance = cv2.resize(radiance, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(radiance, 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _cached(seed: int, shape: tuple[int, int], sun_elevation_deg: float | None,
            sun_azimuth_deg: float | None) -> np.ndarray:
    img = render_scene(seed, shape, sun_elevation_deg, sun_azimuth_deg)
    img.flags.writeable = False
    return img


def lunar_scene(seed: int, shape: tuple[int, int], sun_elevation_deg: float | None = None,
                sun_azimuth_deg: float | None = None) -> np.ndarray:
    """The (read-only, cached) radiance map for ``seed`` and ``shape`` (height, width)."""
    return _cached(int(seed), (int(shape[0]), int(shape[1])), sun_elevation_deg, sun_azimuth_deg)
