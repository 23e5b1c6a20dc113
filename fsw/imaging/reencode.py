"""Re-encoding a stored lossless product with a better (slower) codec, proven bit-exact first.

The capture path encodes fast; while a product waits in the store for a pass,
this spends spare CPU making its bytes as few as the best codec can. The new
product replaces the old one only if it decodes to the very same pixels (same
CRC-32C and an array comparison against the first product's pixels) and is
smaller. Pure: bytes in, bytes (or None) out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from framework.errors import ProductError
from fsw.imaging.codecs import CODECS, encode_pixels
from fsw.imaging.product import decode_product, encode_product

__all__ = ["Reencoded", "reencode", "BEST_LOSSLESS"]

BEST_LOSSLESS: dict[str, Any] = {"codec": "jpegxl", "params": {"effort": 7}}


@dataclass(frozen=True)
class Reencoded:
    data: bytes
    old_bytes: int
    new_bytes: int
    codec: str


def reencode(data: bytes, codec: str = BEST_LOSSLESS["codec"],
             params: dict[str, Any] | None = None) -> Reencoded | None:
    """Return the product re-encoded with ``codec``, or None when it would not be smaller
    or the product is not a lossless kind. Raises ProductError when the input does not decode
    or the new encoding is not bit-exact (the caller keeps the original)."""
    if not CODECS[codec].lossless:
        raise ProductError(f"re-encoding needs a lossless codec, not '{codec}'")
    product, pixels = decode_product(data)
    if product.kind not in ("full", "roi", "preview") or not CODECS[product.codec].lossless:
        return None
    p = {"bit_depth": product.bit_depth, **(params if params is not None else BEST_LOSSLESS["params"])}
    if product.codec == codec and product.codec_params == p:
        return None
    payload = encode_pixels(codec, pixels, p)
    if len(payload) >= len(product.payload):
        return None
    new = replace(product, codec=codec, codec_params=p, payload=payload,
                  meta=product.meta | {"reencoded_from": product.codec})
    out = encode_product(new)
    check, back = decode_product(out)  # CRC-32C checked inside
    if not np.array_equal(back, pixels) or check.crc32c != product.crc32c:
        raise ProductError(f"{product.id}: {codec} re-encoding is not bit-exact")
    return Reencoded(out, len(data), len(out), codec)
