from __future__ import annotations

import numpy as np
import pytest

from framework.errors import ProductError
from fsw.imaging.codecs import encode_pixels
from fsw.imaging.product import Product, decode_product, encode_product
from framework.crc import pixels_crc32c
from fsw.imaging.codec_table import TABLE
from fsw.imaging.reencode import BEST_LOSSLESS, reencode, reencode_smallest


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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_of_several_settings_the_frame_keeps_the_smallest_never_more_than_any_alone(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:96, 0:128]
    px = np.clip(1500 + 400 * np.sin(x / (4.0 + seed)) * np.cos(y / 9.0) + rng.normal(0, 3 * seed, (96, 128)),
                 0, 4095).astype(np.uint16)
    p = Product(id="c-00000001-full", kind="full", camera="c", counter=1, t_capture=0.0, codec="zstd",
                shape=px.shape, dtype="uint16", bit_depth=12, payload=encode_pixels("zstd", px, {"bit_depth": 12}),
                crc32c=pixels_crc32c(px), codec_params={"bit_depth": 12})
    data = encode_product(p)
    settings = [("jpegxl", {"effort": 2}), ("jpegls", {}), ("jpegxl", {"effort": 5})]
    alone = [reencode(data, c, prm) for c, prm in settings]
    got = reencode_smallest(data, settings)
    assert got is not None and got.tried == 3
    assert got.new_bytes == min(a.new_bytes for a in alone if a is not None)
    back_p, back = decode_product(got.data)
    assert np.array_equal(back, px) and back_p.codec == got.codec


def test_a_setting_the_product_already_has_is_not_tried_again() -> None:
    data, _ = _product("aec")
    once = reencode(data, "jpegxl", {"effort": 3})
    assert once is not None
    assert reencode_smallest(once.data, [("jpegxl", {"effort": 3})]) is None


def test_the_default_target_is_the_measured_tables_smallest() -> None:
    rows = [r for r in TABLE["navcam"]["rows"] if r["codec"] is not None]
    smallest = min(rows, key=lambda r: r["bits_per_px"])
    assert BEST_LOSSLESS == {"codec": smallest["codec"], "params": smallest["params"]}
