"""One format for every component's interface table: commands, events, telemetry channels.

Each component declares its table once, as data, in its own ``interface.py``
(F' ``.fpp`` files and cFS ``*_fcncodes.h`` / ``*_eventids.h`` do the same)::

    INTERFACE = Interface.build("imaging", commands=(...), events=(...), telemetry=(...))

The service checks every command's arguments with :meth:`Interface.validate_args`
before its handler runs (:meth:`Interface.checked` wraps a handler), and takes
each event's id and severity from the table (:meth:`Interface.event_fields`).
The ground, the CLI, the docs and the tests read the same table.

A table that repeats a name, an opcode or an id is a programming error: it
raises :class:`ValueError` when the component's module is imported, so no
process with such a table ever starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

from framework.errors import CommandRejected
from framework.ids import ID_BASES, ID_RANGE

__all__ = ["STANDARD_COMMANDS", "STANDARD_EVENTS", "STANDARD_CHANNELS", "SEVERITIES", "ARG_TYPES", "Arg", "CommandSpec", "EventSpec", "ChannelSpec", "Interface",
           "UndeclaredEvent", "UNDECLARED_EVENT_ID", "UNDECLARED_SEVERITY"]

SEVERITIES = ("info", "warning", "error")
ARG_TYPES = (str, int, float, bool, list)
UNDECLARED_EVENT_ID = 0
UNDECLARED_SEVERITY = "warning"


class UndeclaredEvent(ValueError):
    """A component asked for an event its table does not declare (a programming error)."""

    def __init__(self, component: str, name: str) -> None:
        self.component = component
        self.name = name
        super().__init__(f"{component}: event '{name}' is not declared in its interface table")


@dataclass(frozen=True)
class Arg:
    """One command argument: its type and, for numbers, its range; for strings, its allowed values."""

    name: str
    type: type
    min: float | None = None
    max: float | None = None
    unit: str = ""
    required: bool = True
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in ARG_TYPES:
            raise ValueError(f"argument '{self.name}': type must be one of "
                             f"{[t.__name__ for t in ARG_TYPES]}, got {self.type!r}")


@dataclass(frozen=True)
class CommandSpec:
    opcode: int
    name: str
    args: tuple[Arg, ...] = ()
    hazardous: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        names = [a.name for a in self.args]
        if len(set(names)) != len(names):
            raise ValueError(f"command {self.name}: argument names repeat: {names}")


@dataclass(frozen=True)
class EventSpec:
    id: int
    name: str
    severity: str  # one of SEVERITIES
    doc: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"event {self.name}: severity must be one of {SEVERITIES}, got {self.severity!r}")


@dataclass(frozen=True)
class ChannelSpec:
    id: int
    name: str
    unit: str
    type: type
    low: float | None = None
    high: float | None = None
    doc: str = ""


STANDARD_COMMANDS = (
    CommandSpec(0x00, "NOOP", doc="answer with the software version"),
    CommandSpec(0x01, "RESET_COUNTERS", doc="zero the command, event and error counters"),
)
"""Every component answers these two (the command server handles them); :meth:`Interface.build` adds them."""

STANDARD_EVENTS = (
    EventSpec(0xF0, "command_rejected", "warning", "a command was refused before acting: id and reason"),
    EventSpec(0xF1, "command_failed", "error", "an accepted command failed: id, cmd and reason"),
)
"""The command server's own events, in every component's table at the top of its range."""

STANDARD_CHANNELS = (
    ChannelSpec(0xF0, "commands_accepted", "count", int, doc="0 for a process with no command port"),
    ChannelSpec(0xF1, "commands_rejected", "count", int),
    ChannelSpec(0xF2, "events_published", "count", int),
    ChannelSpec(0xF3, "events_unpublished", "count", int, high=0, doc="events the bus refused (logged)"),
    ChannelSpec(0xF4, "events_suppressed", "count", int, doc="rate-limited events folded into the next one's count"),
    ChannelSpec(0xF5, "log_lines_dropped", "count", int, high=0, doc="log lines the disk refused (full disk)"),
)
"""Command and event counters every component reports in its health (cFS apps report the same)."""


def _unique(component: str, what: str, items: Iterable[Any], key: str) -> None:
    seen: dict[Any, str] = {}
    for item in items:
        k = getattr(item, key)
        if k in seen:
            raise ValueError(f"{component}: {what} {key} {k!r} is used by both '{seen[k]}' and '{item.name}'")
        seen[k] = item.name


def _by_name(component: str, what: str, items: tuple[Any, ...], key: str) -> dict[str, Any]:
    _unique(component, what, items, "name")
    _unique(component, what, items, key)
    return {i.name: i for i in items}


def _based(component: str, what: str, items: Iterable[Any], base: int) -> tuple[Any, ...]:
    out = []
    for item in items:
        if not 0 < item.id < ID_RANGE:
            raise ValueError(f"{component}: {what} '{item.name}' id {item.id:#x} is not within 1..{ID_RANGE - 1:#x} "
                             f"(ids are relative to the component's base)")
        out.append(replace(item, id=base + item.id))
    return tuple(out)


def _show(value: Any, limit: int = 60) -> str:
    """A value for a rejection reason, cut short: the reason travels in replies and events."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _coerce(cmd: str, arg: Arg, value: Any) -> Any:
    """The argument's value in its declared type, or CommandRejected naming the argument and the fault."""
    where = f"{cmd}: '{arg.name}'"
    if arg.type is str:
        if not isinstance(value, str):
            raise CommandRejected(f"{where} must be a string, got {_show(value)}")
        if arg.choices and value not in arg.choices:
            raise CommandRejected(f"{where} must be one of {list(arg.choices)}, got {_show(value)}")
        return value
    if arg.type is bool:
        if not isinstance(value, bool):
            raise CommandRejected(f"{where} must be true or false, got {_show(value)}")
        return value
    if arg.type is list:
        if not isinstance(value, (list, tuple)):
            raise CommandRejected(f"{where} must be a list, got {_show(value)}")
        return list(value)
    return _number(where, arg, value)


def _number(where: str, arg: Arg, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandRejected(f"{where} must be a number ({arg.type.__name__}), got {_show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise CommandRejected(f"{where} must be finite, got {_show(value)}")
    if arg.type is int and isinstance(value, float) and not value.is_integer():
        raise CommandRejected(f"{where} must be an integer, got {_show(value)}")
    try:
        out: int | float = int(value) if arg.type is int else float(value)
    except OverflowError:
        raise CommandRejected(f"{where} is out of range (too large for a {arg.type.__name__})") from None
    if arg.min is not None and out < arg.min:
        raise CommandRejected(f"{where}={out} is below {arg.min} {arg.unit}".rstrip())
    if arg.max is not None and out > arg.max:
        raise CommandRejected(f"{where}={out} is above {arg.max} {arg.unit}".rstrip())
    if arg.choices and out not in arg.choices:
        raise CommandRejected(f"{where} must be one of {list(arg.choices)}, got {_show(out)}")
    return out


@dataclass(frozen=True)
class Interface:
    """A component's commands (by name), events (by name) and telemetry channels (by name)."""

    component: str
    commands: dict[str, CommandSpec] = field(default_factory=dict)
    events: dict[str, EventSpec] = field(default_factory=dict)
    telemetry: dict[str, ChannelSpec] = field(default_factory=dict)
    id_base: int = 0

    @classmethod
    def build(cls, component: str, commands: Iterable[CommandSpec] = (), events: Iterable[EventSpec] = (),
              telemetry: Iterable[ChannelSpec] = (), id_base: int | None = None) -> "Interface":
        """The table from tuples; raise ValueError if a name, opcode or id repeats (a programming error).

        Event and channel ids are written relative (1..255) and stored absolute: the component's
        base from :data:`framework.ids.ID_BASES` is added (``id_base`` overrides it, for tables
        built in tests)."""
        if id_base is None:
            if component not in ID_BASES:
                raise ValueError(f"{component}: no id base in framework/ids.py ID_BASES")
            id_base = ID_BASES[component]
        return cls(component,
                   _by_name(component, "command", (*STANDARD_COMMANDS, *commands), "opcode"),
                   _by_name(component, "event", _based(component, "event", (*events, *STANDARD_EVENTS), id_base),
                            "id"),
                   _by_name(component, "telemetry channel",
                            _based(component, "channel", (*telemetry, *STANDARD_CHANNELS), id_base), "id"),
                   id_base)

    # -- commands ------------------------------------------------------------------------------
    def validate_args(self, cmd: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Check a command's arguments against its entry; return them coerced to their types.

        Raise CommandRejected naming what is wrong: unknown command, unknown or missing
        argument, wrong type, out of range, not among the choices.
        """
        spec = self.commands.get(cmd)
        if spec is None:
            raise CommandRejected(f"unknown command '{cmd}'")
        if not isinstance(args, Mapping):
            raise CommandRejected(f"{cmd}: arguments must be a map, got {type(args).__name__}")
        known = [a.name for a in spec.args]
        extra = sorted(repr(k) if not isinstance(k, str) else k for k in args if k not in known)
        if extra:
            raise CommandRejected(f"{cmd}: unknown argument(s) {extra}; takes {sorted(known)}")
        out: dict[str, Any] = {}
        for arg in spec.args:
            if arg.name not in args:
                if arg.required:
                    raise CommandRejected(f"{cmd}: missing argument '{arg.name}'")
                continue
            out[arg.name] = _coerce(cmd, arg, args[arg.name])
        return out

    def checked(self, cmd: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        """``handler`` behind :meth:`validate_args`: it gets the coerced arguments (and any further
        parameters the command server passes, such as the client id)."""
        if cmd not in self.commands:
            raise ValueError(f"{self.component}: command '{cmd}' is not declared in its interface table")

        def handle(args: dict[str, Any], *rest: Any) -> Any:
            return handler(self.validate_args(cmd, args), *rest)

        return handle

    # -- events --------------------------------------------------------------------------------
    def event(self, name: str) -> EventSpec:
        """The event's entry; raise UndeclaredEvent if the table does not declare it."""
        spec = self.events.get(name)
        if spec is None:
            raise UndeclaredEvent(self.component, name)
        return spec

    def severity(self, name: str) -> str:
        return self.event(name).severity

    def event_fields(self, name: str, details: Mapping[str, Any], severity: str | None = None,
                     log: Any = None) -> dict[str, Any]:
        """The bus fields of an event: name, event_id and severity from the table, then ``details``.

        ``severity`` overrides the table's where one event's severity depends on the
        occurrence (a verdict). Never raises: an undeclared name (a bug the interface tests
        catch) is still published, with id 0 and severity "warning", and logged as
        ``undeclared_event``; so is an override that is not a severity.
        """
        spec = self.events.get(name)
        if spec is None:
            if log is not None:
                log.error("undeclared_event", component=self.component, event_name=name)
            event_id, sev = UNDECLARED_EVENT_ID, UNDECLARED_SEVERITY
        else:
            event_id, sev = spec.id, spec.severity
        if severity is not None:
            if severity in SEVERITIES:
                sev = severity
            elif log is not None:
                log.error("undeclared_severity", component=self.component, event_name=name, severity=severity)
        return {"name": name, "event_id": event_id, "severity": sev, **details}
