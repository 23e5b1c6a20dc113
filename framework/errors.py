"""The project's error hierarchy.

Bad bytes, bad commands and bad configs raise one of these, carrying what was
wrong. Internal invariants use ``assert``; nothing from outside the process does.
"""

from __future__ import annotations

__all__ = [
    "PdhError",
    "ConfigError",
    "ProtocolError",
    "BusError",
    "NotSent",
    "CommandRejected",
    "ProductError",
    "StoreError",
]


class PdhError(Exception):
    """Base of every error lunar-pdh raises on purpose."""


class ConfigError(PdhError):
    """A configuration file is wrong: names the file, the key and what was expected."""

    def __init__(self, file: str, key: str, expected: str, got: object = None) -> None:
        self.file = file
        self.key = key
        self.expected = expected
        self.got = got
        detail = f"{file}: key '{key}': expected {expected}"
        if got is not None:
            detail += f", got {got!r}"
        super().__init__(detail)


class ProtocolError(PdhError):
    """Bytes from a link or socket do not follow the protocol."""


class BusError(ProtocolError):
    """A bus message (topic, header, buffers) is malformed."""


class NotSent(BusError):
    """A message was not sent because the peer is not taking any now (its queue is full, or there is
    no peer): dropped and counted by the sender, never waited for. The caller reports it."""


class CommandRejected(PdhError):
    """A command was refused: unknown, malformed, or not allowed now."""


class ProductError(PdhError):
    """A data product cannot be encoded or decoded, or fails its CRC."""


class StoreError(PdhError):
    """The on-board product store cannot do what was asked."""
