"""Received products to PNG and sidecar: bit-exact pixels; a bad product is a ProductError."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from framework.errors import ProductError
from ground.images import write_product
from fsw.imaging.codecs import encode_pixels
from fsw.imaging.product import Product, encode_product
from framework.crc import pixels_crc32c
from link.filestore import id_from_transfer_name, transfer_name


def product(pixels: np.ndarray, kind: str, crc: int | None = None) -> bytes:
    return encode_product(Product(
        id=f"navcam-00000007-{kind}", kind=kind, camera="navcam", counter=7, t_capture=12.5, codec="jpegls",
        shape=pixels.shape, dtype=str(pixels.dtype), bit_depth=12 if pixels.dtype == np.uint16 else 8,
        payload=encode_pixels("jpegls", pixels), crc32c=pixels_crc32c(pixels) if crc is None else crc,
        meta={"exposure_us": 900}, grades={"sharpness": 0.25}))


@pytest.mark.parametrize("dtype,kind,top", [(np.uint16, "full", 4096), (np.uint8, "thumbnail", 256)])
def test_a_product_becomes_a_bit_exact_png_and_a_sidecar(tmp_path: Path, dtype: type, kind: str, top: int) -> None:
    pixels = np.random.default_rng(1).integers(0, top, size=(40, 56), dtype=dtype)
    raw = product(pixels, kind)
    w = write_product(raw, tmp_path)
    back = cv2.imread(str(w.png), cv2.IMREAD_UNCHANGED)
    assert back.dtype == pixels.dtype and np.array_equal(back, pixels)
    side = json.loads(w.sidecar.read_text())
    assert side["id"] == "navcam-00000007-" + kind and side["shape"] == [40, 56] and side["product_bytes"] == len(raw)
    assert side["crc32c"] == pixels_crc32c(pixels) and side["grades"] == {"sharpness": 0.25}
    assert not list(tmp_path.glob("*.tmp"))


def test_a_product_with_a_wrong_crc_is_a_product_error_and_writes_nothing(tmp_path: Path) -> None:
    pixels = np.zeros((8, 8), np.uint16)
    with pytest.raises(ProductError):
        write_product(product(pixels, "full", crc=123), tmp_path)
    assert not list(tmp_path.glob("*.png"))


def test_the_product_id_is_read_back_from_the_received_file_name() -> None:
    assert id_from_transfer_name("0000002a-navcam-00000007-full.prod") == "navcam-00000007-full"
    assert transfer_name(42, "navcam-00000007-full", ".prod") == "0000002a-navcam-00000007-full.prod"
