"""Data products: one versioned msgpack map each; encode and decode side by side.

A product (schema version 1) is a msgpack map::

    v, id, kind ("thumbnail" | "full" | "lossy" | "roi" | "preview" | "near_lossless"), camera, counter, t_capture,
    meta (map), grades (map), codec, codec_params (map),
    shape [h, w] or [h, w, c], dtype ("uint8" | "uint16"), bit_depth,
    payload (bin), crc32c (int: CRC-32C of the decoded pixels, C order, little-endian)

:func:`decode_product` decodes the payload and checks the CRC, so a product
that decodes at all is bit-exact. The ground uses exactly this decoder.

A near-lossless product (codec in :data:`~fsw.imaging.codecs.NEAR_CODECS`: the ``near_lossless``
kind, or a ``full`` frame when the capture path is set near-lossless) states its bound twice:
``codec_params.max_error`` (what the decoder uses) and ``meta.max_error_dn`` (what the sidecar
shows); they must agree, and ``meta.max_error_measured_dn`` (the worst pixel the lander found when it
decoded the product against the frame, before the product counted) must be within it. Its
``crc32c`` is of the decoded pixels, so a ground that decodes the same CRC decoded exactly the
pixels the lander checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from framework.crc import pixels_crc32c
from framework.errors import ProductError
from fsw.imaging.codecs import CODECS, NEAR_CODECS, decode_pixels

__all__ = ["PRODUCT_VERSION", "PRODUCT_KINDS", "Product", "encode_product", "decode_product",
           "read_product_header", "product_id"]

PRODUCT_VERSION = 1
PRODUCT_KINDS = ("thumbnail", "full", "lossy", "roi", "preview", "near_lossless")
MAX_PRODUCT_BYTES = 512 * 1024 * 1024


def product_id(camera: str, counter: int, kind: str) -> str:
    return f"{camera}-{counter:08d}-{kind}"


@dataclass(frozen=True)
class Product:
    id: str
    kind: str
    camera: str
    counter: int
    t_capture: float
    codec: str
    shape: tuple[int, ...]
    dtype: str
    bit_depth: int
    payload: bytes
    crc32c: int
    meta: dict[str, Any] = field(default_factory=dict)
    grades: dict[str, Any] = field(default_factory=dict)
    codec_params: dict[str, Any] = field(default_factory=dict)
    v: int = PRODUCT_VERSION


def encode_product(p: Product) -> bytes:
    """Pack a product into its msgpack map."""
    if p.kind not in PRODUCT_KINDS:
        raise ProductError(f"unknown product kind '{p.kind}'")
    return msgpack.packb(
        {
            "v": p.v, "id": p.id, "kind": p.kind, "camera": p.camera, "counter": p.counter,
            "t_capture": p.t_capture, "meta": p.meta, "grades": p.grades, "codec": p.codec,
            "codec_params": p.codec_params, "shape": list(p.shape), "dtype": p.dtype,
            "bit_depth": p.bit_depth, "payload": p.payload, "crc32c": p.crc32c,
        },
        use_bin_type=True,
    )


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "kind": str, "camera": str, "counter": int, "t_capture": (int, float), "meta": dict,
    "grades": dict, "codec": str, "codec_params": dict, "shape": list, "dtype": str, "bit_depth": int,
    "payload": bytes, "crc32c": int,
}


def read_product_header(data: bytes) -> Product:
    """Unpack and check a product's map without decoding its pixels."""
    if len(data) > MAX_PRODUCT_BYTES:
        raise ProductError(f"product is {len(data)} bytes, more than {MAX_PRODUCT_BYTES}")
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on bad bytes
        raise ProductError(f"product is not msgpack: {type(exc).__name__}: {exc}") from None
    if not isinstance(body, dict):
        raise ProductError(f"product is not a map but {type(body).__name__}")
    if body.get("v") != PRODUCT_VERSION:
        raise ProductError(f"product version {body.get('v')!r} is not {PRODUCT_VERSION}")
    for k, t in _FIELDS.items():
        if k not in body:
            raise ProductError(f"product lacks '{k}'")
        val = body[k]
        if isinstance(val, bool) or not isinstance(val, t):
            raise ProductError(f"product '{k}' has type {type(val).__name__}")
    if body["kind"] not in PRODUCT_KINDS:
        raise ProductError(f"unknown product kind '{body['kind']}'")
    if body["codec"] not in CODECS:
        raise ProductError(f"unknown codec '{body['codec']}'")
    shape = body["shape"]
    if not (2 <= len(shape) <= 3) or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 65536
                                              for s in shape):
        raise ProductError(f"bad shape {shape!r}")
    if body["dtype"] not in ("uint8", "uint16"):
        raise ProductError(f"bad dtype {body['dtype']!r}")
    if not 1 <= body["bit_depth"] <= 16:
        raise ProductError(f"bad bit_depth {body['bit_depth']!r}")
    if not 0 <= body["crc32c"] < 2**32:
        raise ProductError(f"bad crc32c {body['crc32c']!r}")
    if body["codec"] in NEAR_CODECS:
        _check_bound_stated(body)
    return Product(
        id=body["id"], kind=body["kind"], camera=body["camera"], counter=body["counter"],
        t_capture=float(body["t_capture"]), codec=body["codec"], shape=tuple(shape), dtype=body["dtype"],
        bit_depth=body["bit_depth"], payload=body["payload"], crc32c=body["crc32c"], meta=body["meta"],
        grades=body["grades"], codec_params=body["codec_params"], v=body["v"],
    )


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _check_bound_stated(body: dict[str, Any]) -> None:
    """A near-lossless product's bound: stated alike in its codec parameters and its meta, and met."""
    k = body["codec_params"].get("max_error")
    meta = body["meta"]
    if not (_is_count(k) and k >= 1):
        raise ProductError(f"near-lossless product without max_error >= 1 in codec_params: {k!r}")
    if meta.get("max_error_dn") != k:
        raise ProductError(f"near-lossless product states max_error_dn {meta.get('max_error_dn')!r}, "
                           f"its codec {k}")
    measured = meta.get("max_error_measured_dn")
    if not (_is_count(measured) and measured <= k):
        raise ProductError(f"near-lossless product measured max error {measured!r} is not within its bound {k}")


def decode_product(data: bytes) -> tuple[Product, np.ndarray]:
    """Unpack a product and decode its pixels; raise ProductError unless the CRC-32C matches."""
    p = read_product_header(data)
    pixels = decode_pixels(p.codec, p.payload, p.shape, p.dtype, {"bit_depth": p.bit_depth, **p.codec_params})
    got = pixels_crc32c(pixels)
    if got != p.crc32c:
        raise ProductError(f"product {p.id}: pixel CRC-32C {got:#010x} does not match {p.crc32c:#010x}")
    return p, pixels
