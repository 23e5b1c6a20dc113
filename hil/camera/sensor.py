"""Image sensor model: radiance in, digital numbers out.

Per pixel: photo-electrons = radiance x flux x exposure x (1 + PRNU), plus
dark current (doubling every 6 degC); shot noise (Gaussian approximation of
Poisson, variance = mean electrons) and read noise in one normal draw;
full-well clipping; conversion to DN with gain; a black-level pedestal;
quantisation to ``bit_depth``. Fixed-pattern noise (PRNU, hot pixels)
depends only on the seed; the temporal noise comes from a per-frame RNG
seeded by (seed, counter), so every frame is reproducible.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["SensorModel", "FixedPattern", "fixed_pattern", "expose"]


@dataclass(frozen=True)
class SensorModel:
    """Sensor constants. ``gain`` at 1.0 maps a full well onto the ADC's full scale."""

    bit_depth: int = 12
    full_well_e: float = 20_000.0
    read_noise_e: float = 4.0
    dark_current_e_per_s: float = 25.0  # at 20 degC
    flux_e_per_s: float = 900_000.0  # electrons per second at radiance 1.0
    prnu: float = 0.008  # photo-response non-uniformity, rms fraction
    hot_pixel_fraction: float = 2e-5
    hot_pixel_e_per_s: float = 40_000.0

    @property
    def dn_max(self) -> int:
        return (1 << self.bit_depth) - 1

    @property
    def pedestal_dn(self) -> int:
        return 1 << max(0, self.bit_depth - 6)

    @property
    def dtype(self) -> type:
        return np.uint8 if self.bit_depth <= 8 else np.uint16


@dataclass(frozen=True)
class FixedPattern:
    """Per-pixel response (1 + PRNU) and extra dark current of hot pixels."""

    response: np.ndarray  # float32
    hot_e_per_s: np.ndarray  # float32, zero except at hot pixels


@functools.lru_cache(maxsize=4)
def fixed_pattern(seed: int, shape: tuple[int, int], model: SensorModel) -> FixedPattern:
    """The sensor's fixed-pattern noise for ``seed``: the same for every frame."""
    rng = np.random.default_rng([seed, 0xF1C5ED])
    response = (1.0 + model.prnu * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    hot = np.zeros(shape, dtype=np.float32)
    n_hot = int(round(model.hot_pixel_fraction * shape[0] * shape[1]))
    if n_hot:
        idx = rng.choice(shape[0] * shape[1], size=n_hot, replace=False)
        hot.flat[idx] = model.hot_pixel_e_per_s * rng.uniform(0.2, 1.0, n_hot).astype(np.float32)
    response.flags.writeable = False
    hot.flags.writeable = False
    return FixedPattern(response=response, hot_e_per_s=hot)


def expose(radiance: np.ndarray, model: SensorModel, seed: int, counter: int, exposure_us: int,
           gain: float, temp_c: float = 20.0) -> np.ndarray:
    """One frame of DN (uint8 or uint16) from a radiance map in [0, 1]."""
    shape = (int(radiance.shape[0]), int(radiance.shape[1]))
    fpn = fixed_pattern(int(seed), shape, model)
    rng = np.random.default_rng([int(seed), int(counter), 0xF4A3E])
    t_s = np.float32(exposure_us * 1e-6)
    dark = np.float32(model.dark_current_e_per_s * 2.0 ** ((temp_c - 20.0) / 6.0))
    electrons = radiance * np.float32(model.flux_e_per_s * t_s)
    electrons *= fpn.response
    electrons += fpn.hot_e_per_s * t_s
    electrons += dark * t_s
    sigma = np.sqrt(electrons + np.float32(model.read_noise_e ** 2))
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise *= sigma
    electrons += noise
    np.clip(electrons, 0.0, model.full_well_e, out=electrons)
    dn_per_e = np.float32(model.dn_max / model.full_well_e * gain)
    electrons *= dn_per_e
    electrons += np.float32(model.pedestal_dn + 0.5)  # +0.5: round to nearest on the cast
    np.clip(electrons, 0.0, model.dn_max, out=electrons)
    return electrons.astype(model.dtype)
