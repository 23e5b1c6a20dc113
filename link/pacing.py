"""A token bucket that paces the downlink at the link's rate. Pure: takes a clock."""

from __future__ import annotations

import time
from typing import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allows ``rate_bps`` on average with bursts of up to ``burst_bytes``."""

    def __init__(self, rate_bps: float, burst_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_bps <= 0 or burst_bytes <= 0:
            raise ValueError("rate_bps and burst_bytes must be positive")
        self.rate_Bps = rate_bps / 8.0
        self.burst_bytes = float(burst_bytes)
        self._clock = clock
        self._tokens = float(burst_bytes)
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst_bytes, self._tokens + (now - self._last) * self.rate_Bps)
        self._last = now

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def try_take(self, nbytes: int) -> bool:
        """Take ``nbytes`` if the bucket holds them (a packet larger than the burst needs a full bucket)."""
        self._refill()
        if self._tokens >= min(nbytes, self.burst_bytes):
            self._tokens -= nbytes
            return True
        return False

    def give_back(self, nbytes: int) -> None:
        """Return tokens for a packet that could not be sent after all."""
        self._tokens = min(self.burst_bytes, self._tokens + nbytes)

    def wait_s(self, nbytes: int) -> float:
        """Seconds until ``try_take(nbytes)`` would succeed."""
        self._refill()
        need = min(nbytes, self.burst_bytes) - self._tokens
        return max(0.0, need / self.rate_Bps)
