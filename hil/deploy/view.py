"""When the mechanism emulator tells the camera emulators where the boom is. Pure: no I/O, clock given.

The camera scene draws the boom at ``boom_angle_deg`` (hil/camera/view.py), so a partial
deployment is visible in the confirmation frame. The emulator sends the true angle to each
camera emulator's control port (``set_boom_angle {deg}``) through :class:`BoomViewPolicy`:

- at most ``max_rate_hz`` updates a second, so a swinging boom costs a few small messages;
- only when the angle moved more than ``min_step_deg`` since the last update that was sent,
  or when the mechanism came to rest away from the last sent angle (the final angle is exact);
- again every ``refresh_s`` even when nothing moved, so a camera emulator that restarted
  (its scene back at the configured angle) learns the angle without waiting for motion.

An update the link could not send (camera emulator down) is not counted as sent, so it is
retried at the next allowed moment.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BoomViewPolicy", "SCENE_MAX_DEG"]

SCENE_MAX_DEG = 180.0  # the camera scene accepts 0..180


@dataclass
class BoomViewPolicy:
    """Decides, from the true angle and the time, whether to send the camera a new boom angle."""

    min_step_deg: float = 0.5
    max_rate_hz: float = 10.0
    refresh_s: float = 2.0
    rest_tolerance_deg: float = 0.01
    last_sent_deg: float | None = None
    last_sent_at: float | None = None
    last_try_at: float | None = None

    @staticmethod
    def scene_angle(angle_deg: float) -> float:
        """The angle the scene can draw: clamped to 0..180 and rounded to 0.01 deg."""
        return round(min(max(angle_deg, 0.0), SCENE_MAX_DEG), 2)

    def due(self, now_s: float, angle_deg: float, moving: bool) -> float | None:
        """The angle to send now, or None. Call :meth:`sent` after a successful send."""
        if self.last_try_at is not None and now_s - self.last_try_at < 1.0 / self.max_rate_hz:
            return None
        deg = self.scene_angle(angle_deg)
        if self.last_sent_deg is None or self.last_sent_at is None:
            return self._try(now_s, deg)
        moved = abs(deg - self.last_sent_deg)
        if moved > self.min_step_deg:
            return self._try(now_s, deg)
        if not moving and moved > self.rest_tolerance_deg:
            return self._try(now_s, deg)
        if now_s - self.last_sent_at >= self.refresh_s:
            return self._try(now_s, deg)
        return None

    def _try(self, now_s: float, deg: float) -> float:
        self.last_try_at = now_s
        return deg

    def sent(self, now_s: float, deg: float) -> None:
        """The camera link took the update."""
        self.last_sent_deg = deg
        self.last_sent_at = now_s
