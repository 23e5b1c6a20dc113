"""The emulated camera's behaviour: commands in, replies and frames out, on an injected clock.

:class:`CameraDevice` has no I/O. ``handle(message, now)`` answers a command;
``frames_ready(now)`` gives the frames whose exposure and readout have
finished. Timing follows the profile: a capture is ready exposure + readout
after it is commanded; streaming runs at the commanded rate, capped by the
profile's limit and by max(exposure, readout). The sensor temperature follows
a first-order thermal model driven by the readout duty cycle. Faults that
belong to the camera (pixels, temperature, latch-up) are applied here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from drivers.camera import protocol as p
from drivers.camera.profile import CameraProfile
from hil.camera.faults import FaultInjector
from hil.camera.frames import FrameSource
from hil.camera.sensor import Defects
from hil.camera.view import SceneOptions
from framework.crc import pixels_crc32c

__all__ = ["CameraDevice", "EXPOSURE_RANGE_US", "GAIN_RANGE", "MAX_BURST"]

EXPOSURE_RANGE_US = (1, 10_000_000)
GAIN_RANGE = (0.1, 64.0)
MAX_BURST = 1000


class Thermal:
    """Sensor temperature: relaxes toward ambient + self_heating x duty with time constant tau."""

    def __init__(self, profile: CameraProfile, now: float) -> None:
        self.p = profile
        self.temp_c = profile.ambient_temp_c
        self.t = now

    def advance(self, now: float, duty: float) -> float:
        dt = max(0.0, now - self.t)
        self.t = now
        target = self.p.ambient_temp_c + self.p.self_heating_c * min(1.0, max(0.0, duty))
        self.temp_c += (target - self.temp_c) * (1.0 - math.exp(-dt / self.p.thermal_tau_s))
        return self.temp_c


class CameraDevice:
    """The camera's state and behaviour."""

    def __init__(self, camera: str, source: FrameSource, clock: Callable[[], float], now: float,
                 faults: FaultInjector | None = None, first_counter: int = 0,
                 max_rate_hz: float | None = None) -> None:
        self.camera = camera
        self.source = source
        self.profile = source.profile
        self.clock = clock
        self.faults = faults or FaultInjector(source.seed)
        self.max_rate_hz = max_rate_hz or self.profile.max_frame_rate_hz
        self.next_counter = first_counter
        self.thermal = Thermal(self.profile, now)
        self.frames_sent = 0
        self.boot_count = 0
        self.latched = False
        self.power_cycle_pending = False
        self._stuck = np.zeros(0, dtype=np.int64)
        self._dead = np.zeros(0, dtype=np.int64)
        self.pixel_cache: dict[int, tuple[np.ndarray, int]] = {}  # pixels and their CRC-32C
        self.pixel_cache_size = 0  # benchmarks: > 0 cycles that many rendered frames' pixels
        self.power_on(now)

    # --- power ----------------------------------------------------------------------------------

    def power_on(self, now: float) -> None:
        """Settings back to their power-on values; nothing pending."""
        self.exposure_us = self.profile.exposure_us
        self.gain = 1.0
        self.streaming = False
        self.rate_hz = 0.0
        self.next_due = now
        self.pending: list[float] = []  # ready times of commanded captures
        self.source.window = self.profile.window
        self.source.binning = self.profile.binning
        self.latched = False
        self.power_cycle_pending = False

    def rebooted(self, now: float) -> None:
        self.boot_count += 1
        self.power_on(now)

    # --- state ----------------------------------------------------------------------------------

    def temp_c(self, now: float) -> float:
        return self.thermal.advance(now, self.duty()) + self.faults.over_temp_c

    def duty(self) -> float:
        rate = self.rate_hz if self.streaming else 0.0
        return rate * self.source.readout_s()

    def over_temperature(self, now: float) -> bool:
        return self.temp_c(now) > self.profile.max_temp_c

    def frame_time_s(self) -> float:
        """Exposure plus readout: how long after its start a frame is ready."""
        return self.exposure_us * 1e-6 + self.source.readout_s()

    def period_s(self) -> float:
        pipelined = max(self.exposure_us * 1e-6, self.source.readout_s())
        return max(1.0 / self.rate_hz, 1.0 / self.max_rate_hz, pipelined)

    def _apply_pixel_faults(self) -> None:
        if self.faults.new_stuck or self.faults.new_dead:
            stuck, dead = self.faults.take_pixels(self.profile.width * self.profile.height)
            self._stuck = np.union1d(self._stuck, stuck)
            self._dead = np.union1d(self._dead, dead)
            self.source.defects = Defects(stuck=self._stuck, dead=self._dead)

    # --- commands -------------------------------------------------------------------------------

    def _check_latch(self) -> None:
        if self.faults.latch_now:
            self.faults.latch_now = False
            self.latched = True

    def handle(self, item: p.Message | p.WireError, now: float) -> list[p.Message]:
        """Replies to one decoded message or decoding error (none while latched up)."""
        self._check_latch()
        if self.latched and not isinstance(item, p.PowerCycle):
            return []
        if isinstance(item, p.WireError):
            return [self._nak_for_error(item)]
        if isinstance(item, p.Ping):
            return [p.Ack(ref_seq=item.seq)]
        if isinstance(item, p.StatusRequest):
            return [self.status(item.seq, now)]
        if isinstance(item, p.PowerCycle):
            self.power_cycle_pending = True
            return [p.Ack(ref_seq=item.seq, reason=f"power cycling; ready in {self.profile.boot_s} s")]
        if isinstance(item, p.StreamStop):
            self.streaming = False
            return [p.Ack(ref_seq=item.seq)]
        handler = {p.SetExposure: self._set_exposure, p.SetGain: self._set_gain, p.SetWindow: self._set_window,
                   p.SetBinning: self._set_binning, p.SelfTest: self._self_test}.get(type(item))
        if handler is not None:
            return [handler(item)]
        if isinstance(item, (p.Capture, p.CaptureBurst, p.StreamStart)):
            if self.over_temperature(now):
                return [p.Nak(ref_seq=item.seq, code=p.Code.OVER_TEMPERATURE,
                              reason=f"sensor at {self.temp_c(now):.1f} C, above {self.profile.max_temp_c} C")]
            return [self._start_exposures(item, now)]
        return [p.Nak(ref_seq=item.seq, code=p.Code.NOT_ALLOWED,
                      reason=f"{type(item).__name__} is not a command the camera accepts")]

    def status(self, ref_seq: int, now: float) -> p.StatusReply:
        x, y, _, _ = self.source.region
        flags = (p.STATE_FLAGS["over_temperature"] if self.over_temperature(now) else 0) | (
            p.STATE_FLAGS["defects_found"] if self._stuck.size or self._dead.size else 0)
        return p.StatusReply(ref_seq=ref_seq, temp_c=self.temp_c(now), exposure_us=self.exposure_us, gain=self.gain,
                             frames_sent=self.frames_sent, streaming=self.streaming, rate_hz=self.rate_hz,
                             window_x=x, window_y=y, width=self.source.width, height=self.source.height,
                             binning=self.source.binning, flags=flags, boot_count=self.boot_count)

    def _nak_for_error(self, err: p.WireError) -> p.Nak:
        code = {p.UnknownMessageType: p.Code.UNKNOWN_TYPE, p.CrcError: p.Code.CRC}.get(type(err), p.Code.MALFORMED)
        ref = err.seq if err.seq is not None else 0
        return p.Nak(ref_seq=ref, code=code, reason=f"{type(err).__name__}: {err}")

    def _set_exposure(self, cmd: p.SetExposure) -> p.Message:
        lo, hi = EXPOSURE_RANGE_US
        if not lo <= cmd.exposure_us <= hi:
            return p.Nak(ref_seq=cmd.seq, code=p.Code.OUT_OF_RANGE,
                         reason=f"exposure_us={cmd.exposure_us} outside {lo}..{hi}")
        self.exposure_us = cmd.exposure_us
        return p.Ack(ref_seq=cmd.seq)

    def _set_gain(self, cmd: p.SetGain) -> p.Message:
        lo, hi = GAIN_RANGE
        if not lo <= cmd.gain <= hi:
            return p.Nak(ref_seq=cmd.seq, code=p.Code.OUT_OF_RANGE, reason=f"gain={cmd.gain} outside {lo}..{hi}")
        self.gain = cmd.gain
        return p.Ack(ref_seq=cmd.seq)

    def _set_window(self, cmd: p.SetWindow) -> p.Message:
        pw, ph = self.profile.width, self.profile.height
        full = cmd.width == 0 and cmd.height == 0 and cmd.x == 0 and cmd.y == 0
        b = self.source.binning
        if not full and (cmd.width < 8 or cmd.height < 8 or cmd.x + cmd.width > pw or cmd.y + cmd.height > ph
                         or cmd.width % b or cmd.height % b or (self.profile.pattern != "mono"
                                                                and (cmd.x % 2 or cmd.y % 2))):
            return p.Nak(ref_seq=cmd.seq, code=p.Code.OUT_OF_RANGE,
                         reason=f"window x={cmd.x} y={cmd.y} {cmd.width}x{cmd.height} is not a region of at least "
                                f"8x8 inside {pw}x{ph}, a multiple of the binning {b} (and on even x, y for Bayer)")
        self.source.window = (cmd.x, cmd.y, cmd.width, cmd.height)
        return p.Ack(ref_seq=cmd.seq, reason=f"frames now {self.source.width}x{self.source.height}")

    def _set_binning(self, cmd: p.SetBinning) -> p.Message:
        if cmd.factor not in (1, 2, 4):
            return p.Nak(ref_seq=cmd.seq, code=p.Code.OUT_OF_RANGE, reason=f"binning {cmd.factor} is not 1, 2 or 4")
        if cmd.factor != 1 and self.profile.pattern != "mono":
            return p.Nak(ref_seq=cmd.seq, code=p.Code.NOT_ALLOWED,
                         reason=f"binning a {self.profile.pattern} sensor would mix colours")
        _, _, w, h = self.source.region
        if w % cmd.factor or h % cmd.factor:
            return p.Nak(ref_seq=cmd.seq, code=p.Code.OUT_OF_RANGE,
                         reason=f"the window {w}x{h} is not a multiple of {cmd.factor}")
        self.source.binning = cmd.factor
        return p.Ack(ref_seq=cmd.seq, reason=f"frames now {self.source.width}x{self.source.height}")

    def _self_test(self, cmd: p.SelfTest) -> p.Message:
        self._apply_pixel_faults()
        problems = []
        if self._stuck.size:
            problems.append(f"{self._stuck.size} stuck pixels")
        if self._dead.size:
            problems.append(f"{self._dead.size} dead pixels")
        temp = self.temp_c(self.thermal.t)
        if temp > self.profile.max_temp_c:
            problems.append(f"sensor at {temp:.1f} C above {self.profile.max_temp_c} C")
        if problems:
            return p.Nak(ref_seq=cmd.seq, code=p.Code.SELF_TEST_FAILED, reason="; ".join(problems))
        return p.Ack(ref_seq=cmd.seq, reason="self-test passed: pattern, dark level and temperature nominal")

    def _start_exposures(self, cmd: p.Capture | p.CaptureBurst | p.StreamStart, now: float) -> p.Message:
        if isinstance(cmd, p.StreamStart):
            if not cmd.rate_hz > 0:
                return p.Nak(ref_seq=cmd.seq, code=p.Code.OUT_OF_RANGE, reason=f"rate_hz={cmd.rate_hz} is not positive")
            self.rate_hz = min(cmd.rate_hz, self.max_rate_hz)
            note = f"rate capped to {self.max_rate_hz} Hz" if cmd.rate_hz > self.max_rate_hz else ""
            if not self.streaming:
                self.next_due = now + self.frame_time_s()
            self.streaming = True
            return p.Ack(ref_seq=cmd.seq, reason=note)
        count = 1 if isinstance(cmd, p.Capture) else cmd.count
        if not 1 <= count <= MAX_BURST:
            return p.Nak(ref_seq=cmd.seq, code=p.Code.OUT_OF_RANGE, reason=f"burst count {count} outside 1..{MAX_BURST}")
        start = max([now] + self.pending)
        step = max(self.exposure_us * 1e-6, self.source.readout_s(), 1.0 / self.max_rate_hz)
        self.pending += [start + self.frame_time_s() + i * step for i in range(count)]
        return p.Ack(ref_seq=cmd.seq)

    def set_scene(self, **changes: Any) -> SceneOptions:
        """Change what the camera sees (the boom swung out, dust settled); cached renders are stale."""
        self.source.scene = dataclasses.replace(self.source.scene, **changes)
        self.pixel_cache.clear()
        return self.source.scene

    # --- frames ---------------------------------------------------------------------------------

    def next_event_s(self, now: float) -> float:
        """Seconds until a frame may be ready (for the adapter's poll timeout)."""
        times = list(self.pending) + ([self.next_due] if self.streaming else [])
        return max(0.0, min(times) - now) if times else 1.0

    def frames_ready(self, now: float) -> int:
        """How many frames are ready now (captures first, then at most one streamed frame)."""
        self._check_latch()
        if self.latched:
            return 0
        n = sum(1 for t in self.pending if t <= now)
        if self.streaming and now >= self.next_due:
            n += 1
        return n

    def take_frame(self, now: float) -> p.Frame:
        """The next ready frame; a streamed frame schedules the one after (late ones are not made up)."""
        if self.pending and self.pending[0] <= now:
            self.pending.pop(0)
        else:
            self.next_due = max(self.next_due + self.period_s(), now)
        return self.make_frame(now)

    def make_frame(self, now: float) -> p.Frame:
        self._apply_pixel_faults()
        counter = self.next_counter
        self.next_counter += 1
        temp = self.temp_c(now)
        crc: int | None = None
        if self.pixel_cache_size:
            # The rendered frame's pixel CRC is cached with it, as camera hardware computes it during
            # readout; each frame's message CRC is still computed from it and its own header.
            key = counter % self.pixel_cache_size
            if key not in self.pixel_cache or self.pixel_cache[key][0].shape != self.source.shape:
                px = self.source.frame(counter, self.exposure_us, self.gain, temp_c=temp)
                self.pixel_cache[key] = (px, pixels_crc32c(px))
            pixels, crc = self.pixel_cache[key]
        else:
            pixels = self.source.frame(counter, self.exposure_us, self.gain, temp_c=temp)
        return p.Frame(camera=self.camera, counter=counter, width=self.source.width, height=self.source.height,
                       bit_depth=self.source.bit_depth, pattern=self.source.pattern, exposure_us=self.exposure_us,
                       gain=self.gain, temp_c=temp, t_capture=self.clock(), pixels=pixels, pixels_crc32c=crc)

    def frame_sent(self) -> None:
        self.frames_sent += 1

    def frame_unsent(self, counter: int) -> None:
        """A frame was dropped before its last byte left: its counter is used again."""
        self.next_counter = min(self.next_counter, counter)

    def link_lost(self) -> None:
        self.streaming = False
        self.pending.clear()
