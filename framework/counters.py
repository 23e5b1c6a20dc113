"""Counters that saturate instead of overflowing.

Telemetry and event fields travel as msgpack, whose integers end at 2**64 - 1: a counter that
sums values taken from outside (a camera's frame counter, a publisher's sequence number) could
pass that and make the health message unencodable, ending the process that publishes it. Every
such counter adds through :func:`saturating_add`; whatever is published goes through
:func:`clamp_counter`, so it always encodes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["COUNTER_MAX", "COUNTER_MIN", "saturating_add", "clamp_counter", "clamp_fields"]

COUNTER_MAX = 2**64 - 1
"""The largest integer a counter reaches (msgpack's largest unsigned integer)."""
COUNTER_MIN = -(2**63)
"""The smallest integer a published value takes (msgpack's smallest signed integer)."""


def saturating_add(total: int, n: int) -> int:
    """``total + n`` held within [0, COUNTER_MAX]: a counter stops at its maximum instead of overflowing."""
    return min(COUNTER_MAX, max(0, total + n))


def clamp_counter(value: int) -> int:
    """An integer held within what msgpack carries [COUNTER_MIN, COUNTER_MAX]."""
    return min(COUNTER_MAX, max(COUNTER_MIN, value))


def clamp_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with every (non-bool) integer value clamped; other values as they are."""
    return {k: clamp_counter(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in fields.items()}
