"""Lossy products to a byte budget, and the cheap derived views (region, binned preview).

Rate control: JPEG XL (libjxl through imagecodecs) takes a continuous
``distance`` (visual error); the encoded size falls monotonically as it grows,
so a bisection on log(distance) lands the size inside a tolerance band around
the budget in a handful of encodes. The achieved PSNR goes in the product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from framework.errors import ProductError
from fsw.imaging.codecs import decode_pixels, encode_pixels

__all__ = ["RateResult", "encode_to_budget", "psnr_db", "crop", "bin_pixels"]

DISTANCE_MIN = 0.02
DISTANCE_MAX = 25.0


@dataclass(frozen=True)
class RateResult:
    payload: bytes
    distance: float
    psnr_db: float
    encodes: int
    decoded: np.ndarray
    scale: int = 1  # the frame was binned by this factor first, for budgets below what full size reaches
    effort: int = 3


def psnr_db(a: np.ndarray, b: np.ndarray, bit_depth: int) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0:
        return float("inf")
    return 10 * math.log10(((1 << bit_depth) - 1) ** 2 / mse)


def encode_to_budget(pixels: np.ndarray, bit_depth: int, budget_bytes: int, tolerance: float = 0.05,
                     effort: int = 3, max_encodes: int = 14) -> RateResult:
    """Encode lossy within ``tolerance`` of ``budget_bytes``, binning 2x at a time when the budget is
    below what the coarsest distance reaches at full size; raise ProductError if it cannot."""
    if budget_bytes <= 0:
        raise ProductError(f"byte budget must be positive, got {budget_bytes}")
    scale = 1
    while True:
        view = pixels if scale == 1 else bin_pixels(pixels, scale)
        try:
            r = _bisect_efforts(view, bit_depth, budget_bytes, tolerance, effort, max_encodes)
        except _TooBig:
            if min(view.shape[:2]) < 64:
                raise ProductError(f"budget {budget_bytes} B is out of reach even binned {scale}x") from None
            scale *= 2
            continue
        return RateResult(r.payload, r.distance, r.psnr_db, r.encodes, r.decoded, scale, r.effort)


def _bisect_efforts(pixels: np.ndarray, bit_depth: int, budget_bytes: int, tolerance: float, effort: int,
                    max_encodes: int) -> RateResult:
    """The size jumps where libjxl changes mode; another effort has its jumps elsewhere, so try a few."""
    encodes = 0
    last: ProductError | None = None
    for e in dict.fromkeys((effort, effort + 1, effort - 1, effort + 2)):
        if not 1 <= e <= 9:
            continue
        try:
            r = _bisect(pixels, bit_depth, budget_bytes, tolerance, e, max_encodes)
        except ProductError as exc:
            last = exc
            encodes += max_encodes
            continue
        return RateResult(r.payload, r.distance, r.psnr_db, r.encodes + encodes, r.decoded, 1, e)
    assert last is not None
    raise last


class _TooBig(Exception):
    pass


def _bisect(pixels: np.ndarray, bit_depth: int, budget_bytes: int, tolerance: float, effort: int,
            max_encodes: int) -> RateResult:
    params = {"bit_depth": bit_depth, "effort": effort}

    def size_at(d: float) -> tuple[float, bytes]:
        payload = encode_pixels("jxl_lossy", pixels, params | {"distance": d})
        return (len(payload) - budget_bytes) / budget_bytes, payload

    err, payload = size_at(DISTANCE_MAX)  # the coarsest this size allows: if too big, bin first
    if err > tolerance:
        raise _TooBig()
    best = (abs(err), payload, DISTANCE_MAX)
    lo, hi = math.log(DISTANCE_MIN), math.log(DISTANCE_MAX)
    encodes = 1
    while abs(best[0]) > tolerance and encodes < max_encodes:
        d = math.exp((lo + hi) / 2)
        err, payload = size_at(d)
        encodes += 1
        if abs(err) < best[0]:
            best = (abs(err), payload, d)
        if err > 0:
            lo = math.log(d)  # too big: allow more distortion
        else:
            hi = math.log(d)
    if best[0] > tolerance:
        raise ProductError(f"budget {budget_bytes} B is out of reach: closest lossy size "
                           f"{len(best[1])} B ({best[0]:.1%} away)")
    decoded = decode_pixels("jxl_lossy", best[1], pixels.shape, pixels.dtype.name, params)
    return RateResult(payload=best[1], distance=round(best[2], 5), psnr_db=round(psnr_db(pixels, decoded, bit_depth), 3),
                      encodes=encodes, decoded=decoded, effort=effort)


def crop(pixels: np.ndarray, region: tuple[int, int, int, int], pattern: str = "mono") -> np.ndarray:
    """A region (x, y, width, height) of the frame; Bayer regions snap to even offsets to keep the pattern."""
    x, y, w, h = region
    if pattern != "mono":
        x, y, w, h = x & ~1, y & ~1, w & ~1, h & ~1
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > pixels.shape[1] or y + h > pixels.shape[0]:
        raise ProductError(f"region {list(region)} is not inside the {pixels.shape[1]}x{pixels.shape[0]} frame")
    return np.ascontiguousarray(pixels[y:y + h, x:x + w])


def bin_pixels(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Mean of factor x factor blocks, rounded, same dtype: a binned preview."""
    if factor < 1 or factor > min(pixels.shape[:2]):
        raise ProductError(f"binning factor {factor} does not fit a {pixels.shape[1]}x{pixels.shape[0]} frame")
    h, w = (pixels.shape[0] // factor) * factor, (pixels.shape[1] // factor) * factor
    a = pixels[:h, :w].astype(np.uint32).reshape(h // factor, factor, w // factor, factor, *pixels.shape[2:])
    s = a.sum(axis=(1, 3))
    n = factor * factor
    return ((s + n // 2) // n).astype(pixels.dtype)
