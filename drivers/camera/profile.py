"""Camera profiles: the datasheet of one camera model, read from ``configs/cameras/``.

The emulator (``hil/camera``) takes the sensor, timing and interface from a
profile; the driver takes the interface, frame size and timing from the same
file, so the two can never disagree about the hardware. Conventions follow
EMVA 1288: ``gain_dn_per_e`` is the overall system gain K at analogue gain 1
(the ``SET_GAIN`` command multiplies it), noise and full well are in electrons.

A profile is validated completely on load; the first wrong key raises
:class:`~framework.errors.ConfigError` naming the file and the key. A process
config names a profile file (``profile_file``) and may override keys inline
(``profile``); inline keys win.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from framework.config import check_mapping, config_dir
from framework.kinds import Field
from framework.errors import ConfigError

__all__ = ["CameraProfile", "PROFILE_KEYS", "PROFILE_INLINE_KEYS", "PROFILE_DIR", "load_profile", "profile_from_dict",
           "resolve_profile_path", "profile_for_process"]

PROFILE_DIR = config_dir() / "cameras"  # shipped in the distribution (package data)

# A camera model's datasheet (configs/cameras/*.yaml). Inline in a process config (the driver's and the
# emulator's ``profile`` key) the same keys override the profile file: there every default is None.
PROFILE_KEYS: dict[str, Field] = {
    "name": Field(str, "camera", doc="model name"),
    "description": Field(str, ""),
    # geometry and pixel format
    "width": Field(int, 2048, min=8, max=16384, doc="sensor columns"),
    "height": Field(int, 2048, min=8, max=16384, doc="sensor rows"),
    "bit_depth": Field(int, 12, choices=(8, 10, 12, 14, 16)),
    "pattern": Field(str, "mono", choices=("mono", "RGGB", "BGGR", "GRBG", "GBRG")),
    "pixel_pitch_um": Field(float, 5.5, min=0.5, max=100.0),
    "window": Field(list, [0, 0, 0, 0], doc="default readout region [x, y, width, height]; zeros: full sensor"),
    "binning": Field(int, 1, choices=(1, 2, 4), doc="default binning factor"),
    # sensor (EMVA 1288 quantities)
    "full_well_e": Field(float, 13_500.0, min=100.0),
    "read_noise_e": Field(float, 4.5, min=0.0, max=1000.0, doc="temporal dark noise, rms electrons"),
    "gain_dn_per_e": Field(float, 0.3, min=1e-4, max=100.0, doc="system gain K at analogue gain 1"),
    "black_level_dn": Field(int, 64, min=0, max=4096, doc="pedestal added before quantisation"),
    "dark_current_e_per_s": Field(float, 5.0, min=0.0, doc="mean dark current at dark_ref_temp_c"),
    "dark_ref_temp_c": Field(float, 20.0),
    "dark_doubling_c": Field(float, 6.5, min=1.0, max=30.0, doc="dark current doubles every this many kelvin"),
    "prnu": Field(float, 0.008, min=0.0, max=0.2, doc="photo-response non-uniformity, rms fraction"),
    "dsnu_e_per_s": Field(float, 1.0, min=0.0, doc="dark-signal non-uniformity, rms e-/s at the ref temperature"),
    "hot_pixel_fraction": Field(float, 2e-5, min=0.0, max=0.01),
    "hot_pixel_e_per_s": Field(float, 40_000.0, min=0.0),
    "dead_pixel_fraction": Field(float, 0.0, min=0.0, max=0.01, doc="pixels reading 0 DN from the start"),
    "flux_e_per_s": Field(float, 900_000.0, min=1.0, doc="photo-electrons per second at scene radiance 1.0"),
    "cfa_response": Field(dict, {"R": 0.85, "G": 1.0, "B": 0.7}, doc="filter response to grey regolith"),
    # timing
    "max_frame_rate_hz": Field(float, 5.0, min=0.01, max=1000.0),
    "readout_s": Field(float, 0.04, min=0.0, max=10.0, doc="full-sensor readout; a window reads its rows only"),
    "exposure_us": Field(int, 20_000, min=1, max=10_000_000, doc="exposure after power-on"),
    "boot_s": Field(float, 0.5, min=0.0, max=60.0, doc="power-on to ready"),
    # thermal
    "ambient_temp_c": Field(float, 18.0),
    "self_heating_c": Field(float, 13.0, min=0.0, doc="rise above ambient at 100% readout duty"),
    "thermal_tau_s": Field(float, 120.0, min=0.1, doc="time constant of the sensor temperature"),
    "max_temp_c": Field(float, 60.0, doc="above this the camera refuses to expose (over-temperature)"),
    # interface
    "interface": Field(str, "tcp", choices=("tcp", "serial")),
    "link_rate_bps": Field(float, 1e9, min=1200.0, doc="line rate: Ethernet speed, or the serial baud rate"),
}

PROFILE_INLINE_KEYS: dict[str, Field] = {k: dataclasses.replace(f, default=None) for k, f in PROFILE_KEYS.items()}


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

    Inline keys left unset are None (see ``framework/kinds.py``) and do not override the file.
    """
    inline = {k: v for k, v in (settings.get("profile") or {}).items() if v is not None}
    ref = settings.get("profile_file") or ""
    if ref:
        return load_profile(ref, config_file, inline)
    return profile_from_dict(inline, str(config_file or "<config>"))
