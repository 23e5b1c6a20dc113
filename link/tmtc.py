"""TM and TC space packets of the command link: pure encode and decode, no sockets (docs/uplink.md).

TM (lander -> ground): a CCSDS Space Packet (133.0-B-2) with a 7-byte secondary header
(``seconds u32``, ``subseconds u16``, ``packet_type u8``) and one of three bodies: housekeeping
(every channel of the process's interface table, in table order, fixed layout), an event, or a
command verification stage, then a 2-byte Packet Error Control field: the CRC-16/CCITT-FALSE (poly
0x1021, init 0xFFFF, as ECSS PUS uses; ``fastcrc``'s ``crc16.ibm_3740``, which spacepackets uses for
its PUS CRC) of every byte before it, primary header included, counted in the data length. Realtime
TM crosses a link that flips bits; the PEC lets the ground refuse a damaged packet
(:class:`TmCorrupt`) rather than store wrong values.

TC (ground -> lander): a Space Packet whose data field holds the SDLS-style security header (``spi
u16``, ``seq u32``), the command (``opcode u16``, ``present u32``, every argument in table order)
and a MAC trailer that :mod:`link.sdls` adds and checks (the MAC does what a PEC would, and more).

Every size is bounded: strings are cut as the contract says (TM) or refused (TC), a TC packet
larger than :data:`MAX_TC_BYTES` is refused. Telemetry never fails over a value: an integer out
of its encoding's range is clamped, a value of the wrong type becomes the channel's "absent"
value. A command, though, is refused (:class:`TcEncodeError`) when an argument's type or size
cannot be encoded; its range and choices are the target's to check (``Interface.validate_args``).
Decoders take outside bytes: any fault raises :class:`TmtcError` (a
:class:`~framework.errors.ProtocolError`), never another exception; a TM packet whose PEC does not
match raises its subclass :class:`TmCorrupt` before any field is read.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Mapping

from fastcrc import crc16
from spacepackets.ccsds.spacepacket import (
    CCSDS_HEADER_LEN,
    PacketType,
    SequenceFlags,
    SpacePacketHeader,
)

from framework.errors import ProtocolError
from framework.interface import Arg, ChannelSpec, CommandSpec, Interface

__all__ = [
    "TmtcError", "TcEncodeError", "TmCorrupt", "TmType", "SEVERITY_CODES", "STAGES", "STAGE_CODES",
    "MAX_TC_BYTES", "MAX_MAC_LEN", "MAX_ARGS", "CHANNEL_TEXT_MAX", "EVENT_TEXT_MAX", "REASON_MAX",
    "ARG_TEXT_MAX", "ARG_LIST_MAX", "TM_SECONDARY_HEADER_LEN", "PEC_LEN", "SECURITY_HEADER_LEN",
    "COMMAND_HEADER_LEN", "VERIFICATION_COMPONENT", "channel_encoding", "arg_encoding",
    "encode_housekeeping", "encode_event", "encode_verification", "encode_command", "encode_command_body",
    "pec", "check_pec", "split_packets", "split_stream", "is_tc", "Verification", "TmPacket", "decode_tm",
    "decode_command", "TcHeader", "TcPacket", "read_tc_header", "split_tc", "with_trailer",
]


class TmtcError(ProtocolError):
    """Bytes that are not a TM or TC packet of this link (truncated, garbage, unknown ids)."""


class TcEncodeError(TmtcError):
    """A command that cannot be encoded: an argument of the wrong type, too long, out of its
    encoding's range, or a packet over :data:`MAX_TC_BYTES`."""


class TmCorrupt(TmtcError):
    """A TM packet whose Packet Error Control does not match its bytes: damaged on the way (a bit
    flipped, a length cut). Nothing in it can be believed, not even its APID."""


class TmType(IntEnum):
    """``packet_type`` of the TM secondary header."""

    HOUSEKEEPING = 1
    EVENT = 2
    VERIFICATION = 3


SEVERITY_CODES: dict[str, int] = {"info": 0, "warning": 1, "error": 2}
STAGES: tuple[str, ...] = ("received", "accepted", "rejected", "completed", "failed", "duplicate")
STAGE_CODES: dict[str, int] = {s: i for i, s in enumerate(STAGES)}
VERIFICATION_COMPONENT = "ingest"
"""Only the ingest's APIDs send verification packets; one from another APID is refused."""

MAX_TC_BYTES = 4096
MAX_MAC_LEN = 32
MAX_ARGS = 32  # bits of ``present``
CHANNEL_TEXT_MAX = 255
EVENT_TEXT_MAX = 1000
REASON_MAX = 200
ARG_TEXT_MAX = 255
ARG_LIST_MAX = 255
_MAX_DATA_FIELD = 1 << 16

_TM_SECONDARY = struct.Struct(">IHB")
_SECURITY = struct.Struct(">HI")
_COMMAND = struct.Struct(">HI")
_EVENT = struct.Struct(">HB")
_VERIFICATION = struct.Struct(">HIHHB")
_U8, _U16, _U64, _I64, _F64 = (struct.Struct(f) for f in (">B", ">H", ">Q", ">q", ">d"))
TM_SECONDARY_HEADER_LEN = _TM_SECONDARY.size
PEC_LEN = _U16.size
"""The TM packet's trailing Packet Error Control (CRC-16/CCITT-FALSE), counted in its data length."""
SECURITY_HEADER_LEN = _SECURITY.size
COMMAND_HEADER_LEN = _COMMAND.size

I64_MIN, I64_MAX, U64_MAX, U32_MAX, U16_MAX = -(2**63), 2**63 - 1, 2**64 - 1, 2**32 - 1, 2**16 - 1
_TICKS_MAX = (U32_MAX << 16) | 0xFFFF


# -- encodings by type ------------------------------------------------------------------------
def channel_encoding(channel: ChannelSpec) -> str:
    """How a housekeeping channel is laid out: ``i64``, ``f64``, ``u8`` (bool), ``str16`` (u16 length
    + UTF-8) or ``json16`` (u16 length + compact JSON). The XTCE writer reads the same answer."""
    if channel.type is bool:
        return "u8"
    if channel.type is int:
        return "i64"
    if channel.type is float:
        return "f64"
    if channel.type is str:
        return "str16"
    return "json16"


def arg_encoding(arg: Arg) -> str:
    """How a command argument is laid out: ``u64`` (int with min >= 0), ``i64``, ``f64``, ``u8`` (bool),
    ``str8`` (u8 length + UTF-8) or ``list8`` (u8 count + that many i64)."""
    if arg.type is bool:
        return "u8"
    if arg.type is int:
        return "u64" if arg.min is not None and arg.min >= 0 else "i64"
    if arg.type is float:
        return "f64"
    if arg.type is str:
        return "str8"
    return "list8"


# -- small pieces -----------------------------------------------------------------------------
def _clamp(value: int, low: int, high: int) -> int:
    return min(high, max(low, value))


def _utf8_cut(text: str, limit: int) -> bytes:
    """``text`` as UTF-8 of at most ``limit`` bytes, cut on a character boundary."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


def _json_dump(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):  # a non-string key, a cycle
        return json.dumps({"unencodable": repr(value)[:EVENT_TEXT_MAX]}, separators=(",", ":"), ensure_ascii=False)


def _json_cut(value: Any, limit: int) -> bytes:
    """``value`` as compact JSON of at most ``limit`` bytes that still parses: a text too long becomes
    ``{"truncated": true, "text": <its beginning>}``."""
    text = _json_dump(value)
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    room = limit
    while True:
        wrapped = json.dumps({"truncated": True, "text": _utf8_cut(text, room).decode("utf-8")},
                             separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(wrapped) <= limit:
            return wrapped
        room = max(0, room - max(1, len(wrapped) - limit))


def _text16(data: bytes) -> bytes:
    return _U16.pack(len(data)) + data


def _tm_int(value: Any) -> int:
    """An integer channel's value held within i64; anything that is not a number is 0 (absent)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return _clamp(value, I64_MIN, I64_MAX)
    if isinstance(value, float) and not math.isnan(value):
        if math.isinf(value):
            return I64_MAX if value > 0 else I64_MIN
        return _clamp(int(value), I64_MIN, I64_MAX)
    return 0


def _tm_float(value: Any) -> float:
    if isinstance(value, (bool, int, float)):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return math.nan


def _encode_channel(channel: ChannelSpec, value: Any) -> bytes:
    kind = channel_encoding(channel)
    if kind == "i64":
        return _I64.pack(_tm_int(value))
    if kind == "f64":
        return _F64.pack(_tm_float(value))
    if kind == "u8":
        return _U8.pack(1 if isinstance(value, (bool, int, float)) and value else 0)
    if kind == "str16":
        return _text16(b"" if value is None else _utf8_cut(value if isinstance(value, str) else str(value),
                                                           CHANNEL_TEXT_MAX))
    return _text16(b"" if value is None else _json_cut(value, CHANNEL_TEXT_MAX))


def _time_fields(t: Any) -> tuple[int, int]:
    """Mission time (Unix seconds) as ``seconds u32`` + ``subseconds u16`` (1/65536 s), held in range."""
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        return 0, 0
    ticks = _clamp(round(t * 65536), 0, _TICKS_MAX)
    return ticks >> 16, ticks & 0xFFFF


def _primary(packet_type: PacketType, apid: int, seq_count: int, data_len: int, secondary: bool) -> bytes:
    if isinstance(apid, bool) or not isinstance(apid, int) or not 0 <= apid <= 0x7FF:
        raise TmtcError(f"APID {apid!r} is not within 0..0x7ff")
    if not 1 <= data_len <= _MAX_DATA_FIELD:
        raise TmtcError(f"a data field of {data_len} bytes does not fit a Space Packet (1..{_MAX_DATA_FIELD})")
    header = SpacePacketHeader(packet_type, apid, int(seq_count) & 0x3FFF, data_len - 1,
                               sec_header_flag=secondary, seq_flags=SequenceFlags.UNSEGMENTED)
    return header.pack()


def pec(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (poly 0x1021, init 0xFFFF, no reflection, no final XOR): the
    ECSS PUS Packet Error Control, from fastcrc as spacepackets computes it. It detects every
    single-bit error, any odd number of flipped bits, every burst up to 16 bits long, and every 2- or
    3-bit error in up to 4 KiB."""
    return crc16.ibm_3740(bytes(data))


def _tm(apid: int, seq_count: int, t: float, packet_type: TmType, body: bytes) -> bytes:
    seconds, subseconds = _time_fields(t)
    data = _TM_SECONDARY.pack(seconds, subseconds, packet_type) + body
    packet = bytes(_primary(PacketType.TM, apid, seq_count, len(data) + PEC_LEN, True)) + data
    return packet + _U16.pack(pec(packet))


# -- TM encoders ------------------------------------------------------------------------------
def encode_housekeeping(apid: int, seq_count: int, t: float, interface: Interface,
                        fields: Mapping[str, Any]) -> bytes:
    """A housekeeping packet: every channel of ``interface`` in table order (absent ones as 0 / NaN /
    empty); names in ``fields`` that are not channels are left out. TmtcError only for a table whose
    channels cannot fit one packet (over 64 KiB of strings)."""
    body = b"".join(_encode_channel(ch, fields.get(ch.name)) for ch in interface.telemetry.values())
    return _tm(apid, seq_count, t, TmType.HOUSEKEEPING, body)


def _severity_code(severity: Any) -> int:
    if isinstance(severity, str):
        return SEVERITY_CODES.get(severity, SEVERITY_CODES["warning"])
    if isinstance(severity, int) and not isinstance(severity, bool) and 0 <= severity <= 2:
        return severity
    return SEVERITY_CODES["warning"]


def encode_event(apid: int, seq_count: int, t: float, event_id: int, severity: str | int,
                 fields: Mapping[str, Any]) -> bytes:
    """An event packet: id, severity (a name of SEVERITIES or its code; anything else is a warning)
    and the fields as JSON cut to :data:`EVENT_TEXT_MAX` bytes."""
    text = _json_cut(dict(fields), EVENT_TEXT_MAX)
    body = _EVENT.pack(_clamp(_tm_int(event_id), 0, U16_MAX), _severity_code(severity)) + _text16(text)
    return _tm(apid, seq_count, t, TmType.EVENT, body)


def _stage_code(stage: Any) -> int:
    if isinstance(stage, str) and stage in STAGE_CODES:
        return STAGE_CODES[stage]
    if isinstance(stage, int) and not isinstance(stage, bool) and 0 <= stage < len(STAGES):
        return stage
    raise TmtcError(f"verification stage {stage!r} is not one of {list(STAGES)}")


def encode_verification(apid: int, seq_count: int, t: float, spi: int, tc_seq: int, target_apid: int,
                        opcode: int, stage: str | int, reason: str = "") -> bytes:
    """A command verification packet (ingest's APID): which command (SPI + sequence number), its
    target and opcode, the stage reached, and why (cut to :data:`REASON_MAX` bytes)."""
    body = _VERIFICATION.pack(_clamp(_tm_int(spi), 0, U16_MAX), _clamp(_tm_int(tc_seq), 0, U32_MAX),
                              _clamp(_tm_int(target_apid), 0, U16_MAX), _clamp(_tm_int(opcode), 0, U16_MAX),
                              _stage_code(stage))
    body += _text16(_utf8_cut(reason if isinstance(reason, str) else str(reason), REASON_MAX))
    return _tm(apid, seq_count, t, TmType.VERIFICATION, body)


# -- TC encoder -------------------------------------------------------------------------------
def _whole(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TcEncodeError(f"{where} must be an integer, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise TcEncodeError(f"{where} must be an integer, got {value!r}")
        value = int(value)
    return value


def _encode_arg(cmd: str, arg: Arg, value: Any) -> bytes:
    where = f"{cmd}: argument '{arg.name}'"
    kind = arg_encoding(arg)
    if kind == "u8":
        if not isinstance(value, bool):
            raise TcEncodeError(f"{where} must be true or false, got {type(value).__name__}")
        return _U8.pack(int(value))
    if kind in ("u64", "i64"):
        n = _whole(where, value)
        low, high, codec = (0, U64_MAX, _U64) if kind == "u64" else (I64_MIN, I64_MAX, _I64)
        if not low <= n <= high:
            raise TcEncodeError(f"{where}={n} does not fit its encoding ({kind})")
        return codec.pack(n)
    if kind == "f64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TcEncodeError(f"{where} must be a number, got {type(value).__name__}")
        try:
            x = float(value)
        except OverflowError:
            raise TcEncodeError(f"{where} does not fit a f64") from None
        if not math.isfinite(x):
            raise TcEncodeError(f"{where} must be finite, got {x!r}")
        return _F64.pack(x)
    if kind == "str8":
        if not isinstance(value, str):
            raise TcEncodeError(f"{where} must be a string, got {type(value).__name__}")
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:
            raise TcEncodeError(f"{where} is not valid Unicode text") from None
        if len(data) > ARG_TEXT_MAX:
            raise TcEncodeError(f"{where} is {len(data)} bytes of UTF-8, more than {ARG_TEXT_MAX}")
        return _U8.pack(len(data)) + data
    if not isinstance(value, (list, tuple)):
        raise TcEncodeError(f"{where} must be a list of integers, got {type(value).__name__}")
    if len(value) > ARG_LIST_MAX:
        raise TcEncodeError(f"{where} has {len(value)} items, more than {ARG_LIST_MAX}")
    items = [_whole(f"{where}[{i}]", v) for i, v in enumerate(value)]
    for i, n in enumerate(items):
        if not I64_MIN <= n <= I64_MAX:
            raise TcEncodeError(f"{where}[{i}]={n} does not fit its encoding (i64)")
    return _U8.pack(len(items)) + b"".join(_I64.pack(n) for n in items)


def _absent(arg: Arg) -> bytes:
    """An argument left out: zero or empty in its encoding (its ``present`` bit clear)."""
    return {"u8": b"\0", "u64": bytes(8), "i64": bytes(8), "f64": bytes(8), "str8": b"\0", "list8": b"\0"}[
        arg_encoding(arg)]


def encode_command_body(spec: CommandSpec, args: Mapping[str, Any]) -> bytes:
    """``opcode u16``, ``present u32``, then every argument of ``spec`` in table order."""
    if not isinstance(args, Mapping):
        raise TcEncodeError(f"{spec.name}: arguments must be a map, got {type(args).__name__}")
    if len(spec.args) > MAX_ARGS:
        raise TcEncodeError(f"{spec.name}: {len(spec.args)} arguments, more than {MAX_ARGS} fit 'present'")
    if not 0 <= spec.opcode <= U16_MAX:
        raise TcEncodeError(f"{spec.name}: opcode {spec.opcode} does not fit u16")
    known = {a.name for a in spec.args}
    extra = sorted(str(k) for k in args if k not in known)
    if extra:
        raise TcEncodeError(f"{spec.name}: unknown argument(s) {extra}; takes {[a.name for a in spec.args]}")
    present = 0
    parts: list[bytes] = []
    for i, arg in enumerate(spec.args):
        if arg.name in args:
            present |= 1 << i
            parts.append(_encode_arg(spec.name, arg, args[arg.name]))
        else:
            parts.append(_absent(arg))
    return _COMMAND.pack(spec.opcode, present) + b"".join(parts)


def encode_command(apid: int, seq_count: int, spi: int, seq: int, command_spec: CommandSpec,
                   args: Mapping[str, Any]) -> bytes:
    """A TC packet WITHOUT its MAC trailer: primary header (its length field counting only these
    bytes), security header, command. :func:`link.sdls.protect` grows the length field by the
    trailer and appends the MAC; a packet that could not fit :data:`MAX_TC_BYTES` with the longest
    trailer is refused here."""
    for name, value, high in (("SPI", spi, U16_MAX), ("sequence number", seq, U32_MAX)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise TcEncodeError(f"{name} {value!r} does not fit (0..{high})")
    data = _SECURITY.pack(spi, seq) + encode_command_body(command_spec, args)
    total = CCSDS_HEADER_LEN + len(data) + MAX_MAC_LEN
    if total > MAX_TC_BYTES:
        raise TcEncodeError(f"{command_spec.name}: a TC packet of {total} bytes (with its MAC) is over "
                            f"{MAX_TC_BYTES}")
    try:
        header = _primary(PacketType.TC, apid, seq_count, len(data), False)
    except TmtcError as exc:
        raise TcEncodeError(str(exc)) from None
    return header + data


# -- framing ----------------------------------------------------------------------------------
def _header(packet: bytes | bytearray | memoryview) -> SpacePacketHeader:
    if len(packet) < CCSDS_HEADER_LEN:
        raise TmtcError(f"{len(packet)} bytes are shorter than a Space Packet header")
    try:
        header = SpacePacketHeader.unpack(bytes(packet[:CCSDS_HEADER_LEN]))
    except Exception as exc:  # spacepackets raises ValueError and its own types
        raise TmtcError(f"bad Space Packet header: {type(exc).__name__}: {exc}") from None
    if header.ccsds_version != 0:
        raise TmtcError(f"Space Packet version {header.ccsds_version} is not 0")
    return header


def split_stream(data: bytes | bytearray | memoryview) -> tuple[list[bytes], bytes, TmtcError | None]:
    """The whole Space Packets at the front of a concatenation, cut by their length fields (no
    packet is checked), the bytes from the first place that does not split to the end (``b""``
    when all split), and why they did not. A reader of a damaged datagram keeps what comes before
    the damage; nothing after a damaged header can be cut reliably."""
    view = memoryview(bytes(data))
    out: list[bytes] = []
    at = 0
    while at < len(view):
        try:
            header = _header(view[at:])
        except TmtcError as exc:
            return out, bytes(view[at:]), TmtcError(f"at byte {at}: {exc}")
        end = at + header.packet_len
        if end > len(view):
            return out, bytes(view[at:]), TmtcError(
                f"packet at byte {at} claims {header.packet_len} bytes, {len(view) - at} remain")
        out.append(bytes(view[at:end]))
        at = end
    return out, b"", None


def split_packets(data: bytes | bytearray | memoryview) -> list[bytes]:
    """The Space Packets of a datagram or segment file (a plain concatenation; each carries its
    length, its PEC included). A stream that ends inside a packet or holds a non-version-0 header
    is refused whole."""
    packets, _rest, error = split_stream(data)
    if error is not None:
        raise error
    return packets


def is_tc(datagram: bytes | bytearray | memoryview) -> bool:
    """Whether a datagram starts like a TC Space Packet (version bits 000, type bit 1): the
    downlink's radio port sends those to ingest; CFDP (version bits 001) keeps its way."""
    return len(datagram) >= 1 and (datagram[0] & 0xF0) == 0x10


def _exact(packet: bytes | bytearray | memoryview, header: SpacePacketHeader) -> None:
    if header.packet_len != len(packet):
        raise TmtcError(f"length field says {header.packet_len} bytes, the packet has {len(packet)}")
    if header.seq_flags != SequenceFlags.UNSEGMENTED:
        raise TmtcError(f"packet is segmented ({header.seq_flags.name})")


class _Reader:
    """Reads fields off a body; running past its end or leaving bytes over is a TmtcError."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.at = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise TmtcError(f"{self.what}: truncated at byte {self.at} (needs {n} more, has {len(self.data) - self.at})")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def unpack(self, codec: struct.Struct) -> tuple[Any, ...]:
        return codec.unpack(self.take(codec.size))

    def one(self, codec: struct.Struct) -> Any:
        return self.unpack(codec)[0]

    def text(self, length_codec: struct.Struct, limit: int) -> str:
        n = self.one(length_codec)
        if n > limit:
            raise TmtcError(f"{self.what}: a text of {n} bytes is over its limit of {limit}")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise TmtcError(f"{self.what}: text is not UTF-8") from None

    def json(self, limit: int) -> Any:
        text = self.text(_U16, limit)
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            raise TmtcError(f"{self.what}: text is not JSON") from None

    def done(self) -> None:
        if self.at != len(self.data):
            raise TmtcError(f"{self.what}: {len(self.data) - self.at} bytes left over")


# -- TM decoder -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verification:
    """The body of a verification packet."""

    spi: int
    tc_seq: int
    target_apid: int
    opcode: int
    stage: str  # one of STAGES
    reason: str = ""


@dataclass(frozen=True)
class TmPacket:
    """One decoded TM packet. ``values`` is set for housekeeping; ``event_id``, ``event_name``
    (None when the table has no such id), ``severity`` and ``fields`` for events; ``verification``
    for verification packets."""

    apid: int
    seq_count: int
    t: float
    packet_type: TmType
    process: str
    values: dict[str, Any] = field(default_factory=dict)
    event_id: int | None = None
    event_name: str | None = None
    severity: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    verification: Verification | None = None


def _decode_channel(reader: _Reader, channel: ChannelSpec) -> Any:
    kind = channel_encoding(channel)
    if kind == "i64":
        return reader.one(_I64)
    if kind == "f64":
        return reader.one(_F64)
    if kind == "u8":
        flag = reader.one(_U8)
        if flag > 1:
            raise TmtcError(f"{reader.what}: channel '{channel.name}' is a bool, got {flag}")
        return bool(flag)
    if kind == "str16":
        return reader.text(_U16, CHANNEL_TEXT_MAX)
    if reader.data[reader.at:reader.at + 2] == b"\0\0":
        reader.take(2)
        return {}
    return reader.json(CHANNEL_TEXT_MAX)


def _decode_event(reader: _Reader, interface: Interface) -> dict[str, Any]:
    event_id, severity = reader.unpack(_EVENT)
    if severity >= len(SEVERITY_CODES):
        raise TmtcError(f"{reader.what}: severity code {severity} is not one of 0..2")
    fields = reader.json(EVENT_TEXT_MAX)
    if not isinstance(fields, dict):
        raise TmtcError(f"{reader.what}: event fields are not a JSON object")
    name = next((e.name for e in interface.events.values() if e.id == event_id), None)
    return {"event_id": event_id, "event_name": name, "severity": list(SEVERITY_CODES)[severity], "fields": fields}


def _decode_verification(reader: _Reader, interface: Interface) -> Verification:
    if interface.component != VERIFICATION_COMPONENT:
        raise TmtcError(f"{reader.what}: a verification packet from a '{interface.component}' APID "
                        f"(only {VERIFICATION_COMPONENT} sends them)")
    spi, tc_seq, target_apid, opcode, stage = reader.unpack(_VERIFICATION)
    if stage >= len(STAGES):
        raise TmtcError(f"{reader.what}: stage code {stage} is not one of 0..{len(STAGES) - 1}")
    return Verification(spi, tc_seq, target_apid, opcode, STAGES[stage], reader.text(_U16, REASON_MAX))


def check_pec(packet: bytes | bytearray | memoryview) -> None:
    """Raise :class:`TmCorrupt` unless ``packet`` ends in the PEC of everything before it."""
    if len(packet) < CCSDS_HEADER_LEN + PEC_LEN:
        raise TmCorrupt(f"{len(packet)} bytes are shorter than a Space Packet header and its PEC")
    body, (sent,) = packet[:-PEC_LEN], _U16.unpack(packet[-PEC_LEN:])
    if pec(body) != sent:
        raise TmCorrupt(f"PEC {sent:#06x} does not match the packet's CRC {pec(body):#06x}")


def decode_tm(packet: bytes | bytearray | memoryview, dictionary: Any) -> TmPacket:
    """One TM packet, its body read against the interface table of its APID (``dictionary`` is a
    :class:`link.dictionary.Dictionary`). The PEC is checked first, over the bytes as given:
    :class:`TmCorrupt` if it does not match (a damaged packet says nothing, not even its APID);
    TmtcError (or the dictionary's UnknownEntry, also a ProtocolError) for anything else that is
    not exactly such a packet."""
    packet = bytes(packet)
    check_pec(packet)
    header = _header(packet)
    _exact(packet, header)
    if header.packet_type != PacketType.TM or not header.sec_header_flag:
        raise TmtcError("not a TM packet with a secondary header")
    interface = dictionary.interface_of(header.apid)
    process = dictionary.process_of(header.apid)
    reader = _Reader(packet[CCSDS_HEADER_LEN:-PEC_LEN], f"TM packet APID {header.apid:#x}")
    seconds, subseconds, type_code = reader.unpack(_TM_SECONDARY)
    if type_code not in TmType._value2member_map_:
        raise TmtcError(f"{reader.what}: packet type {type_code} is not 1..3")
    kind = TmType(type_code)
    common: dict[str, Any] = {"apid": header.apid, "seq_count": header.seq_count,
                              "t": seconds + subseconds / 65536, "packet_type": kind, "process": process}
    if kind is TmType.HOUSEKEEPING:
        values = {ch.name: _decode_channel(reader, ch) for ch in interface.telemetry.values()}
        reader.done()
        return TmPacket(**common, values=values)
    if kind is TmType.EVENT:
        event = _decode_event(reader, interface)
        reader.done()
        return TmPacket(**common, **event)
    verification = _decode_verification(reader, interface)
    reader.done()
    return TmPacket(**common, verification=verification)


# -- TC decoder -------------------------------------------------------------------------------
def _decode_arg(reader: _Reader, arg: Arg) -> Any:
    kind = arg_encoding(arg)
    if kind == "u8":
        flag = reader.one(_U8)
        if flag > 1:
            raise TmtcError(f"{reader.what}: argument '{arg.name}' is a bool, got {flag}")
        return bool(flag)
    if kind == "u64":
        return reader.one(_U64)
    if kind == "i64":
        return reader.one(_I64)
    if kind == "f64":
        x = reader.one(_F64)
        if not math.isfinite(x):
            raise TmtcError(f"{reader.what}: argument '{arg.name}' is not finite")
        return x
    if kind == "str8":
        return reader.text(_U8, ARG_TEXT_MAX)
    count = reader.one(_U8)
    return [reader.one(_I64) for _ in range(count)]


def decode_command(body: bytes | bytearray | memoryview, interface: Interface) -> tuple[CommandSpec, dict[str, Any]]:
    """The command bytes of a TC packet (opcode, present, arguments; no headers, no MAC) read
    against the target's table: its CommandSpec and the arguments present. Only one encoding of a
    command is accepted (absent arguments zero, no bytes over), so a decoded command re-encodes
    to the same bytes."""
    reader = _Reader(bytes(body), f"{interface.component} command")
    opcode, present = reader.unpack(_COMMAND)
    spec = next((c for c in interface.commands.values() if c.opcode == opcode), None)
    if spec is None:
        raise TmtcError(f"{reader.what}: no command has opcode {opcode:#x}")
    reader.what = f"{interface.component} command {spec.name}"
    if present >> len(spec.args):
        raise TmtcError(f"{reader.what}: 'present' {present:#x} names arguments it does not have")
    args: dict[str, Any] = {}
    for i, arg in enumerate(spec.args):
        start = reader.at
        value = _decode_arg(reader, arg)
        if present >> i & 1:
            args[arg.name] = value
        elif reader.data[start:reader.at] != _absent(arg):
            raise TmtcError(f"{reader.what}: absent argument '{arg.name}' is not zero")
    reader.done()
    return spec, args


@dataclass(frozen=True)
class TcHeader:
    """What a TC packet says of itself before anything is believed: the primary header's APID and
    count, and the security header's SPI and sequence number."""

    apid: int
    seq_count: int
    spi: int
    seq: int


@dataclass(frozen=True)
class TcPacket:
    """A TC packet split at its trailer: ``authenticated`` is everything the MAC covers, ``body``
    the command bytes (for :func:`decode_command`), ``mac`` the trailer."""

    header: TcHeader
    authenticated: bytes
    body: bytes
    mac: bytes


def read_tc_header(packet: bytes | bytearray | memoryview) -> TcHeader:
    """The headers of a TC packet: a version-0, unsegmented TC Space Packet without secondary header,
    whose length field matches its size, no larger than :data:`MAX_TC_BYTES`, holding at least a
    security header and a command header."""
    if len(packet) > MAX_TC_BYTES:
        raise TmtcError(f"a TC packet of {len(packet)} bytes is over {MAX_TC_BYTES}")
    header = _header(packet)
    _exact(packet, header)
    if header.packet_type != PacketType.TC or header.sec_header_flag:
        raise TmtcError("not a TC packet without a secondary header")
    if len(packet) < CCSDS_HEADER_LEN + SECURITY_HEADER_LEN + COMMAND_HEADER_LEN:
        raise TmtcError(f"a TC packet of {len(packet)} bytes holds no security and command header")
    spi, seq = _SECURITY.unpack_from(bytes(packet), CCSDS_HEADER_LEN)
    return TcHeader(header.apid, header.seq_count, spi, seq)


def split_tc(packet: bytes | bytearray | memoryview, mac_len: int) -> TcPacket:
    """A TC packet (checked as :func:`read_tc_header` does) split before its ``mac_len``-byte trailer."""
    packet = bytes(packet)
    header = read_tc_header(packet)
    start = CCSDS_HEADER_LEN + SECURITY_HEADER_LEN
    if len(packet) < start + COMMAND_HEADER_LEN + mac_len:
        raise TmtcError(f"a TC packet of {len(packet)} bytes is too short for its {mac_len}-byte MAC")
    end = len(packet) - mac_len
    return TcPacket(header, packet[:end], packet[start:end], packet[end:])


def with_trailer(packet: bytes | bytearray | memoryview, mac_len: int) -> bytes:
    """A TC packet without MAC (as :func:`encode_command` makes it) with its length field grown by
    ``mac_len``: the header the MAC covers is the one that travels."""
    packet = bytes(packet)
    header = _header(packet)
    _exact(packet, header)
    if header.packet_type != PacketType.TC:
        raise TmtcError("not a TC packet")
    if len(packet) + mac_len > MAX_TC_BYTES:
        raise TcEncodeError(f"a TC packet of {len(packet) + mac_len} bytes is over {MAX_TC_BYTES}")
    grown = SpacePacketHeader(PacketType.TC, header.apid, header.seq_count, header.data_len + mac_len,
                              sec_header_flag=header.sec_header_flag, seq_flags=header.seq_flags)
    return grown.pack() + packet[CCSDS_HEADER_LEN:]
