"""Frames from a camera profile and a seed: scene, optics, sensor, readout geometry.

``FrameSource(profile, seed).frame(counter, exposure_us, gain, temp_c)`` is
the one way every emulator, benchmark and test makes a frame; the same
arguments and state (window, binning, scene, defects) give the same pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from drivers.camera.profile import CameraProfile, profile_from_dict
from hil.camera.sensor import Defects, SensorModel, bin_pixels, expose
from hil.camera.view import SceneOptions, compose

__all__ = ["FrameSource", "sensor_temp_c"]


def sensor_temp_c(counter: int) -> float:
    """A slow warm-up from 18 degC towards 31 degC as frames are read out (the old fixed model)."""
    return 18.0 + 13.0 * (1.0 - float(np.exp(-counter / 2000.0)))


class FrameSource:
    """Deterministic frames for one camera: its profile, seed, scene and readout settings."""

    def __init__(self, profile: CameraProfile | dict[str, Any], seed: int,
                 scene: SceneOptions | None = None) -> None:
        self.profile = profile if isinstance(profile, CameraProfile) else profile_from_dict(profile)
        self.seed = int(seed)
        self.model = SensorModel.from_profile(self.profile)
        self.scene = scene or SceneOptions()
        self.window = self.profile.window
        self.binning = self.profile.binning
        self.defects = Defects.none()

    # --- readout geometry ---------------------------------------------------------------------

    @property
    def full_shape(self) -> tuple[int, int]:
        return (self.profile.height, self.profile.width)

    @property
    def region(self) -> tuple[int, int, int, int]:
        """The window read out: x, y, width, height (the full sensor when no window is set)."""
        x, y, w, h = self.window
        if w == 0 or h == 0:
            return (0, 0, self.profile.width, self.profile.height)
        return (x, y, w, h)

    @property
    def width(self) -> int:
        return self.region[2] // self.binning

    @property
    def height(self) -> int:
        return self.region[3] // self.binning

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bit_depth(self) -> int:
        return self.profile.bit_depth

    @property
    def pattern(self) -> str:
        return self.profile.pattern

    @property
    def dtype(self) -> type:
        return self.model.dtype

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * self.profile.bytes_per_pixel

    def readout_s(self) -> float:
        """Readout time: rows read, as a fraction of the full sensor's readout time."""
        return self.profile.readout_s * self.region[3] / self.profile.height

    # --- pixels -------------------------------------------------------------------------------

    def radiance(self) -> np.ndarray:
        """The full sensor's radiance, CFA response applied for Bayer patterns."""
        scene = compose(self.seed, self.full_shape, self.scene)
        if self.pattern == "mono":
            return scene
        cfa = self.profile.cfa_response
        tile = np.array([[cfa[c] for c in self.pattern[:2]], [cfa[c] for c in self.pattern[2:]]], dtype=np.float32)
        reps = (-(-self.profile.height // 2), -(-self.profile.width // 2))
        return scene * np.tile(tile, reps)[: self.profile.height, : self.profile.width]

    def frame(self, counter: int, exposure_us: int = 20000, gain: float = 1.0,
              temp_c: float | None = None) -> np.ndarray:
        """Frame ``counter``: shape (height, width), uint16 for bit_depth > 8 else uint8."""
        x, y, w, h = self.region
        rad = self.radiance()[y:y + h, x:x + w]
        temp = sensor_temp_c(counter) if temp_c is None else temp_c
        px = expose(rad, self.model, self.seed, counter, exposure_us, gain, temp_c=temp,
                    full_shape=self.full_shape, window=(x, y, w, h), defects=self.defects)
        return bin_pixels(px, self.binning)
