"""The console's interface, as data (format: :mod:`framework.interface`), and its process kind.

The console has no commands of its own beyond the standard ones: what an operator sends
from the page goes to the ground station's command port (UPLINK) and is checked there
again. Its events say what it refused and why; its channels count what it served.
"""

from __future__ import annotations

from typing import Any

from framework.interface import ChannelSpec, EventSpec, Interface
from framework.kinds import Field, KindSpec

__all__ = ["KIND", "INTERFACE", "console_urls"]

INTERFACE = Interface.build(
    "console",
    events=(
        EventSpec(0x01, "console_serving", "info", "the console serves: url, remote (bound beyond loopback)"),
        EventSpec(0x02, "command_sent", "info",
                  "an operator's command went to the ground's queue: id, target, cmd, hazardous"),
        EventSpec(0x03, "command_refused", "warning",
                  "a command from the page was refused before it reached the ground's queue: target, cmd, reason"),
        EventSpec(0x04, "hazardous_refused", "warning",
                  "a hazardous command without its typed confirmation or the operator's key: target, cmd, reason"),
        EventSpec(0x05, "ground_unreachable", "warning",
                  "the ground's command port did not answer: cmd, reason (rate-limited)"),
    ),
    telemetry=(
        ChannelSpec(0x01, "clients", "count", int, doc="pages following the live stream now"),
        ChannelSpec(0x02, "updates", "count", int, doc="updates put on the live stream"),
        ChannelSpec(0x03, "bus_messages", "count", int, doc="ground bus messages taken in"),
        ChannelSpec(0x04, "products_known", "count", int, doc="products in the gallery"),
        ChannelSpec(0x05, "commands_sent", "count", int),
        ChannelSpec(0x06, "commands_refused", "count", int),
        ChannelSpec(0x07, "hazardous_refused", "count", int),
        ChannelSpec(0x08, "ground_unreachable", "count", int, high=0),
        ChannelSpec(0x09, "bus_gaps", "count", int, doc="ground bus messages lost (sequence gaps)"),
    ),
)

KIND = KindSpec(
    interface=INTERFACE,
    name="ground.console",
    entry="ground.console.process:run",
    endpoints={"http": "tcp", "bus_sub": "tcp|ipc", "bus_pub": "tcp|ipc", "ground_command": "tcp|ipc",
               "command": "tcp|ipc?"},
    binds=("http", "command"),
    keys={
        "ground": Field(str, "", doc="the ground.station process whose products, ledger and queue are shown "
                                     "(default: the config's one)",
                        derive=lambda name, procs: next((n for n, p in procs.items()
                                                         if p.get("kind") == "ground.station"), "")),
        "allow_remote": Field(bool, False,
                              doc="serve on an address beyond loopback (anyone who reaches it sees the lander; "
                                  "hazardous commands still need the operator's key)"),
        "operator": Field(str, "operator", min_len=1, pattern=r"[A-Za-z0-9_.-]+",
                          doc="the operator key (<keys_dir>/<operator>.key_secret) a hazardous command must "
                              "present; without that file hazardous commands are refused"),
        "history_points": Field(int, 600, min=10, max=100000, doc="samples kept per telemetry channel"),
        "events_kept": Field(int, 1000, min=10, max=100000),
        "contact_horizon_s": Field(float, 3600.0, min=1.0, max=30 * 86400.0,
                                   doc="contact windows listed ahead (wall seconds)"),
    },
    doc="Web console: gallery, full-frame viewer, live telemetry and events, commands with their stages, link.",
)


def console_urls(config: Any) -> list[str]:
    """The URL of every console process of ``config`` (what ``pdh run`` and ``pdh demo`` print at start)."""
    out = []
    for name in config.processes_of_kind(KIND.name):
        _scheme, rest = config.reach(name, "http").split("://", 1)
        out.append(f"http://{rest}/")
    return out
