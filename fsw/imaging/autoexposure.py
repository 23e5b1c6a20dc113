"""Auto-exposure: a closed loop from each frame's histogram to the next exposure and gain.

The loop drives a bright percentile (p99.5 by default) of the frame toward a
target fraction of full scale. Lunar scenes are mostly dark regolith and black
shadow with a few bright sunlit slopes, so a high percentile, not the mean, is
what must not clip. Design, for a linear sensor (DN proportional to
exposure x gain):

- The error is taken in log space, ``e = ln(target / measured)``, and corrected
  by a fraction ``k`` < 1 of it per step, so ``e`` shrinks geometrically by
  (1 - k) each frame: no overshoot, no oscillation.
- A deadband (``tolerance``) stops hunting on noise once converged.
- A frame that clips (saturated fraction above ``max_saturated_frac``) reads
  too low a percentile, so the loop halves the exposure instead.
- Frames still in flight when a command went out carry the old exposure; the
  loop only learns from frames taken with what it last commanded.
- Exposure is used before gain: gain rises only at the longest exposure and
  falls first when there is light to spare (less noise per DN).

Pure: no I/O; the core sends what :meth:`AutoExposure.update` returns as commands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["AutoExposureConfig", "AutoExposure", "ExposureCommand"]


@dataclass(frozen=True)
class AutoExposureConfig:
    target_frac: float = 0.75
    percentile_key: str = "p99_5_dn"
    k: float = 0.6
    tolerance: float = 0.05
    max_step: float = 4.0
    max_saturated_frac: float = 0.002
    exposure_min_us: int = 20
    exposure_max_us: int = 200_000
    gain_min: float = 1.0
    gain_max: float = 8.0


@dataclass(frozen=True)
class ExposureCommand:
    exposure_us: int
    gain: float


@dataclass
class AutoExposure:
    config: AutoExposureConfig = field(default_factory=AutoExposureConfig)
    enabled: bool = True
    commanded: ExposureCommand | None = None
    steps: int = 0

    def update(self, grades: dict[str, float], bit_depth: int, exposure_us: int, gain: float) -> ExposureCommand | None:
        """Learn from one frame's grades; return a new command, or None to keep the settings."""
        if not self.enabled:
            return None
        c = self.config
        if self.commanded is not None and (exposure_us != self.commanded.exposure_us
                                           or abs(gain - self.commanded.gain) > 1e-6):
            return None  # taken before our last command took effect
        full = (1 << bit_depth) - 1
        if grades["saturated_frac"] > c.max_saturated_frac:
            factor = 0.5
        else:
            measured = max(1.0, float(grades[c.percentile_key]))
            error = math.log(c.target_frac * full / measured)
            if abs(error) <= math.log(1.0 + c.tolerance):
                return None
            factor = math.exp(c.k * error)
        factor = min(c.max_step, max(1.0 / c.max_step, factor))
        cmd = self._split(exposure_us * gain * factor)
        if cmd.exposure_us == exposure_us and abs(cmd.gain - gain) < 1e-6:
            return None  # pinned at a limit
        self.commanded = cmd
        self.steps += 1
        return cmd

    def _split(self, product: float) -> ExposureCommand:
        """Exposure first, then gain, within the limits."""
        c = self.config
        exposure = min(float(c.exposure_max_us), max(float(c.exposure_min_us), product / c.gain_min))
        gain = min(c.gain_max, max(c.gain_min, product / exposure))
        return ExposureCommand(exposure_us=int(round(exposure)), gain=round(gain, 4))
