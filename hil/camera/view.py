"""What the camera sees: the terrain as pointed, the lander's own parts, dust on the optics.

:class:`SceneOptions` is the camera's installation and the state of the
things in view (the boom angle changes at run time). :func:`compose` gives the
radiance map in [0, 1] for the full sensor; it is cached per options, so a
boom that moves costs one re-composition, not one per frame.

Geometry (image coordinates, x right, y down): the camera looks down past the
lander's side. The footpad sits near the bottom-left corner on its strut. The
boom's hinge is just above the top-right corner: stowed (0 deg) the boom
points up along the body, out of view; as it swings out it enters the image
and at 90 deg (deployed) lies across the top of the frame, pointing left. Its
image angle is ``boom_angle_deg`` measured from straight up toward the left,
so deployment can be read off a frame. Shadows fall away from the sun.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from hil.camera.scene import lunar_scene, scene_params

__all__ = ["SceneOptions", "compose", "boom_segment", "BOOM_RADIANCE", "FOOTPAD_RADIANCE"]

BOOM_RADIANCE = 0.8  # sunlit aluminium and white paint
FOOTPAD_RADIANCE = 0.65
_BOOM_LENGTH_FRAC = 0.75  # of the image width
_BOOM_WIDTH_FRAC = 0.012
_SHADOW = 0.15  # radiance factor inside a cast shadow


@dataclass(frozen=True)
class SceneOptions:
    kind: str = "lunar"  # "lunar" | "flat"
    flat_level: float = 0.5
    pointing_azimuth_deg: float = 0.0
    pointing_elevation_deg: float = -90.0
    sun_elevation_deg: float | None = None
    sun_azimuth_deg: float | None = None
    dust: float = 0.0
    footpad: bool = True
    boom: bool = True
    boom_angle_deg: float = 0.0

    @classmethod
    def from_settings(cls, d: dict) -> "SceneOptions":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def boom_segment(shape: tuple[int, int], angle_deg: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Image (x, y) of the boom's hinge and tip for ``angle_deg`` (0 stowed, 90 deployed)."""
    h, w = shape
    hinge = (0.95 * w, 0.06 * h)
    a = math.radians(angle_deg)
    length = _BOOM_LENGTH_FRAC * w
    return hinge, (hinge[0] - length * math.sin(a), hinge[1] - length * math.cos(a))


def _sun(seed: int, shape: tuple[int, int], o: SceneOptions) -> tuple[float, float]:
    p = scene_params(seed, max(shape))
    el = p.sun_elevation_deg if o.sun_elevation_deg is None else o.sun_elevation_deg
    az = p.sun_azimuth_deg if o.sun_azimuth_deg is None else o.sun_azimuth_deg
    return el, (az - o.pointing_azimuth_deg) % 360.0


def _oblique(img: np.ndarray, elevation_deg: float) -> np.ndarray:
    """Foreshorten the ground plane for a camera tilted up from nadir (a homography; no horizon)."""
    if elevation_deg <= -89.9:
        return img
    h, w = img.shape
    # Near ground (the bottom rows) is magnified relative to the far ground at the top.
    spread = min(0.7, math.cos(math.radians(-elevation_deg)) * 0.9)
    src = np.float32([[0, 0], [w, 0], [w * (1 - spread / 2), h], [w * spread / 2, h]])
    dst = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    m = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _shadow_offset(shape: tuple[int, int], sun: tuple[float, float], height_frac: float) -> tuple[int, int]:
    el, az = sun
    length = min(2.0 * shape[1], height_frac * shape[1] / math.tan(math.radians(max(el, 1.0))))
    # Shadows fall away from the sun: the sun is at azimuth az counter-clockwise from +x (y down).
    return int(round(-length * math.cos(math.radians(az)))), int(round(length * math.sin(math.radians(az))))


def _draw_footpad(img: np.ndarray, sun: tuple[float, float]) -> None:
    h, w = img.shape
    centre = (int(0.16 * w), int(0.86 * h))
    axes = (int(0.11 * w), int(0.05 * w))
    dx, dy = _shadow_offset((h, w), sun, 0.01)
    shadow = np.ones_like(img)
    cv2.ellipse(shadow, (centre[0] + dx, centre[1] + dy), axes, 0, 0, 360, _SHADOW, -1, cv2.LINE_AA)
    cv2.line(shadow, (centre[0] + dx, centre[1] + dy), (int(-0.05 * w) + 3 * dx, int(1.1 * h) + 3 * dy),
             _SHADOW, max(2, int(0.02 * w)), cv2.LINE_AA)
    img *= shadow
    cv2.line(img, centre, (int(-0.05 * w), int(1.1 * h)), FOOTPAD_RADIANCE * 0.8, max(2, int(0.02 * w)),
             cv2.LINE_AA)  # the strut leaves the frame
    cv2.ellipse(img, centre, axes, 0, 0, 360, FOOTPAD_RADIANCE, -1, cv2.LINE_AA)
    cv2.ellipse(img, centre, axes, 0, 0, 360, FOOTPAD_RADIANCE * 0.5, max(1, int(0.004 * w)), cv2.LINE_AA)


def _draw_boom(img: np.ndarray, angle_deg: float, sun: tuple[float, float]) -> None:
    h, w = img.shape
    (hx, hy), (tx, ty) = boom_segment((h, w), angle_deg)
    thick = max(2, int(_BOOM_WIDTH_FRAC * w))
    dx, dy = _shadow_offset((h, w), sun, 0.03)
    shadow = np.ones_like(img)
    cv2.line(shadow, (int(hx) + dx, int(hy) + dy), (int(tx) + dx, int(ty) + dy), _SHADOW, thick, cv2.LINE_AA)
    img *= shadow
    cv2.line(img, (int(hx), int(hy)), (int(tx), int(ty)), BOOM_RADIANCE, thick, cv2.LINE_AA)
    box = max(3, int(0.025 * w))
    cv2.rectangle(img, (int(tx) - box, int(ty) - box), (int(tx) + box, int(ty) + box), BOOM_RADIANCE * 0.9, -1)


def _dust(img: np.ndarray, seed: int, amount: float) -> np.ndarray:
    """Out-of-focus dust motes (dark rings) and veiling glare, from the seed."""
    h, w = img.shape
    rng = np.random.default_rng([seed, 0xD057])
    trans = np.ones((h, w), np.float32)
    for _ in range(int(5 + 60 * amount)):
        r = int(rng.uniform(0.01, 0.05) * w) + 2
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        cv2.circle(trans, c, r, 1.0 - float(rng.uniform(0.05, 0.25)) * amount, max(1, r // 3), cv2.LINE_AA)
    k = max(3, int(0.01 * w) | 1)
    trans = cv2.GaussianBlur(trans, (k, k), 0)
    return img * trans + np.float32(0.04 * amount * float(img.mean()))


@functools.lru_cache(maxsize=4)
def _composed(seed: int, shape: tuple[int, int], o: SceneOptions) -> np.ndarray:
    if o.kind == "flat":
        img = np.full(shape, o.flat_level, np.float32)
    else:
        sun = _sun(seed, shape, o)
        img = np.array(lunar_scene(seed, shape, sun[0], sun[1]), dtype=np.float32)
        img = _oblique(img, o.pointing_elevation_deg)
        if o.footpad:
            _draw_footpad(img, sun)
        if o.boom:
            _draw_boom(img, o.boom_angle_deg, sun)
        if o.dust > 0:
            img = _dust(img, seed, o.dust)
        np.clip(img, 0.0, 1.0, out=img)
    img.flags.writeable = False
    return img


def compose(seed: int, shape: tuple[int, int], options: SceneOptions) -> np.ndarray:
    """The read-only radiance map of the full sensor for these options."""
    return _composed(int(seed), (int(shape[0]), int(shape[1])), options)
