"""Photon transfer analysis in the style of EMVA 1288: system gain and temporal dark noise from flat fields.

For each exposure a pair of flat-field frames A, B and a pair of dark frames:
mean signal mu = mean(A + B) / 2, temporal variance s2 = var(A - B) / 2 (the
difference cancels fixed-pattern noise). The system gain K (DN/e-) is the
slope of (s2 - s2_dark) against (mu - mu_dark) in the linear range; the
temporal dark noise in electrons is sqrt(s2_dark - 1/12) / K, the 1/12 DN^2
being the ADC's quantisation noise (EMVA 1288 4.0, section 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = ["PhotonTransfer", "PtcPoint", "ptc_point", "fit_photon_transfer", "measure_photon_transfer"]


@dataclass(frozen=True)
class PtcPoint:
    exposure_us: int
    mean_dn: float  # dark-subtracted mean signal
    var_dn2: float  # dark-subtracted temporal variance
    dark_var_dn2: float


@dataclass(frozen=True)
class PhotonTransfer:
    gain_dn_per_e: float
    read_noise_e: float
    points: tuple[PtcPoint, ...]


def _pair_stats(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float((a64.mean() + b64.mean()) / 2.0), float((a64 - b64).var() / 2.0)


def ptc_point(exposure_us: int, light: tuple[np.ndarray, np.ndarray], dark: tuple[np.ndarray, np.ndarray]) -> PtcPoint:
    mu, s2 = _pair_stats(*light)
    mu_d, s2_d = _pair_stats(*dark)
    return PtcPoint(exposure_us, mu - mu_d, s2 - s2_d, s2_d)


def fit_photon_transfer(points: Sequence[PtcPoint]) -> PhotonTransfer:
    """K as the least-squares slope through the origin; read noise from the shortest exposure's dark variance."""
    mu = np.array([p.mean_dn for p in points])
    s2 = np.array([p.var_dn2 for p in points])
    k = float((mu * s2).sum() / (mu * mu).sum())
    dark = min(points, key=lambda p: p.exposure_us).dark_var_dn2
    read = float(np.sqrt(max(dark - 1.0 / 12.0, 0.0))) / k
    return PhotonTransfer(gain_dn_per_e=k, read_noise_e=read, points=tuple(points))


def measure_photon_transfer(capture: Callable[[bool, int, int], np.ndarray],
                            exposures_us: Sequence[int]) -> PhotonTransfer:
    """Run the measurement: ``capture(lit, exposure_us, n)`` returns the n-th frame, lit or dark."""
    points = []
    n = 0
    for t in exposures_us:
        light = (capture(True, t, n), capture(True, t, n + 1))
        dark = (capture(False, t, n + 2), capture(False, t, n + 3))
        n += 4
        points.append(ptc_point(t, light, dark))
    return fit_photon_transfer(points)
