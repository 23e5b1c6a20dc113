"""Saturating counters, and a health sample that always encodes whatever its counters hold."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from framework.bus.message import Header, decode_header, encode_header
from framework.counters import COUNTER_MAX, COUNTER_MIN, clamp_counter, saturating_add
from framework.reporters import HealthReporter


class EncodingPublisher:
    """Encodes each message's header as the real publisher does, and keeps it."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def publish(self, topic: str, kind: str, fields: dict[str, Any] | None = None, **_: Any) -> int:
        data = encode_header(Header(src="x", seq=len(self.sent), t=1.0, kind=kind, fields=dict(fields or {})))
        self.sent.append(decode_header(data).fields)
        return len(self.sent) - 1


def test_saturating_add_stops_at_the_maximum_and_at_zero() -> None:
    assert saturating_add(COUNTER_MAX - 1, 5) == COUNTER_MAX
    assert saturating_add(COUNTER_MAX, COUNTER_MAX) == COUNTER_MAX
    assert saturating_add(3, -10) == 0 and saturating_add(3, 4) == 7
    assert clamp_counter(-(2**80)) == COUNTER_MIN and clamp_counter(2**80) == COUNTER_MAX


def test_health_with_a_counter_beyond_64_bits_is_published_saturated() -> None:
    ctx = SimpleNamespace(monotonic=lambda: 5.0, name="cam", log=SimpleNamespace(error=lambda *a, **k: None))
    pub = EncodingPublisher()
    health = HealthReporter(ctx, pub, lambda: {"frames_missing": 3 * 2**64, "ok": True, "low": -(2**70)})
    health.tick(force=True)
    [fields] = pub.sent
    assert fields["frames_missing"] == COUNTER_MAX and fields["low"] == COUNTER_MIN and fields["ok"] is True
