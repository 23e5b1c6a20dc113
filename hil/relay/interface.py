"""The relay link emulator's interface, as data: its process kind."""

from __future__ import annotations

from framework.kinds import Field, KindSpec
from link.contacts import CONTACT_PLAN_KEYS

__all__ = ["KIND"]

KIND = KindSpec(
    name="hil.relay",
    entry="hil.relay.process:run",
    endpoints={"lander_in": "udp", "ground_in": "udp", "lander": "udp", "ground": "udp"},
    binds=("lander_in", "ground_in"),
    keys={
        "rate_bps": Field(float, 8_000_000.0, min=1000.0, doc="rate when the plan has no relays"),
        "latency_ms": Field(float, 50.0, min=0.0, max=60_000.0, doc="latency when a relay names none"),
        "loss": Field(float, 0.0, min=0.0, max=0.95, doc="random loss added to every relay's own"),
        "seed": Field(int, 1, min=0),
        "pcap": Field(str, "link/relay.pcap"),
        "queue_bytes": Field(int, 8_000_000, min=10_000),
        **CONTACT_PLAN_KEYS,
    },
    doc="Relay link emulator on UDP loopback: rate, latency, loss; records a pcap.",
)
