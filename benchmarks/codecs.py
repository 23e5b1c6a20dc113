"""Codec table: lossless codecs on 12-bit lunar frames, against the capture path's codec in the same run.

For each lossless codec in :data:`fsw.imaging.codecs.CODECS` (JPEG XL at
efforts 1, 3 and 7), plus HTJ2K and JPEG 2000 from imagecodecs when present:
bits per pixel, encode and decode Mpix/s on one thread (several rounds, median
and min-max), and a bit-exact check through the project's own decoder. The
baseline is the codec the capture path runs (JPEG XL effort 1), measured on the
same frames in the same rounds: a codec's size and speed are read as ratios to
it. Sizes are also given against the raw 16-bit container and the sensor's 12
bits/pixel; a numpy copy of the frames is a row for scale.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import imagecodecs
import numpy as np

from benchmarks.figures import Column, LoadWatch, Table, ratio, spread
from benchmarks.frames import frame_maker
from benchmarks.imaging import CAPTURE
from fsw.imaging.codecs import CODECS, decode_pixels, encode_pixels

__all__ = ["Candidate", "candidates", "bench_codecs"]

JPEGXL_EFFORTS = (1, 3, 7)
CAPTURE_LABEL = f"{CAPTURE['codec']} e{CAPTURE['params']['effort']}"  # the capture path's codec, as labelled here


@dataclass(frozen=True)
class Candidate:
    """A codec under test: encode a frame, decode bytes back to a frame of a given shape."""

    label: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes, tuple[int, ...]], np.ndarray]


def _project_candidate(label: str, codec: str, params: dict[str, Any]) -> Candidate:
    return Candidate(
        label,
        lambda a: encode_pixels(codec, a, params),
        lambda b, shape: decode_pixels(codec, b, shape, "uint16", params),
    )


def _extra_candidates(bit_depth: int) -> list[Candidate]:
    """HTJ2K and JPEG 2000 (reversible, one thread), when this imagecodecs build has them."""
    extra = []
    if getattr(imagecodecs, "HTJ2K", None) is not None and imagecodecs.HTJ2K.available:
        extra.append(Candidate(
            "htj2k (imagecodecs)",
            lambda a: bytes(imagecodecs.htj2k_encode(a, reversible=True)),
            lambda b, shape: np.asarray(imagecodecs.htj2k_decode(b)).reshape(shape),
        ))
    if getattr(imagecodecs, "JPEG2K", None) is not None and imagecodecs.JPEG2K.available:
        extra.append(Candidate(
            "jpeg2k (imagecodecs)",
            lambda a: bytes(imagecodecs.jpeg2k_encode(a, level=0, reversible=True, bitspersample=bit_depth,
                                                      numthreads=1)),
            lambda b, shape: np.asarray(imagecodecs.jpeg2k_decode(b, numthreads=1)).reshape(shape),
        ))
    return extra


def candidates(bit_depth: int = 12) -> list[Candidate]:
    """Every lossless codec of the project's table, then the extras from imagecodecs."""
    out = []
    for name, codec in CODECS.items():
        if not codec.lossless:
            continue
        if name == "jpegxl":
            out.extend(_project_candidate(f"jpegxl e{e}", name, {"effort": e, "bit_depth": bit_depth})
                       for e in JPEGXL_EFFORTS)
        else:
            out.append(_project_candidate(name, name, {"bit_depth": bit_depth}))
    return out + _extra_candidates(bit_depth)


def _time(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _first_pass(c: Candidate, frames: list[np.ndarray]) -> tuple[list[bytes], bool]:
    """Encode and decode every frame once, untimed (warms the codec): the payloads and the bit-exact verdict."""
    payloads = [c.encode(f) for f in frames]
    exact = all(back.dtype == f.dtype and np.array_equal(back, f)
                for f, back in ((f, c.decode(p, f.shape)) for f, p in zip(frames, payloads)))
    return payloads, exact


def _round(c: Candidate, frames: list[np.ndarray], payloads: list[bytes], n_px: int) -> tuple[float, float]:
    """One timed round: every frame encoded once and decoded once; (encode, decode) Mpix/s over the frames."""
    enc_s = sum(_time(lambda f=f: c.encode(f)) for f in frames)
    dec_s = sum(_time(lambda f=f, p=p: c.decode(p, f.shape)) for f, p in zip(frames, payloads))
    return n_px / enc_s / 1e6, n_px / dec_s / 1e6


def _row(label: str, bpp: float, enc: list[float], dec: list[float], exact: bool, base: dict[str, float],
         bit_depth: int) -> dict[str, Any]:
    e, d = spread(enc), spread(dec)
    return {"codec": label, "size_vs_capture": ratio(bpp, base["bpp"]),
            "enc_vs_capture": ratio(e["median"], base["enc"]), "dec_vs_capture": ratio(d["median"], base["dec"]),
            "size_vs_raw16": bpp / 16, "size_vs_depth": bpp / bit_depth, "bits_per_px": bpp,
            "enc_mpix_s": e["median"], "enc_min": e["min"], "enc_max": e["max"],
            "dec_mpix_s": d["median"], "dec_min": d["min"], "dec_max": d["max"], "bit_exact": exact}


def _columns(bit_depth: int) -> list[Column]:
    return [
        Column("codec", "codec"),
        Column("size_vs_capture", "size/capture", ".3f", True),
        Column("enc_vs_capture", "enc/capture", ".3g", True),
        Column("dec_vs_capture", "dec/capture", ".3g", True),
        Column("size_vs_raw16", "size/raw16", ".3f", True),
        Column("size_vs_depth", f"size/{bit_depth}bpp", ".3f", True),
        Column("bits_per_px", "bits/px", ".2f"),
        Column("enc_mpix_s", "enc Mpix/s median", ".1f"), Column("enc_min", "min", ".1f"),
        Column("enc_max", "max", ".1f"),
        Column("dec_mpix_s", "dec Mpix/s median", ".1f"), Column("dec_min", "min", ".1f"),
        Column("dec_max", "max", ".1f"),
        Column("bit_exact", "exact"),
    ]


def _capture_first(cands: list[Candidate]) -> list[Candidate]:
    """The capture path's codec first: it is the baseline the others are read against."""
    return sorted(cands, key=lambda c: c.label != CAPTURE_LABEL)


def bench_codecs(size_px: int = 2048, n_frames: int = 3, bit_depth: int = 12, rounds: int = 3,
                 seed: int = 2026) -> Table:
    """The codec table for ``n_frames`` square frames of ``size_px``: ``rounds`` timed rounds, the codecs
    interleaved within each round (so a slow moment of the machine hits them alike), after one untimed pass
    that gives the bytes and the bit-exact check."""
    watch = LoadWatch()
    make, source = frame_maker(size_px, size_px, bit_depth, seed)
    frames = [np.ascontiguousarray(make(i)) for i in range(n_frames)]
    n_px = sum(f.size for f in frames)
    notes: list[str] = []
    done: list[tuple[Candidate, list[bytes], bool]] = []
    for c in _capture_first(candidates(bit_depth)):
        try:
            payloads, exact = _first_pass(c, frames)
        except Exception as exc:  # a codec library missing a feature here: say so, keep the table
            notes.append(f"{c.label}: failed: {type(exc).__name__}: {exc}")
            continue
        done.append((c, payloads, exact))
    speeds: dict[str, tuple[list[float], list[float]]] = {c.label: ([], []) for c, _, _ in done}
    memcpy: list[float] = []
    for _ in range(max(1, rounds)):
        memcpy.append(n_px / sum(_time(lambda f=f: np.copy(f)) for f in frames) / 1e6)
        for c, payloads, _ in done:
            enc, dec = _round(c, frames, payloads, n_px)
            speeds[c.label][0].append(enc)
            speeds[c.label][1].append(dec)
    if not done or done[0][0].label != CAPTURE_LABEL:
        raise RuntimeError(f"the capture path's codec ({CAPTURE_LABEL}) did not run: no baseline")
    bpp = {c.label: sum(len(p) for p in payloads) * 8 / n_px for c, payloads, _ in done}
    base = {"bpp": bpp[CAPTURE_LABEL], "enc": statistics.median(speeds[CAPTURE_LABEL][0]),
            "dec": statistics.median(speeds[CAPTURE_LABEL][1])}
    rows = [_row(f"{c.label} (capture path, baseline)" if c.label == CAPTURE_LABEL else c.label, bpp[c.label],
                 *speeds[c.label], exact, base, bit_depth) for c, _, exact in done]
    rows.append(_row("memcpy (numpy copy, for scale)", 16.0, memcpy, memcpy, True, base, bit_depth))
    notes = [f"frames: {n_frames} x {size_px}x{size_px} {bit_depth}-bit from {source}",
             f"speeds: one thread; {rounds} rounds, each encoding and decoding every frame once with every codec in "
             "turn, after one untimed pass; median and min-max over the rounds",
             "exact: decoded with the project's decoder (fsw.imaging.codecs.decode_pixels) and compared bit for bit",
             *notes]
    baseline = (f"the capture path's codec, {CAPTURE_LABEL} (configs/demo.yaml's imaging lossless codec), on the "
                f"same frames in this run: {base['bpp']:.2f} bits/px, encode {base['enc']:.1f} and decode "
                f"{base['dec']:.1f} Mpix/s median; sizes also against the raw 16-bit container and "
                f"{bit_depth} bits/px")
    return Table("codecs", f"Lossless codecs on {size_px}x{size_px} {bit_depth}-bit lunar frames", baseline,
                 _columns(bit_depth), rows, notes, load=watch.done())
