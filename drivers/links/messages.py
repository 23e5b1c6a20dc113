"""The messages every device of the protocol family speaks, whatever it is: the logical model.

A camera and a mechanism controller both answer PING and STATUS and reply
with ACK or NAK, under the same type codes and the same NAK codes, so these
live here, once, and each device's own ``messages``/``protocol`` module adds
its types beside them (:mod:`drivers.camera.messages`,
:mod:`drivers.deploy.protocol`). No bytes here: :mod:`drivers.links.envelope`
frames them and encodes the ACK/NAK payload.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FamilyType", "Code", "Ping", "StatusRequest", "Ack", "Nak"]


class FamilyType:
    """Type codes shared by every device: commands below 0x80, replies from 0x80.

    A device's ``MsgType`` subclasses this and adds its own codes, so the shared
    ones cannot drift between devices."""

    PING = 0x01
    STATUS = 0x02
    ACK = 0x80
    NAK = 0x81


class Code:
    """ACK/NAK status codes: one numbering for the whole family (a code never means two things)."""

    OK = 0
    UNKNOWN_TYPE = 1
    MALFORMED = 2
    OUT_OF_RANGE = 3
    CRC = 4
    NOT_ALLOWED = 5
    INTERNAL = 6
    SELF_TEST_FAILED = 7
    OVER_TEMPERATURE = 8


@dataclass(frozen=True, kw_only=True)
class Ping:
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class StatusRequest:
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class Ack:
    """The command with sequence ``ref_seq`` was done; ``reason`` may add a note."""

    ref_seq: int
    code: int = Code.OK
    reason: str = ""
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class Nak:
    """The command with sequence ``ref_seq`` was refused, with a code and why."""

    ref_seq: int
    code: int
    reason: str = ""
    seq: int = 0
