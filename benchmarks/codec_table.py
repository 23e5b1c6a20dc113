"""Measure the lossless codec table the re-encoder chooses from, and write it as a module.

``python -m benchmarks.codec_table [--write] [--frames N] [--crop PX]`` makes frames with the camera
emulator's :class:`hil.camera.frames.FrameSource` from each camera profile (``configs/cameras/navcam.yaml``,
12-bit mono; ``configs/cameras/context.yaml``, 8-bit Bayer RGGB), at the profile's own size, and takes a
centred crop of ``--crop`` pixels a side (the statistics of the frame, a quarter of the time). On them it
measures every stock lossless setting imagecodecs offers: JPEG XL efforts 1..10, JPEG-LS, PNG levels 0..9,
CCSDS 121 (libaec), zstd levels, and, for the record, the codecs the ground cannot decode (HTJ2K, JPEG 2000,
JPEG XR, LERC, lossless JPEG, AVIF lossless; WebP and QOI take no 16-bit or one-channel images). For each:
bits per pixel, and encode and decode CPU seconds per Mpix on one thread (``time.process_time``, so a busy
machine slows the wall clock, not the figure), with a bit-exact check.

``--write`` writes :mod:`fsw.imaging.codec_table` (generated; do not edit by hand).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import imagecodecs
import numpy as np
import yaml

from fsw.imaging.codecs import codec_tag, decode_pixels, encode_pixels

__all__ = ["Setting", "settings", "measure_profile", "main"]

REPO = Path(__file__).resolve().parent.parent
PROFILES = ("navcam", "context")
OUT = REPO / "fsw" / "imaging" / "codec_table.py"


@dataclass(frozen=True)
class Setting:
    """One codec setting: its name in the project's codec table (None: the ground cannot decode it)."""

    label: str
    codec: str | None
    params: dict[str, Any]
    encode: Callable[[np.ndarray, int], bytes]
    decode: Callable[[bytes, np.ndarray, int], np.ndarray]


def _project(label: str, codec: str, params: dict[str, Any]) -> Setting:
    return Setting(label, codec, params,
                   lambda a, bits: encode_pixels(codec, a, {"bit_depth": bits, **params}),
                   lambda b, a, bits: decode_pixels(codec, b, a.shape, a.dtype.name, {"bit_depth": bits, **params}))


def _foreign(label: str, enc: Callable[[np.ndarray, int], Any], dec: Callable[[bytes], Any]) -> Setting:
    return Setting(label, None, {}, lambda a, bits: bytes(enc(a, bits)),
                   lambda b, a, bits: np.asarray(dec(b)).reshape(a.shape))


def settings() -> list[Setting]:
    """Every stock lossless setting measured: the ground-decodable ones first."""
    out = [_project(f"jpegxl e{e}", "jpegxl", {"effort": e}) for e in range(1, 11)]
    out.append(_project("jpegls", "jpegls", {}))
    out.extend(_project(f"png l{lv}", "png", {"level": lv}) for lv in range(0, 10))
    out.append(_project("aec (CCSDS 121)", "aec", {}))
    out.extend(_project(f"zstd l{lv}", "zstd", {"level": lv}) for lv in (1, 3, 6, 9, 12, 15, 19, 22))
    out.extend([
        _foreign("htj2k", lambda a, b: imagecodecs.htj2k_encode(a, reversible=True), imagecodecs.htj2k_decode),
        _foreign("jpeg2k", lambda a, b: imagecodecs.jpeg2k_encode(a, level=0, reversible=True, bitspersample=b,
                                                                  numthreads=1), imagecodecs.jpeg2k_decode),
        _foreign("jpegxr", lambda a, b: imagecodecs.jpegxr_encode(a, level=1.0), imagecodecs.jpegxr_decode),
        _foreign("lerc", lambda a, b: imagecodecs.lerc_encode(a, level=0.0), imagecodecs.lerc_decode),
        _foreign("ljpeg", lambda a, b: imagecodecs.ljpeg_encode(a), imagecodecs.ljpeg_decode),
        _foreign("avif lossless", lambda a, b: imagecodecs.avif_encode(a, level=101, bitspersample=b, numthreads=1),
                 imagecodecs.avif_decode),
    ])
    return out


def profile_frames(name: str, n: int, crop: int, seed: int = 2026) -> tuple[list[np.ndarray], dict[str, Any]]:
    """``n`` frames of camera profile ``name`` from the emulator, centre-cropped to ``crop`` (even offsets:
    a Bayer mosaic keeps its phase)."""
    from hil.camera.frames import FrameSource

    profile = yaml.safe_load((REPO / "configs" / "cameras" / f"{name}.yaml").read_text())
    source = FrameSource(profile=profile, seed=seed)
    frames = []
    for counter in range(1, n + 1):
        f = source.frame(counter)
        h, w = f.shape
        ch, cw = min(crop, h), min(crop, w)
        y0, x0 = ((h - ch) // 2) & ~1, ((w - cw) // 2) & ~1
        frames.append(np.ascontiguousarray(f[y0:y0 + ch, x0:x0 + cw]))
    return frames, profile


def _cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def measure(s: Setting, frames: list[np.ndarray], bits: int, budget_s: float) -> dict[str, Any]:
    """Bytes per pixel and CPU seconds per Mpix (best of two when the first run is under ``budget_s``)."""
    n_bytes, enc_s, dec_s, exact, px = 0, 0.0, 0.0, True, 0
    for a in frames:
        t_enc, payload = _cpu(lambda: s.encode(a, bits))
        if t_enc < budget_s:
            t_enc = min(t_enc, _cpu(lambda: s.encode(a, bits))[0])
        t_dec, back = _cpu(lambda: s.decode(payload, a, bits))
        if t_dec < budget_s:
            t_dec = min(t_dec, _cpu(lambda: s.decode(payload, a, bits))[0])
        n_bytes += len(payload)
        enc_s += t_enc
        dec_s += t_dec
        px += a.size
        exact = exact and back.dtype == a.dtype and np.array_equal(back, a)
    mpix = px / 1e6
    return {"bits_per_px": n_bytes * 8 / px, "enc_s_per_mpix": enc_s / mpix, "dec_s_per_mpix": dec_s / mpix,
            "exact": exact}


def measure_profile(name: str, n: int, crop: int, budget_s: float = 2.0,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    frames, profile = profile_frames(name, n, crop)
    bits = int(profile["bit_depth"])
    rows = []
    for s in settings():
        try:
            m = measure(s, frames, bits, budget_s)
        except Exception as exc:  # a setting this build cannot do on these frames: said, not tabled
            log(f"{name}: {s.label}: cannot: {type(exc).__name__}: {exc}")
            continue
        if not m["exact"]:
            log(f"{name}: {s.label}: not bit-exact, left out")
            continue
        row = {"label": s.label, "codec": s.codec, "params": s.params,
               "tag": codec_tag(s.codec, s.params) if s.codec else None,
               **{k: round(v, 4) for k, v in m.items() if k != "exact"}}
        rows.append(row)
        log(f"{name}: {s.label:16s} {row['bits_per_px']:7.3f} bits/px  enc {row['enc_s_per_mpix']:8.3f} s/Mpix  "
            f"dec {row['dec_s_per_mpix']:7.3f} s/Mpix")
    return {"bit_depth": bits, "pattern": profile["pattern"], "frames": n,
            "frame_px": [int(frames[0].shape[0]), int(frames[0].shape[1])],
            "sensor_px": [int(profile["height"]), int(profile["width"])], "rows": rows}


_HEADER = '''"""The measured lossless codec table: what the background re-encoder chooses from. GENERATED.

Made by ``python -m benchmarks.codec_table --write`` ({when}, imagecodecs {ic}, {jxl}; machine load
{load} on {cpus} CPUs; CPU seconds from ``time.process_time`` on one thread, so load slows the wall clock,
not these figures). Frames: the camera emulator's (:class:`hil.camera.frames.FrameSource`) from each
profile in ``configs/cameras/``, centre-cropped. ``codec`` None: the ground cannot decode it (not in
:data:`fsw.imaging.codecs.CODECS`), kept for the record. ``bits_per_px`` over the crop; ``enc_s_per_mpix``
and ``dec_s_per_mpix`` CPU seconds per million pixels. Do not edit by hand: measure again.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TABLE"]

TABLE: dict[str, dict[str, Any]] = '''


def write_module(table: dict[str, Any], load: tuple[float, float]) -> str:
    import pprint

    head = _HEADER.format(when=time.strftime("%Y-%m-%d"), ic=imagecodecs.__version__,
                          jxl=imagecodecs.jpegxl_version(), load=f"{load[0]:.2f} at start, {load[1]:.2f} at end",
                          cpus=os.cpu_count())
    return head + pprint.pformat(table, width=116, sort_dicts=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.codec_table", description=__doc__)
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--crop", type=int, default=1024)
    ap.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(REPO)}")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    table = {name: measure_profile(name, args.frames, args.crop) for name in PROFILES}
    load1 = os.getloadavg()[0]
    if args.write:
        OUT.write_text(write_module(table, (load0, load1)))
        print(f"written {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
