"""Image sensor model: radiance in, digital numbers out (EMVA 1288 quantities).

Per pixel: photo-electrons = radiance x flux x exposure x (1 + PRNU); dark
electrons = (mean dark current + DSNU + hot pixels) x exposure, doubling every
``dark_doubling_c``; shot noise (Gaussian with variance = mean electrons) and
read noise in one normal draw; full-well clipping (read noise swings both ways
about the black level, so nothing clips at 0 e-); conversion to DN with the
system gain K x analogue gain; the black level; quantisation to ``bit_depth``.
Dead pixels read 0 DN, stuck pixels full scale. Fixed-pattern noise (PRNU,
DSNU, hot and dead pixels) depends only on the seed and the full sensor; the
temporal noise comes from a per-frame RNG seeded by (seed, counter), so every
frame is reproducible. A readout window takes its slice of the full pattern.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import numpy as np

from drivers.camera.profile import CameraProfile

__all__ = ["SensorModel", "FixedPattern", "Defects", "fixed_pattern", "expose", "bin_pixels"]


@dataclass(frozen=True)
class SensorModel:
    """Sensor constants: the sensor part of a camera profile."""

    bit_depth: int = 12
    full_well_e: float = 13_500.0
    read_noise_e: float = 4.5
    gain_dn_per_e: float = 0.3
    black_level_dn: int = 64
    dark_current_e_per_s: float = 5.0
    dark_ref_temp_c: float = 20.0
    dark_doubling_c: float = 6.5
    prnu: float = 0.008
    dsnu_e_per_s: float = 1.0
    hot_pixel_fraction: float = 2e-5
    hot_pixel_e_per_s: float = 40_000.0
    dead_pixel_fraction: float = 0.0
    flux_e_per_s: float = 900_000.0

    @classmethod
    def from_profile(cls, p: CameraProfile) -> "SensorModel":
        return cls(**{f.name: getattr(p, f.name) for f in fields(cls)})

    @property
    def dn_max(self) -> int:
        return (1 << self.bit_depth) - 1

    @property
    def dtype(self) -> type:
        return np.uint8 if self.bit_depth <= 8 else np.uint16

    def dark_scale(self, temp_c: float) -> float:
        return float(2.0 ** ((temp_c - self.dark_ref_temp_c) / self.dark_doubling_c))


@dataclass(frozen=True)
class FixedPattern:
    """Per-pixel response (1 + PRNU), dark current (mean + DSNU + hot) at the ref temperature, dead pixels."""

    response: np.ndarray  # float32
    dark_e_per_s: np.ndarray  # float32
    dead: np.ndarray  # flat indices of pixels that read 0


@dataclass(frozen=True)
class Defects:
    """Pixels that failed after launch (a fault): flat indices into the full sensor."""

    stuck: np.ndarray
    dead: np.ndarray

    @classmethod
    def none(cls) -> "Defects":
        empty = np.zeros(0, dtype=np.int64)
        return cls(stuck=empty, dead=empty)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=4)
def fixed_pattern(seed: int, shape: tuple[int, int], model: SensorModel) -> FixedPattern:
    """The sensor's fixed-pattern noise for ``seed``: the same for every frame."""
    rng = np.random.default_rng([seed, 0xF1C5ED])
    n = shape[0] * shape[1]
    response = (1.0 + model.prnu * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    dark = rng.standard_normal(shape, dtype=np.float32)
    dark *= np.float32(model.dsnu_e_per_s)
    dark += np.float32(model.dark_current_e_per_s)
    np.maximum(dark, 0.0, out=dark)
    n_hot = int(round(model.hot_pixel_fraction * n))
    if n_hot:
        idx = rng.choice(n, size=n_hot, replace=False)
        dark.flat[idx] += model.hot_pixel_e_per_s * rng.uniform(0.2, 1.0, n_hot).astype(np.float32)
    n_dead = int(round(model.dead_pixel_fraction * n))
    dead = rng.choice(n, size=n_dead, replace=False) if n_dead else np.zeros(0, dtype=np.int64)
    return FixedPattern(response=_readonly(response), dark_e_per_s=_readonly(dark), dead=_readonly(dead))


def _window_indices(flat: np.ndarray, full_shape: tuple[int, int],
                    window: tuple[int, int, int, int]) -> np.ndarray:
    """Flat indices of the full sensor that fall in ``window``, as flat indices into the window."""
    if flat.size == 0:
        return flat
    x, y, w, h = window
    rows, cols = np.divmod(flat, full_shape[1])
    inside = (rows >= y) & (rows < y + h) & (cols >= x) & (cols < x + w)
    return (rows[inside] - y) * w + (cols[inside] - x)


def expose(radiance: np.ndarray, model: SensorModel, seed: int, counter: int, exposure_us: int, gain: float,
           temp_c: float = 20.0, full_shape: tuple[int, int] | None = None,
           window: tuple[int, int, int, int] | None = None, defects: Defects | None = None) -> np.ndarray:
    """One frame of DN (uint8 or uint16) from a radiance map in [0, 1].

    ``radiance`` covers ``window`` (x, y, width, height) of a sensor of ``full_shape``;
    by default it is the whole sensor.
    """
    h, w = int(radiance.shape[0]), int(radiance.shape[1])
    full = full_shape or (h, w)
    x, y = (window[0], window[1]) if window else (0, 0)
    win = (x, y, w, h)
    fpn = fixed_pattern(int(seed), (int(full[0]), int(full[1])), model)
    rng = np.random.default_rng([int(seed), int(counter), 0xF4A3E])
    t_s = np.float32(exposure_us * 1e-6)
    electrons = radiance * np.float32(model.flux_e_per_s * t_s)
    electrons *= fpn.response[y:y + h, x:x + w]
    electrons += fpn.dark_e_per_s[y:y + h, x:x + w] * np.float32(t_s * model.dark_scale(temp_c))
    sigma = np.sqrt(electrons + np.float32(model.read_noise_e ** 2))
    noise = rng.standard_normal((h, w), dtype=np.float32)
    noise *= sigma
    electrons += noise
    # Only the well clips: read noise swings both ways about the black level, so no clip at 0 e-.
    np.minimum(electrons, np.float32(model.full_well_e), out=electrons)
    electrons *= np.float32(model.gain_dn_per_e * gain)
    electrons += np.float32(model.black_level_dn)
    np.floor(electrons, out=electrons)  # the ADC's quantisation (its noise is 1/12 DN^2)
    np.clip(electrons, 0.0, model.dn_max, out=electrons)
    out = electrons.astype(model.dtype)
    flat = out.reshape(-1)
    flat[_window_indices(fpn.dead, full, win)] = 0
    if defects is not None:
        flat[_window_indices(defects.dead, full, win)] = 0
        flat[_window_indices(defects.stuck, full, win)] = model.dn_max
    return out


def bin_pixels(frame: np.ndarray, factor: int) -> np.ndarray:
    """Digital binning on the camera: the mean of each factor x factor block, rounded, same dtype."""
    if factor == 1:
        return frame
    h, w = frame.shape[0] // factor * factor, frame.shape[1] // factor * factor
    blocks = frame[:h, :w].reshape(h // factor, factor, w // factor, factor).astype(np.float32)
    mean = blocks.mean(axis=(1, 3))
    return np.floor(mean + 0.5).astype(frame.dtype)
