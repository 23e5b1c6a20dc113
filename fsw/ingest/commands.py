"""The ingest's own commands: the security associations' status, enable and disable.

They arrive the one way every command does, on the ingest's command port: from a local
operator tool holding a key, or from the ground through the ingest itself (a TC packet
for the ingest's own APID is dispatched to its own port like any other). No handler ever
returns key material: SA_STATUS names each key by its id.
"""

from __future__ import annotations

from typing import Any, Protocol

from framework.bus.commands import Handler

__all__ = ["handlers", "SecurityAssociations"]


class SecurityAssociations(Protocol):
    """What the handlers need (:class:`fsw.ingest.ingest.Ingest` gives it)."""

    def sa_status(self) -> list[dict[str, Any]]: ...

    def set_enabled(self, spi: int, enabled: bool) -> dict[str, Any]: ...


def handlers(ingest: SecurityAssociations) -> dict[str, Handler]:
    """One handler per command of the ingest's table other than NOOP and RESET_COUNTERS."""
    return {
        "SA_STATUS": lambda args: {"associations": ingest.sa_status()},
        "SA_ENABLE": lambda args: ingest.set_enabled(args["spi"], True),
        "SA_DISABLE": lambda args: ingest.set_enabled(args["spi"], False),
    }
