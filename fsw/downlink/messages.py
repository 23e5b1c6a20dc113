"""The products message the imaging core pushes to the downlink: checked at the boundary. No sockets.

``[msgpack {id, kind, camera, counter, score, requested, priority}, product bytes]``;
the header must agree with the product's own (:func:`fsw.imaging.product.read_product_header`).
"""

from __future__ import annotations

from typing import Any

import msgpack

from framework.errors import ProductError
from fsw.imaging.product import PRODUCT_KINDS, Product, read_product_header

__all__ = ["parse_product_message", "score_of"]


def _bytes(frame: Any) -> bytes:
    return frame.bytes if hasattr(frame, "bytes") else bytes(frame)


def parse_product_message(frames: list[Any]) -> tuple[dict[str, Any], bytes, Product]:
    """Check a products message (zmq frames or bytes); raise ProductError naming what is wrong."""
    if len(frames) != 2:
        raise ProductError(f"products message has {len(frames)} parts, expected 2")
    try:
        head = msgpack.unpackb(_bytes(frames[0]), raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProductError(f"products header is not msgpack: {type(exc).__name__}") from None
    if not isinstance(head, dict):
        raise ProductError("products header is not a map")
    pid, kind = head.get("id"), head.get("kind")
    if not isinstance(pid, str) or kind not in PRODUCT_KINDS:
        raise ProductError(f"products header needs id (str) and kind in {PRODUCT_KINDS}, got {pid!r}, {kind!r}")
    data = _bytes(frames[1])
    product = read_product_header(data)
    if product.id != pid or product.kind != kind:
        raise ProductError(f"header says {pid}/{kind}, product says {product.id}/{product.kind}")
    return head, data, product


def score_of(head: dict[str, Any]) -> float:
    """The header's grade score, clamped to [0, 1]; 0 when absent or not a number."""
    v = head.get("score")
    return min(1.0, max(0.0, float(v))) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0
