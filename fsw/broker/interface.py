"""The bus broker's interface, as data: its commands, events and telemetry channels
(format: :mod:`framework.interface`) and its process kind (format: :mod:`framework.kinds`).

The broker answers only the two commands every component answers, and only when the
config gives it the optional ``command`` endpoint; its health telemetry is what it
forwarded, its command counters and its event counters.
"""

from __future__ import annotations

from framework.interface import ChannelSpec, CommandSpec, EventSpec, Interface
from framework.kinds import KindSpec

__all__ = ["KIND", "INTERFACE"]

INTERFACE = Interface.build(
    "broker",
    commands=(
        CommandSpec(0x0000, "NOOP", doc="answer with the software version"),
        CommandSpec(0x0001, "RESET_COUNTERS", doc="zero the forwarding, command and error counters"),
    ),
    events=(
        EventSpec(0x01, "command_rejected", "warning", "a command was refused"),
        EventSpec(0x02, "command_failed", "error", "an accepted command failed"),
    ),
    telemetry=(
        ChannelSpec(0x01, "messages", "count", int, doc="messages forwarded from publishers to subscribers"),
        ChannelSpec(0x02, "bytes", "bytes", int, doc="bytes of the forwarded messages, every frame counted"),
        ChannelSpec(0x03, "subscription_changes", "count", int, doc="subscribes and unsubscribes passed upstream"),
        ChannelSpec(0x04, "commands_accepted", "count", int, doc="0 without a command endpoint"),
        ChannelSpec(0x05, "commands_rejected", "count", int, doc="0 without a command endpoint"),
        ChannelSpec(0x06, "events_published", "count", int),
        ChannelSpec(0x07, "events_unpublished", "count", int, high=0, doc="events the bus refused (logged)"),
        ChannelSpec(0x08, "events_suppressed", "count", int, doc="events folded by rate limiting"),
    ),
)

KIND = KindSpec(
    name="bus.broker",
    entry="fsw.broker.process:run",
    endpoints={"xsub": "tcp|ipc", "xpub": "tcp|ipc", "command": "tcp|ipc?"},
    binds=("xsub", "xpub", "command"),
    doc="XSUB/XPUB proxy: the software bus (NOOP and RESET_COUNTERS on the optional command port).",
)
