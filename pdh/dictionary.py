"""The XTCE 1.2 dictionary of the TM/TC link, generated from the config and the interface tables.

``pdh dictionary --xtce OUT.xml`` writes one ``SpaceSystem`` that a ground system
(YAMCS) or an independent decoder (space-packet-parser) loads to read the TM packets
and build the telecommands of ``docs/uplink.md``. Nothing in it is written by hand:
every process of the config contributes its APID (:mod:`link.dictionary`), the
channels of its housekeeping packet, its events and its commands from its interface
table, so a table change is a regenerated dictionary, never an edited one.

Choices that keep both readers working (``docs/dictionary.md`` says more):

* The CCSDS primary and secondary header are **flat** parameters (``apid``,
  ``packet_type``, ...), not aggregates: space-packet-parser reads no aggregate, and
  restriction criteria compare a plain parameter.
* A length-prefixed string (``u16`` length + UTF-8 in TM, ``u8`` in TC) is two
  entries: the length as its own integer parameter (argument), then the string
  whose size is a ``DynamicValue`` of that length times 8. XTCE 1.2's ``LeadingSize``
  says nothing of the unit of the size tag, and the readers disagree (YAMCS counts
  bytes, space-packet-parser bits); a referenced length in bytes with an explicit
  ``LinearAdjustment slope="8"`` means the same to both.
* Every TM container ends with ``pec``, the packet's CRC-16/CCITT-FALSE (Packet Error
  Control). Its encoding carries an ``ErrorDetectCorrect``/``CRC`` element that says so, but
  space-packet-parser does not check it (it reads ``pec`` as a plain u16): a reader must
  compute the CRC itself (``link.tmtc.check_pec``) before it believes any other value.
* Names are ``<process>-<item>``: XTCE names may not contain ``.``, ``/`` or ``:``,
  process and channel names never contain ``-``, and space-packet-parser reads only
  the root ``SpaceSystem``, so every name lives in one flat namespace.

The document is built with :mod:`xml.etree.ElementTree` (standard library): the
generator runs wherever ``pdh`` is installed; lxml is needed only to validate
against the XSD (the tests do).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from framework.interface import Arg, ChannelSpec, CommandSpec, Interface
from link.dictionary import Dictionary, Entry
from link.tmtc import (ARG_LIST_MAX, ARG_TEXT_MAX, CHANNEL_TEXT_MAX, EVENT_TEXT_MAX, PEC_LEN, REASON_MAX,
                       SEVERITY_CODES, STAGES, VERIFICATION_COMPONENT, TmType, arg_encoding, channel_encoding)

__all__ = ["XTCE_NS", "ROOT_CONTAINER", "dictionary_of_config", "xtce_tree", "xtce_bytes", "write_xtce",
           "hk_parameter", "event_parameter", "verification_parameter", "length_parameter",
           "EVENT_FIELDS", "VERIFICATION_FIELDS", "PACKET_TYPES", "PEC_PARAMETER",
           "TC_APID", "TC_SEQ_COUNT", "TC_DATA_LENGTH", "TC_OPCODE", "TC_PRESENT", "SDLS_SPI", "SDLS_SEQ"]

XTCE_NS = "http://www.omg.org/spec/XTCE/20180204"
ROOT_CONTAINER = "CCSDSPacket"
"""The abstract root container (space-packet-parser's default root name): both headers."""

PACKET_TYPES = {t.name.lower(): int(t) for t in TmType}

PRIMARY_HEADER = (("version", 3), ("type", 1), ("sec_hdr_flag", 1), ("apid", 11), ("seq_flags", 2),
                  ("seq_count", 14), ("data_length", 16))
"""The CCSDS primary header's fields (133.0-B-2 section 4.1.3) and their widths in bits: flat parameters."""
SECONDARY_HEADER = (("seconds", 32), ("subseconds", 16), ("packet_type", 8))
PEC_PARAMETER = "pec"
"""The trailing Packet Error Control of every TM packet, the last entry of every concrete container."""
_PEC_NOTE = ("Packet Error Control: CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR) "
             "of every byte of the packet before it, primary header included. Check it before believing any "
             "other parameter of the packet: space-packet-parser reads it as a plain u16 and does not check it.")
EVENT_FIELDS = ("id", "severity", "text")
"""Event packet parameters, ``<process>-evt-<field>``."""
VERIFICATION_FIELDS = ("spi", "tc_seq", "target_apid", "opcode", "stage", "reason")
"""Verification packet parameters, ``<process>-vrf-<field>``."""
TC_APID, TC_SEQ_COUNT, TC_DATA_LENGTH, TC_OPCODE, TC_PRESENT = (
    "tc-apid", "tc-seq_count", "tc-data_length", "tc-opcode", "tc-present")
SDLS_SPI, SDLS_SEQ = "sdls-spi", "sdls-seq"
"""The TC header's arguments: a '-' in each, so no table argument (an identifier) can take the name."""
_LONG_MAX = 2**63 - 1
_MAC_NOTE = ("The MAC trailer (AES-256-GCM tag, 16 bytes, or HMAC-SHA256, 32 bytes, per the SPI's security "
             "association) is appended by the sender after this container: it is computed over every byte "
             "described here (docs/uplink.md). data_length counts the trailer too; the sender sets it, and "
             "seq_count, when it sends.")


def dictionary_of_config(config: Any) -> Dictionary:
    """The link's dictionary of a loaded config: every process whose kind has an interface table."""
    import pdh.topology  # noqa: F401  (registers every kind, so the dictionary finds each table)

    return Dictionary.from_config(config)


# -- names ---------------------------------------------------------------------------------------------------
def hk_parameter(process: str, channel: str) -> str:
    """The parameter of one housekeeping channel."""
    return f"{process}-{channel}"


def event_parameter(process: str, field: str) -> str:
    """A parameter of an event packet; ``field`` is one of :data:`EVENT_FIELDS`."""
    return f"{process}-evt-{field}"


def verification_parameter(process: str, field: str) -> str:
    """A parameter of a verification packet; ``field`` is one of :data:`VERIFICATION_FIELDS`."""
    return f"{process}-vrf-{field}"


def length_parameter(name: str) -> str:
    """The length parameter (or argument) in front of a length-prefixed string or list ``name``."""
    return f"{name}-len"


def _q(tag: str) -> str:
    return f"{{{XTCE_NS}}}{tag}"


def _sub(parent: ET.Element, tag: str, **attrib: Any) -> ET.Element:
    return ET.SubElement(parent, _q(tag), {k: str(v) for k, v in attrib.items() if v is not None})


def _describe(element: ET.Element, text: str) -> None:
    """The table's doc as ``shortDescription``: its first line (readers show one line)."""
    if text:
        element.set("shortDescription", text.splitlines()[0][:200])


# -- TM types -----------------------------------------------------------------------------------------------
class _Telemetry:
    """Builds the TelemetryMetaData: types, parameters and containers, each name once."""

    def __init__(self, parent: ET.Element) -> None:
        self.element = _sub(parent, "TelemetryMetaData")
        self.types = _sub(self.element, "ParameterTypeSet")
        self.parameters = _sub(self.element, "ParameterSet")
        self.containers = _sub(self.element, "ContainerSet")
        self.names: set[str] = set()

    def _claim(self, name: str) -> str:
        if name in self.names:
            raise ValueError(f"XTCE name {name!r} is generated twice (a process, channel or event name clash)")
        self.names.add(name)
        return name

    def _parameter(self, name: str, type_element: ET.Element, doc: str = "") -> str:
        param = _sub(self.parameters, "Parameter", name=self._claim(name), parameterTypeRef=type_element.get("name"))
        _describe(param, doc)
        return name

    def _type(self, tag: str, name: str, unit: str = "", doc: str = "", **attrib: Any) -> ET.Element:
        element = _sub(self.types, tag, name=self._claim(f"{name}-type"), **attrib)
        _describe(element, doc)
        if unit:
            _sub(_sub(element, "UnitSet"), "Unit").text = unit
        return element

    def unsigned(self, name: str, bits: int, doc: str = "", unit: str = "") -> str:
        t = self._type("IntegerParameterType", name, unit, doc, signed="false", sizeInBits=bits)
        _sub(t, "IntegerDataEncoding", encoding="unsigned", sizeInBits=bits)
        return self._parameter(name, t, doc)

    def crc16(self, name: str, doc: str = "") -> str:
        """A u16 whose encoding says it is the CRC-16/CCITT-FALSE of the packet from its first bit."""
        t = self._type("IntegerParameterType", name, "", doc, signed="false", sizeInBits=8 * PEC_LEN)
        encoding = _sub(t, "IntegerDataEncoding", encoding="unsigned", sizeInBits=8 * PEC_LEN)
        crc = _sub(_sub(encoding, "ErrorDetectCorrect"), "CRC", width=8 * PEC_LEN, bitsFromReference=0,
                   reference="start")
        _sub(crc, "Polynomial").text = "1021"
        _sub(crc, "InitRemainder").text = "FFFF"
        _sub(crc, "FinalXOR").text = "0000"
        return self._parameter(name, t, doc)

    def enumerated(self, name: str, bits: int, labels: dict[int, str], doc: str = "") -> str:
        t = self._type("EnumeratedParameterType", name, "", doc)
        _sub(t, "IntegerDataEncoding", encoding="unsigned", sizeInBits=bits)
        values = _sub(t, "EnumerationList")
        for value, label in sorted(labels.items()):
            _sub(values, "Enumeration", value=value, label=label)
        return self._parameter(name, t, doc)

    def channel(self, name: str, spec: ChannelSpec) -> list[str]:
        """The parameters of one housekeeping channel, laid out as :func:`link.tmtc.channel_encoding`
        says (two for a string or JSON text: its length, then the text)."""
        encoding = channel_encoding(spec)
        if encoding == "i64":
            t = self._type("IntegerParameterType", name, spec.unit, spec.doc, signed="true", sizeInBits=64)
            _sub(t, "IntegerDataEncoding", encoding="twosComplement", sizeInBits=64)
            _alarm(t, spec)
        elif encoding == "f64":
            t = self._type("FloatParameterType", name, spec.unit, spec.doc, sizeInBits=64)
            _sub(t, "FloatDataEncoding", encoding="IEEE754_1985", sizeInBits=64)
            _alarm(t, spec)
        elif encoding == "u8":
            t = self._type("BooleanParameterType", name, spec.unit, spec.doc)
            _sub(t, "IntegerDataEncoding", encoding="unsigned", sizeInBits=8)
        elif encoding in ("str16", "json16"):
            doc = spec.doc if encoding == "str16" else f"{spec.doc} (compact JSON)".strip()
            return self.string(name, 16, CHANNEL_TEXT_MAX, doc, spec.unit)
        else:
            raise ValueError(f"channel {name}: no XTCE type for encoding {encoding!r}")
        return [self._parameter(name, t, spec.doc)]

    def string(self, name: str, size_bits: int, max_bytes: int, doc: str = "", unit: str = "") -> list[str]:
        """A length-prefixed UTF-8 string: its byte count (``size_bits`` wide), then the string."""
        length = self.unsigned(length_parameter(name), size_bits, f"bytes of {name}", "bytes")
        t = self._type("StringParameterType", name, unit, doc)
        size = _sub(_sub(t, "StringDataEncoding", encoding="UTF-8"), "Variable", maxSizeInBits=8 * max_bytes)
        value = _sub(size, "DynamicValue")
        _sub(value, "ParameterInstanceRef", parameterRef=length, useCalibratedValue="true")
        _sub(value, "LinearAdjustment", slope=8, intercept=0)
        return [length, self._parameter(name, t, doc)]

    def container(self, name: str, entries: Iterable[str], doc: str = "", base: str | None = None,
                  restrict: dict[str, int] | None = None, abstract: bool = False) -> None:
        c = _sub(self.containers, "SequenceContainer", name=self._claim(name),
                 abstract="true" if abstract else None)
        _describe(c, doc)
        entry_list = _sub(c, "EntryList")
        for entry in entries:
            _sub(entry_list, "ParameterRefEntry", parameterRef=entry)
        if base is not None:
            criteria = _sub(_sub(c, "BaseContainer", containerRef=base), "RestrictionCriteria")
            comparisons = _sub(criteria, "ComparisonList")
            for parameter, value in (restrict or {}).items():
                _sub(comparisons, "Comparison", parameterRef=parameter, value=value, comparisonOperator="==")


def _alarm(type_element: ET.Element, spec: ChannelSpec) -> None:
    """The table's limits as a warning range: a value outside [low, high] is in warning."""
    if spec.low is None and spec.high is None:
        return
    ranges = _sub(_sub(type_element, "DefaultAlarm"), "StaticAlarmRanges")
    _sub(ranges, "WarningRange", minInclusive=spec.low, maxInclusive=spec.high)


def _telemetry(root: ET.Element, dictionary: Dictionary) -> None:
    tm = _Telemetry(root)
    header = [tm.unsigned(n, bits, f"CCSDS primary header: {n.replace('_', ' ')}") for n, bits in PRIMARY_HEADER]
    notes = {"seconds": "mission time, Unix seconds", "subseconds": "1/65536 s",
             "packet_type": "1 housekeeping, 2 event, 3 command verification"}
    header += [tm.unsigned(n, bits, f"secondary header: {notes[n]}") for n, bits in SECONDARY_HEADER]
    tm.container(ROOT_CONTAINER, header, "every TM packet: CCSDS primary header, then the secondary header "
                 "(seconds u32, subseconds u16 in 1/65536 s, packet_type u8); each packet ends with pec",
                 abstract=True)
    pec = tm.crc16(PEC_PARAMETER, _PEC_NOTE)
    for entry in dictionary.entries():
        _process_telemetry(tm, entry, pec)


def _process_telemetry(tm: _Telemetry, entry: Entry, pec: str) -> None:
    """The process's concrete containers: its body after the root's headers, then the PEC."""
    p, table = entry.process, entry.interface

    def restrict(kind: str) -> dict[str, int]:
        return {"apid": entry.apid, "packet_type": PACKET_TYPES[kind]}

    hk: list[str] = []
    for spec in table.telemetry.values():
        hk += tm.channel(hk_parameter(p, spec.name), spec)
    tm.container(f"{p}-housekeeping", [*hk, pec], f"{p} ({table.component}) housekeeping, every channel in table order",
                 ROOT_CONTAINER, restrict("housekeeping"))
    events = {0: "undeclared", **{e.id: e.name for e in table.events.values()}}
    severities = {code: name for name, code in SEVERITY_CODES.items()}
    evt = [tm.enumerated(event_parameter(p, "id"), 16, events, f"{p} event id (0: undeclared)"),
           tm.enumerated(event_parameter(p, "severity"), 8, severities, "event severity"),
           *tm.string(event_parameter(p, "text"), 16, EVENT_TEXT_MAX, "the event's fields as compact JSON")]
    tm.container(f"{p}-event", [*evt, pec], f"{p} ({table.component}) event", ROOT_CONTAINER, restrict("event"))
    if table.component != VERIFICATION_COMPONENT:
        return
    vrf = [tm.unsigned(verification_parameter(p, "spi"), 16, "SPI of the verified command"),
           tm.unsigned(verification_parameter(p, "tc_seq"), 32, "SDLS sequence number of the verified command"),
           tm.unsigned(verification_parameter(p, "target_apid"), 16, "APID the command was sent to"),
           tm.unsigned(verification_parameter(p, "opcode"), 16, "the command's opcode"),
           tm.enumerated(verification_parameter(p, "stage"), 8, dict(enumerate(STAGES)), "verification stage"),
           *tm.string(verification_parameter(p, "reason"), 16, REASON_MAX, "why (a rejection or failure reason)")]
    tm.container(f"{p}-verification", [*vrf, pec], f"{p} command verification stages", ROOT_CONTAINER,
                 restrict("verification"))


# -- TC -------------------------------------------------------------------------------------------------------
class _Commands:
    """Builds the CommandMetaData: argument types and one MetaCommand per table command per process."""

    def __init__(self, parent: ET.Element) -> None:
        self.element = _sub(parent, "CommandMetaData")
        self.types = _sub(self.element, "ArgumentTypeSet")
        self.commands = _sub(self.element, "MetaCommandSet")
        self.type_names: set[str] = set()

    def type(self, tag: str, name: str, doc: str = "", unit: str = "", **attrib: Any) -> ET.Element:
        if name in self.type_names:
            raise ValueError(f"XTCE argument type {name!r} is generated twice")
        self.type_names.add(name)
        element = _sub(self.types, tag, name=name, **attrib)
        _describe(element, doc)
        if unit:
            _sub(_sub(element, "UnitSet"), "Unit").text = unit
        return element

    def unsigned(self, name: str, bits: int, doc: str = "") -> str:
        t = self.type("IntegerArgumentType", name, doc, signed="false", sizeInBits=bits)
        _sub(t, "IntegerDataEncoding", encoding="unsigned", sizeInBits=bits)
        return name


def _long(value: float | None) -> int | None:
    """An integer range bound that XTCE's ``long`` can hold (a u64 argument's top bound is left out)."""
    if value is None or not math.isfinite(value) or abs(value) > _LONG_MAX:
        return None
    return int(value)


def _arg_type(cmds: _Commands, name: str, arg: Arg) -> ET.Element:
    """The type of one table argument, laid out as :func:`link.tmtc.arg_encoding` says, with its range."""
    encoding = arg_encoding(arg)
    if encoding in ("u64", "i64"):
        unsigned = encoding == "u64"
        t = cmds.type("IntegerArgumentType", name, "", arg.unit, signed="false" if unsigned else "true",
                      sizeInBits=64)
        _sub(t, "IntegerDataEncoding", encoding="unsigned" if unsigned else "twosComplement", sizeInBits=64)
        low, high = _long(arg.min), _long(arg.max)
        if low is not None or high is not None:
            _sub(_sub(t, "ValidRangeSet"), "ValidRange", minInclusive=low, maxInclusive=high)
    elif encoding == "f64":
        t = cmds.type("FloatArgumentType", name, "", arg.unit, sizeInBits=64)
        _sub(t, "FloatDataEncoding", encoding="IEEE754_1985", sizeInBits=64)
        if arg.min is not None or arg.max is not None:
            _sub(_sub(t, "ValidRangeSet"), "ValidRange", minInclusive=arg.min, maxInclusive=arg.max)
    elif encoding == "u8":
        t = cmds.type("BooleanArgumentType", name, "", arg.unit)
        _sub(t, "IntegerDataEncoding", encoding="unsigned", sizeInBits=8)
    elif encoding == "str8":
        pattern = "|".join(re.escape(str(c)) for c in arg.choices) or None
        t = cmds.type("StringArgumentType", name, "", arg.unit, restrictionPattern=pattern)
        size = _sub(_sub(t, "StringDataEncoding", encoding="UTF-8"), "Variable", maxSizeInBits=8 * ARG_TEXT_MAX)
        value = _sub(size, "DynamicValue")
        _sub(value, "ArgumentInstanceRef", argumentRef=length_parameter(arg.name))
        _sub(value, "LinearAdjustment", slope=8, intercept=0)
    elif encoding == "list8":  # a count, then that many i64
        t = cmds.type("ArrayArgumentType", name, f"at most {ARG_LIST_MAX} integers", "", arrayTypeRef="tc-int64")
        dimension = _sub(_sub(t, "DimensionList"), "Dimension")
        _sub(_sub(dimension, "StartingIndex"), "FixedValue").text = "0"
        end = _sub(_sub(dimension, "EndingIndex"), "DynamicValue")
        _sub(end, "ArgumentInstanceRef", argumentRef=length_parameter(arg.name))
        _sub(end, "LinearAdjustment", slope=1, intercept=-1)
    else:
        raise ValueError(f"argument {name}: no XTCE type for encoding {encoding!r}")
    return t


def _initial(arg: Arg) -> str | None:
    """The value an optional argument takes when left out (its ``present`` bit stays clear)."""
    if arg.required:
        return None
    if arg.type is bool:
        return "False"
    if arg.type in (int, float):
        zero_ok = (arg.min is None or arg.min <= 0) and (arg.max is None or arg.max >= 0)
        return str(arg.type(0 if zero_ok else arg.min))
    return "" if arg.type is str else None


def _tc_base(cmds: _Commands) -> None:
    """The abstract command every MetaCommand derives from: primary header (type TC), security header, opcode."""
    for name, bits, doc in (("tc-uint11", 11, ""), ("tc-uint14", 14, ""), ("tc-uint16", 16, ""),
                            ("tc-uint32", 32, ""), ("tc-uint8", 8, "a length in bytes or a count")):
        cmds.unsigned(name, bits, doc)
    t = cmds.type("IntegerArgumentType", "tc-int64", signed="true", sizeInBits=64)
    _sub(t, "IntegerDataEncoding", encoding="twosComplement", sizeInBits=64)
    base = _sub(cmds.commands, "MetaCommand", name="TC", abstract="true",
                shortDescription="CCSDS TC space packet with an SDLS security header (docs/uplink.md)")
    _sub(base, "LongDescription").text = _MAC_NOTE
    args = _sub(base, "ArgumentList")
    for name, type_ref, initial in ((TC_APID, "tc-uint11", None), (TC_SEQ_COUNT, "tc-uint14", "0"),
                                    (TC_DATA_LENGTH, "tc-uint16", "0"), (SDLS_SPI, "tc-uint16", None),
                                    (SDLS_SEQ, "tc-uint32", None), (TC_OPCODE, "tc-uint16", None)):
        _sub(args, "Argument", name=name, argumentTypeRef=type_ref, initialValue=initial)
    entries = _sub(_sub(base, "CommandContainer", name="TC"), "EntryList")
    _sub(entries, "FixedValueEntry", name="version", binaryValue="00", sizeInBits=3)
    _sub(entries, "FixedValueEntry", name="type", binaryValue="01", sizeInBits=1)
    _sub(entries, "FixedValueEntry", name="sec_hdr_flag", binaryValue="00", sizeInBits=1)
    _sub(entries, "ArgumentRefEntry", argumentRef=TC_APID)
    _sub(entries, "FixedValueEntry", name="seq_flags", binaryValue="03", sizeInBits=2)
    for name in (TC_SEQ_COUNT, TC_DATA_LENGTH, SDLS_SPI, SDLS_SEQ, TC_OPCODE):
        _sub(entries, "ArgumentRefEntry", argumentRef=name)


def _meta_command(cmds: _Commands, entry: Entry, spec: CommandSpec) -> None:
    name = f"{entry.process}-{spec.name}"
    cmd = _sub(cmds.commands, "MetaCommand", name=name)
    _describe(cmd, spec.doc)
    bits = ", ".join(f"bit {i} {a.name}" for i, a in enumerate(spec.args)) or "no arguments"
    _sub(cmd, "LongDescription").text = (f"{entry.process} ({entry.interface.component}) {spec.name}, "
                                         f"opcode {spec.opcode:#06x}. present: {bits}. {_MAC_NOTE}")
    assign = _sub(_sub(cmd, "BaseMetaCommand", metaCommandRef="TC"), "ArgumentAssignmentList")
    _sub(assign, "ArgumentAssignment", argumentName=TC_APID, argumentValue=entry.apid)
    _sub(assign, "ArgumentAssignment", argumentName=TC_OPCODE, argumentValue=spec.opcode)
    args = _sub(cmd, "ArgumentList")
    required = sum(1 << i for i, a in enumerate(spec.args) if a.required)
    present_type = cmds.unsigned(f"{name}-present-type", 32, "bit i set = argument i given")
    _sub(args, "Argument", name=TC_PRESENT, argumentTypeRef=present_type, initialValue=required)
    entries = [TC_PRESENT]
    for arg in spec.args:
        if "-" in arg.name:  # the header's arguments and the length arguments are the names with a '-'
            raise ValueError(f"{name}: argument name {arg.name!r} has a '-' (reserved for generated names)")
        if arg_encoding(arg) in ("str8", "list8"):
            count = length_parameter(arg.name)
            initial = None if arg.required else "0"
            _sub(args, "Argument", name=count, argumentTypeRef="tc-uint8", initialValue=initial)
            entries.append(count)
        type_name = _arg_type(cmds, f"{name}-{arg.name}-type", arg).get("name")
        _sub(args, "Argument", name=arg.name, argumentTypeRef=type_name, initialValue=_initial(arg))
        entries.append(arg.name)
    container = _sub(cmd, "CommandContainer", name=name)
    entry_list = _sub(container, "EntryList")
    for entry in entries:
        _sub(entry_list, "ArgumentRefEntry", argumentRef=entry)
    _sub(container, "BaseContainer", containerRef="TC")
    if spec.hazardous:
        _sub(cmd, "DefaultSignificance", consequenceLevel="critical",
             reasonForWarning="hazardous: two-step (ARM, then FIRE) on board")


def _commands(root: ET.Element, dictionary: Dictionary) -> None:
    cmds = _Commands(root)
    _tc_base(cmds)
    for entry in dictionary.entries():
        for spec in entry.interface.commands.values():
            _meta_command(cmds, entry, spec)


# -- the document -------------------------------------------------------------------------------------------
def xtce_tree(dictionary: Dictionary, name: str = "lunar_pdh", version: str = "") -> ET.ElementTree:
    """The XTCE 1.2 SpaceSystem of these processes: TM parameters and containers, TC meta-commands."""
    ET.register_namespace("xtce", XTCE_NS)
    root = ET.Element(_q("SpaceSystem"), {"name": name})
    _sub(root, "LongDescription").text = (
        "lunar-pdh TM/TC dictionary, generated by `pdh dictionary` from the config's processes and their "
        "interface tables (docs/uplink.md, docs/dictionary.md). APIDs: "
        + ", ".join(f"{s.process}={s.apid:#05x}" for s in dictionary.entries()))
    header = _sub(root, "Header", validationStatus="Working", version=version or None)
    _sub(_sub(header, "NoteSet"), "Note").text = "Generated; do not edit. " + _MAC_NOTE
    _telemetry(root, dictionary)
    _commands(root, dictionary)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def xtce_bytes(dictionary: Dictionary, name: str = "lunar_pdh", version: str = "") -> bytes:
    return ET.tostring(xtce_tree(dictionary, name, version).getroot(), encoding="utf-8", xml_declaration=True)


def write_xtce(path: str | Path, dictionary: Dictionary, name: str = "lunar_pdh", version: str = "") -> Path:
    """Write the dictionary atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(xtce_bytes(dictionary, name, version))
    tmp.replace(path)
    return path
