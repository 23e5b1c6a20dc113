"""Near-lossless products at the ground: written with their bound in the sidecar; a forged bound is refused."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import msgpack
import numpy as np
import pytest

from framework.crc import pixels_crc32c
from framework.errors import ProductError
from fsw.imaging.frame import Frame
from fsw.imaging.near_lossless import make_near_lossless
from fsw.imaging.product import encode_product
from ground.images import NEAR_GROUND_CHECKS, check_product, write_product


def _frame() -> Frame:
    px = np.random.default_rng(7).integers(0, 4096, (40, 56)).astype(np.uint16)
    return Frame("navcam", 7, px, 12, "mono", 900, 1.0, -5.0, 12.5, pixels_crc32c(px))


@pytest.mark.parametrize("codec", ["jxl_near", "jpegls_near"])
def test_a_near_lossless_product_becomes_a_png_within_its_bound_and_the_sidecar_states_it(
        tmp_path: Path, codec: str) -> None:
    f = _frame()
    raw = encode_product(make_near_lossless(f, 4, {"score": 0.3}, codec=codec))
    w = write_product(raw, tmp_path)
    back = cv2.imread(str(w.png), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and int(np.abs(back.astype(int) - f.pixels.astype(int)).max()) <= 4
    side = json.loads(w.sidecar.read_text())
    assert side["kind"] == "near_lossless" and side["codec"] == codec
    near = side["near_lossless"]
    assert near["max_error_dn"] == 4 and near["max_error_measured_on_board_dn"] <= 4
    assert near["source_crc32c"] == f.crc32c and near["ground_checks"] == list(NEAR_GROUND_CHECKS)
    assert side["crc32c"] == pixels_crc32c(back)


def test_a_lossless_product_s_sidecar_has_no_bound(tmp_path: Path) -> None:
    from fsw.imaging.pipeline import make_lossless

    w = write_product(encode_product(make_lossless(_frame(), "jpegls", {})), tmp_path)
    assert "near_lossless" not in json.loads(w.sidecar.read_text())


def _with(raw: bytes, **over: object) -> bytes:
    body = msgpack.unpackb(raw, raw=False)
    body.update(over)
    return msgpack.packb(body, use_bin_type=True)


def test_the_ground_refuses_a_product_whose_bound_is_forged_or_whose_pixels_are_not_those_checked() -> None:
    p = make_near_lossless(_frame(), 2, {})
    raw = encode_product(p)
    with pytest.raises(ProductError, match="states max_error_dn"):
        check_product(_with(raw, meta=p.meta | {"max_error_dn": 1}))
    with pytest.raises(ProductError, match="not within its bound"):
        check_product(_with(raw, meta=p.meta | {"max_error_measured_dn": 5}))
    # the bound raised in the codec parameters too: the payload decodes to other pixels, not those checked
    with pytest.raises(ProductError, match="CRC-32C"):
        check_product(_with(raw, codec_params=p.codec_params | {"max_error": 3},
                            meta=p.meta | {"max_error_dn": 3}))
