"""Every product kind round-trips through the product codec; lossy products land on their budget."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fsw.imaging.frame import Frame
from fsw.imaging.grades import grade_frame
from fsw.imaging.pipeline import make_lossless, make_lossy, make_preview, make_roi, make_thumbnail
from fsw.imaging.product import decode_product, encode_product
from framework.crc import pixels_crc32c

PATTERNS = ["mono", "RGGB", "GBRG"]


def _frame(seed: int, h: int, w: int, bits: int, pattern: str) -> Frame:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    full = (1 << bits) - 1
    base = full * (0.3 + 0.2 * np.sin(x / (3.0 + seed % 7)) * np.cos(y / 5.0))
    px = np.clip(base + rng.normal(0, full * 0.01, (h, w)), 0, full)
    px = px.astype(np.uint8 if bits == 8 else np.uint16)
    return Frame("cam", seed, px, bits, pattern, 1000, 1.0, 0.0, time.time(), pixels_crc32c(px))


frames = st.builds(_frame, st.integers(0, 1000), st.integers(8, 48).map(lambda v: v * 2),
                   st.integers(8, 48).map(lambda v: v * 2), st.sampled_from([8, 12, 16]), st.sampled_from(PATTERNS))


@given(frame=frames, codec=st.sampled_from(["jpegls", "jpegxl", "aec", "png", "zstd"]))
def test_thumbnail_and_lossless_round_trip(frame: Frame, codec: str) -> None:
    g = grade_frame(frame.pixels, frame.bit_depth, frame.pattern)
    thumb, decoded = make_thumbnail(frame, 32, g)
    p, px = decode_product(encode_product(thumb))
    assert p == thumb and np.array_equal(px, decoded)
    full = make_lossless(frame, codec, g)
    p, px = decode_product(encode_product(full))
    assert p == full and np.array_equal(px, frame.pixels)


@given(frame=frames, data=st.data())
def test_roi_and_preview_round_trip_bit_exact(frame: Frame, data: st.DataObject) -> None:
    g = grade_frame(frame.pixels, frame.bit_depth, frame.pattern)
    h, w = frame.pixels.shape
    x = data.draw(st.integers(0, w - 2))
    y = data.draw(st.integers(0, h - 2))
    rw = data.draw(st.integers(2, w - x))
    rh = data.draw(st.integers(2, h - y))
    roi = make_roi(frame, (x, y, rw, rh), "jpegls", g)
    p, px = decode_product(encode_product(roi))
    expected_x, expected_y = (x, y) if frame.pattern == "mono" else (x & ~1, y & ~1)
    assert p == roi and np.array_equal(px, frame.pixels[expected_y:expected_y + px.shape[0],
                                                        expected_x:expected_x + px.shape[1]])
    factor = data.draw(st.sampled_from([2, 4]))
    prev = make_preview(frame, factor, "jpegls", g)
    p, px = decode_product(encode_product(prev))
    assert p == prev and px.shape[:2] == (h // factor, w // factor)


@settings(max_examples=15)
@given(seed=st.integers(0, 50), pattern=st.sampled_from(PATTERNS), budget_frac=st.floats(0.05, 0.4))
def test_lossy_product_lands_within_five_percent_of_its_budget(seed: int, pattern: str, budget_frac: float) -> None:
    frame = _frame(seed, 256, 320, 12, pattern)
    g = grade_frame(frame.pixels, 12, pattern)
    lossless = make_lossless(frame, "jpegls", g)
    budget = max(2000, int(len(lossless.payload) * budget_frac))
    p = make_lossy(frame, budget, g)
    assert abs(len(p.payload) - budget) <= 0.05 * budget
    back, px = decode_product(encode_product(p))
    assert back == p and back.meta["psnr_db"] > 15
