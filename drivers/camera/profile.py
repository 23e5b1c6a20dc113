"""Camera profiles: the datasheet of one camera model, read from ``configs/cameras/``.

The emulator (``hil/camera``) takes the sensor, timing and interface from a
profile; the driver takes the interface, frame size and timing from the same
file, so the two can never disagree about the hardware. Conventions follow
EMVA 1288: ``gain_dn_per_e`` is the overall system gain K at analogue gain 1
(the ``SET_GAIN`` command multiplies it), noise and full well are in electrons.

A profile is validated completely on load; the first wrong key raises
:class:`~fsw.errors.ConfigError` naming the file and the key. A process
config names a profile file (``profile_file``) and may override keys inline
(``profile``); inline keys win.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fsw.app.config import _check_mapping as check_mapping  # the project's one schema checker
from fsw.app.kinds import CAMERA_PROFILE_KEYS, Field
from fsw.errors import ConfigError

__all__ = ["CameraProfile", "PROFILE_KEYS", "PROFILE_DIR", "load_profile", "profile_from_dict",
           "resolve_profile_path", "profile_for_process"]

PROFILE_DIR = Path(__file__).resolve().parents[2] / "configs" / "cameras"

PROFILE_KEYS: dict[str, Field] = CAMERA_PROFILE_KEYS  # declared beside the process kinds that embed it


@dataclass(frozen=True)
class CameraProfile:
    """One validated camera profile."""

    name: str
    description: str
    width: int
    height: int
    bit_depth: int
    pattern: str
    pixel_pitch_um: float
    window: tuple[int, int, int, int]
    binning: int
    full_well_e: float
    read_noise_e: float
    gain_dn_per_e: float
    black_level_dn: int
    dark_current_e_per_s: float
    dark_ref_temp_c: float
    dark_doubling_c: float
    prnu: float
    dsnu_e_per_s: float
    hot_pixel_fraction: float
    hot_pixel_e_per_s: float
    dead_pixel_fraction: float
    flux_e_per_s: float
    cfa_response: dict[str, float]
    max_frame_rate_hz: float
    readout_s: float
    exposure_us: int
    boot_s: float
    ambient_temp_c: float
    self_heating_c: float
    thermal_tau_s: float
    max_temp_c: float
    interface: str
    link_rate_bps: float
    file: str = "<profile>"

    @property
    def dn_max(self) -> int:
        return (1 << self.bit_depth) - 1

    @property
    def bytes_per_pixel(self) -> int:
        return 1 if self.bit_depth <= 8 else 2

    def line_bytes_per_s(self) -> float:
        """Payload bytes per second on the line: 8N1 framing costs 10 bits a byte on serial."""
        return self.link_rate_bps / (10.0 if self.interface == "serial" else 8.0)

    def replace(self, **changes: Any) -> "CameraProfile":
        return dataclasses.replace(self, **changes)


def _check_window(file: str, d: dict[str, Any]) -> tuple[int, int, int, int]:
    win = d["window"]
    if len(win) != 4 or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in win):
        raise ConfigError(file, "profile.window", "[x, y, width, height] of non-negative integers", win)
    x, y, w, h = win
    if (w or h) and (w == 0 or h == 0 or x + w > d["width"] or y + h > d["height"]):
        raise ConfigError(file, "profile.window", f"a region inside {d['width']}x{d['height']}", win)
    return (x, y, w, h)


def profile_from_dict(data: Any, file: str = "<profile>", overrides: dict[str, Any] | None = None) -> CameraProfile:
    """Validate a parsed profile mapping (plus ``overrides``, which win) into a CameraProfile."""
    if not isinstance(data, dict):
        raise ConfigError(file, "<top>", "a mapping", data)
    data = {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    d = check_mapping(file, "profile", PROFILE_KEYS, data)
    if d["black_level_dn"] >= (1 << d["bit_depth"]):
        raise ConfigError(file, "profile.black_level_dn", f"below 2**bit_depth ({1 << d['bit_depth']})",
                          d["black_level_dn"])
    if d["pattern"] != "mono" and d["binning"] != 1:
        raise ConfigError(file, "profile.binning", "1 for a Bayer sensor (binning would mix colours)", d["binning"])
    cfa = d["cfa_response"]
    if set(cfa) != {"R", "G", "B"} or not all(isinstance(v, (int, float)) and v > 0 for v in cfa.values()):
        raise ConfigError(file, "profile.cfa_response", "{R, G, B} positive numbers", cfa)
    window = _check_window(file, d)
    return CameraProfile(**{**d, "window": window, "cfa_response": {k: float(v) for k, v in cfa.items()}},
                         file=file)


def resolve_profile_path(ref: str, config_file: str | Path | None = None) -> Path:
    """A profile reference: a path (absolute, or relative to the config file or the working
    directory), or the bare name of a profile in ``configs/cameras/``."""
    p = Path(ref)
    candidates = [p] if p.is_absolute() else []
    if not p.is_absolute():
        if config_file is not None:
            candidates.append(Path(config_file).resolve().parent / p)
        candidates += [Path.cwd() / p, PROFILE_DIR / p, PROFILE_DIR / f"{ref}.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(str(config_file or "<config>"), "profile_file",
                      f"a camera profile name in {PROFILE_DIR} or a readable path", ref)


def load_profile(ref: str, config_file: str | Path | None = None,
                 overrides: dict[str, Any] | None = None) -> CameraProfile:
    """Read and validate a profile file; ``overrides`` replace its keys."""
    path = resolve_profile_path(ref, config_file)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), "<file>", "a readable YAML camera profile", str(exc)) from None
    return profile_from_dict(data, str(path), overrides)


def profile_for_process(settings: dict[str, Any], config_file: str | Path | None = None) -> CameraProfile:
    """The profile a camera process's config section names: ``profile_file`` plus inline ``profile`` keys.

    Inline keys left unset are None (see ``fsw/app/kinds.py``) and do not override the file.
    """
    inline = {k: v for k, v in (settings.get("profile") or {}).items() if v is not None}
    ref = settings.get("profile_file") or ""
    if ref:
        return load_profile(ref, config_file, inline)
    return profile_from_dict(inline, str(config_file or "<config>"))
