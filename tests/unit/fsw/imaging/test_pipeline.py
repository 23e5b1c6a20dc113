from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.bus.message import Header, Message
from fsw.imaging.frame import FrameRejected, frame_from_message
from fsw.imaging.grades import grade_frame
from fsw.imaging.pipeline import make_lossless, make_thumbnail
from fsw.imaging.product import decode_product, encode_product
from framework.crc import pixels_crc32c


def _frame_msg(px: np.ndarray, **over) -> Message:
    fields = dict(camera="navcam", counter=5, shape=list(px.shape), dtype=px.dtype.name, bit_depth=12,
                  pattern="mono", exposure_us=1000, gain=1.0, temp_c=20.0, t_capture=1.0e9, crc32c=pixels_crc32c(px))
    fields.update(over)
    return Message("frame.navcam", Header("drv", 0, 0.0, "frame", fields), [px.tobytes()])


def _scene(h: int = 256, w: int = 320) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(3)
    base = 1500 + 800 * np.sin(x / 17.0) * np.cos(y / 23.0) + rng.normal(0, 20, (h, w))
    return np.clip(base, 0, 4095).astype(np.uint16)


def test_good_frame_becomes_thumbnail_and_bit_exact_lossless() -> None:
    px = _scene()
    frame = frame_from_message(_frame_msg(px))
    g = grade_frame(frame.pixels, 12)
    thumb, decoded = make_thumbnail(frame, 64, g)
    assert max(decoded.shape) == 64 and decoded.dtype == np.uint8
    full = make_lossless(frame, "jpegls", g)
    p, pixels = decode_product(encode_product(full))
    assert np.array_equal(pixels, px) and p.crc32c == pixels_crc32c(px)
    assert 0 < p.grades["lossless_bpp"] < 16
    tp, tpx = decode_product(encode_product(thumb))
    assert np.array_equal(tpx, decoded) and len(tp.payload) < 16 * 1024


@pytest.mark.parametrize("over, reason", [
    ({"crc32c": 1}, "crc"),
    ({"shape": [10, 10]}, "size"),
    ({"dtype": "float32"}, "dtype"),
    ({"bit_depth": 20}, "bit_depth"),
    ({"counter": "five"}, "metadata"),
])
def test_bad_frame_is_rejected_with_reason(over, reason) -> None:
    with pytest.raises(FrameRejected) as e:
        frame_from_message(_frame_msg(_scene(32, 32), **over))
    assert e.value.reason == reason


def test_pixels_beyond_bit_depth_are_rejected() -> None:
    px = _scene(16, 16)
    px[0, 0] = 5000
    with pytest.raises(FrameRejected) as e:
        frame_from_message(_frame_msg(px))
    assert e.value.reason == "bit_depth"


def test_grades_see_saturation_and_blur() -> None:
    px = _scene()
    sat = px.copy()
    sat[:, :160] = 4095
    import cv2

    blurred = cv2.GaussianBlur(px, (0, 0), 4)
    g_px, g_sat, g_blur = (grade_frame(a, 12) for a in (px, sat, blurred))
    assert g_sat["saturated_frac"] > 0.4 > g_px["saturated_frac"]
    assert g_px["sharpness_laplacian_var"] > g_blur["sharpness_laplacian_var"]


@pytest.mark.parametrize("pattern, red_at", [("RGGB", (0, 0)), ("BGGR", (1, 1)), ("GRBG", (0, 1)), ("GBRG", (1, 0))])
def test_bayer_frame_demosaics_red_to_the_red_channel(pattern, red_at) -> None:
    from fsw.imaging.pipeline import demosaic

    mosaic = np.full((32, 32), 100, np.uint16)
    mosaic[red_at[0]::2, red_at[1]::2] = 3000  # a red scene: only red sites are bright
    bgr = demosaic(mosaic, pattern)
    b, g, r = (float(bgr[8:24, 8:24, c].mean()) for c in range(3))
    assert r > 2500 and b < 500 and g < 500


def test_shrunk_mosaic_keeps_the_bayer_pattern() -> None:
    from fsw.imaging.pipeline import demosaic, shrink_mosaic

    mosaic = np.full((64, 64), 100, np.uint16)
    mosaic[0::2, 0::2] = 3000  # RGGB: red sites bright
    for k in (2, 4):
        small = shrink_mosaic(mosaic, k)
        assert small.shape == (64 // k, 64 // k)
        b, g, r = (float(demosaic(small, "RGGB")[4:12, 4:12, c].mean()) for c in range(3))
        assert r > 2500 and b < 500 and g < 500


@settings(max_examples=50)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.sampled_from(["uint8", "uint16"]),
       st.integers(0, 2**31))
def test_shrunk_mosaic_is_the_mean_of_same_colour_sites(k: int, cells_h: int, cells_w: int, dtype: str,
                                                        seed: int) -> None:
    from fsw.imaging.pipeline import shrink_mosaic

    hi = 255 if dtype == "uint8" else 4095
    px = np.random.default_rng(seed).integers(0, hi + 1, (cells_h * 2 * k + 1, cells_w * 2 * k + 1), dtype=dtype)
    small = shrink_mosaic(px, k)
    assert small.shape == (cells_h * 2, cells_w * 2) and small.dtype == px.dtype
    for y in range(small.shape[0]):
        for x in range(small.shape[1]):
            cy, cx, py, qx = y // 2, x // 2, y % 2, x % 2
            sites = px[cy * 2 * k + py: (cy + 1) * 2 * k: 2, cx * 2 * k + qx: (cx + 1) * 2 * k: 2]
            assert abs(int(small[y, x]) - float(sites.mean())) <= 0.5 + 1e-9
