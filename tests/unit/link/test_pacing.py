"""The token bucket that paces the downlink, on a fake clock."""

from __future__ import annotations

import pytest

from link.pacing import TokenBucket


def test_the_bucket_allows_its_burst_then_the_rate() -> None:
    now = [0.0]
    b = TokenBucket(rate_bps=8000.0, burst_bytes=2000, clock=lambda: now[0])
    assert b.try_take(1000) and b.try_take(1000)
    assert not b.try_take(1000)
    assert b.wait_s(1000) == pytest.approx(1.0)
    now[0] = 1.0
    assert b.try_take(1000) and not b.try_take(1)


def test_returned_tokens_can_be_used_again() -> None:
    b = TokenBucket(rate_bps=8.0, burst_bytes=100, clock=lambda: 0.0)
    assert b.try_take(100)
    b.give_back(100)
    assert b.try_take(100)


def test_over_a_long_run_the_bytes_taken_match_the_rate() -> None:
    now = [0.0]
    b = TokenBucket(rate_bps=24e6, burst_bytes=16_384, clock=lambda: now[0])
    taken = 0
    for _ in range(100_000):
        now[0] += 0.0001
        while b.try_take(4102):
            taken += 4102
    assert taken * 8 / now[0] == pytest.approx(24e6, rel=0.01)
