"""The relay link emulator's interface, as data: its commands, events, health channels and kind.

The relay needs no bus: a config may give it ``bus_pub`` (health and events
published) and ``command`` (the bench's control port: windows forced open or
closed, a relay out, loss, corruption and rate changed, the relay's clock
stepped), both optional. Without a bus its events reach the log only.
Durations are wall seconds. Format: :mod:`framework.interface`.
"""

from __future__ import annotations

from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from framework.kinds import Field, KindSpec
from hil.relay.link import DIRECTION_COUNTERS
from link.contacts import CONTACT_PLAN_KEYS

__all__ = ["KIND", "INTERFACE", "DIRECTIONS"]

DIRECTIONS = {"down": 0x01, "up": 0x11}
"""Each direction's counters are channels ``<direction>_<counter>``, numbered from its first id."""

_COUNTER_DOCS = {
    "offered": "datagrams received from the sender",
    "offered_bytes": "bytes received from the sender",
    "delivered": "datagrams scheduled for delivery",
    "lost": "lost at random",
    "burst_lost": "lost in a burst",
    "tail_dropped": "dropped: the relay's queue was full",
    "corrupted": "delivered with a bit flipped",
    "outside_window": "sent while no relay was in contact (lost)",
    "send_failures": "the outbound socket refused a datagram",
}


def _direction_channels() -> tuple[ChannelSpec, ...]:
    return tuple(ChannelSpec(first + i, f"{d}_{name}", "bytes" if name.endswith("_bytes") else "count", int,
                             doc=f"{'lander to ground' if d == 'down' else 'ground to lander'}: {_COUNTER_DOCS[name]}")
                 for d, first in DIRECTIONS.items() for i, name in enumerate(DIRECTION_COUNTERS))


INTERFACE = Interface.build(
    "relay_emulator",
    commands=(
        CommandSpec(0x11, "WINDOW", (Arg("state", str, choices=("open", "closed", "plan")),
                                     Arg("duration_s", float, 0.0, 1e9, unit="s", required=False),
                                     Arg("relay", str, required=False)),
                    doc="force the window open (through relay, default the first not out) or closed now, for "
                        "duration_s (default until WINDOW plan); plan: the contact plan again"),
        CommandSpec(0x12, "RELAY_OUT", (Arg("relay", str), Arg("duration_s", float, 0.0, 1e9, unit="s",
                                                                required=False)),
                    doc="the relay carries nothing for duration_s (default until RELAY_IN); the next one in "
                        "contact carries the traffic"),
        CommandSpec(0x13, "RELAY_IN", (Arg("relay", str),), doc="the relay is back, as its plan says"),
        CommandSpec(0x14, "SET_LINK", (Arg("relay", str, required=False),
                                       Arg("loss", float, 0.0, 0.95, required=False),
                                       Arg("corrupt", float, 0.0, 1.0, required=False),
                                       Arg("rate_bps", float, 1000.0, 1e12, unit="bit/s", required=False),
                                       Arg("burst_enter", float, 0.0, 1.0, required=False),
                                       Arg("burst_leave", float, 1e-6, 1.0, required=False),
                                       Arg("burst_loss", float, 0.0, 1.0, required=False)),
                    doc="change a relay's (default every relay's) random loss, corruption, burst chain or rate, "
                        "both directions, from the next datagram on"),
        CommandSpec(0x15, "STEP_CLOCK", (Arg("seconds", float, -1e9, 1e9, unit="s"),),
                    doc="step the relay's clock (cumulative): it reads the contact plan at t + offset, out of "
                        "step with the lander and the ground"),
        CommandSpec(0x16, "CLEAR_OVERRIDES", doc="windows, relays, link and clock as the config says"),
        CommandSpec(0x17, "LINK_STATUS", doc="the contact now, the overrides in force and each relay's link"),
    ),
    events=(
        EventSpec(1, "contact_changed", "info", "A relay came into contact, or the last one left (relay null)."),
        EventSpec(2, "override_set", "warning",
                  "the bench changed the link: command, its arguments and the overrides now in force"),
    ),
    telemetry=(
        *_direction_channels(),
        ChannelSpec(0x21, "queued", "count", int, doc="datagrams in flight inside the relays"),
        ChannelSpec(0x22, "pcap_records", "count", int, doc="datagrams recorded, both directions"),
        ChannelSpec(0x23, "contact", "", str, doc="the relay in contact, empty when none"),
        ChannelSpec(0x24, "overrides", "count", int, doc="bench overrides in force (window, relays out, clock, link)"),
    ),
)

KIND = KindSpec(
    interface=INTERFACE,
    name="hil.relay",
    entry="hil.relay.process:run",
    endpoints={"lander_in": "udp", "ground_in": "udp", "lander": "udp", "ground": "udp",
               "bus_pub": "tcp|ipc?", "command": "tcp|ipc?"},
    binds=("lander_in", "ground_in", "command"),
    keys={
        "rate_bps": Field(float, 8_000_000.0, min=1000.0, doc="rate when the plan has no relays"),
        "latency_ms": Field(float, 50.0, min=0.0, max=60_000.0, doc="latency when a relay names none"),
        "loss": Field(float, 0.0, min=0.0, max=0.95, doc="random loss added to every relay's own"),
        "seed": Field(int, 1, min=0),
        "pcap": Field(str, "link/relay.pcap", path="file", doc="relative to the output directory"),
        "pcap_max_bytes": Field(int, 0, min=0, doc="rotate the pcap when it would pass this size (0: one file, "
                                "unbounded)"),
        "pcap_files": Field(int, 2, min=1, max=100, doc="pcap files kept when rotating (relay.pcap, .1, ...)"),
        "queue_bytes": Field(int, 8_000_000, min=10_000),
        **CONTACT_PLAN_KEYS,
    },
    doc="Relay link emulator on UDP: contact plan, rate, latency, loss, corruption; records a pcap; "
        "with bus_pub it publishes health and events, with command it takes the bench's link commands "
        "(WINDOW, RELAY_OUT, SET_LINK, STEP_CLOCK, ...).",
)
