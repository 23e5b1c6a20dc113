"""Per-frame processing, pure of sockets: grade, thumbnail, lossless product.

The core (:mod:`fsw.imaging.core`) feeds frames in and sends out what this
returns, thumbnail first.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from fsw.errors import ProductError
from fsw.imaging.codecs import decode_pixels, encode_pixels
from fsw.imaging.frame import Frame
from fsw.imaging.product import Product, pixels_crc32c, product_id

__all__ = ["grade", "make_thumbnail", "make_lossless", "THUMBNAIL_QUALITY"]

THUMBNAIL_QUALITY = 85


def grade(frame: Frame) -> dict[str, Any]:
    """Exposure and sharpness grades of a frame, in DN of its own bit depth."""
    px = frame.pixels
    full = (1 << frame.bit_depth) - 1
    sub = px[::4, ::4]
    p1, p50, p99 = (float(v) for v in np.percentile(sub, (1, 50, 99)))
    lap = cv2.Laplacian(sub.astype(np.float32), cv2.CV_32F)
    return {
        "mean_dn": round(float(sub.mean()), 2),
        "p1_dn": p1, "p50_dn": p50, "p99_dn": p99,
        "saturated_frac": round(float(np.count_nonzero(sub >= full)) / sub.size, 6),
        "dark_frac": round(float(np.count_nonzero(sub == 0)) / sub.size, 6),
        "sharpness_laplacian_var": round(float(lap.var()), 3),
    }


def make_thumbnail(frame: Frame, max_px: int, grades: dict[str, Any]) -> tuple[Product, np.ndarray]:
    """An 8-bit JPEG thumbnail, stretched between the 1st and 99th percentiles."""
    px = frame.pixels
    h, w = px.shape
    scale = max_px / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(px.astype(np.float32), size, interpolation=cv2.INTER_AREA) if scale < 1 else px.astype(np.float32)
    lo, hi = grades["p1_dn"], max(grades["p99_dn"], grades["p1_dn"] + 1.0)
    thumb8 = np.clip((small - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    payload = encode_pixels("jpeg", thumb8, {"quality": THUMBNAIL_QUALITY})
    decoded = decode_pixels("jpeg", payload, thumb8.shape, "uint8")
    meta = frame.meta() | {"stretch_dn": [lo, hi], "source_shape": [h, w]}
    p = Product(id=product_id(frame.camera, frame.counter, "thumbnail"), kind="thumbnail", camera=frame.camera,
                counter=frame.counter, t_capture=frame.t_capture, codec="jpeg",
                shape=tuple(decoded.shape), dtype="uint8", bit_depth=8, payload=payload,
                crc32c=pixels_crc32c(decoded), meta=meta, grades=grades,
                codec_params={"quality": THUMBNAIL_QUALITY})
    return p, decoded


def make_lossless(frame: Frame, codec: str, grades: dict[str, Any], params: dict[str, Any] | None = None) -> Product:
    """The full frame, lossless; decoded again and compared before it counts."""
    params = {"bit_depth": frame.bit_depth, **(params or {})}
    payload = encode_pixels(codec, frame.pixels, params)
    back = decode_pixels(codec, payload, frame.pixels.shape, frame.pixels.dtype.name, params)
    if not np.array_equal(back, frame.pixels):
        raise ProductError(f"{codec} did not round-trip frame {frame.camera}/{frame.counter} bit-exact")
    bpp = len(payload) * 8 / frame.pixels.size
    return Product(id=product_id(frame.camera, frame.counter, "full"), kind="full", camera=frame.camera,
                   counter=frame.counter, t_capture=frame.t_capture, codec=codec,
                   shape=tuple(frame.pixels.shape), dtype=frame.pixels.dtype.name, bit_depth=frame.bit_depth,
                   payload=payload, crc32c=frame.crc32c, meta=frame.meta(),
                   grades=grades | {"lossless_bpp": round(bpp, 4)}, codec_params=params)
