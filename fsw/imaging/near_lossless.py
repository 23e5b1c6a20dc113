"""Near-lossless products: every pixel within ``max_error`` DN of the frame, checked before it counts.

Science teams on a starved link ask for a bound on each pixel's error rather than a byte budget
(which :mod:`fsw.imaging.lossy` meets, with no bound on any one pixel). The codec
(:mod:`fsw.imaging.codecs`: ``jxl_near`` by default, ``jpegls_near`` beside it) keeps the bound by
construction; this module still decodes every product and compares it with the frame pixel by pixel
before the product is made, so a codec that breaks its promise is a failed product, never a sent one.
A frame used in place in a shared-memory slot is checked to be intact after the work (as
:mod:`fsw.imaging.pipeline` does), so a rewritten slot is PixelsOverwritten, not a product.

The raw frame is coded (a Bayer mosaic stays a mosaic, as in the lossless product), optionally a
region of it. What the product states (see :mod:`fsw.imaging.product`): the bound in
``codec_params.max_error`` and ``meta.max_error_dn``, the worst error found in
``meta.max_error_measured_dn``, the PSNR, and ``meta.source_crc32c`` (the CRC-32C of the pixels that
were coded) so that a ground that also receives them losslessly can tell it holds the very original
and check the bound itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.crc import pixels_crc32c
from framework.errors import ProductError
from fsw.imaging.codecs import NEAR_CODECS, decode_pixels, encode_pixels
from fsw.imaging.frame import Frame
from fsw.imaging.lossy import crop, psnr_db
from fsw.imaging.product import Product, product_id

__all__ = ["NearResult", "encode_near_lossless", "max_abs_error", "make_near_lossless", "capture_codec",
           "DEFAULT_CODEC", "DEFAULT_EFFORT"]

DEFAULT_CODEC = "jxl_near"
DEFAULT_EFFORT = 3  # the near-lossless benchmark: effort 3 is 7-8 % smaller than effort 1 at ~10x its time


@dataclass(frozen=True)
class NearResult:
    payload: bytes
    decoded: np.ndarray
    params: dict[str, Any]
    max_error_measured_dn: int
    psnr_db: float


def max_abs_error(a: np.ndarray, b: np.ndarray) -> int:
    """The largest |a - b| over all pixels (0 for empty arrays), in DN."""
    if a.size == 0:
        return 0
    return int(np.max(np.abs(a.astype(np.int32) - b.astype(np.int32))))


def encode_near_lossless(pixels: np.ndarray, bit_depth: int, max_error: int, codec: str = DEFAULT_CODEC,
                         params: dict[str, Any] | None = None) -> NearResult:
    """Encode within ``max_error`` DN, decode, and check every pixel; ProductError if any is beyond."""
    if codec not in NEAR_CODECS:
        raise ProductError(f"'{codec}' is not a near-lossless codec; known: {list(NEAR_CODECS)}")
    p = {"bit_depth": bit_depth, **(params or {}), "max_error": int(max_error)}
    if codec == "jpegls_near":
        p.pop("effort", None)
    elif "effort" not in p:
        p["effort"] = DEFAULT_EFFORT
    payload = encode_pixels(codec, pixels, p)
    decoded = decode_pixels(codec, payload, pixels.shape, pixels.dtype.name, p)
    worst = max_abs_error(pixels, decoded)
    if worst > max_error:
        raise ProductError(f"{codec} left a pixel {worst} DN off, beyond max_error {max_error}")
    return NearResult(payload, decoded, p, worst, round(psnr_db(pixels, decoded, bit_depth), 3))


def capture_codec(lossless_codec: str, lossless_params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The near-lossless codec for the capture path, in the CPU class the lossless one was chosen for:
    JPEG-LS NEAR when the capture path codes JPEG-LS, else ``jxl_near`` at the JPEG XL effort set for
    the capture path (effort 3 when none is)."""
    if lossless_codec == "jpegls":
        return "jpegls_near", {}
    effort = lossless_params.get("effort", DEFAULT_EFFORT) if lossless_codec == "jpegxl" else DEFAULT_EFFORT
    return "jxl_near", {"effort": effort}


def make_near_lossless(frame: Frame, max_error: int, grades: dict[str, Any],
                       region: tuple[int, int, int, int] | None = None, kind: str = "near_lossless",
                       codec: str = DEFAULT_CODEC, params: dict[str, Any] | None = None) -> Product:
    """The raw frame (or a region), every pixel within ``max_error`` DN; checked before it counts.

    ``kind``: ``near_lossless`` on request; ``full`` when the capture path is set near-lossless (the
    frame's accounting then treats it as the frame's full product)."""
    px = frame.pixels if region is None else crop(frame.pixels, region, frame.pattern)
    try:
        r = encode_near_lossless(px, frame.bit_depth, max_error, codec, params)
    except ProductError:
        frame.check_intact()  # pixels used in place and rewritten meanwhile: say so, not "beyond the bound"
        raise
    source_crc = pixels_crc32c(px)
    frame.check_intact()  # the work is done: the pixels compared and CRC'd must still be the frame's
    bpp = len(r.payload) * 8 / max(1, px.size)
    meta = {"max_error_dn": int(max_error), "max_error_measured_dn": r.max_error_measured_dn, "psnr_db": r.psnr_db,
            "source_crc32c": source_crc,
            "region": list(region) if region else None,
            "calibration": grades.get("calibration", "none")}
    return Product(id=product_id(frame.camera, frame.counter, kind), kind=kind, camera=frame.camera,
                   counter=frame.counter, t_capture=frame.t_capture, codec=codec, shape=tuple(r.decoded.shape),
                   dtype=r.decoded.dtype.name, bit_depth=frame.bit_depth, payload=r.payload,
                   crc32c=pixels_crc32c(r.decoded), meta=frame.meta() | meta,
                   grades=grades | {"near_lossless_bpp": round(bpp, 4)}, codec_params=r.params)
