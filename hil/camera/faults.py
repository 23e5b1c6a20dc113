"""Camera faults, injectable at run time and reproducible from a seed.

A fault is asked for by name with arguments (the emulator's control port,
or the ``faults`` list of its config). :class:`FaultInjector` keeps what is
armed and is consulted by the device (pixels, temperature, latch-up) and by
the link (bytes of each frame, stalls, disconnects, garbage). Everything it
draws comes from one RNG seeded by the emulator's seed, so a scenario replays
byte for byte. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.errors import CommandRejected

__all__ = ["FAULTS", "FaultInjector", "FrameFate"]

# name -> (argument defaults, what it does)
FAULTS: dict[str, tuple[dict[str, float], str]] = {
    "drop_frame": ({"count": 1}, "the next count frames are read out but never sent (a counter gap)"),
    "corrupt": ({"count": 1, "bytes": 4}, "flip bits in `bytes` random bytes of each of the next count frames"),
    "truncate": ({"count": 1, "keep": 0.5}, "send only the first `keep` fraction of the next count frames"),
    "late": ({"count": 1, "delay_s": 0.5}, "hold each of the next count frames back by delay_s"),
    "stall": ({"duration_s": 2.0}, "send nothing and answer nothing for duration_s"),
    "disconnect": ({}, "drop the link (TCP: close the connection; serial: hang up the pty)"),
    "stuck_pixels": ({"count": 10}, "count pixels stick at full scale from now on"),
    "dead_pixels": ({"count": 10}, "count pixels read 0 DN from now on"),
    "over_temperature": ({"delta_c": 50.0}, "the sensor runs delta_c hotter (clear with delta_c 0)"),
    "latch_up": ({}, "single-event latch-up: silent until POWER_CYCLE"),
    "garbage": ({"bytes": 512}, "a burst of random bytes on the line"),
}


@dataclass
class FrameFate:
    """What the link does with one encoded frame: its pieces, untouched unless a fault spoilt them."""

    parts: tuple[bytes | memoryview, ...]
    send: bool = True
    delay_s: float = 0.0
    fault: str = ""  # "" for a sound frame, else the fault that spoilt it


class FaultInjector:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng([int(seed), 0xFA417])
        self.drop = 0
        self.corrupt = 0
        self.corrupt_bytes = 4
        self.truncate = 0
        self.truncate_keep = 0.5
        self.late = 0
        self.late_s = 0.0
        self.stall_until = 0.0
        self.disconnect_now = False
        self.garbage_bytes = 0
        self.new_stuck = 0
        self.new_dead = 0
        self.over_temp_c = 0.0
        self.latch_now = False
        self.injected: dict[str, int] = {name: 0 for name in FAULTS}

    @staticmethod
    def parse(name: str, args: dict[str, Any]) -> dict[str, float]:
        """Check a fault request; raise CommandRejected naming what is wrong."""
        if name not in FAULTS:
            raise CommandRejected(f"unknown fault '{name}'; known: {sorted(FAULTS)}")
        defaults, _ = FAULTS[name]
        extra = sorted(set(args) - set(defaults))
        if extra:
            raise CommandRejected(f"fault '{name}': unknown argument(s) {extra}; takes {sorted(defaults)}")
        out: dict[str, float] = {}
        for key, default in defaults.items():
            value = args.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise CommandRejected(f"fault '{name}': '{key}' must be a non-negative number, got {value!r}")
            out[key] = float(value)
        return out

    def inject(self, name: str, args: dict[str, Any], now: float) -> dict[str, float]:
        a = self.parse(name, args)
        self.injected[name] += 1
        if name == "drop_frame":
            self.drop += int(a["count"])
        elif name == "corrupt":
            self.corrupt, self.corrupt_bytes = self.corrupt + int(a["count"]), max(1, int(a["bytes"]))
        elif name == "truncate":
            self.truncate, self.truncate_keep = self.truncate + int(a["count"]), min(0.99, a["keep"])
        elif name == "late":
            self.late, self.late_s = self.late + int(a["count"]), a["delay_s"]
        elif name == "stall":
            self.stall_until = max(self.stall_until, now + a["duration_s"])
        elif name == "disconnect":
            self.disconnect_now = True
        elif name == "stuck_pixels":
            self.new_stuck += int(a["count"])
        elif name == "dead_pixels":
            self.new_dead += int(a["count"])
        elif name == "over_temperature":
            self.over_temp_c = a["delta_c"]
        elif name == "latch_up":
            self.latch_now = True
        elif name == "garbage":
            self.garbage_bytes += int(a["bytes"])
        return a

    def clear(self) -> None:
        """Disarm every pending fault (pixel defects and over-temperature stay: they are the sensor's)."""
        self.drop = self.corrupt = self.truncate = self.late = self.garbage_bytes = 0
        self.stall_until = 0.0
        self.disconnect_now = self.latch_now = False

    def stalled(self, now: float) -> bool:
        return now < self.stall_until

    def take_garbage(self) -> bytes:
        n, self.garbage_bytes = self.garbage_bytes, 0
        return self.rng.integers(0, 256, n, dtype=np.uint8).tobytes() if n else b""

    def take_pixels(self, n_pixels: int) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of newly stuck and newly dead pixels on a sensor of n_pixels."""
        n = min(self.new_stuck + self.new_dead, n_pixels)
        picked = self.rng.choice(n_pixels, size=n, replace=False)
        stuck, dead = picked[:self.new_stuck], picked[self.new_stuck:]
        self.new_stuck = self.new_dead = 0
        return stuck, dead

    def frame_fate(self, parts: tuple[bytes | memoryview, ...]) -> FrameFate:
        """Apply the armed link faults to one encoded frame's pieces (one fault per frame, in this order).

        A sound frame keeps its pieces (nothing is copied); a corrupted or truncated one is joined first.
        """
        if self.drop:
            self.drop -= 1
            return FrameFate(parts, send=False, fault="drop_frame")
        if self.corrupt:
            self.corrupt -= 1
            buf = bytearray(b"".join(parts))
            # Flip bytes in the payload, past the header, so the header still syncs and the CRC catches it.
            pos = self.rng.integers(20, max(21, len(buf) - 4), self.corrupt_bytes)
            for p in pos:
                buf[int(p)] ^= int(self.rng.integers(1, 256))
            return FrameFate((bytes(buf),), fault="corrupt")
        if self.truncate:
            self.truncate -= 1
            data = b"".join(parts)
            keep = max(21, int(len(data) * self.truncate_keep))
            return FrameFate((data[:keep],), fault="truncate")
        if self.late:
            self.late -= 1
            return FrameFate(parts, delay_s=self.late_s, fault="")
        return FrameFate(parts)
