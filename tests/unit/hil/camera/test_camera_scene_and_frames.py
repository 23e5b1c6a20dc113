"""Scenes, sensor and frames: reproducible from the seed, different across seeds, in range."""

from __future__ import annotations

import numpy as np
import pytest

from hil.camera.frames import FrameSource
from hil.camera.scene import lunar_scene, render_scene, scene_params

SHAPE = (96, 128)


def test_scene_is_float32_in_unit_range_with_the_asked_shape() -> None:
    img = render_scene(1, SHAPE)
    assert img.shape == SHAPE and img.dtype == np.float32
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0


def test_same_seed_gives_the_same_scene_and_other_seeds_differ() -> None:
    a, b = render_scene(7, SHAPE), render_scene(7, SHAPE)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render_scene(8, SHAPE))


def test_low_sun_casts_hard_shadows() -> None:
    params = scene_params(11, 256)
    assert 5.0 <= params.sun_elevation_deg <= 15.0
    img = render_scene(11, (256, 256))
    dark = img < 0.05
    assert 0.01 < dark.mean() < 0.6  # shadows exist and do not swallow the scene


def test_cached_scene_is_read_only() -> None:
    img = lunar_scene(3, SHAPE)
    assert img is lunar_scene(3, SHAPE)
    with pytest.raises(ValueError):
        img[0, 0] = 0.5


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (12, np.uint16), (16, np.uint16)])
def test_frame_has_profile_shape_dtype_and_fits_its_bit_depth(bits: int, dtype: type) -> None:
    src = FrameSource({"width": 128, "height": 96, "bit_depth": bits, "pattern": "mono"}, seed=2)
    f = src.frame(0)
    assert f.shape == (96, 128) and f.dtype == dtype
    assert int(f.max()) <= (1 << bits) - 1 and int(f.max()) > int(f.min())


def test_frames_are_reproducible_per_counter_and_noisy_between_counters() -> None:
    src = FrameSource({"width": 128, "height": 96, "bit_depth": 12, "pattern": "mono"}, seed=2)
    again = FrameSource({"width": 128, "height": 96, "bit_depth": 12, "pattern": "mono"}, seed=2)
    assert np.array_equal(src.frame(5), again.frame(5))
    assert not np.array_equal(src.frame(5), src.frame(6))
    other = FrameSource({"width": 128, "height": 96, "bit_depth": 12, "pattern": "mono"}, seed=3)
    assert not np.array_equal(src.frame(5), other.frame(5))


def test_longer_exposure_and_higher_gain_give_brighter_frames() -> None:
    src = FrameSource({"width": 128, "height": 96, "bit_depth": 12, "pattern": "mono"}, seed=4)
    base = float(src.frame(0).mean())
    assert float(src.frame(0, exposure_us=40000).mean()) > base
    assert float(src.frame(0, gain=2.0).mean()) > base


def test_overexposure_saturates_at_the_adc_maximum() -> None:
    src = FrameSource({"width": 128, "height": 96, "bit_depth": 12, "pattern": "mono"}, seed=4)
    f = src.frame(0, exposure_us=2_000_000, gain=4.0)
    assert int(f.max()) == 4095 and float((f == 4095).mean()) > 0.5


def test_bayer_profile_gives_a_mosaic_of_channel_responses() -> None:
    src = FrameSource({"width": 128, "height": 96, "bit_depth": 12, "pattern": "RGGB"}, seed=4)
    f = src.frame(0, exposure_us=20000).astype(float)
    red, green = f[0::2, 0::2].mean(), f[0::2, 1::2].mean()
    assert red < green
