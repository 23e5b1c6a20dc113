"""The XTCE dictionary: valid XTCE 1.2, read by an independent decoder to the values link.tmtc decodes
(the trailing PEC included: no bits left over), and its telecommands carry each table's APID and opcode and lay out the bytes link.tmtc encodes."""

from __future__ import annotations

import json
import math
import struct
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xtce_lib
from lxml import etree as lxml_etree
from space_packet_parser.xtce import definitions as spp_definitions

from framework.config import load_config
from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from link import tmtc
from link.dictionary import Dictionary
from pdh.dictionary import (PEC_PARAMETER, ROOT_CONTAINER, VERIFICATION_FIELDS, XTCE_NS, dictionary_of_config,
                            event_parameter, hk_parameter, length_parameter, verification_parameter, write_xtce,
                            xtce_bytes)

ROOT = Path(__file__).resolve().parents[3]
NS = {"x": XTCE_NS}

INGEST = Interface.build(
    "ingest",
    commands=(CommandSpec(0x10, "SA_ENABLE", (Arg("spi", int, min=1, max=65535),)),),
    events=(EventSpec(1, "tc_rejected", "warning"),),
    telemetry=(ChannelSpec(1, "tc_received", "count", int), ChannelSpec(2, "last_spi", "", int),
               ChannelSpec(3, "sa_state", "", dict), ChannelSpec(4, "ok", "", bool),
               ChannelSpec(5, "lag_s", "s", float, low=0.0, high=3.0)),
)
"""A stand-in ingest table (until fsw/ingest has its own): the only APID that sends verification packets."""


@lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    """The demo config's processes plus an ingest, as the link numbers them."""
    import pdh.topology  # noqa: F401  (registers every kind)

    demo = Dictionary.from_config(load_config(ROOT / "configs" / "demo.yaml"))
    tables = {e.process: e.interface for e in demo.entries()}
    if not any(t.component == "ingest" for t in tables.values()):
        tables["ingest"] = INGEST
    return Dictionary.from_interfaces(tables)


@lru_cache(maxsize=1)
def xtce_file() -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="xtce-")) / "lunar_pdh.xml"
    return write_xtce(path, dictionary())


@lru_cache(maxsize=1)
def definition() -> Any:
    return spp_definitions.XtcePacketDefinition.from_xtce(xtce_file())


def schema() -> Any:
    """The XTCE 1.2 XSD shipped by xtce-lib, its xml.xsd import resolved from the same folder, no network."""
    xsd_dir = Path(xtce_lib.__file__).parent / "xsd"

    class Local(lxml_etree.Resolver):
        def resolve(self, url: str, pubid: str, context: Any) -> Any:
            local = xsd_dir / url.rsplit("/", 1)[-1]
            return self.resolve_filename(str(local), context) if local.is_file() else None

    parser = lxml_etree.XMLParser(no_network=True)
    parser.resolvers.add(Local())
    return lxml_etree.XMLSchema(lxml_etree.parse(str(xsd_dir / "dtc-18-02-04.xsd"), parser))


def assert_valid(path: Path) -> None:
    xsd = schema()
    if not xsd.validate(lxml_etree.parse(str(path))):
        pytest.fail("\n".join(f"line {e.line}: {e.message}" for e in list(xsd.error_log)[:20]))


# -- (1) the XSD ----------------------------------------------------------------------------------------------
def test_demo_config_dictionary_validates_against_the_xtce_1_2_xsd(tmp_path: Path) -> None:
    path = write_xtce(tmp_path / "demo.xml", dictionary_of_config(load_config(ROOT / "configs" / "demo.yaml")))
    assert_valid(path)


def test_dictionary_with_an_ingest_validates_and_has_its_verification_container() -> None:
    assert_valid(xtce_file())
    tree = lxml_etree.parse(str(xtce_file()))
    names = tree.xpath("//x:SequenceContainer/@name", namespaces=NS)
    assert "ingest-verification" in names
    assert not any(n.endswith("-verification") and n != "ingest-verification" for n in names)


def test_cli_writes_the_dictionary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pdh.cli import main

    out = tmp_path / "d.xml"
    assert main(["dictionary", "--xtce", str(out), "--config", str(ROOT / "configs" / "demo.yaml")]) == 0
    assert_valid(out)
    assert "wrote" in capsys.readouterr().out


# -- (2) space-packet-parser reads what link.tmtc writes ------------------------------------------------------
def parse(packet: bytes) -> Any:
    """space-packet-parser's reading of a packet; its ``pec`` is the packet's last two bytes, the CRC of the rest."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bits left over or missing are a failure, not a warning
        parsed = definition().parse_bytes(packet)
    assert parsed[PEC_PARAMETER] == int.from_bytes(packet[-tmtc.PEC_LEN:], "big") == tmtc.pec(packet[:-tmtc.PEC_LEN])
    return parsed


def assert_header(parsed: Any, decoded: tmtc.TmPacket) -> None:
    assert parsed["apid"] == decoded.apid
    assert parsed["seq_count"] == decoded.seq_count
    assert (parsed["version"], parsed["type"], parsed["sec_hdr_flag"], parsed["seq_flags"]) == (0, 0, 1, 3)
    assert parsed["seconds"] + parsed["subseconds"] / 65536 == decoded.t
    assert parsed["packet_type"] == decoded.packet_type


def same_channel(channel: ChannelSpec, ours: Any, theirs: Any) -> bool:
    encoding = tmtc.channel_encoding(channel)
    if encoding == "f64":
        return (math.isnan(ours) and math.isnan(theirs)) or ours == theirs
    if encoding == "u8":
        return bool(theirs) is ours
    if encoding == "json16":
        return (json.loads(theirs) if theirs else {}) == ours
    return type(ours)(theirs) == ours


VALUES = {
    "i64": st.integers(min_value=-(2**66), max_value=2**66),
    "f64": st.floats(allow_nan=True, allow_infinity=True),
    "u8": st.booleans(),
    "str16": st.text(max_size=300),
    "json16": st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=40) | st.booleans(), max_size=12),
}
TIMES = st.floats(min_value=0, max_value=2**32 - 1, allow_nan=False)
SEQ = st.integers(min_value=0, max_value=0x3FFF)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seq=SEQ, t=TIMES)
def test_housekeeping_of_every_process_decodes_to_the_same_values(data: st.DataObject, seq: int, t: float) -> None:
    for entry in dictionary().entries():
        fields = {}
        for ch in entry.interface.telemetry.values():
            value = data.draw(st.none() | VALUES[tmtc.channel_encoding(ch)], label=f"{entry.process}.{ch.name}")
            if value is not None:
                fields[ch.name] = value
        packet = tmtc.encode_housekeeping(entry.apid, seq, t, entry.interface, fields)
        decoded = tmtc.decode_tm(packet, dictionary())
        parsed = parse(packet)
        assert_header(parsed, decoded)
        for ch in entry.interface.telemetry.values():
            theirs = parsed[hk_parameter(entry.process, ch.name)]
            assert same_channel(ch, decoded.values[ch.name], theirs), (entry.process, ch.name, theirs)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), seq=SEQ, t=TIMES,
       fields=st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=400) | st.none(), max_size=8))
def test_events_decode_to_the_same_id_severity_and_fields(data: st.DataObject, seq: int, t: float,
                                                          fields: dict[str, Any]) -> None:
    entry = data.draw(st.sampled_from(dictionary().entries()))
    ids = [0, *(e.id for e in entry.interface.events.values())]
    event_id = data.draw(st.sampled_from(ids))
    severity = data.draw(st.sampled_from(list(tmtc.SEVERITY_CODES)))
    packet = tmtc.encode_event(entry.apid, seq, t, event_id, severity, fields)
    decoded = tmtc.decode_tm(packet, dictionary())
    parsed = parse(packet)
    assert_header(parsed, decoded)
    p = entry.process
    assert parsed[event_parameter(p, "id")].raw_value == decoded.event_id
    assert parsed[event_parameter(p, "id")] == (decoded.event_name or "undeclared")
    assert parsed[event_parameter(p, "severity")] == decoded.severity
    text = parsed[event_parameter(p, "text")]
    assert parsed[length_parameter(event_parameter(p, "text"))] == len(text.encode())
    assert json.loads(text) == decoded.fields


@settings(max_examples=60, deadline=None)
@given(seq=SEQ, t=TIMES, spi=st.integers(0, 0xFFFF), tc_seq=st.integers(0, 2**32 - 1),
       target=st.integers(0, 0x7FF), opcode=st.integers(0, 0xFFFF), stage=st.sampled_from(tmtc.STAGES),
       reason=st.text(max_size=260))
def test_verification_decodes_to_the_same_stage(seq: int, t: float, spi: int, tc_seq: int, target: int,
                                                opcode: int, stage: str, reason: str) -> None:
    ingest = next(e for e in dictionary().entries() if e.interface.component == "ingest")
    packet = tmtc.encode_verification(ingest.apid, seq, t, spi, tc_seq, target, opcode, stage, reason)
    decoded = tmtc.decode_tm(packet, dictionary())
    parsed = parse(packet)
    assert_header(parsed, decoded)
    v = decoded.verification
    theirs = {f: parsed[verification_parameter(ingest.process, f)] for f in VERIFICATION_FIELDS}
    assert theirs == {f: getattr(v, f) for f in VERIFICATION_FIELDS}


def test_a_stream_of_mixed_packets_decodes_packet_by_packet() -> None:
    from space_packet_parser.generators import ccsds_generator

    entries = dictionary().entries()
    stream = b"".join(tmtc.encode_housekeeping(e.apid, i, 1.5, e.interface, {}) for i, e in enumerate(entries))
    stream += tmtc.encode_event(entries[0].apid, 9, 2.0, 0, "error", {"why": "x"})
    packets = list(ccsds_generator(stream))
    assert len(packets) == len(entries) + 1
    assert [parse(bytes(p))["apid"] for p in packets] == [e.apid for e in entries] + [entries[0].apid]


def test_every_tm_container_ends_with_the_pec_described_as_a_crc16_ccitt_false() -> None:
    tree = lxml_etree.parse(str(xtce_file()))
    containers = tree.xpath("//x:TelemetryMetaData/x:ContainerSet/x:SequenceContainer", namespaces=NS)
    concrete = [c for c in containers if c.get("name") != ROOT_CONTAINER]
    assert len(concrete) >= 2 * len(dictionary().entries())
    for c in concrete:
        assert c.xpath("x:EntryList/x:ParameterRefEntry/@parameterRef", namespaces=NS)[-1] == PEC_PARAMETER
    pec_type, = tree.xpath("//x:ParameterTypeSet/x:IntegerParameterType[@name='pec-type']", namespaces=NS)
    crc, = pec_type.xpath("x:IntegerDataEncoding[@sizeInBits='16']/x:ErrorDetectCorrect/x:CRC", namespaces=NS)
    assert (crc.findtext("x:Polynomial", namespaces=NS), crc.findtext("x:InitRemainder", namespaces=NS),
            crc.findtext("x:FinalXOR", namespaces=NS), crc.get("width")) == ("1021", "FFFF", "0000", "16")


def test_space_packet_parser_does_not_check_the_pec_so_the_decoder_must() -> None:
    entry = dictionary().entries()[0]
    damaged = bytearray(tmtc.encode_event(entry.apid, 1, 2.0, 0, "info", {"a": 1}))
    damaged[-4] ^= 0x01  # a bit of the event's text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parsed = definition().parse_bytes(bytes(damaged))  # read as if nothing were wrong (docs/dictionary.md)
    assert parsed[PEC_PARAMETER] != tmtc.pec(damaged[:-tmtc.PEC_LEN])
    with pytest.raises(tmtc.TmCorrupt):
        tmtc.decode_tm(bytes(damaged), dictionary())


# -- (3) telecommands -----------------------------------------------------------------------------------------
def meta_commands() -> dict[str, Any]:
    tree = lxml_etree.parse(str(xtce_file()))
    return {m.get("name"): m for m in tree.iterfind(f"{{{XTCE_NS}}}CommandMetaData/{{{XTCE_NS}}}MetaCommandSet/"
                                                    f"{{{XTCE_NS}}}MetaCommand")}


def test_every_table_command_has_a_meta_command_with_its_apid_and_opcode() -> None:
    commands = meta_commands()
    expected = {f"{e.process}-{c.name}": (e.apid, c.opcode) for e in dictionary().entries()
                for c in e.interface.commands.values()}
    assert set(commands) == {*expected, "TC"}
    for name, (apid, opcode) in expected.items():
        base = commands[name].find("x:BaseMetaCommand", NS)
        assert base.get("metaCommandRef") == "TC"
        assigned = {a.get("argumentName"): int(a.get("argumentValue"))
                    for a in base.iterfind("x:ArgumentAssignmentList/x:ArgumentAssignment", NS)}
        assert assigned == {"tc-apid": apid, "tc-opcode": opcode}, name


def test_the_tc_header_is_a_tc_packet_with_the_sdls_security_header() -> None:
    entries = meta_commands()["TC"].find("x:CommandContainer/x:EntryList", NS)
    layout = [(e.get("name") or e.get("argumentRef"), e.get("binaryValue"), e.get("sizeInBits")) for e in entries]
    assert layout == [("version", "00", "3"), ("type", "01", "1"), ("sec_hdr_flag", "00", "1"),
                      ("tc-apid", None, None), ("seq_flags", "03", "2"), ("tc-seq_count", None, None),
                      ("tc-data_length", None, None), ("sdls-spi", None, None), ("sdls-seq", None, None),
                      ("tc-opcode", None, None)]
    assert "MAC trailer" in meta_commands()["TC"].findtext("x:LongDescription", namespaces=NS)


def test_argument_ranges_come_from_the_table() -> None:
    commands = meta_commands()
    tree = lxml_etree.parse(str(xtce_file()))
    types = {t.get("name"): t for t in tree.iterfind(f"{{{XTCE_NS}}}CommandMetaData/{{{XTCE_NS}}}ArgumentTypeSet/*")}
    checked = 0
    for entry in dictionary().entries():
        for spec in entry.interface.commands.values():
            args = {a.get("name"): a.get("argumentTypeRef")
                    for a in commands[f"{entry.process}-{spec.name}"].iterfind("x:ArgumentList/x:Argument", NS)}
            for arg in spec.args:
                valid = types[args[arg.name]].find("x:ValidRangeSet/x:ValidRange", NS)
                if arg.type in (int, float) and arg.min is not None:
                    assert float(valid.get("minInclusive")) == arg.min
                    checked += 1
                if arg.type in (int, float) and arg.max is not None and arg.max < 2**63:
                    assert float(valid.get("maxInclusive")) == arg.max
    assert checked > 10


# An XTCE-driven encoder, just enough for these meta-commands: it knows nothing of link.tmtc and reads
# every width, fixed value and assignment from the dictionary.
class Bits:
    def __init__(self) -> None:
        self.value, self.n = 0, 0

    def put(self, value: int, bits: int) -> None:
        self.value = (self.value << bits) | (value & ((1 << bits) - 1))
        self.n += bits

    def to_bytes(self) -> bytes:
        assert self.n % 8 == 0
        return self.value.to_bytes(self.n // 8, "big")


def xtce_encode(command: str, values: dict[str, Any]) -> bytes:
    commands = meta_commands()
    tree = lxml_etree.parse(str(xtce_file()))
    types = {t.get("name"): t for t in tree.iterfind(f"{{{XTCE_NS}}}CommandMetaData/{{{XTCE_NS}}}ArgumentTypeSet/*")}
    meta = commands[command]
    values = {**{a.get("argumentName"): int(a.get("argumentValue"))
                 for a in meta.iterfind("x:BaseMetaCommand/x:ArgumentAssignmentList/x:ArgumentAssignment", NS)},
              **values}
    arg_types = {a.get("name"): types[a.get("argumentTypeRef")]
                 for m in (commands["TC"], meta) for a in m.iterfind("x:ArgumentList/x:Argument", NS)}
    bits = Bits()
    for m in (commands["TC"], meta):
        for entry in m.find("x:CommandContainer/x:EntryList", NS):
            if entry.tag.endswith("FixedValueEntry"):
                bits.put(int(entry.get("binaryValue"), 16), int(entry.get("sizeInBits")))
                continue
            name = entry.get("argumentRef")
            put_value(bits, arg_types[name], values[name], types)
    return bits.to_bytes()


def put_value(bits: Bits, t: Any, value: Any, types: dict[str, Any]) -> None:
    kind = lxml_etree.QName(t).localname
    if kind == "ArrayArgumentType":
        for item in value:
            put_value(bits, types[t.get("arrayTypeRef")], item, types)
        return
    if kind == "StringArgumentType":
        for byte in value.encode():
            bits.put(byte, 8)
        return
    encoding = t.find("x:IntegerDataEncoding", NS)
    if encoding is not None:
        bits.put(int(value), int(encoding.get("sizeInBits")))
        return
    assert t.find("x:FloatDataEncoding", NS).get("sizeInBits") == "64"
    bits.put(int.from_bytes(struct.pack(">d", value), "big"), 64)


def arg_value(arg: Arg) -> st.SearchStrategy[Any]:
    encoding = tmtc.arg_encoding(arg)
    if encoding == "u8":
        return st.booleans()
    if encoding in ("u64", "i64"):
        low = int(arg.min) if arg.min is not None else -(2**63)
        high = int(arg.max) if arg.max is not None else 2**63 - 1
        return st.integers(low, min(high, 2**64 - 1))
    if encoding == "f64":
        return st.floats(arg.min, arg.max, allow_nan=False, allow_infinity=False)
    if encoding == "str8":
        return st.sampled_from(arg.choices) if arg.choices else st.text(max_size=40)
    return st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seq_count=SEQ, spi=st.integers(0, 0xFFFF), seq=st.integers(0, 2**32 - 1))
def test_meta_commands_lay_out_the_bytes_link_tmtc_encodes(data: st.DataObject, seq_count: int, spi: int,
                                                          seq: int) -> None:
    entry = data.draw(st.sampled_from([e for e in dictionary().entries() if e.interface.commands]))
    spec = data.draw(st.sampled_from(list(entry.interface.commands.values())))
    given_args = {a.name: data.draw(arg_value(a), label=a.name) for a in spec.args
                  if a.required or data.draw(st.booleans(), label=f"give {a.name}")}
    packet = tmtc.encode_command(entry.apid, seq_count, spi, seq, spec, given_args)
    present = sum(1 << i for i, a in enumerate(spec.args) if a.name in given_args)
    values: dict[str, Any] = {"tc-seq_count": seq_count, "tc-data_length": len(packet) - 7, "sdls-spi": spi,
                              "sdls-seq": seq, "tc-present": present}
    for arg in spec.args:
        value = given_args.get(arg.name)
        encoding = tmtc.arg_encoding(arg)
        if value is None:
            value = {"str8": "", "list8": [], "u8": False, "f64": 0.0}.get(encoding, 0)
        if encoding in ("str8", "list8"):
            values[length_parameter(arg.name)] = len(value.encode() if encoding == "str8" else value)
        values[arg.name] = value
    assert xtce_encode(f"{entry.process}-{spec.name}", values) == packet


def test_processes_sharing_a_table_get_their_own_names_and_apids(tmp_path: Path) -> None:
    two = Dictionary.from_interfaces({"ingest_a": INGEST, "ingest_b": INGEST})
    path = tmp_path / "two.xml"
    path.write_bytes(xtce_bytes(two))
    assert_valid(path)
    parsed = spp_definitions.XtcePacketDefinition.from_xtce(path)
    for entry in two.entries():
        packet = tmtc.encode_housekeeping(entry.apid, 1, 2.0, INGEST, {"tc_received": entry.apid})
        assert parsed.parse_bytes(packet)[hk_parameter(entry.process, "tc_received")] == entry.apid
