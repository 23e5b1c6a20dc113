"""The device envelope every device protocol of the family shares: framing, errors, argument checks.

One owner for what the camera (:mod:`drivers.camera.protocol`) and the
mechanism controller (:mod:`drivers.deploy.protocol`) have in common, so the
two cannot drift apart and neither borrows from the other. Pure: bytes in,
bytes out, no sockets. Every message is one envelope (integers little-endian)::

    offset size field
    0      4    sync marker 1A CF FC 1D
    4      1    version (1)
    5      1    message type
    6      2    flags (0; reserved)
    8      4    sequence number (per sender, +1 per message, wraps at 2**32)
    12     4    payload length in bytes (each device sets its own maximum)
    16     4    header CRC-32C over bytes 0..15
    20     n    payload
    20+n   4    CRC-32C over bytes 0..20+n-1 (header, header CRC and payload)

The header CRC lets a receiver reject a false sync (or a corrupted length) at
once instead of waiting for a payload that never comes. ``docs/wire-protocol.md``
describes the envelope and the resynchronisation rules. The ACK/NAK payload,
the same for every device, is encoded here too (:func:`encode_reply`,
:func:`decode_reply`); the messages themselves are :mod:`drivers.links.messages`.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import crc32c

from drivers.links.messages import Ack, FamilyType, Nak
from framework.errors import ProtocolError

__all__ = [
    "SYNC", "VERSION", "HEAD", "U32", "HEADER_LEN", "TRAILER_LEN", "OVERHEAD",
    "WireError", "EncodeError", "SyncLostError", "HeaderCrcError", "CrcError", "TruncatedError",
    "UnsupportedVersion", "LengthError", "UnknownMessageType", "MalformedPayload",
    "check_uint", "check_float", "pack_header", "parse_header", "header_fields", "header_sound",
    "need", "text", "finite", "encode_reply", "decode_reply",
]

SYNC = b"\x1a\xcf\xfc\x1d"
VERSION = 1
HEAD = struct.Struct("<4sBBHII")
"""The fixed header: sync, version, type, flags, seq, length (the header CRC follows it)."""
U32 = struct.Struct("<I")
HEADER_LEN = HEAD.size + 4  # 20: fixed header plus its CRC
TRAILER_LEN = 4
OVERHEAD = HEADER_LEN + TRAILER_LEN
_REPLY = struct.Struct("<IH")  # ACK/NAK: ref_seq, code; then the reason as UTF-8 text


# --- errors -----------------------------------------------------------------------------------

class WireError(ProtocolError):
    """A device wire-protocol fault. ``seq``/``msg_type`` are set when the header was sound."""

    def __init__(self, detail: str, *, seq: int | None = None, msg_type: int | None = None) -> None:
        super().__init__(detail)
        self.seq = seq
        self.msg_type = msg_type


class EncodeError(WireError):
    """A message cannot be encoded: a field is out of its wire range."""


class SyncLostError(WireError):
    """Bytes that are not a message were skipped while hunting for the sync marker."""

    def __init__(self, skipped_bytes: int) -> None:
        super().__init__(f"skipped {skipped_bytes} bytes hunting for sync")
        self.skipped_bytes = skipped_bytes


class HeaderCrcError(WireError):
    """A sync marker was followed by a header whose CRC fails: a false sync or a corrupt header."""


class CrcError(WireError):
    """A message's CRC-32C fails; it is dropped."""


class TruncatedError(WireError):
    """The stream ended inside a message."""


class UnsupportedVersion(WireError):
    """The header names a protocol version this decoder does not speak."""


class LengthError(WireError):
    """The payload length exceeds the device's maximum."""


class UnknownMessageType(WireError):
    """A sound message of a type this decoder does not know."""


class MalformedPayload(WireError):
    """A sound message whose payload does not fit its type."""


# --- encoding: argument checks and the header --------------------------------------------------

def check_uint(name: str, value: int, bits: int) -> None:
    """Refuse (EncodeError) anything but an int that fits ``bits`` unsigned bits (a bool is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise EncodeError(f"{name}={value!r} is not a {bits}-bit unsigned integer")


def check_float(name: str, value: float) -> None:
    """Refuse (EncodeError) anything but a finite int or float: a NaN on the wire would be taken at its word."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EncodeError(f"{name}={value!r} is not a finite number")


def pack_header(mtype: int, seq: int, length: int) -> bytes:
    """The 20 header bytes of a message: the fixed header and its CRC-32C."""
    head = HEAD.pack(SYNC, VERSION, mtype, 0, seq, length)
    return head + U32.pack(crc32c.crc32c(head))


# --- decoding: the header and payload checks ---------------------------------------------------

def header_fields(buf: Any, offset: int = 0) -> tuple[int, int, int]:
    """Message type, sequence number and payload length of the header at ``offset`` (not checked)."""
    _, _, mtype, _, seq, length = HEAD.unpack_from(buf, offset)
    return mtype, seq, length


def header_sound(buf: Any, offset: int = 0) -> bool:
    """True if the header CRC of the (whole, HEADER_LEN-byte) header at ``offset`` holds."""
    return crc32c.crc32c(buf[offset:offset + HEAD.size]) == U32.unpack_from(buf, offset + HEAD.size)[0]


def parse_header(head: Any, max_payload_bytes: int) -> tuple[int, int, int]:
    """Check a header (at least HEADER_LEN bytes at the start of ``head``); return type, seq, length.

    Raise HeaderCrcError (a false sync or a corrupt header), UnsupportedVersion or LengthError,
    the last two carrying the header's seq and type."""
    if not header_sound(head):
        raise HeaderCrcError("header CRC-32C fails")
    _, version, mtype, _, seq, length = HEAD.unpack_from(head)
    if version != VERSION:
        raise UnsupportedVersion(f"version {version} is not {VERSION}", seq=seq, msg_type=mtype)
    if length > max_payload_bytes:
        raise LengthError(f"payload length {length} exceeds {max_payload_bytes}", seq=seq, msg_type=mtype)
    return mtype, seq, length


def need(data: Any, n: int, mtype: int, seq: int, exact: bool = True) -> None:
    """Refuse (MalformedPayload) a payload that is not ``n`` bytes long (at least ``n`` unless ``exact``)."""
    if (len(data) != n) if exact else (len(data) < n):
        raise MalformedPayload(f"payload of type {mtype:#04x} is {len(data)} bytes, expected "
                               f"{'' if exact else 'at least '}{n}", seq=seq, msg_type=mtype)


def text(data: Any, mtype: int, seq: int) -> str:
    """A payload's text field, or MalformedPayload if it is not UTF-8."""
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPayload("text is not UTF-8", seq=seq, msg_type=mtype) from None


def finite(name: str, value: float, mtype: int, seq: int) -> float:
    """``value``, or MalformedPayload if it is a NaN or an infinity."""
    if not math.isfinite(value):
        raise MalformedPayload(f"{name} is not finite", seq=seq, msg_type=mtype)
    return value


# --- the replies every device sends ------------------------------------------------------------

def encode_reply(msg: Ack | Nak) -> tuple[int, list[bytes]]:
    """The message type and payload parts of an ACK or NAK."""
    check_uint("ref_seq", msg.ref_seq, 32)
    check_uint("code", msg.code, 16)
    mtype = FamilyType.ACK if isinstance(msg, Ack) else FamilyType.NAK
    return mtype, [_REPLY.pack(msg.ref_seq, msg.code), msg.reason.encode("utf-8")]


def decode_reply(mtype: int, seq: int, data: Any) -> Ack | Nak:
    """An ACK or NAK payload (``mtype`` is one of the two)."""
    need(data, _REPLY.size, mtype, seq, exact=False)
    ref_seq, code = _REPLY.unpack_from(data)
    cls = Ack if mtype == FamilyType.ACK else Nak
    return cls(ref_seq=ref_seq, code=code, reason=text(data[_REPLY.size:], mtype, seq), seq=seq)
