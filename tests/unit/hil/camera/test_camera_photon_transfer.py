"""The sensor model checked as camera makers do (EMVA 1288 photon transfer): gain and read noise within 5%."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.camera import protocol as p
from drivers.camera.profile import load_profile
from hil.camera.device import CameraDevice
from hil.camera.emva import measure_photon_transfer
from hil.camera.frames import FrameSource
from hil.camera.view import SceneOptions

# Analogue gain for the measurement: 8 bits at unity gain quantise the read noise away (EMVA 1288 asks
# for a dark noise above 0.5 DN), so the colour camera is measured at gain 16.
PROFILES = {"navcam": 1.0, "context": 16.0, "monitor": 1.0}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_photon_transfer_recovers_the_profile_gain_and_read_noise(name: str) -> None:
    gain = PROFILES[name]
    prof = load_profile(name, overrides={"binning": 1})
    level = 0.5
    cams = {lit: CameraDevice(name, FrameSource(prof, 3, SceneOptions(kind="flat", flat_level=level if lit else 0.0)),
                              clock=lambda: 0.0, now=0.0) for lit in (True, False)}
    for cam in cams.values():  # a 256x256 window through the camera's own commands
        assert isinstance(cam.handle(p.SetWindow(x=64, y=64, width=256, height=256, seq=1), 0.0)[0], p.Ack)
        assert isinstance(cam.handle(p.SetGain(gain=gain, seq=2), 0.0)[0], p.Ack)
    k = prof.gain_dn_per_e * gain
    linear_e = 0.7 * min(prof.full_well_e, (prof.dn_max - prof.black_level_dn) / k)
    t_max_us = linear_e / (level * prof.flux_e_per_s * max(prof.cfa_response.values())) * 1e6
    exposures = [max(1, int(t_max_us * f)) for f in np.linspace(0.1, 1.0, 6)]

    def capture(lit: bool, exposure_us: int, n: int) -> np.ndarray:
        cam = cams[lit]
        cam.exposure_us = exposure_us
        return cam.source.frame(n, exposure_us, cam.gain, temp_c=prof.dark_ref_temp_c)

    result = measure_photon_transfer(capture, exposures)
    assert result.gain_dn_per_e / gain == pytest.approx(prof.gain_dn_per_e, rel=0.05)
    assert result.read_noise_e == pytest.approx(prof.read_noise_e, rel=0.05)
