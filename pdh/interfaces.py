"""Every component's interface table and every process kind, rendered for people: text and Markdown.

The tables are data in each component's ``interface.py`` (format:
:mod:`framework.interface`; kinds: :mod:`framework.kinds`); this module only
reads them, so ``pdh interfaces`` and the generated docs (:mod:`pdh.docs`) can
never say something the code does not. Output is deterministic (table order,
no timestamps) because the docs test compares it byte for byte.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable, Sequence

from framework.ids import ID_BASES, ID_RANGE
from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from framework.kinds import REQUIRED, Field, KindSpec
from link.packets import APIDS, apid_for_kind

__all__ = ["find_table", "source_of", "interfaces_markdown", "interfaces_text", "kinds_markdown", "kinds_text",
           "id_bases_markdown", "apids_markdown"]


# -- values -------------------------------------------------------------------------------------
def _number(x: float) -> str:
    """A bound as written in a table: 2**64-1 reads better as ``2^64-1`` than as 20 digits."""
    if isinstance(x, int) and x >= 2**32 and (x + 1) & x == 0:
        return f"2^{(x + 1).bit_length() - 1}-1"
    return repr(x)


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{_number(low)}..{_number(high)}"
    if low is not None:
        return f">= {_number(low)}"
    if high is not None:
        return f"<= {_number(high)}"
    return ""


def _value(v: Any) -> str:
    """A default or a choice as it is written in a YAML config (JSON is YAML's flow style)."""
    try:
        return json.dumps(v)
    except TypeError:
        return str(v)


def _type_name(t: type | tuple[type, ...]) -> str:
    return " or ".join(x.__name__ for x in t) if isinstance(t, tuple) else t.__name__


def _arg(a: Arg) -> str:
    """``int, 0..100, bytes, optional``: the argument's type and what the table accepts."""
    parts = [a.type.__name__]
    if a.min is not None or a.max is not None:
        parts.append(_bounds(a.min, a.max))
    if a.choices:
        parts.append("one of " + ", ".join(_value(c) for c in a.choices))
    if a.unit:
        parts.append(a.unit)
    if not a.required:
        parts.append("optional")
    return ", ".join(parts)


def _hex(n: int) -> str:
    return f"0x{n:04X}"


# -- finding tables -----------------------------------------------------------------------------
def _ordered(tables: Iterable[Interface]) -> list[Interface]:
    return sorted(tables, key=lambda t: (t.id_base, t.component))


def find_table(tables: Iterable[Interface], name: str) -> Interface | None:
    """The table of a component by its table name (``imaging``), or None."""
    return next((t for t in tables if t.component == name), None)


def source_of(table: Interface) -> str:
    """The file that declares a table (``fsw/imaging/interface.py``), found among the imported
    ``*.interface`` modules; empty if none holds it (a table built elsewhere, as in tests)."""
    for name, module in sorted(sys.modules.items()):
        if name.endswith(".interface") and getattr(module, "INTERFACE", None) is table:
            return name.replace(".", "/") + ".py"
    return ""


# -- Markdown -----------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _md_args(args: tuple[Arg, ...]) -> str:
    return "<br>".join(f"`{a.name}` {_arg(a)}" for a in args)


def _md_commands(commands: Iterable[CommandSpec]) -> list[str]:
    rows = [(_hex(c.opcode), f"`{c.name}`", _md_args(c.args), "yes" if c.hazardous else "", c.doc)
            for c in commands]
    return _md_table(("opcode", "command", "arguments", "hazardous", "description"), rows)


def _md_events(events: Iterable[EventSpec]) -> list[str]:
    rows = [(_hex(e.id), f"`{e.name}`", e.severity, e.doc) for e in events]
    return _md_table(("id", "event", "severity", "description"), rows)


def _md_channels(channels: Iterable[ChannelSpec]) -> list[str]:
    rows = [(_hex(c.id), f"`{c.name}`", c.unit, c.type.__name__, _bounds(c.low, c.high), c.doc) for c in channels]
    return _md_table(("id", "channel", "unit", "type", "limits", "description"), rows)


def _md_interface(table: Interface) -> list[str]:
    source = source_of(table)
    lines = [f"## {table.component}", "",
             f"Ids {_hex(table.id_base)}..{_hex(table.id_base + ID_RANGE - 1)}"
             + (f"; table: `{source}`." if source else "."), ""]
    for title, body in (("Commands", _md_commands(table.commands.values())),
                        ("Events", _md_events(table.events.values())),
                        ("Telemetry", _md_channels(table.telemetry.values()))):
        lines += [f"### {table.component}: {title.lower()}", ""]
        lines += body if len(body) > 2 else ["none"]
        lines.append("")
    return lines


def interfaces_markdown(tables: Iterable[Interface]) -> str:
    """Every table as Markdown sections, in id-base order: commands, events, telemetry."""
    lines: list[str] = []
    for table in _ordered(tables):
        lines += _md_interface(table)
    return "\n".join(lines)


def id_bases_markdown(tables: Iterable[Interface]) -> str:
    """The id ranges of :data:`framework.ids.ID_BASES`, and whether a table uses each yet."""
    have = {t.component for t in tables}
    rows = [(f"`{name}`", f"{_hex(base)}..{_hex(base + ID_RANGE - 1)}",
             f"[table](#{name})" if name in have else "no table yet")
            for name, base in sorted(ID_BASES.items(), key=lambda kv: kv[1])]
    return "\n".join(_md_table(("component", "event and channel ids", "interface"), rows)) + "\n"


def _md_endpoints(spec: KindSpec) -> list[str]:
    rows = [(f"`{role}`", schemes.rstrip("?").replace("|", ", "), "optional" if schemes.endswith("?") else "required")
            for role, schemes in spec.endpoints.items()]
    return _md_table(("endpoint role", "schemes", ""), rows)


def _flat_keys(keys: dict[str, Field], prefix: str = "") -> list[tuple[str, Field]]:
    """Nested keys (``autoexposure.k``) after their parent, in declaration order."""
    out: list[tuple[str, Field]] = []
    for name, spec in keys.items():
        out.append((prefix + name, spec))
        if spec.keys:
            out += _flat_keys(spec.keys, prefix + name + ".")
    return out


def _field_range(spec: Field) -> str:
    if spec.choices:
        return "one of " + ", ".join(_value(c) for c in spec.choices)
    return _bounds(spec.min, spec.max)


def _field_doc(spec: Field) -> str:
    refs = f"values name endpoints ({spec.endpoint_refs})" if spec.endpoint_refs else ""
    return "; ".join(x for x in (spec.doc, refs) if x)


def _field_default(spec: Field) -> str:
    return "required" if spec.default is REQUIRED else f"`{_value(spec.default)}`"


def _md_kind(spec: KindSpec) -> list[str]:
    lines = [f"## {spec.name}", "", f"{spec.doc} Entry: `{spec.entry}`.".strip(), ""]
    lines += _md_endpoints(spec) if spec.endpoints else ["No endpoints."]
    lines.append("")
    if spec.keys:
        rows = [(f"`{name}`", _type_name(f.type), _field_default(f), _field_range(f), _field_doc(f))
                for name, f in _flat_keys(spec.keys)]
        lines += _md_table(("key", "type", "default", "range", "description"), rows)
    else:
        lines.append("No keys of its own.")
    lines.append("")
    return lines


def kinds_markdown(kinds: Iterable[KindSpec]) -> str:
    """Every process kind as a Markdown section: endpoint roles and config keys, by kind name."""
    lines: list[str] = []
    for spec in sorted(kinds, key=lambda k: k.name):
        lines += _md_kind(spec)
    return "\n".join(lines)


def apids_markdown() -> str:
    """Which APID each kind of downlinked file travels on: :data:`link.packets.APIDS`."""
    rows = [(f"`{kind}`", _hex(apid), str(apid)) for kind, apid in APIDS.items()]
    other = apid_for_kind("\0")  # a kind not in the table: what the wrapper falls back to
    rows.append(("any other product kind", _hex(other), str(other)))
    return "\n".join(_md_table(("what travels (`APIDS` key)", "APID", "decimal"), rows)) + "\n"


# -- text ---------------------------------------------------------------------------------------
def _columns(rows: Sequence[Sequence[str]], indent: str) -> list[str]:
    """Rows padded into columns; the last column runs free."""
    if not rows:
        return [indent + "none"]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]).rstrip() for r in rows]


def _text_commands(commands: Iterable[CommandSpec]) -> list[str]:
    lines: list[str] = []
    commands = list(commands)
    width = max((len(c.name) for c in commands), default=0)
    for c in commands:
        name = c.name + (" (hazardous)" if c.hazardous else "")
        lines.append(f"    {_hex(c.opcode)}  {name.ljust(width)}  {c.doc}".rstrip())
        arg_width = max((len(a.name) for a in c.args), default=0)
        lines += [f"              {a.name.ljust(arg_width)}  {_arg(a)}" for a in c.args]
    return lines or ["    none"]


def _text_interface(table: Interface) -> list[str]:
    source = source_of(table)
    lines = [f"{table.component}  ids {_hex(table.id_base)}..{_hex(table.id_base + ID_RANGE - 1)}"
             + (f"  ({source})" if source else ""), "  commands"]
    lines += _text_commands(table.commands.values())
    lines.append("  events")
    lines += _columns([(_hex(e.id), e.name, e.severity, e.doc) for e in table.events.values()], "    ")
    lines.append("  telemetry")
    lines += _columns([(_hex(c.id), c.name, c.unit or "-", c.type.__name__, _bounds(c.low, c.high) or "-", c.doc)
                       for c in table.telemetry.values()], "    ")
    return lines


def interfaces_text(tables: Iterable[Interface]) -> str:
    """Every table for a terminal, in id-base order."""
    return "\n\n".join("\n".join(_text_interface(t)) for t in _ordered(tables)) + "\n"


def _text_kind(spec: KindSpec) -> list[str]:
    lines = [f"{spec.name}  ({spec.entry})", f"  {spec.doc}".rstrip(), "  endpoints"]
    lines += _columns([(role, schemes.rstrip("?").replace("|", ", "),
                        "optional" if schemes.endswith("?") else "required")
                       for role, schemes in spec.endpoints.items()], "    ")
    lines.append("  keys")
    lines += _columns([(name, _type_name(f.type), _field_default(f).strip("`"), _field_range(f) or "-",
                        _field_doc(f)) for name, f in _flat_keys(spec.keys)], "    ")
    return lines


def kinds_text(kinds: Iterable[KindSpec]) -> str:
    """Every process kind for a terminal: endpoint roles and config keys, by kind name."""
    return "\n\n".join("\n".join(_text_kind(k)) for k in sorted(kinds, key=lambda k: k.name)) + "\n"
