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
    ),
    events=(
    ),
    telemetry=(
        ChannelSpec(0x01, "messages", "count", int, doc="messages forwarded from publishers to subscribers"),
        ChannelSpec(0x02, "bytes", "bytes", int, doc="bytes of the forwarded messages, every frame counted"),
        ChannelSpec(0x03, "subscription_changes", "count", int, doc="subscribes and unsubscribes passed upstream"),
    ),
)

KIND = KindSpec(
    interface=INTERFACE,
    name="bus.broker",
    entry="fsw.broker.process:run",
    endpoints={"xsub": "tcp|ipc", "xpub": "tcp|ipc", "command": "tcp|ipc?"},
    binds=("xsub", "xpub", "command"),
    doc="XSUB/XPUB proxy: the software bus (NOOP and RESET_COUNTERS on the optional command port).",
)
