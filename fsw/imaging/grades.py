"""Grades: what a frame is worth, computed from its pixels alone (and the previous frame).

Every grade is cheap enough for the capture path: the exposure statistics run on
every 4th row, the noise and the prediction entropy on sampled rows (about
128 k pixels), the sharpness and the block means on the 2x2-binned frame. Values are in DN of
the frame's own bit depth unless the name says otherwise.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

__all__ = ["exposure_grades", "bin2", "sharpness", "noise_sigma_dn", "prediction_entropy_bits", "BLOCK", "block_means",
           "frame_blocks", "change_fraction", "grade_frame", "grade_frame_and_blocks", "thumbnail_only"]


def bin2(px: np.ndarray) -> np.ndarray:
    """The frame binned 2x2 (rounded means, same dtype), in one pass: OpenCV's INTER_AREA resize by an
    integer factor is that box mean. The Bayer luma, and shared by the sharpness and the block means."""
    h, w = px.shape[0] // 2, px.shape[1] // 2
    if h == 0 or w == 0:
        return px
    return cv2.resize(np.ascontiguousarray(px[: 2 * h, : 2 * w]), (w, h), interpolation=cv2.INTER_AREA)


def _luma(px: np.ndarray, pattern: str) -> np.ndarray:
    """A mono view of the frame: for Bayer, the mean of each 2x2 cell (no demosaic needed to grade)."""
    return px if pattern == "mono" else bin2(px)


def exposure_grades(px: np.ndarray, bit_depth: int) -> dict[str, float]:
    """Mean, percentiles and clipped fractions from the histogram of every 4th row (OpenCV's calcHist)."""
    full = (1 << bit_depth) - 1
    sub = px[::4] if px.strides[-1] == px.itemsize else np.ascontiguousarray(px[::4])
    hist = cv2.calcHist([sub], [0], None, [full + 1], [0, full + 1]).ravel().astype(np.float64)
    n = max(1.0, float(hist.sum()))
    cdf = np.cumsum(hist) / n
    pct = {p: float(np.searchsorted(cdf, p / 100.0)) for p in (1, 5, 50, 95, 99, 99.5)}
    return {
        "mean_dn": round(float(hist @ np.arange(full + 1, dtype=np.float64)) / n, 2),
        "p1_dn": pct[1], "p5_dn": pct[5], "p50_dn": pct[50], "p95_dn": pct[95], "p99_dn": pct[99],
        "p99_5_dn": pct[99.5],
        "saturated_frac": round(float(hist[full]) / n, 6),
        "dark_frac": round(float(hist[0]) / n, 6),
    }


def sharpness(px: np.ndarray, binned: np.ndarray | None = None) -> float:
    """Variance of the Laplacian on the 2x-binned frame's central quarter.

    Binning keeps the noise from dominating; the centre (half the width and height) is where a
    camera is focused. ``binned``: :func:`bin2` of ``px``, if the caller has it."""
    b = bin2(px) if binned is None else binned
    h, w = b.shape[:2]
    core = b[h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2]
    if min(core.shape[:2]) < 2:
        core = b
    return float(cv2.Laplacian(core.astype(np.float32), cv2.CV_32F).var())


SAMPLES = 1 << 17  # pixels the row-sampled grades aim for: enough for a sub-percent estimate


def _row_step(h: int, w: int) -> int:
    """Every n-th row, so a row-sampled grade sees about SAMPLES pixels, and at least every 16th row."""
    return max(16, h // max(1, -(-SAMPLES // max(1, w))))


def _median_of_ints(v: np.ndarray) -> float:
    """Median of a non-negative int array by counting (exact, and far faster than sorting)."""
    counts = np.bincount(v.ravel())
    return float(np.searchsorted(np.cumsum(counts), (v.size + 1) // 2))


def noise_sigma_dn(px: np.ndarray) -> float:
    """Noise estimate from one frame: MAD of the horizontal second difference, scaled to a Gaussian sigma.

    The second difference of a smooth scene is near zero, so its robust spread is the
    pixel noise times sqrt(6) (three independent samples with weights 1, -2, 1).
    Integer arithmetic on sampled rows (:func:`_row_step`); medians by counting.
    """
    a = px[:: _row_step(*px.shape[:2])].astype(np.int32)
    if a.shape[1] < 3:
        return 0.0
    d2 = a[:, 2:] - 2 * a[:, 1:-1] + a[:, :-2]
    offset = int(-d2.min())
    med = _median_of_ints(d2 + offset) - offset
    mad = _median_of_ints(np.abs(d2 - int(med)))
    return round(float(1.4826 * mad / np.sqrt(6.0)), 3)


def prediction_entropy_bits(px: np.ndarray) -> float:
    """Zero-order entropy (bits/pixel) of the MED (LOCO-I) prediction residual: a lossless-size estimate.

    MED predicts median(north, west, north + west - northwest), which is the gradient
    ``n + w - nw`` clipped to [min(n, w), max(n, w)]. Pairs of rows, sampled (:func:`_row_step`).
    """
    rows = np.arange(1, px.shape[0], _row_step(*px.shape[:2]))
    if rows.size == 0 or px.shape[1] < 2:
        return 0.0
    cur = px[rows].astype(np.int32)
    up = px[rows - 1].astype(np.int32)
    x, n, w, nw = cur[:, 1:], up[:, 1:], cur[:, :-1], up[:, :-1]
    pred = np.clip(n + w - nw, np.minimum(n, w), np.maximum(n, w))
    res = (x - pred).ravel()
    counts = np.bincount(res - res.min())
    counts = counts[counts > 0]
    p = counts / res.size
    return round(float(-(p * np.log2(p)).sum()), 4)


BLOCK = 8  # side of the blocks whose means fingerprint a frame (change grade; mono thumbnails start from them)


def block_means(px: np.ndarray, binned: np.ndarray | None = None) -> np.ndarray | None:
    """Means of BLOCK x BLOCK blocks (float32): the frame's fingerprint for change detection.

    For a mono frame these are also the frame shrunk BLOCK times, so the thumbnail starts from them
    instead of reading the frame again (:func:`fsw.imaging.pipeline.make_thumbnail`). Made from the
    2x2-binned frame (``binned``: :func:`bin2` of ``px``, if the caller has it)."""
    b = bin2(px) if binned is None else binned
    k = BLOCK // 2
    h, w = (px.shape[0] // BLOCK), (px.shape[1] // BLOCK)
    if h == 0 or w == 0:
        return None
    return cv2.resize(np.ascontiguousarray(b[: h * k, : w * k]), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)


def change_fraction(current: np.ndarray | None, previous: np.ndarray | None, bit_depth: int) -> float | None:
    """Fraction of blocks whose mean moved by more than 5 % of full scale (inputs: block_means)."""
    if current is None or previous is None or previous.shape != current.shape:
        return None
    thresh = 0.05 * ((1 << bit_depth) - 1)
    return round(float(np.count_nonzero(np.abs(current - previous) > thresh)) / current.size, 6)


def frame_blocks(px: np.ndarray, pattern: str = "mono") -> np.ndarray | None:
    """The frame's block means (of its luma): keep them to grade the next frame's change."""
    return block_means(_luma(px, pattern))


def grade_frame(px: np.ndarray, bit_depth: int, pattern: str = "mono", previous_blocks: np.ndarray | None = None,
                blocks: np.ndarray | None = None) -> dict[str, Any]:
    """Every grade of one frame. ``previous_blocks``: :func:`frame_blocks` of the camera's previous
    frame; ``blocks``: this frame's, if the caller already has them."""
    return grade_frame_and_blocks(px, bit_depth, pattern, previous_blocks, blocks)[0]


def grade_frame_and_blocks(px: np.ndarray, bit_depth: int, pattern: str = "mono",
                           previous_blocks: np.ndarray | None = None,
                           blocks: np.ndarray | None = None) -> tuple[dict[str, Any], np.ndarray | None]:
    """The grades, and this frame's block means to keep for the next frame's change grade."""
    luma = _luma(px, pattern)
    binned = bin2(luma)
    if blocks is None:
        blocks = block_means(luma, binned)
    g: dict[str, Any] = exposure_grades(luma, bit_depth)
    g["sharpness_laplacian_var"] = round(sharpness(luma, binned), 3)
    g["noise_sigma_dn"] = noise_sigma_dn(luma)
    g["entropy_bpp"] = prediction_entropy_bits(px if pattern == "mono" else px[::2, ::2])
    g["change_frac"] = change_fraction(blocks, previous_blocks, bit_depth)
    g["score"] = round(_score(g, bit_depth), 4)
    return g, blocks


def _score(g: dict[str, Any], bit_depth: int) -> float:
    """One number in [0, 1] for ordering: well exposed, sharp, informative, changed."""
    full = (1 << bit_depth) - 1
    exposure = 1.0 - min(1.0, 10 * g["saturated_frac"] + 2 * g["dark_frac"])
    spread = min(1.0, max(0.0, (g["p99_dn"] - g["p1_dn"]) / (0.5 * full)))
    sharp = min(1.0, np.log10(1.0 + g["sharpness_laplacian_var"]) / 5.0)
    change = 0.5 if g["change_frac"] is None else min(1.0, 0.5 + 5 * g["change_frac"])
    return float(0.4 * exposure + 0.2 * spread + 0.3 * sharp + 0.1 * change)


def thumbnail_only(g: dict[str, Any], rule: dict[str, float]) -> bool:
    """The configurable rule: a frame keeps only its thumbnail when any limit is crossed."""
    if g["saturated_frac"] > rule.get("max_saturated_frac", 1.0):
        return True
    if g["dark_frac"] > rule.get("max_dark_frac", 1.0):
        return True
    if g["score"] < rule.get("min_score", 0.0):
        return True
    return g["sharpness_laplacian_var"] < rule.get("min_sharpness", 0.0)
