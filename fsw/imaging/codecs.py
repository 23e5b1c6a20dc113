"""Pixel codecs: one table, encode and decode side by side, no I/O.

Every codec the project uses is named here with its encoder and decoder, so
the lander and the ground decode with the same code. Lossless codecs must
return the exact input; lossy ones are named ``lossy`` in the table.

Near-lossless codecs bound every pixel's error by ``max_error`` DN (a codec
parameter, which travels with the product):

``jxl_near``     each pixel quantised to the nearest multiple of ``2 * max_error + 1`` (as an index),
                 then JPEG XL lossless; decoding multiplies back (clipped to the bit depth). The bound
                 holds by construction (each step covers +-max_error). Chosen from the near-lossless
                 benchmark: on the emulator's 12-bit frames it takes fewer bits than JPEG-LS NEAR at
                 effort 3 (``benchmarks/near_lossless.py``).
``jpegls_near``  JPEG-LS (ISO 14495-1) with NEAR = ``max_error``: the standard's own bound, quantised in
                 the prediction residuals; any JPEG-LS decoder reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import imagecodecs
import numpy as np

from framework.errors import ProductError

__all__ = ["Codec", "CODECS", "NEAR_CODECS", "encode_pixels", "decode_pixels", "codec_tag", "near_step"]


@dataclass(frozen=True)
class Codec:
    name: str
    lossless: bool
    encode: Callable[[np.ndarray, dict[str, Any]], bytes]
    decode: Callable[[bytes], np.ndarray]


def _jpegls_enc(a: np.ndarray, p: dict[str, Any]) -> bytes:
    return bytes(imagecodecs.jpegls_encode(a, level=0))


def _jpegxl_enc(a: np.ndarray, p: dict[str, Any]) -> bytes:
    bits = p.get("bit_depth")
    return bytes(imagecodecs.jpegxl_encode(a, lossless=True, effort=int(p.get("effort", 7)),
                                           bitspersample=bits, numthreads=int(p.get("threads", 1))))


def _png_enc(a: np.ndarray, p: dict[str, Any]) -> bytes:
    return bytes(imagecodecs.png_encode(a, level=int(p.get("level", 6))))


def _aec_enc(a: np.ndarray, p: dict[str, Any]) -> bytes:
    # CCSDS 121.0-B (Rice) via libaec; the shape travels in the product, not the stream.
    bits = int(p.get("bit_depth", a.dtype.itemsize * 8))
    return bytes(imagecodecs.aec_encode(np.ascontiguousarray(a), bitspersample=bits,
                                        flags=imagecodecs.AEC.FLAG.DATA_PREPROCESS, blocksize=16, rsi=128))


def _zstd_enc(a: np.ndarray, p: dict[str, Any]) -> bytes:
    return bytes(imagecodecs.zstd_encode(np.ascontiguousarray(a).tobytes(), level=int(p.get("level", 3))))


def _jxl_lossy_enc(a: np.ndarray, p: dict[str, Any]) -> bytes:
    return bytes(imagecodecs.jpegxl_encode(a, distance=float(p["distance"]), effort=int(p.get("effort", 3)),
                                           bitspersample=p.get("bit_depth"), numthreads=int(p.get("threads", 1))))


def near_step(max_error: int) -> int:
    """The quantiser step that keeps every pixel within ``max_error`` DN: one step covers +-max_error."""
    return 2 * int(max_error) + 1


def _max_error(p: dict[str, Any]) -> int:
    k = p.get("max_error")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 32767:
        raise ProductError(f"near-lossless needs max_error an int in 1..32767, got {k!r}")
    return k


def _jxl_near_enc(a: np.ndarray, p: dict[str, Any]) -> bytes:
    k = _max_error(p)
    s = near_step(k)
    bits = int(p.get("bit_depth") or a.dtype.itemsize * 8)
    # x -> floor((x + k) / s): the index of the grid point (a multiple of s) nearest x; decoding gives index * s.
    q32 = (a.astype(np.uint32) + k) // s
    q_bits = max(1, int(((1 << bits) - 1 + k) // s).bit_length(), int(q32.max(initial=0)).bit_length())
    # libjxl takes 16-bit samples only at 9 bits and up; fewer go as 8-bit samples (decoding multiplies back).
    q = q32.astype(np.uint8 if q_bits <= 8 else np.uint16)
    return bytes(imagecodecs.jpegxl_encode(q, lossless=True, effort=int(p.get("effort", 3)),
                                           bitspersample=q_bits, numthreads=int(p.get("threads", 1))))


def _jxl_near_dec(payload: bytes, dt: np.dtype, p: dict[str, Any]) -> np.ndarray:
    k = _max_error(p)
    bits = int(p.get("bit_depth") or dt.itemsize * 8)
    q = np.asarray(imagecodecs.jpegxl_decode(payload, numthreads=int(p.get("threads", 1))))
    return np.minimum(q.astype(np.uint32) * near_step(k), (1 << bits) - 1).astype(dt)


def _jpegls_near_dec(payload: bytes, dt: np.dtype, p: dict[str, Any]) -> np.ndarray:
    """The stream's MAXVAL is the container's (CharLS takes it from the dtype), so a pixel at the top of a
    12-bit range may come back up to NEAR above it: clipped to the bit depth, which only brings it closer."""
    bits = int(p.get("bit_depth") or dt.itemsize * 8)
    arr = np.asarray(imagecodecs.jpegls_decode(payload))
    return np.minimum(arr, (1 << bits) - 1).astype(arr.dtype) if bits < arr.dtype.itemsize * 8 else arr


def _jpegls_near_enc(a: np.ndarray, p: dict[str, Any]) -> bytes:
    k = _max_error(p)
    top = (1 << (a.dtype.itemsize * 8)) - 1
    if k > min(255, top // 2):  # ISO 14495-1 C.2.4.1.1: NEAR <= min(255, MAXVAL / 2)
        raise ProductError(f"JPEG-LS NEAR is at most {min(255, top // 2)} for {a.dtype} pixels, got {k}")
    return bytes(imagecodecs.jpegls_encode(a, level=k))


def _jpeg8_enc(a: np.ndarray, p: dict[str, Any]) -> bytes:
    return bytes(imagecodecs.jpeg8_encode(a, level=int(p.get("quality", 80))))


CODECS: dict[str, Codec] = {
    "jpegls": Codec("jpegls", True, _jpegls_enc, lambda b: imagecodecs.jpegls_decode(b)),
    "jpegxl": Codec("jpegxl", True, _jpegxl_enc, lambda b: imagecodecs.jpegxl_decode(b)),
    "png": Codec("png", True, _png_enc, lambda b: imagecodecs.png_decode(b)),
    "aec": Codec("aec", True, _aec_enc, lambda b: np.frombuffer(b, np.uint8)),  # needs shape: see decode_pixels
    "zstd": Codec("zstd", True, _zstd_enc, lambda b: np.frombuffer(imagecodecs.zstd_decode(b), np.uint8)),
    "jpeg": Codec("jpeg", False, _jpeg8_enc, lambda b: imagecodecs.jpeg8_decode(b)),
    "jxl_lossy": Codec("jxl_lossy", False, _jxl_lossy_enc, lambda b: imagecodecs.jpegxl_decode(b)),
    "jxl_near": Codec("jxl_near", False, _jxl_near_enc, lambda b: imagecodecs.jpegxl_decode(b)),  # see decode_pixels
    "jpegls_near": Codec("jpegls_near", False, _jpegls_near_enc, lambda b: imagecodecs.jpegls_decode(b)),
}
NEAR_CODECS = ("jxl_near", "jpegls_near")
"""Codecs that bound each pixel's error by the ``max_error`` parameter."""


_TAG_IGNORES = ("bit_depth", "threads")  # per frame, or not changing the bytes


def codec_tag(codec: str, params: dict[str, Any] | None = None) -> str:
    """A codec with the parameters that change its bytes, as one string: ``jpegxl:effort=1``.

    The store keeps it per product, so the background re-encoder can tell JPEG XL at effort 1 (the
    capture path) from JPEG XL at effort 7 (its target)."""
    kept = sorted((k, v) for k, v in (params or {}).items() if k not in _TAG_IGNORES)
    return codec + "".join(f"{':' if i == 0 else ','}{k}={v}" for i, (k, v) in enumerate(kept))


def encode_pixels(codec: str, pixels: np.ndarray, params: dict[str, Any] | None = None) -> bytes:
    """Encode pixels with a named codec from :data:`CODECS`."""
    try:
        c = CODECS[codec]
    except KeyError:
        raise ProductError(f"unknown codec '{codec}'; known: {sorted(CODECS)}") from None
    return c.encode(pixels, params or {})


def decode_pixels(codec: str, payload: bytes, shape: tuple[int, ...], dtype: str,
                  params: dict[str, Any] | None = None) -> np.ndarray:
    """Decode a payload to an array of the stated shape and dtype; raise ProductError if it cannot."""
    if codec not in CODECS:
        raise ProductError(f"unknown codec '{codec}'; known: {sorted(CODECS)}")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ProductError(f"unknown dtype '{dtype}'") from None
    if dt not in (np.uint8, np.uint16):
        raise ProductError(f"dtype must be uint8 or uint16, got '{dtype}'")
    n = int(np.prod(shape)) if shape else 0
    try:
        if codec == "aec":
            p = params or {}
            bits = int(p.get("bit_depth", dt.itemsize * 8))
            out = imagecodecs.aec_decode(payload, bitspersample=bits, flags=imagecodecs.AEC.FLAG.DATA_PREPROCESS,
                                         blocksize=16, rsi=128, out=-(-n // 16) * 16 * dt.itemsize)
            arr = np.frombuffer(out, dtype=dt)[:n]  # libaec fills whole blocks
        elif codec == "jxl_near":
            arr = _jxl_near_dec(payload, dt, params or {})
        elif codec == "jpegls_near":
            arr = _jpegls_near_dec(payload, dt, params or {})
        elif codec == "jpegxl":  # the verify decode may use idle cores (params "threads"; same pixels)
            arr = np.asarray(imagecodecs.jpegxl_decode(payload, numthreads=int((params or {}).get("threads", 1))))
        elif codec == "zstd":
            arr = np.frombuffer(imagecodecs.zstd_decode(payload), dtype=dt) if len(payload) else np.empty(0, dt)
        else:
            arr = np.asarray(CODECS[codec].decode(payload))
    except ProductError:
        raise
    except Exception as exc:  # codec libraries raise their own types on corrupt input
        raise ProductError(f"{codec} payload does not decode: {type(exc).__name__}: {exc}") from None
    if arr.size != n:
        raise ProductError(f"{codec} payload decodes to {arr.size} pixels, expected {n} for shape {list(shape)}")
    if arr.dtype != dt:
        if arr.dtype.kind != "u" or arr.max(initial=0) > np.iinfo(dt).max:
            raise ProductError(f"{codec} payload decodes to {arr.dtype}, expected {dt}")
        arr = arr.astype(dt)
    return arr.reshape(shape)
