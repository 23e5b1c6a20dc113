from __future__ import annotations

import numpy as np
import pytest

from framework.errors import ProductError
from fsw.imaging.codecs import encode_pixels
from fsw.imaging.product import Product, decode_product, encode_product
from framework.crc import pixels_crc32c
from fsw.imaging.reencode import reencode


def _product(codec: str = "aec", kind: str = "full") -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:128, 0:160]
    px = np.clip(1500 + 600 * np.sin(x / 7.0) + rng.normal(0, 5, (128, 160)), 0, 4095).astype(np.uint16)
    p = Product(id="c-00000001-full", kind=kind, camera="c", counter=1, t_capture=0.0, codec=codec, shape=px.shape,
                dtype="uint16", bit_depth=12, payload=encode_pixels(codec, px, {"bit_depth": 12}),
                crc32c=pixels_crc32c(px), codec_params={"bit_depth": 12})
    return encode_product(p), px


def test_reencoded_product_is_smaller_and_bit_exact() -> None:
    data, px = _product("aec")
    r = reencode(data, "jpegxl", {"effort": 3})
    assert r is not None and r.new_bytes < r.old_bytes
    p, back = decode_product(r.data)
    assert np.array_equal(back, px) and p.codec == "jpegxl" and p.meta["reencoded_from"] == "aec"


def test_already_best_or_lossy_products_are_left_alone() -> None:
    data, _ = _product("zstd")
    once = reencode(data, "jpegxl", {"effort": 3})
    assert once is not None
    assert reencode(once.data, "jpegxl", {"effort": 3}) is None


def test_corrupt_product_is_refused() -> None:
    data, _ = _product("aec")
    bad = bytearray(data)
    bad[-10] ^= 0xFF
    with pytest.raises(ProductError):
        reencode(bytes(bad))
