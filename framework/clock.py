"""A process's wall clock, which a test bench can step (a clock jump after a time sync, a bad GPS week).

Every process reads wall time through ``ProcessContext.clock``; in a run that clock is a
:class:`StepClock`: ``time.time()`` plus an offset read from the run's
``OUT/clock/<process>.offset_s`` (a decimal number of seconds, written whole by the scenario
runner's ``clock`` step). The file is looked at no more often than every ``check_s`` (a ``stat``),
and re-read only when it changed, so the clock stays cheap in a hot loop. A file that is missing
means no offset; one that does not hold a finite number within :data:`MAX_OFFSET_S` is ignored
(the last good offset stays, :attr:`StepClock.bad_reads` counts it): a bench's typo must not
throw a process's time to infinity. The monotonic clock is never stepped.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable

__all__ = ["StepClock", "MAX_OFFSET_S", "offset_path"]

MAX_OFFSET_S = 10 * 365 * 86400.0  # ten years either way
_MAX_FILE_BYTES = 64


def offset_path(out_dir: str | Path, process: str) -> Path:
    """Where a run keeps one process's clock offset."""
    return Path(out_dir) / "clock" / f"{process}.offset_s"


class StepClock:
    """Callable like ``time.time``: wall time plus the offset the bench set for this process."""

    def __init__(self, path: str | Path, check_s: float = 0.25, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.check_s = check_s
        self._wall = wall
        self._monotonic = monotonic
        self._next_check = -math.inf
        self._stamp: tuple[int, int, int] | None = None
        self.offset_s = 0.0
        self.bad_reads = 0

    def __call__(self) -> float:
        now = self._monotonic()
        if now >= self._next_check:
            self._next_check = now + self.check_s
            self._refresh()
        return self._wall() + self.offset_s

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            self._stamp, self.offset_s = None, 0.0
            return
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            with open(self.path, "rb") as f:
                text = f.read(_MAX_FILE_BYTES + 1)
            value = float(text.decode("ascii").strip()) if len(text) <= _MAX_FILE_BYTES else math.nan
        except (OSError, ValueError, UnicodeDecodeError):
            value = math.nan
        if math.isfinite(value) and abs(value) <= MAX_OFFSET_S:
            self.offset_s = value
        elif self.bad_reads < 2**31:
            self.bad_reads += 1
