"""Per-frame processing, pure of sockets: grade, thumbnail, lossless, and products made on request.

The core (:mod:`fsw.imaging.process`) feeds frames in and sends out what these
return, thumbnail first. Bayer frames stay raw (mosaicked) in lossless
products; thumbnails, lossy products and previews are demosaiced with OpenCV
into BGR (OpenCV's channel order; the product's meta says so).

A frame may be used in place in a shared-memory ring slot (:meth:`Frame.intact`):
every product is checked to still come from the frame's pixels when it is done
(:func:`_product`), so a slot rewritten during the work raises
:class:`~fsw.imaging.frame.PixelsOverwritten` instead of making a product of
someone else's pixels.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from framework.errors import ProductError
from fsw.imaging.codecs import decode_pixels, encode_pixels
from fsw.imaging.frame import Frame
from fsw.imaging.grades import BLOCK
from fsw.imaging.lossy import bin_pixels, crop, encode_to_budget
from fsw.imaging.product import Product, product_id
from framework.crc import pixels_crc32c

__all__ = ["demosaic", "shrink_mosaic", "make_thumbnail", "make_lossless", "make_lossy", "make_roi", "make_preview",
           "THUMBNAIL_QUALITY"]

THUMBNAIL_QUALITY = 85

# The colour each 2x2 Bayer layout starts with, mapped to OpenCV's conversion codes. OpenCV names a
# pattern after the second row's second and third pixels, so RGGB is its "BayerBG" (checked in tests).
_BAYER_TO_BGR = {
    "RGGB": cv2.COLOR_BayerBG2BGR, "BGGR": cv2.COLOR_BayerRG2BGR,
    "GRBG": cv2.COLOR_BayerGB2BGR, "GBRG": cv2.COLOR_BayerGR2BGR,
}


def demosaic(px: np.ndarray, pattern: str) -> np.ndarray:
    """Mono frames unchanged; Bayer frames to 3-channel BGR of the same dtype."""
    if pattern == "mono":
        return px
    try:
        return cv2.cvtColor(np.ascontiguousarray(px), _BAYER_TO_BGR[pattern])
    except KeyError:
        raise ProductError(f"unknown Bayer pattern '{pattern}'") from None


def _product(frame: Frame, kind: str, codec: str, decoded: np.ndarray, payload: bytes, bit_depth: int,
             grades: dict[str, Any], params: dict[str, Any], meta: dict[str, Any] | None = None,
             crc: int | None = None) -> Product:
    """The product, once the work on the frame's pixels is done and they are still the frame's."""
    frame.check_intact()
    return Product(id=product_id(frame.camera, frame.counter, kind), kind=kind, camera=frame.camera,
                   counter=frame.counter, t_capture=frame.t_capture, codec=codec, shape=tuple(decoded.shape),
                   dtype=decoded.dtype.name, bit_depth=bit_depth, payload=payload,
                   crc32c=pixels_crc32c(decoded) if crc is None else crc,
                   meta=frame.meta() | {"calibration": grades.get("calibration", "none")} | (meta or {}),
                   grades=grades, codec_params=params)


def shrink_mosaic(px: np.ndarray, k: int) -> np.ndarray:
    """A Bayer mosaic ``k`` times smaller, still a mosaic of the same pattern: each site is the mean
    (rounded) of the k x k same-colour sites of its 2k x 2k block.

    OpenCV does the averaging: the even rows, seen as a two-channel image (channel = column parity),
    hold the first row's two colours; the odd rows the other two. Each is resized with INTER_AREA by
    an integer factor, which is an exact box mean, and the results are interleaved back."""
    hk, wk = px.shape[0] // (2 * k), px.shape[1] // (2 * k)
    a = px[: hk * 2 * k, : wk * 2 * k]
    if k == 1:
        return a
    out = np.empty((hk * 2, wk * 2), px.dtype)
    cells = out.reshape(hk, 2, wk, 2)
    for row in (0, 1):
        two_colours = a[row::2].reshape(hk * k, wk * k, 2)
        cells[:, row] = cv2.resize(two_colours, (wk, hk), interpolation=cv2.INTER_AREA).reshape(hk, wk, 2)
    return out


def make_thumbnail(frame: Frame, max_px: int, grades: dict[str, Any],
                   blocks: np.ndarray | None = None) -> tuple[Product, np.ndarray]:
    """An 8-bit JPEG thumbnail, stretched between the 1st and 99th percentiles.

    Bayer frames are first shrunk as mosaics by the largest power of two that keeps them at least
    the thumbnail's size (cheap, and the pattern survives), then demosaiced with OpenCV and resized.
    ``blocks``: the frame's :func:`~fsw.imaging.grades.block_means`, if the caller has them; a mono
    frame whose sides are whole blocks starts from them when they are at least the thumbnail's size,
    which is the same box mean without a second read of the frame."""
    px = frame.pixels
    h, w = px.shape[:2]
    if (frame.pattern == "mono" and blocks is not None and h % BLOCK == 0 and w % BLOCK == 0
            and max(blocks.shape) >= max_px):
        px = blocks
    elif frame.pattern != "mono":
        k = 1
        while max(h, w) // (2 * k) >= max_px and min(h, w) // (2 * k) >= 8:
            k *= 2
        px = shrink_mosaic(px, k)
    px = demosaic(px, frame.pattern)
    scale = max_px / max(px.shape[:2])
    size = (max(1, round(px.shape[1] * scale)), max(1, round(px.shape[0] * scale)))
    small = cv2.resize(px, size, interpolation=cv2.INTER_AREA) if scale < 1 else px
    lo, hi = grades["p1_dn"], max(grades["p99_dn"], grades["p1_dn"] + 1.0)
    thumb8 = np.clip((small.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    payload = encode_pixels("jpeg", thumb8, {"quality": THUMBNAIL_QUALITY})
    decoded = decode_pixels("jpeg", payload, thumb8.shape, "uint8")
    meta = {"stretch_dn": [lo, hi], "source_shape": [h, w], "channel_order": "BGR" if thumb8.ndim == 3 else "mono"}
    return _product(frame, "thumbnail", "jpeg", decoded, payload, 8, grades, {"quality": THUMBNAIL_QUALITY},
                    meta), decoded


def make_lossless(frame: Frame, codec: str, grades: dict[str, Any], params: dict[str, Any] | None = None,
                  verify_threads: int = 1) -> Product:
    """The full frame, raw (Bayer stays mosaicked), lossless; decoded again and checked before it counts.

    The check is the decoded pixels' CRC-32C against the frame's, checked at the bus boundary: one pass,
    and the CRC the product carries. Only when they differ are the pixels compared one by one, to tell a
    codec that did not round-trip (an error) from a frame whose stated CRC was wrong (the product then
    carries the true one). The decode is most of the cost (JPEG XL decodes 2-3x slower than effort 1
    encodes): ``verify_threads`` lets it use the cores the caller knows are idle; the check is the same.
    A frame used in place whose slot was rewritten meanwhile raises PixelsOverwritten, never a codec error."""
    params = {"bit_depth": frame.bit_depth, **(params or {})}
    payload = encode_pixels(codec, frame.pixels, params)
    back = decode_pixels(codec, payload, frame.pixels.shape, frame.pixels.dtype.name,
                         params | {"threads": max(1, verify_threads)})
    crc = pixels_crc32c(back)
    if crc != frame.crc32c:
        frame.check_intact()  # the stated CRC was checked over these pixels: a difference may be a rewrite
        if not np.array_equal(back, frame.pixels):
            frame.check_intact()
            raise ProductError(f"{codec} did not round-trip frame {frame.camera}/{frame.counter} bit-exact")
    bpp = len(payload) * 8 / frame.pixels.size
    return _product(frame, "full", codec, frame.pixels, payload, frame.bit_depth,
                    grades | {"lossless_bpp": round(bpp, 4)}, params, crc=crc)


def make_lossy(frame: Frame, budget_bytes: int, grades: dict[str, Any],
               region: tuple[int, int, int, int] | None = None) -> Product:
    """Full frame (or a region) lossy to a byte budget; PSNR and rate-control figures in the meta."""
    px = frame.pixels if region is None else crop(frame.pixels, region, frame.pattern)
    px = demosaic(px, frame.pattern)
    r = encode_to_budget(px, frame.bit_depth, budget_bytes)
    params = {"bit_depth": frame.bit_depth, "distance": r.distance, "effort": r.effort}
    meta = {"budget_bytes": budget_bytes, "psnr_db": r.psnr_db, "scale": r.scale, "encodes": r.encodes,
            "region": list(region) if region else None,
            "channel_order": "BGR" if px.ndim == 3 else "mono"}
    return _product(frame, "lossy", "jxl_lossy", r.decoded, r.payload, frame.bit_depth, grades, params, meta)


def make_roi(frame: Frame, region: tuple[int, int, int, int], codec: str, grades: dict[str, Any]) -> Product:
    """A region of the raw frame, lossless."""
    px = crop(frame.pixels, region, frame.pattern)
    params = {"bit_depth": frame.bit_depth}
    payload = encode_pixels(codec, px, params)
    return _product(frame, "roi", codec, px, payload, frame.bit_depth, grades, params, {"region": list(region)})


def make_preview(frame: Frame, factor: int, codec: str, grades: dict[str, Any]) -> Product:
    """A binned preview (factor x factor mean, raw Bayer binned per colour after demosaic), lossless."""
    px = bin_pixels(demosaic(frame.pixels, frame.pattern), factor)
    params = {"bit_depth": frame.bit_depth}
    payload = encode_pixels(codec, px, params)
    return _product(frame, "preview", codec, px, payload, frame.bit_depth, grades, params, {"binning": factor})
