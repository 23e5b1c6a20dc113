"""Mechanism wire protocol: pure encode and decode, no sockets.

One envelope for the whole device family: :mod:`drivers.links.envelope` owns
it (sync marker, version, header CRC, sequence, length, payload, message
CRC-32C), its error classes and argument checks, and the ACK/NAK payload;
:mod:`drivers.links.messages` owns the messages every device speaks. Only the
mechanism's own message types and payloads are defined here. Envelope
(little-endian)::

    0   4  sync 1A CF FC 1D      4   1  version (1)      5  1  message type
    6   2  flags (0)             8   4  sequence         12 4  payload length
    16  4  header CRC-32C        20  n  payload          20+n 4 CRC-32C of all before

Mechanism messages are small (at most :data:`MAX_PAYLOAD_BYTES`), so this
module carries a simple stream decoder of its own for them; the camera's
(:mod:`drivers.camera.decoder`) is built for frames of many megabytes.

Message types: PING 0x01 and STATUS 0x02, ACK 0x80 and NAK 0x81 are the
family's (:class:`drivers.links.messages.FamilyType`, so codes and layouts
cannot drift); ARM 0x40, DISARM 0x41, FIRE 0x42 (circuit), STOP 0x43 and
SAMPLE 0xC0 (the answer to STATUS) are the mechanism's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Union

import crc32c

from drivers.links.envelope import (
    HEADER_LEN, SYNC, TRAILER_LEN, U32, VERSION, CrcError, EncodeError, HeaderCrcError, LengthError,
    MalformedPayload, SyncLostError, TruncatedError, UnknownMessageType, UnsupportedVersion, WireError, check_float,
    check_uint, decode_reply, encode_reply, finite, need, pack_header, parse_header, text,
)
from drivers.links.messages import Ack, Code, FamilyType, Nak, Ping, StatusRequest

__all__ = [
    "SYNC", "VERSION", "MAX_PAYLOAD_BYTES", "MsgType", "Code", "STATE_CODES", "CIRCUIT_CODES",
    "Ping", "StatusRequest", "Arm", "Disarm", "Fire", "Stop", "Ack", "Nak", "Sample", "Message", "COMMAND_TYPES",
    "WireError", "EncodeError", "CrcError", "HeaderCrcError", "SyncLostError", "TruncatedError",
    "UnsupportedVersion", "LengthError", "UnknownMessageType", "MalformedPayload",
    "encode", "decode_payload", "StreamDecoder",
]

MAX_PAYLOAD_BYTES = 4096
STATE_CODES = ("stowed", "armed", "releasing", "deploying", "deployed", "failed")
CIRCUIT_CODES = ("", "primary", "secondary")


class MsgType(FamilyType):
    """The mechanism's type codes beside the family's PING, STATUS, ACK and NAK (inherited)."""

    ARM = 0x40
    DISARM = 0x41
    FIRE = 0x42
    STOP = 0x43
    SAMPLE = 0xC0


@dataclass(frozen=True, kw_only=True)
class Arm:
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class Disarm:
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class Fire:
    circuit: str
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class Stop:
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class Sample:
    """The mechanism's sensors at device time ``t_s`` (the answer to STATUS)."""

    ref_seq: int
    t_s: float
    state: str
    circuit: str
    released: bool
    angle_valid: bool
    stowed_switch: bool
    deployed_switch: bool
    angle_deg: float
    current_a: float
    temp_c: float
    element_temp_c: float
    reason: str = ""
    seq: int = 0


Message = Union[Ping, StatusRequest, Arm, Disarm, Fire, Stop, Ack, Nak, Sample]
COMMAND_TYPES = (Ping, StatusRequest, Arm, Disarm, Fire, Stop)

_EMPTY: dict[type, int] = {Ping: MsgType.PING, StatusRequest: MsgType.STATUS, Arm: MsgType.ARM,
                           Disarm: MsgType.DISARM, Stop: MsgType.STOP}
_SAMPLE = struct.Struct("<IdBBBxdddd")  # ref_seq, t_s, state, circuit, flags, pad, angle, current, temp, element


def _code(name: str, value: str, table: tuple[str, ...]) -> int:
    if value not in table:
        raise EncodeError(f"{name}={value!r} is not one of {list(table)}")
    return table.index(value)


def _encode_sample(m: Sample) -> bytes:
    check_uint("ref_seq", m.ref_seq, 32)
    for name in ("t_s", "angle_deg", "current_a", "temp_c", "element_temp_c"):
        check_float(name, getattr(m, name))
    flags = (m.released << 0) | (m.angle_valid << 1) | (m.stowed_switch << 2) | (m.deployed_switch << 3)
    return _SAMPLE.pack(m.ref_seq, m.t_s, _code("state", m.state, STATE_CODES),
                        _code("circuit", m.circuit, CIRCUIT_CODES), flags, m.angle_deg, m.current_a, m.temp_c,
                        m.element_temp_c) + m.reason.encode("utf-8")


def _encode_payload(msg: Message) -> tuple[int, bytes]:
    t = type(msg)
    if t in _EMPTY:
        return _EMPTY[t], b""
    if isinstance(msg, Fire):
        return MsgType.FIRE, bytes([_code("circuit", msg.circuit, CIRCUIT_CODES[1:]) + 1])
    if isinstance(msg, (Ack, Nak)):
        mtype, parts = encode_reply(msg)
        return mtype, b"".join(parts)
    if isinstance(msg, Sample):
        return MsgType.SAMPLE, _encode_sample(msg)
    raise EncodeError(f"not a mechanism protocol message: {t.__name__}")


def encode(msg: Message) -> bytes:
    """One message as its complete envelope bytes."""
    check_uint("seq", msg.seq, 32)
    mtype, payload = _encode_payload(msg)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise EncodeError(f"payload is {len(payload)} bytes, more than {MAX_PAYLOAD_BYTES}")
    body = pack_header(mtype, msg.seq, len(payload)) + payload
    return body + U32.pack(crc32c.crc32c(body))


def _decode_sample(data: bytes, seq: int) -> Sample:
    mt = MsgType.SAMPLE
    need(data, _SAMPLE.size, mt, seq, exact=False)
    ref, t_s, state, circuit, flags, angle, current, temp, element = _SAMPLE.unpack_from(data)
    if state >= len(STATE_CODES) or circuit >= len(CIRCUIT_CODES) or flags > 0x0F:
        raise MalformedPayload(f"state {state}, circuit {circuit} or flags {flags:#x} out of range",
                               seq=seq, msg_type=mt)
    for name, v in (("t_s", t_s), ("angle_deg", angle), ("current_a", current), ("temp_c", temp),
                    ("element_temp_c", element)):
        finite(name, v, mt, seq)
    return Sample(ref_seq=ref, t_s=t_s, state=STATE_CODES[state], circuit=CIRCUIT_CODES[circuit],
                  released=bool(flags & 1), angle_valid=bool(flags & 2), stowed_switch=bool(flags & 4),
                  deployed_switch=bool(flags & 8), angle_deg=angle, current_a=current, temp_c=temp,
                  element_temp_c=element, reason=text(data[_SAMPLE.size:], mt, seq), seq=seq)


def decode_payload(mtype: int, seq: int, data: bytes) -> Message:
    """Decode one payload of a sound envelope; raise UnknownMessageType or MalformedPayload."""
    for cls, code in _EMPTY.items():
        if code == mtype:
            need(data, 0, mtype, seq)
            return cls(seq=seq)
    if mtype == MsgType.FIRE:
        need(data, 1, mtype, seq)
        if data[0] not in (1, 2):
            raise MalformedPayload(f"circuit code {data[0]} is not 1 or 2", seq=seq, msg_type=mtype)
        return Fire(circuit=CIRCUIT_CODES[data[0]], seq=seq)
    if mtype in (MsgType.ACK, MsgType.NAK):
        return decode_reply(mtype, seq, data)
    if mtype == MsgType.SAMPLE:
        return _decode_sample(data, seq)
    raise UnknownMessageType(f"unknown message type {mtype:#04x}", seq=seq, msg_type=mtype)


class StreamDecoder:
    """``feed(bytes)`` returns complete messages and typed errors in order; never raises.

    Hunts for the sync marker; a header whose CRC fails, or whose message CRC
    fails, resumes the hunt one byte after that sync, so nothing sound hidden
    behind garbage is lost. Garbage is reported as one SyncLostError per run.
    """

    def __init__(self, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self._max = max_payload_bytes
        self._buf = bytearray()
        self._skipped = 0
        self.bytes_skipped = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message | WireError]:
        self._buf += data
        out: list[Message | WireError] = []
        while True:
            start = self._buf.find(SYNC)
            if start < 0:
                self._skip(max(0, len(self._buf) - (len(SYNC) - 1)))
                break
            self._skip(start)
            if len(self._buf) < HEADER_LEN:
                break
            self._report(out)
            done = self._one(out)
            if done is None:
                break
        return out

    def finish(self) -> list[Message | WireError]:
        """The stream ended: whatever is buffered is truncated or garbage."""
        out: list[Message | WireError] = []
        if self._buf.startswith(SYNC):
            out.append(TruncatedError(f"stream ended {len(self._buf)} bytes into a message"))
            self._skip(len(self._buf))
            self._skipped = 0
        else:
            self._skip(len(self._buf))
        self._report(out)
        return out

    def _skip(self, n: int) -> None:
        if n:
            del self._buf[:n]
            self._skipped += n
            self.bytes_skipped += n

    def _report(self, out: list[Message | WireError]) -> None:
        if self._skipped:
            out.append(SyncLostError(self._skipped))
            self._skipped = 0

    def _one(self, out: list[Message | WireError]) -> bool | None:
        """Decode the message at the start of the buffer; None when more bytes are needed."""
        try:
            mtype, seq, length = parse_header(bytes(self._buf[:HEADER_LEN]), self._max)
        except WireError as exc:
            return self._resync(out, exc)
        end = HEADER_LEN + length
        if len(self._buf) < end + TRAILER_LEN:
            return None
        if crc32c.crc32c(self._buf[:end]) != U32.unpack_from(self._buf, end)[0]:
            return self._resync(out, CrcError(f"message CRC-32C fails (type {mtype:#04x})", seq=seq,
                                              msg_type=mtype))
        payload = bytes(self._buf[HEADER_LEN:end])
        del self._buf[:end + TRAILER_LEN]
        try:
            out.append(decode_payload(mtype, seq, payload))
        except WireError as exc:
            out.append(exc)
        return True

    def _resync(self, out: list[Message | WireError], error: WireError) -> bool:
        out.append(error)
        del self._buf[:1]  # reported as an error, not counted as garbage too
        self.bytes_skipped += 1
        return True
