"""link.tmtc: TM and TC packets round-trip; truncated and garbage bytes raise only ProtocolError; a TM
packet's PEC catches every single-bit flip."""

from __future__ import annotations

import json
import math
import struct

import pytest
from hypothesis import given, strategies as st
from spacepackets.ccsds.spacepacket import PacketType, SequenceFlags, SpacePacketHeader

from framework.errors import ProtocolError
from framework.interface import Arg, ChannelSpec, CommandSpec, Interface
from link.dictionary import Dictionary
from link.tmtc import (
    CHANNEL_TEXT_MAX,
    EVENT_TEXT_MAX,
    MAX_TC_BYTES,
    PEC_LEN,
    REASON_MAX,
    STAGES,
    TcEncodeError,
    TmCorrupt,
    TmtcError,
    TmType,
    decode_command,
    decode_tm,
    encode_command,
    encode_event,
    encode_housekeeping,
    encode_verification,
    is_tc,
    pec,
    read_tc_header,
    split_packets,
    split_stream,
    split_tc,
    with_trailer,
)

I64 = (-(2**63), 2**63 - 1)
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in {"commands_accepted", "commands_rejected", "events_published", "events_unpublished",
                        "events_suppressed", "log_lines_dropped"})
TEXT = st.text(max_size=60)
JSON_VALUE = st.one_of(st.integers(-1000, 1000), st.text(max_size=6), st.booleans(), st.none())
TICKS = st.integers(0, 2**48 - 1)


def _value(kind: type) -> st.SearchStrategy:
    return {int: st.integers(*I64), float: st.floats(allow_nan=False), bool: st.booleans(), str: TEXT,
            dict: st.dictionaries(st.text(max_size=6), JSON_VALUE, max_size=4)}[kind]


@st.composite
def channel_tables(draw) -> tuple[Interface, dict]:
    names = draw(st.lists(NAMES, unique=True, max_size=20))
    kinds = [draw(st.sampled_from([int, float, bool, str, dict])) for _ in names]
    channels = [ChannelSpec(i + 1, n, "", k) for i, (n, k) in enumerate(zip(names, kinds))]
    iface = Interface.build("imaging", telemetry=channels)
    fields = {}
    for ch in iface.telemetry.values():
        if draw(st.booleans()):
            fields[ch.name] = draw(_value(ch.type))
    return iface, fields


def _absent(kind: type):
    return {int: 0, float: math.nan, bool: False, str: "", dict: {}}[kind]


def _same(a, b) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


def _dictionary(iface: Interface) -> Dictionary:
    return Dictionary.from_interfaces({"proc": iface, "ingest": Interface.build("ingest")})


def _sealed(unsealed: bytes | bytearray) -> bytes:
    """A TM packet's bytes before its PEC, with the PEC appended (the data length must count it)."""
    return bytes(unsealed) + struct.pack(">H", pec(unsealed))


def _resealed(packet: bytes | bytearray) -> bytes:
    """A TM packet changed on purpose, its PEC made right again: the decoder's other checks are reached."""
    return _sealed(packet[:-PEC_LEN])


# -- TM -----------------------------------------------------------------------------------------
@given(channel_tables(), st.integers(0, 2**20), TICKS)
def test_housekeeping_round_trips_every_channel_in_table_order(table, seq_count, ticks):
    iface, fields = table
    d = _dictionary(iface)
    packet = encode_housekeeping(0x20, seq_count, ticks / 65536, iface, fields)
    tm = decode_tm(packet, d)
    assert (tm.apid, tm.seq_count, tm.t, tm.packet_type, tm.process) == (0x20, seq_count & 0x3FFF, ticks / 65536,
                                                                         TmType.HOUSEKEEPING, "proc")
    assert list(tm.values) == list(iface.telemetry)
    for ch in iface.telemetry.values():
        expected = fields[ch.name] if ch.name in fields else _absent(ch.type)
        assert _same(tm.values[ch.name], expected), ch.name


@given(st.integers(), st.floats(allow_nan=False))
def test_housekeeping_clamps_ints_and_turns_wrong_types_into_absent(big, x):
    iface = Interface.build("imaging", telemetry=[ChannelSpec(1, "n", "", int), ChannelSpec(2, "f", "", float),
                                                  ChannelSpec(3, "s", "", str), ChannelSpec(4, "b", "", bool)])
    tm = decode_tm(encode_housekeeping(0x20, 0, 0, iface, {"n": big, "f": "oops", "s": x, "b": None}),
                   _dictionary(iface))
    assert tm.values["n"] == min(I64[1], max(I64[0], big))
    assert math.isnan(tm.values["f"]) and tm.values["s"] == str(x) and tm.values["b"] is False


def test_long_strings_are_cut_and_dicts_stay_json():
    iface = Interface.build("imaging", telemetry=[ChannelSpec(1, "s", "", str), ChannelSpec(2, "d", "", dict)])
    text = "é" * 300  # 600 bytes of UTF-8: cut on a character boundary
    tm = decode_tm(encode_housekeeping(0x20, 0, 0, iface, {"s": text, "d": {"k": "x" * 1000}}), _dictionary(iface))
    assert tm.values["s"] == "é" * (CHANNEL_TEXT_MAX // 2)
    assert tm.values["d"]["truncated"] is True and tm.values["d"]["text"].startswith('{"k":"xxx')


@given(st.integers(0, 0xFFFF), st.sampled_from(["info", "warning", "error"]),
       st.dictionaries(st.text(max_size=8), JSON_VALUE, max_size=8), TICKS)
def test_event_round_trips(event_id, severity, fields, ticks):
    iface = Interface.build("imaging")
    tm = decode_tm(encode_event(0x20, 7, ticks / 65536, event_id, severity, fields), _dictionary(iface))
    assert (tm.packet_type, tm.event_id, tm.severity, tm.fields, tm.t) == (TmType.EVENT, event_id, severity, fields,
                                                                           ticks / 65536)
    named = [e.name for e in iface.events.values() if e.id == event_id]
    assert tm.event_name == (named[0] if named else None)


@given(st.text(min_size=1))
def test_event_fields_too_long_still_decode_as_an_object(text):
    tm = decode_tm(encode_event(0x20, 0, 0, 1, "info", {"t": text * 200, "bad": {1, 2}}),
                   _dictionary(Interface.build("imaging")))
    assert isinstance(tm.fields, dict)
    assert len(json.dumps(tm.fields, ensure_ascii=False).encode()) <= EVENT_TEXT_MAX + 10


@given(st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
       st.sampled_from(STAGES), st.text(max_size=400), TICKS)
def test_verification_round_trips_with_reason_cut(spi, seq, target, opcode, stage, reason, ticks):
    d = _dictionary(Interface.build("imaging"))
    tm = decode_tm(encode_verification(0xA0, 1, ticks / 65536, spi, seq, target, opcode, stage, reason), d)
    v = tm.verification
    assert (v.spi, v.tc_seq, v.target_apid, v.opcode, v.stage) == (spi, seq, target, opcode, stage)
    assert reason.encode().startswith(v.reason.encode()) and len(v.reason.encode()) <= REASON_MAX


def test_verification_from_another_apid_is_refused():
    d = _dictionary(Interface.build("imaging"))
    with pytest.raises(TmtcError, match="only ingest"):
        decode_tm(encode_verification(0x20, 1, 0, 1, 1, 0x20, 2, "accepted"), d)


def test_verification_ints_are_clamped():
    d = _dictionary(Interface.build("imaging"))
    v = decode_tm(encode_verification(0xA0, 1, 0, -5, 2**40, 2**20, -1, 3, "r"), d).verification
    assert (v.spi, v.tc_seq, v.target_apid, v.opcode, v.stage) == (0, 2**32 - 1, 0xFFFF, 0, "completed")


def test_tm_header_follows_the_contract():
    packet = encode_event(0x21, 0x4005, 10.5, 3, "error", {})
    h = SpacePacketHeader.unpack(packet)
    assert (h.ccsds_version, h.packet_type, h.sec_header_flag, h.apid, h.seq_flags, h.seq_count) == (
        0, PacketType.TM, True, 0x21, SequenceFlags.UNSEGMENTED, 5)
    assert struct.unpack_from(">IHB", packet, 6) == (10, 0x8000, 2)
    assert h.packet_len == len(packet)


@given(channel_tables(), st.data())
def test_split_packets_returns_each_packet_of_a_concatenation(table, data):
    iface, fields = table
    packets = [encode_housekeeping(0x20, i, 0, iface, fields) for i in range(data.draw(st.integers(0, 4)))]
    packets += [encode_event(0x20, 9, 0, 1, "info", {"a": 1})]
    stream = b"".join(packets)
    assert split_packets(stream) == packets
    cut = data.draw(st.integers(1, len(stream) - 1))
    if cut not in {sum(map(len, packets[:i])) for i in range(len(packets) + 1)}:
        with pytest.raises(ProtocolError):
            split_packets(stream[:cut])


@given(st.binary(max_size=300))
def test_garbage_raises_only_protocol_errors(data):
    d = _dictionary(Interface.build("imaging", telemetry=[ChannelSpec(1, "s", "", str)]))
    iface = Interface.build("imaging", commands=[CommandSpec(0x10, "GO", (Arg("n", int), Arg("s", str)))])
    for call in (lambda: split_packets(data), lambda: decode_tm(data, d), lambda: decode_command(data, iface),
                 lambda: read_tc_header(data), lambda: split_tc(data, 16)):
        try:
            call()
        except ProtocolError:
            pass


@given(st.sampled_from([0x20, 0xA0]), st.integers(1, 3), st.binary(max_size=120), st.binary(max_size=60))
def test_garbage_bodies_behind_valid_headers_raise_only_protocol_errors(apid, kind, body, command):
    iface = Interface.build("imaging", telemetry=[ChannelSpec(1, "s", "", str), ChannelSpec(2, "d", "", dict),
                                                  ChannelSpec(3, "b", "", bool)],
                            commands=[CommandSpec(0x10, "GO", (Arg("n", int), Arg("s", str), Arg("l", list),
                                                               Arg("b", bool), Arg("x", float)))])
    data = struct.pack(">IHB", 0, 0, kind) + body
    packet = _sealed(SpacePacketHeader(PacketType.TM, apid, 0, len(data) + PEC_LEN - 1,
                                       sec_header_flag=True).pack() + data)
    try:
        decode_tm(packet, _dictionary(iface))
    except ProtocolError:
        pass
    try:
        decode_command(struct.pack(">HI", 0x10, int.from_bytes(command[:1] or b"\0", "big") & 0x1F) + command[1:],
                       iface)
    except ProtocolError:
        pass


@given(st.data())
def test_every_truncation_of_a_tm_packet_is_refused(data):
    iface = Interface.build("imaging", telemetry=[ChannelSpec(1, "s", "", str), ChannelSpec(2, "n", "", int)])
    d = _dictionary(iface)
    packet = data.draw(st.sampled_from([encode_housekeeping(0x20, 1, 5, iface, {"s": "abc", "n": 4}),
                                        encode_event(0x20, 1, 5, 1, "info", {"x": "y"}),
                                        encode_verification(0xA0, 1, 5, 1, 2, 0x20, 3, "received", "ok")]))
    cut = data.draw(st.integers(0, len(packet) - 1))
    with pytest.raises(ProtocolError):
        decode_tm(packet[:cut], d)
    with pytest.raises(ProtocolError):
        decode_tm(packet + b"\0", d)


def test_unknown_apid_and_type_are_refused():
    d = _dictionary(Interface.build("imaging"))
    with pytest.raises(ProtocolError):
        decode_tm(encode_event(0x55, 0, 0, 1, "info", {}), d)
    bad_type = bytearray(encode_event(0x20, 0, 0, 1, "info", {}))
    bad_type[12] = 9
    with pytest.raises(TmtcError, match="packet type"):
        decode_tm(_resealed(bad_type), d)
    with pytest.raises(TmCorrupt):
        decode_tm(bytes(bad_type), d)  # the same change without a matching PEC: damage, read no further


# -- Packet Error Control -------------------------------------------------------------------------------------
def test_pec_is_crc16_ccitt_false_over_the_whole_packet_counted_in_its_length():
    assert pec(b"123456789") == 0x29B1  # the catalogue's check value of CRC-16/CCITT-FALSE (IBM-3740)
    packet = encode_event(0x21, 5, 10.5, 3, "error", {"a": 1})
    assert struct.unpack(">H", packet[-PEC_LEN:])[0] == pec(packet[:-PEC_LEN])
    assert pec(packet) == 0  # the CRC's residue over a packet with its PEC
    assert SpacePacketHeader.unpack(packet).packet_len == len(packet)


def _any_tm_packet(draw) -> tuple[bytes, Dictionary]:
    iface, fields = draw(channel_tables())
    packet = draw(st.sampled_from([
        encode_housekeeping(0x20, draw(st.integers(0, 0x3FFF)), draw(TICKS) / 65536, iface, fields),
        encode_event(0x20, 1, draw(TICKS) / 65536, draw(st.integers(0, 0xFFFF)), "info",
                     draw(st.dictionaries(st.text(max_size=8), JSON_VALUE, max_size=4))),
        encode_verification(0xA0, 2, 0, 1, draw(st.integers(0, 2**32 - 1)), 0x20, 3, "completed",
                            draw(st.text(max_size=40))),
    ]))
    return packet, _dictionary(iface)


@given(st.data())
def test_any_single_bit_flip_in_a_tm_packet_is_detected(data):
    packet, d = _any_tm_packet(data.draw)
    decode_tm(packet, d)  # the packet as sent decodes
    bit = data.draw(st.integers(0, 8 * len(packet) - 1), label="bit")
    damaged = bytearray(packet)
    damaged[bit // 8] ^= 0x80 >> bit % 8
    with pytest.raises(TmCorrupt):
        decode_tm(bytes(damaged), d)


@given(st.data())
def test_every_single_bit_flip_of_one_packet_is_detected(data):
    packet, d = _any_tm_packet(data.draw)
    for bit in range(8 * len(packet)):
        damaged = bytearray(packet)
        damaged[bit // 8] ^= 0x80 >> bit % 8
        with pytest.raises(TmCorrupt):
            decode_tm(bytes(damaged), d)


@given(st.data())
def test_split_stream_keeps_the_packets_before_a_damaged_header(data):
    iface, fields = data.draw(channel_tables())
    packets = [encode_housekeeping(0x20, i, 0, iface, fields) for i in range(data.draw(st.integers(1, 4)))]
    stream = b"".join(packets)
    assert split_stream(stream) == (packets, b"", None)
    tail = data.draw(st.binary(min_size=1, max_size=5) | st.just(b"\xe0" + bytes(10)), label="tail")
    kept, rest, error = split_stream(stream + tail)
    assert kept == packets and rest == tail and isinstance(error, TmtcError)
    with pytest.raises(TmtcError):
        split_packets(stream + tail)


# -- TC -----------------------------------------------------------------------------------------
@st.composite
def commands(draw) -> tuple[Interface, CommandSpec, dict]:
    names = draw(st.lists(NAMES, unique=True, max_size=32))
    args, values = [], {}
    for name in names:
        kind = draw(st.sampled_from([int, float, bool, str, list]))
        unsigned = kind is int and draw(st.booleans())
        arg = Arg(name, kind, min=0 if unsigned else None, required=draw(st.booleans()))
        args.append(arg)
        if draw(st.booleans()):
            values[name] = draw({int: st.integers(0, 2**64 - 1) if unsigned else st.integers(*I64),
                                 float: st.floats(allow_nan=False, allow_infinity=False), bool: st.booleans(),
                                 str: st.text(max_size=63), list: st.lists(st.integers(*I64), max_size=12)}[kind])
    spec = CommandSpec(draw(st.integers(2, 0xFFFF)), "CMD", tuple(args))
    return Interface.build("imaging", commands=[spec]), spec, values


@given(commands(), st.integers(0, 0x7FF), st.integers(0, 0x3FFF), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1))
def test_command_round_trips_with_only_present_args(command, apid, seq_count, spi, seq):
    iface, spec, values = command
    packet = encode_command(apid, seq_count, spi, seq, spec, values)
    header = read_tc_header(packet)
    assert (header.apid, header.seq_count, header.spi, header.seq) == (apid, seq_count, spi, seq)
    parts = split_tc(packet, 0)
    assert parts.authenticated == packet
    decoded_spec, decoded = decode_command(parts.body, iface)
    assert decoded_spec is iface.commands["CMD"] and decoded == values
    assert encode_command(apid, seq_count, spi, seq, spec, decoded) == packet  # one encoding only
    assert is_tc(packet)


@given(commands(), st.data())
def test_every_truncation_or_extension_of_a_command_is_refused(command, data):
    iface, spec, values = command
    body = split_tc(encode_command(0x20, 0, 1, 1, spec, values), 0).body
    cut = data.draw(st.integers(0, len(body) - 1))
    with pytest.raises(ProtocolError):
        decode_command(body[:cut], iface)
    with pytest.raises(ProtocolError):
        decode_command(body + b"\0", iface)


def test_absent_argument_must_be_zero_and_present_bits_must_exist():
    spec = CommandSpec(0x10, "GO", (Arg("n", int, required=False),))
    iface = Interface.build("imaging", commands=[spec])
    body = split_tc(encode_command(0x20, 0, 1, 1, spec, {}), 0).body
    with pytest.raises(TmtcError, match="not zero"):
        decode_command(body[:-1] + b"\x01", iface)
    with pytest.raises(TmtcError, match="present"):
        decode_command(body[:2] + struct.pack(">I", 0b10) + body[6:], iface)
    with pytest.raises(TmtcError, match="opcode"):
        decode_command(b"\x00\x77" + body[2:], iface)


@pytest.mark.parametrize("arg,value", [
    (Arg("n", int), "3"), (Arg("n", int), True), (Arg("n", int), 2**63), (Arg("n", int), 1.5),
    (Arg("n", int, min=0), -1), (Arg("n", int, min=0), 2**64), (Arg("x", float), math.nan),
    (Arg("x", float), math.inf), (Arg("x", float), "1"), (Arg("b", bool), 1), (Arg("s", str), b"x"),
    (Arg("s", str), "x" * 256), (Arg("s", str), "é" * 128), (Arg("s", str), "\ud800"),
    (Arg("l", list), [1, "2"]), (Arg("l", list), list(range(256))), (Arg("l", list), [2**63]), (Arg("l", list), 3),
])
def test_unencodable_arguments_are_refused(arg, value):
    spec = CommandSpec(0x10, "GO", (arg,))
    with pytest.raises(TcEncodeError):
        encode_command(0x20, 0, 1, 1, spec, {arg.name: value})


def test_ranges_and_choices_are_left_to_the_target():
    spec = CommandSpec(0x10, "GO", (Arg("n", int, min=0, max=5), Arg("s", str, choices=("a",))))
    iface = Interface.build("imaging", commands=[spec])
    packet = encode_command(0x20, 0, 1, 1, spec, {"n": 99, "s": "zz", })
    assert decode_command(split_tc(packet, 0).body, iface)[1] == {"n": 99, "s": "zz"}


def test_unknown_args_headers_and_oversized_commands_are_refused():
    spec = CommandSpec(0x10, "GO", tuple(Arg(f"s{i}", str) for i in range(20)))
    with pytest.raises(TcEncodeError, match="unknown"):
        encode_command(0x20, 0, 1, 1, spec, {"zz": 1})
    with pytest.raises(TcEncodeError, match=str(MAX_TC_BYTES)):
        encode_command(0x20, 0, 1, 1, spec, {f"s{i}": "x" * 255 for i in range(20)})
    for apid, spi, seq in ((0x800, 1, 1), (1, 0x10000, 1), (1, 1, 2**32), (1, -1, 1)):
        with pytest.raises(TcEncodeError):
            encode_command(apid, 0, spi, seq, spec, {})
    many = CommandSpec(0x11, "MANY", tuple(Arg(f"a{i}", int) for i in range(33)))
    with pytest.raises(TcEncodeError, match="present"):
        encode_command(0x20, 0, 1, 1, many, {})


def test_with_trailer_grows_the_length_field_only():
    spec = CommandSpec(0x10, "GO", (Arg("n", int),))
    packet = encode_command(0x20, 3, 1, 9, spec, {"n": 1})
    grown = with_trailer(packet, 16)
    assert grown[6:] == packet[6:] and SpacePacketHeader.unpack(grown).packet_len == len(packet) + 16
    assert read_tc_header(grown + bytes(16)).seq == 9
    with pytest.raises(TmtcError):
        read_tc_header(grown)  # its length field counts a trailer it does not have
    with pytest.raises(ProtocolError):
        with_trailer(encode_event(0x20, 0, 0, 1, "info", {}), 16)


def test_tc_larger_than_the_limit_is_refused_on_reading():
    header = SpacePacketHeader(PacketType.TC, 0x20, 0, MAX_TC_BYTES - 6).pack()
    with pytest.raises(TmtcError, match="over"):
        read_tc_header(header + bytes(MAX_TC_BYTES - 5))
