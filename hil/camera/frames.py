"""Frames from a camera profile and a seed: scene, optics response, sensor.

``FrameSource(profile, seed).frame(counter, exposure_us, gain)`` is the one
way every emulator, benchmark and test makes a frame; the same arguments
give the same pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hil.camera.scene import lunar_scene
from hil.camera.sensor import SensorModel, expose

__all__ = ["FrameSource", "sensor_temp_c", "CFA_RESPONSE"]

# Relative response of the red, green and blue filters to the grey regolith.
CFA_RESPONSE = {"R": 0.85, "G": 1.0, "B": 0.7}


def sensor_temp_c(counter: int) -> float:
    """A slow warm-up from 18 degC towards 31 degC as frames are read out."""
    return 18.0 + 13.0 * (1.0 - float(np.exp(-counter / 2000.0)))


class FrameSource:
    """Deterministic frames for one camera profile (width, height, bit_depth, pattern)."""

    def __init__(self, profile: dict[str, Any], seed: int) -> None:
        self.width = int(profile.get("width", 2048))
        self.height = int(profile.get("height", 2048))
        self.bit_depth = int(profile.get("bit_depth", 12))
        self.pattern = str(profile.get("pattern", "mono"))
        self.seed = int(seed)
        self.model = SensorModel(bit_depth=self.bit_depth)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def dtype(self) -> type:
        return self.model.dtype

    def radiance(self) -> np.ndarray:
        """The scene as the sensor sees it, CFA mosaic applied for Bayer patterns."""
        scene = lunar_scene(self.seed, self.shape)
        if self.pattern == "mono":
            return scene
        tile = np.array([[CFA_RESPONSE[c] for c in self.pattern[:2]],
                         [CFA_RESPONSE[c] for c in self.pattern[2:]]], dtype=np.float32)
        reps = (-(-self.height // 2), -(-self.width // 2))
        return scene * np.tile(tile, reps)[: self.height, : self.width]

    def frame(self, counter: int, exposure_us: int = 20000, gain: float = 1.0) -> np.ndarray:
        """Frame ``counter``: shape (height, width), uint16 for bit_depth > 8 else uint8."""
        return expose(self.radiance(), self.model, self.seed, counter, exposure_us, gain,
                      temp_c=sensor_temp_c(counter))
