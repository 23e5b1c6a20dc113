"""Near-lossless products: bits per pixel at max_error 1, 2 and 4 DN, against lossless and against lossy
at the same PSNR, on the camera emulator's 12-bit frames.

For each bound k, each near-lossless candidate codes the same frames; every pixel is decoded with the
project's decoder and compared with the frame (the figure is void unless none is beyond k). Two
baselines, both measured in this run on the same frames:

``lossless``   JPEG XL lossless at the same effort (the ratio is what the bound saves)
``lossy``      JPEG XL lossy (:mod:`fsw.imaging.lossy`'s codec) at the largest distance whose PSNR is
               at least the near-lossless product's, found by bisection on log(distance): the bytes a
               budgeted lossy product needs for the same mean error, and the worst pixel it leaves

Candidates: ``jxl_near`` (quantise to step 2k+1, then JPEG XL lossless; the project's choice) at
effort 3 and at effort 1 (the capture path's effort), and ``jpegls_near`` (JPEG-LS NEAR = k). Sizes
do not vary between rounds; encode speeds are the median and min-max of the rounds.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import numpy as np

from benchmarks.figures import Column, LoadWatch, Table, ratio
from benchmarks.frames import frame_maker
from fsw.imaging.codecs import decode_pixels, encode_pixels
from fsw.imaging.lossy import psnr_db
from fsw.imaging.near_lossless import max_abs_error

__all__ = ["bench_near_lossless", "CANDIDATES", "BOUNDS"]

BOUNDS = (1, 2, 4)
LOSSLESS_EFFORT = 3
CANDIDATES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("jxl_near e3 (chosen)", "jxl_near", {"effort": 3}),
    ("jxl_near e1", "jxl_near", {"effort": 1}),
    ("jpegls_near", "jpegls_near", {}),
)
DISTANCE_RANGE = (0.005, 25.0)
BISECT_STEPS = 9


def _code(codec: str, frames: list[np.ndarray], params: dict[str, Any]) -> tuple[list[bytes], float]:
    """Encode every frame; the payloads and the summed encode seconds."""
    t = 0.0
    out = []
    for f in frames:
        t0 = time.perf_counter()
        out.append(encode_pixels(codec, f, params))
        t += time.perf_counter() - t0
    return out, t


def _decoded(codec: str, payloads: list[bytes], frames: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    return [decode_pixels(codec, b, f.shape, f.dtype.name, params) for b, f in zip(payloads, frames)]


def _psnr(frames: list[np.ndarray], back: list[np.ndarray], bit_depth: int) -> float:
    """PSNR over all frames together (the mean squared error of every pixel)."""
    mse = sum(float(np.sum((f.astype(np.float64) - b.astype(np.float64)) ** 2)) for f, b in zip(frames, back))
    mse /= sum(f.size for f in frames)
    return math.inf if mse == 0 else 10 * math.log10(((1 << bit_depth) - 1) ** 2 / mse)


def _lossy_at_psnr(frames: list[np.ndarray], bit_depth: int, target_db: float) -> dict[str, Any]:
    """The largest JPEG XL lossy distance whose PSNR over the frames is at least ``target_db``."""
    def at(d: float) -> dict[str, Any]:
        params = {"bit_depth": bit_depth, "distance": d, "effort": 3}
        payloads, _ = _code("jxl_lossy", frames, params)
        back = _decoded("jxl_lossy", payloads, frames, params)
        return {"distance": d, "bytes": sum(map(len, payloads)), "psnr_db": _psnr(frames, back, bit_depth),
                "max_err": max(max_abs_error(f, b) for f, b in zip(frames, back))}

    lo, hi = math.log(DISTANCE_RANGE[0]), math.log(DISTANCE_RANGE[1])
    finest = at(DISTANCE_RANGE[0])
    if finest["psnr_db"] < target_db:
        return {"reached": False, **finest}
    best = finest
    for _ in range(BISECT_STEPS):
        mid = at(math.exp((lo + hi) / 2))
        if mid["psnr_db"] >= target_db:
            best, lo = mid, math.log(mid["distance"])
        else:
            hi = math.log(mid["distance"])
    return {"reached": True, **best}


def _near(codec: str, params: dict[str, Any], k: int, frames: list[np.ndarray], bit_depth: int,
          rounds: int) -> dict[str, Any]:
    p = {"bit_depth": bit_depth, "max_error": k, **params}
    times = []
    payloads: list[bytes] = []
    for _ in range(rounds):
        payloads, t = _code(codec, frames, p)
        times.append(t)
    back = _decoded(codec, payloads, frames, p)
    n_px = sum(f.size for f in frames)
    speeds = [n_px / t / 1e6 for t in times]
    return {"bytes": sum(map(len, payloads)), "psnr_db": _psnr(frames, back, bit_depth),
            "max_err": max(max_abs_error(f, b) for f, b in zip(frames, back)),
            "enc_mpix_s": statistics.median(speeds), "enc_min": min(speeds), "enc_max": max(speeds)}


def _columns() -> list[Column]:
    return [
        Column("codec", "codec"), Column("max_error", "k DN", "d"),
        Column("vs_lossless", "size/lossless", ".3f", True), Column("vs_lossy", "size/lossy same PSNR", ".3f", True),
        Column("bits_per_px", "bits/px", ".3f"), Column("psnr_db", "PSNR dB", ".2f"),
        Column("max_err", "max err DN", "d"), Column("within", "within k"),
        Column("lossy_bits_per_px", "lossy bits/px", ".3f"), Column("lossy_max_err", "lossy max err", "d"),
        Column("enc_mpix_s", "enc Mpix/s", ".1f"), Column("enc_spread", "(min-max)"),
    ]


def bench_near_lossless(size_px: int = 2048, n_frames: int = 2, rounds: int = 3, bit_depth: int = 12,
                        seed: int = 2026) -> Table:
    """Bits per pixel of near-lossless coding at each bound, as ratios to lossless and to lossy at the same PSNR."""
    watch = LoadWatch()
    make, source = frame_maker(size_px, size_px, bit_depth, seed)
    frames = [np.ascontiguousarray(make(i)) for i in range(n_frames)]
    n_px = sum(f.size for f in frames)
    lossless_params = {"bit_depth": bit_depth, "effort": LOSSLESS_EFFORT}
    lossless_bytes = sum(map(len, _code("jpegxl", frames, lossless_params)[0]))
    lossless_bpp = lossless_bytes * 8 / n_px
    table = Table("near_lossless", f"Near-lossless on {size_px}x{size_px} {bit_depth}-bit frames: bits/px at a "
                  "guaranteed max error", f"JPEG XL lossless e{LOSSLESS_EFFORT} on the same frames, "
                  f"{lossless_bpp:.3f} bits/px; JPEG XL lossy e3 at the same PSNR (bisected per row)", _columns())
    notes = [f"frames: {n_frames} x {size_px}x{size_px} {bit_depth}-bit from {source}"]
    for k in BOUNDS:
        lossy: dict[str, Any] | None = None
        for label, codec, params in CANDIDATES:
            m = _near(codec, params, k, frames, bit_depth, rounds)
            if lossy is None:  # one lossy bisection per bound, at the chosen codec's PSNR
                lossy = _lossy_at_psnr(frames, bit_depth, m["psnr_db"])
                if not lossy["reached"]:
                    notes.append(f"k={k}: JPEG XL lossy does not reach {m['psnr_db']:.2f} dB even at distance "
                                 f"{DISTANCE_RANGE[0]} ({lossy['psnr_db']:.2f} dB, "
                                 f"{lossy['bytes'] * 8 / n_px:.3f} bits/px): size/lossy is against that")
            bpp = m["bytes"] * 8 / n_px
            lossy_bpp = lossy["bytes"] * 8 / n_px
            table.rows.append({
                "codec": label, "max_error": k, "vs_lossless": ratio(bpp, lossless_bpp),
                "vs_lossy": ratio(bpp, lossy_bpp),
                "bits_per_px": bpp, "psnr_db": m["psnr_db"], "max_err": m["max_err"], "within": m["max_err"] <= k,
                "lossy_bits_per_px": lossy_bpp, "lossy_max_err": lossy["max_err"],
                "enc_mpix_s": m["enc_mpix_s"], "enc_spread": f"({m['enc_min']:.1f}-{m['enc_max']:.1f})",
            })
    table.load = watch.done()
    notes.append("size/lossy same PSNR: against JPEG XL lossy at the largest distance whose PSNR over the frames "
                 "is at least the chosen codec's (jxl_near e3) at that k; the lossy max err is its worst pixel")
    notes.append(f"within k: every pixel decoded with the project's decoder and compared; encode speed one thread, "
                 f"median and min-max of {rounds} rounds; sizes are the same every round")
    notes.append("sizes do not depend on the machine's load; speeds do")
    table.notes.extend(notes)
    return table
