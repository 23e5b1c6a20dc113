from __future__ import annotations

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fsw.imaging.grades import (change_fraction, exposure_grades, frame_blocks, grade_frame, noise_sigma_dn,
                                prediction_entropy_bits)


def _scene(seed: int = 1, h: int = 256, w: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 1200 + 700 * np.sin(x / 11.0) * np.cos(y / 7.0)
    return np.clip(base + rng.normal(0, 6, (h, w)), 0, 4095).astype(np.uint16)


def test_noise_estimate_recovers_gaussian_sigma_on_flat_field() -> None:
    rng = np.random.default_rng(0)
    for sigma in (3.0, 10.0, 40.0):
        px = np.round(2000 + rng.normal(0, sigma, (512, 512))).astype(np.uint16)
        assert abs(noise_sigma_dn(px) - sigma) / sigma < 0.1


def test_entropy_grows_with_noise() -> None:
    rng = np.random.default_rng(1)
    quiet = np.full((256, 256), 1000, np.uint16)
    noisy = (1000 + rng.integers(-200, 200, (256, 256))).astype(np.uint16)
    assert prediction_entropy_bits(quiet) < 0.01 < 7 < prediction_entropy_bits(noisy)


def test_change_sees_a_moved_boom_and_ignores_noise() -> None:
    a, b = _scene(1), _scene(2)  # same scene, new noise
    assert change_fraction(frame_blocks(b), frame_blocks(a), 12) == 0.0
    boom = b.copy()
    boom[100:120, 20:200] = 4000
    assert change_fraction(frame_blocks(boom), frame_blocks(a), 12) > 0.03
    assert grade_frame(boom, 12, previous_blocks=frame_blocks(a))["change_frac"] > 0.03


def test_grades_order_frames_as_a_person_would() -> None:
    good = _scene(3)
    blurred = cv2.GaussianBlur(good, (0, 0), 3)
    saturated = np.clip(good.astype(np.int32) * 4, 0, 4095).astype(np.uint16)
    dark = (good // 20).astype(np.uint16)
    scores = {name: grade_frame(px, 12)["score"] for name, px in
              [("good", good), ("blurred", blurred), ("saturated", saturated), ("dark", dark)]}
    assert scores["good"] > scores["blurred"]
    assert scores["good"] > scores["saturated"]
    assert scores["good"] > scores["dark"]


@settings(max_examples=60)
@given(st.sampled_from([(8, "uint8"), (10, "uint16"), (12, "uint16"), (16, "uint16")]), st.integers(1, 40),
       st.integers(1, 40), st.booleans(), st.integers(0, 2**31))
def test_exposure_grades_match_a_plain_numpy_count(depth_dtype: tuple[int, str], h: int, w: int, strided: bool,
                                                   seed: int) -> None:
    bit_depth, dtype = depth_dtype
    full = (1 << bit_depth) - 1
    rng = np.random.default_rng(seed)
    px = rng.integers(0, full + 1, (h, 2 * w if strided else w), dtype=dtype)
    px[rng.random(px.shape) < 0.1] = full
    px[rng.random(px.shape) < 0.1] = 0
    if strided:
        px = px[:, ::2]  # a view whose columns are not adjacent in memory
    g = exposure_grades(px, bit_depth)
    sub = px[::4].ravel()
    cdf = np.cumsum(np.bincount(sub, minlength=full + 1)) / sub.size
    assert g["mean_dn"] == round(float(sub.mean()), 2)
    assert g["saturated_frac"] == round(float(np.count_nonzero(sub == full)) / sub.size, 6)
    assert g["dark_frac"] == round(float(np.count_nonzero(sub == 0)) / sub.size, 6)
    for p, key in ((1, "p1_dn"), (50, "p50_dn"), (99, "p99_dn")):
        assert g[key] == float(np.searchsorted(cdf, p / 100.0))
