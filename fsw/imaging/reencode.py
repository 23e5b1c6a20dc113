"""Re-encoding a stored lossless product with a better (slower) codec, proven bit-exact first.

The capture path encodes fast; while a product waits in the store for a pass,
this spends spare CPU making its bytes as few as the best codec can. The new
product replaces the old one only if it decodes to the very same pixels (same
CRC-32C and an array comparison against the first product's pixels) and is
smaller. Given several settings (:func:`reencode_smallest`), each is encoded and
only the smallest is kept and proven: the table's two best settings are close on
average (JPEG XL effort 5 and 6 on the navcam differ by 0.1 %) and either can win
on one frame, so the frame gets whichever of them is smaller for it. Pure: bytes
in, bytes (or None) out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from framework.errors import ProductError
from fsw.imaging.codec_table import TABLE
from fsw.imaging.codecs import CODECS, encode_pixels
from fsw.imaging.product import decode_product, encode_product

__all__ = ["Reencoded", "reencode", "reencode_smallest", "BEST_LOSSLESS", "best_lossless"]


def best_lossless(profile: str = "navcam", table: dict[str, Any] = TABLE) -> dict[str, Any]:
    """The measured table's smallest setting the ground decodes for ``profile``: ``{"codec", "params"}``."""
    rows = [r for r in table[profile]["rows"] if r["codec"] in CODECS and CODECS[r["codec"]].lossless]
    row = min(rows, key=lambda r: r["bits_per_px"])
    return {"codec": row["codec"], "params": dict(row["params"])}


BEST_LOSSLESS: dict[str, Any] = best_lossless()
"""The default target when no setting is named: the table's smallest for the navcam (JPEG XL effort 5 as
measured); the downlink's re-encoder chooses per product from the table instead."""


@dataclass(frozen=True)
class Reencoded:
    data: bytes
    old_bytes: int
    new_bytes: int
    codec: str
    params: dict[str, Any] | None = None  # of the kept setting, as given (without the bit depth)
    tried: int = 1  # settings encoded to find it


def reencode(data: bytes, codec: str = BEST_LOSSLESS["codec"],
             params: dict[str, Any] | None = None) -> Reencoded | None:
    """Return the product re-encoded with ``codec``, or None when it would not be smaller
    or the product is not a lossless kind. Raises ProductError when the input does not decode
    or the new encoding is not bit-exact (the caller keeps the original)."""
    return reencode_smallest(data, [(codec, params if params is not None else BEST_LOSSLESS["params"])])


def reencode_smallest(data: bytes, settings: Sequence[tuple[str, dict[str, Any]]]) -> Reencoded | None:
    """The product re-encoded with whichever of ``settings`` (codec, params) gives the fewest bytes for its
    pixels, proven bit-exact; None when none is smaller than the product as it is (or it is not a lossless
    kind). The pixels are decoded once; only the kept encoding is decoded again to prove it."""
    for codec, _ in settings:
        if not CODECS[codec].lossless:
            raise ProductError(f"re-encoding needs a lossless codec, not '{codec}'")
    product, pixels = decode_product(data)
    if product.kind not in ("full", "roi", "preview") or not CODECS[product.codec].lossless:
        return None
    best: tuple[bytes, str, dict[str, Any], dict[str, Any]] | None = None
    tried = 0
    for codec, params in settings:
        p = {"bit_depth": product.bit_depth, **params}
        if product.codec == codec and product.codec_params == p:
            continue
        payload = encode_pixels(codec, pixels, p)
        tried += 1
        if len(payload) < len(product.payload) and (best is None or len(payload) < len(best[0])):
            best = (payload, codec, p, dict(params))
    if best is None:
        return None
    payload, codec, p, given = best
    new = replace(product, codec=codec, codec_params=p, payload=payload,
                  meta=product.meta | {"reencoded_from": product.codec})
    out = encode_product(new)
    check, back = decode_product(out)  # CRC-32C checked inside
    if not np.array_equal(back, pixels) or check.crc32c != product.crc32c:
        raise ProductError(f"{product.id}: {codec} re-encoding is not bit-exact")
    return Reencoded(out, len(data), len(out), codec, given, tried)
