from __future__ import annotations

from pathlib import Path

import numpy as np

from fsw.imaging import calibration as cal


def _sensor(rng, shape, dark, flat, signal, read_noise=3.0):
    """Frames with a known dark (DSNU + hot pixels) and flat (PRNU + vignetting)."""
    e = rng.poisson(np.maximum(signal * flat, 0)).astype(np.float32)
    return np.clip(np.round(dark + e + rng.normal(0, read_noise, shape)), 0, 4095).astype(np.uint16)


def _truth(shape, rng):
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    r2 = ((x - shape[1] / 2) ** 2 + (y - shape[0] / 2) ** 2) / (shape[0] / 2) ** 2
    flat = (1 - 0.2 * r2) * (1 + rng.normal(0, 0.01, shape))
    flat = (flat / np.median(flat)).astype(np.float32)
    dark = (100 + rng.normal(0, 2, shape)).astype(np.float32)
    hot = [(5, 7), (40, 33)]
    for yx in hot:
        dark[yx] = 1500
    dead = (20, 50)
    flat[dead] = 0.05
    return dark, flat, hot, dead


def test_calibration_recovers_known_dark_flat_and_bad_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    shape = (64, 80)
    dark, flat, hot, dead = _truth(shape, rng)
    darks = [_sensor(rng, shape, dark, flat, 0.0) for _ in range(16)]
    flats = [_sensor(rng, shape, dark, flat, 2000.0) for _ in range(16)]
    s = cal.build_set(darks, flats, exposure_us=1000, temp_c=-10.0)
    good = ~s.bad
    assert np.abs(s.dark - dark)[good].mean() < 1.5
    assert np.abs(s.flat - flat)[good].mean() < 0.01
    assert all(s.bad[yx] for yx in hot) and s.bad[dead]
    assert s.bad.sum() <= 6
    back = cal.load(cal.save(s, tmp_path))
    assert back.id == s.id and np.array_equal(back.bad, s.bad)
    raw = _sensor(rng, shape, dark, flat, 1000.0)
    corrected = cal.apply(raw, s, 12).astype(np.float32)
    assert abs(float(np.median(corrected)) - 1000) < 30
    assert corrected[good].std() < raw[good].astype(np.float32).std()


def test_mismatched_calibration_frames_are_refused() -> None:
    import pytest

    with pytest.raises(cal.CalibrationError, match="shape"):
        cal.build_dark([np.zeros((4, 4), np.uint16), np.zeros((4, 5), np.uint16)])
    with pytest.raises(cal.CalibrationError, match="at least 2"):
        cal.build_dark([np.zeros((4, 4), np.uint16)])


def test_manager_collects_on_command_builds_and_survives_restart(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    shape = (64, 80)
    dark, flat, _, _ = _truth(shape, rng)
    m = cal.CalibrationManager(tmp_path)
    m.collect("navcam", "dark", 4)
    for _ in range(6):
        m.offer("navcam", _sensor(rng, shape, dark, flat, 0.0), 1000, -5.0)
    m.collect("navcam", "flat", 4)
    for _ in range(4):
        m.offer("navcam", _sensor(rng, shape, dark, flat, 1500.0), 1000, -5.0)
    assert m.collecting("navcam") == {"dark": 0, "flat": 0}
    s = m.build("navcam")
    again = cal.CalibrationManager(tmp_path)
    assert again.active["navcam"].id == s.id
    again.clear("navcam")
    assert "navcam" not in cal.CalibrationManager(tmp_path).active


def test_calibration_recovers_the_emulated_sensors_own_dark_and_flat() -> None:
    """Darks and flats from the HIL sensor model; truth from its fixed pattern."""
    from hil.camera.sensor import SensorModel, expose, fixed_pattern

    model = SensorModel(bit_depth=12, prnu=0.02, dsnu_e_per_s=40.0, dark_current_e_per_s=150.0,
                        hot_pixel_fraction=0.002, hot_pixel_e_per_s=20_000.0, read_noise_e=4.0)
    shape, seed, exposure_us, temp_c = (96, 128), 17, 2_000_000, 20.0
    dark_scene = np.zeros(shape, np.float32)
    flat_scene = np.full(shape, 0.004, np.float32)  # about 7 000 e- in 2 s: half the well
    darks = [expose(dark_scene, model, seed, i, exposure_us, 1.0, temp_c) for i in range(16)]
    flats = [expose(flat_scene, model, seed, 100 + i, exposure_us, 1.0, temp_c) for i in range(16)]
    s = cal.build_set(darks, flats, exposure_us, temp_c)
    fpn = fixed_pattern(seed, shape, model)
    t = exposure_us * 1e-6
    dark_truth = model.black_level_dn + model.gain_dn_per_e * fpn.dark_e_per_s * t
    flat_truth = fpn.response / np.median(fpn.response)
    hot_truth = fpn.dark_e_per_s > 2000
    good = ~s.bad
    assert np.median(np.abs(s.dark - dark_truth)[good]) < 1.5  # DN
    assert np.corrcoef(s.dark[good], dark_truth[good])[0, 1] > 0.9  # DSNU recovered, not just the mean
    assert np.median(np.abs(s.flat - flat_truth)[good]) < 0.01
    assert np.corrcoef(s.flat[good], flat_truth[good])[0, 1] > 0.8  # PRNU recovered
    assert s.bad[hot_truth].all()
