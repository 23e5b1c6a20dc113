"""Codec table: lossless codecs on 12-bit lunar frames, against memcpy and the raw container.

For each lossless codec in :data:`fsw.imaging.codecs.CODECS` (JPEG XL at
efforts 1, 3 and 7), plus HTJ2K and JPEG 2000 from imagecodecs when present:
bits per pixel, encode and decode Mpix/s on one thread, and a bit-exact check
through the project's own decoder. Baselines measured in the same run: a numpy
copy of the same frame (speed) and the raw 16-bit container and 12 bits/pixel
(size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import imagecodecs
import numpy as np

from benchmarks.figures import Column, Table, best_of, ratio
from benchmarks.frames import frame_maker
from fsw.imaging.codecs import CODECS, decode_pixels, encode_pixels

__all__ = ["Candidate", "candidates", "bench_codecs"]

JPEGXL_EFFORTS = (1, 3, 7)


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


def _measure(c: Candidate, frames: list[np.ndarray], repeats: int, budget_s: float) -> dict[str, Any]:
    """Bytes, best encode and decode seconds summed over frames, and the bit-exact verdict."""
    n_bytes, enc_s, dec_s, exact = 0, 0.0, 0.0, True
    for f in frames:
        t_enc, payload = best_of(lambda: c.encode(f), repeats, budget_s)
        t_dec, back = best_of(lambda: c.decode(payload, f.shape), repeats, budget_s)
        n_bytes += len(payload)
        enc_s += t_enc
        dec_s += t_dec
        exact = exact and back.dtype == f.dtype and np.array_equal(back, f)
    return {"bytes": n_bytes, "enc_s": enc_s, "dec_s": dec_s, "exact": exact}


def _row(label: str, m: dict[str, Any], n_px: int, copy_mpix_s: float, bit_depth: int) -> dict[str, Any]:
    bpp = m["bytes"] * 8 / n_px
    enc = n_px / m["enc_s"] / 1e6
    dec = n_px / m["dec_s"] / 1e6
    return {"codec": label, "size_vs_raw16": bpp / 16, "size_vs_depth": bpp / bit_depth,
            "enc_vs_memcpy": ratio(enc, copy_mpix_s), "dec_vs_memcpy": ratio(dec, copy_mpix_s),
            "bits_per_px": bpp, "enc_mpix_s": enc, "dec_mpix_s": dec, "bit_exact": m["exact"]}


def _columns(bit_depth: int) -> list[Column]:
    return [
        Column("codec", "codec"),
        Column("size_vs_raw16", "size/raw16", ".3f", True),
        Column("size_vs_depth", f"size/{bit_depth}bpp", ".3f", True),
        Column("enc_vs_memcpy", "enc/memcpy", ".2e", True),
        Column("dec_vs_memcpy", "dec/memcpy", ".2e", True),
        Column("bits_per_px", "bits/px", ".2f"),
        Column("enc_mpix_s", "enc Mpix/s", ".1f"),
        Column("dec_mpix_s", "dec Mpix/s", ".1f"),
        Column("bit_exact", "exact"),
    ]


def bench_codecs(size_px: int = 2048, n_frames: int = 3, bit_depth: int = 12, repeats: int = 3,
                 budget_s: float = 0.5, seed: int = 2026) -> Table:
    """The codec table for ``n_frames`` square frames of ``size_px``; best-of-``repeats`` timings."""
    make, source = frame_maker(size_px, size_px, bit_depth, seed)
    frames = [np.ascontiguousarray(make(i)) for i in range(n_frames)]
    n_px = sum(f.size for f in frames)
    copy_s = sum(best_of(lambda: np.copy(f), max(repeats, 5), budget_s)[0] for f in frames)
    copy_mpix_s = n_px / copy_s / 1e6
    memcpy = {"bytes": sum(f.nbytes for f in frames), "enc_s": copy_s, "dec_s": copy_s, "exact": True}
    rows = [_row("memcpy (baseline)", memcpy, n_px, copy_mpix_s, bit_depth)]
    notes = [f"frames: {n_frames} x {size_px}x{size_px} {bit_depth}-bit from {source}",
             "speeds: one thread, best of up to "
             f"{repeats} runs per frame (fewer once {budget_s:g} s is spent), summed over frames",
             "exact: decoded with the project's decoder (fsw.imaging.codecs.decode_pixels) and compared bit for bit"]
    for c in candidates(bit_depth):
        try:
            rows.append(_row(c.label, _measure(c, frames, repeats, budget_s), n_px, copy_mpix_s, bit_depth))
        except Exception as exc:  # a codec library missing a feature here: say so, keep the table
            rows.append({"codec": c.label, "bit_exact": False})
            notes.append(f"{c.label}: failed: {type(exc).__name__}: {exc}")
    baseline = (f"memcpy (numpy copy of the same frames) {copy_mpix_s:,.0f} Mpix/s; "
                f"raw container 16 bits/px; sensor depth {bit_depth} bits/px")
    return Table("codecs", f"Lossless codecs on {size_px}x{size_px} {bit_depth}-bit lunar frames", baseline,
                 _columns(bit_depth), rows, notes)
