"""Received products to images: decode (CRC-32C checked), write PNG and JSON sidecar, fsync both.

:func:`check_product` is the decode and every check, without writing: the station runs it before it
confirms a file (a product that fails is refused in the Finished PDU), then :func:`write_checked`
writes what it gave. :func:`write_product` does both at once (a file confirmed before a restart).

Pixels keep their own type: uint16 frames become 16-bit PNGs, uint8
thumbnails 8-bit PNGs, so ``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` gives
back exactly the decoded pixels.

Near-lossless products (every pixel within ``max_error`` DN of the frame): the ground does not hold
the frame, so it cannot measure the error again. What it checks, in :func:`check_product`
(through :func:`~fsw.imaging.product.decode_product`), is what proves the lander's check covers the
image written: the decoded pixels' CRC-32C equals the one the lander computed on the pixels it
decoded and compared with the frame (so these are those very pixels); the bound in the codec
parameters equals the one stated, and the lander's measured worst error is within it. (A check of
the decoded pixels alone, such as "all on the quantiser's grid", would prove nothing: the decoder
makes them so whatever the payload.) The sidecar's ``near_lossless`` entry states the bound and
names these checks; ``source_crc32c`` (the CRC-32C of the pixels the lander coded) lets a ground
that also receives the frame losslessly match the two and measure the error itself.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from link.filestore import fsync_dir
from framework.errors import ProductError
from fsw.imaging.codecs import NEAR_CODECS
from fsw.imaging.product import Product, decode_product

__all__ = ["WrittenProduct", "check_product", "write_checked", "write_product", "sidecar_of"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class WrittenProduct:
    id: str
    kind: str
    crc32c: int
    png: Path
    sidecar: Path
    product_bytes: int


NEAR_GROUND_CHECKS = ("decoded_crc32c_is_the_one_checked_on_board", "bound_stated_alike",
                      "measured_on_board_within_bound")
"""What the ground checked of a near-lossless product before writing it (see the module's note)."""


def sidecar_of(p: Product, pixels: np.ndarray, product_bytes: int) -> dict[str, Any]:
    """The JSON sidecar of one product; a near-lossless one states its bound and what the ground checked.
    ``file``/``file_format`` name the image beside it (always PNG, the decoded pixels); ``codec`` (kept for
    the readers that had it) and ``downlink_codec`` say how it crossed the link (a thumbnail: JPEG)."""
    side = {
        "id": p.id, "kind": p.kind, "camera": p.camera, "counter": p.counter, "t_capture": p.t_capture,
        "file": f"{p.id}.png", "file_format": "png", "downlink_codec": p.codec,
        "codec": p.codec, "shape": list(pixels.shape), "dtype": str(pixels.dtype), "bit_depth": p.bit_depth,
        "payload_bytes": len(p.payload), "product_bytes": product_bytes, "crc32c": p.crc32c,
        "grades": p.grades, "meta": p.meta,
    }
    if p.codec in NEAR_CODECS:
        side["near_lossless"] = {"max_error_dn": p.codec_params["max_error"],
                                 "max_error_measured_on_board_dn": p.meta["max_error_measured_dn"],
                                 "source_crc32c": p.meta.get("source_crc32c"),
                                 "ground_checks": list(NEAR_GROUND_CHECKS)}
    return side


def _write_durable(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def check_product(raw: bytes) -> tuple[Product, np.ndarray]:
    """Decode one product and check everything writing it needs: ProductError if its pixels do not
    match its CRC-32C, its id cannot name a file, or its pixels are not 8- or 16-bit."""
    product, pixels = decode_product(raw)
    if not _SAFE_ID.match(product.id):
        raise ProductError(f"product id {product.id!r} cannot name a file")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ProductError(f"cannot write {pixels.dtype} pixels as PNG")
    return product, pixels


def write_product(raw: bytes, out_dir: Path) -> WrittenProduct:
    """Decode one product and write ``<id>.png`` and ``<id>.json``; ProductError if it cannot."""
    product, pixels = check_product(raw)
    return write_checked(product, pixels, len(raw), out_dir)


def write_checked(product: Product, pixels: np.ndarray, product_bytes: int, out_dir: Path) -> WrittenProduct:
    """Write a product :func:`check_product` passed: ``<id>.png`` and ``<id>.json``, fsync'd."""
    ok, png = cv2.imencode(".png", np.ascontiguousarray(pixels), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ProductError(f"PNG encoding of {product.id} failed")
    out_dir.mkdir(parents=True, exist_ok=True)
    png_path = out_dir / f"{product.id}.png"
    json_path = out_dir / f"{product.id}.json"
    _write_durable(png_path, png.tobytes())
    side = json.dumps(sidecar_of(product, pixels, product_bytes), indent=1, sort_keys=True, default=str)
    _write_durable(json_path, side.encode())
    fsync_dir(out_dir)
    return WrittenProduct(product.id, product.kind, product.crc32c, png_path, json_path, product_bytes)
