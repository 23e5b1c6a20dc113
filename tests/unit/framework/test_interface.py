"""The shared interface-table format: argument checks, duplicate refusal, event lookup."""

from __future__ import annotations

import math
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.errors import CommandRejected
from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface, UndeclaredEvent

TABLE = Interface.build(
    "test",
    commands=(
        CommandSpec(0x10, "SET", (Arg("exposure_us", int, 1, 1000, "us"), Arg("gain", float, 0.5, 8.0),
                                  Arg("mode", str, required=False, choices=("a", "b")),
                                  Arg("on", bool, required=False), Arg("region", list, required=False))),
        CommandSpec(0x11, "FIRE", (Arg("mechanism", str),), hazardous=True),
    ),
    events=(EventSpec(1, "link_up", "info"), EventSpec(2, "link_down", "warning"), EventSpec(3, "broken", "error")),
    telemetry=(ChannelSpec(1, "temp_c", "degC", float, -20.0, 60.0),),
    id_base=0,
)


def test_valid_arguments_are_coerced_to_their_declared_types() -> None:
    got = TABLE.validate_args("SET", {"exposure_us": 10.0, "gain": 2, "mode": "b", "on": False, "region": (1, 2)})
    assert got == {"exposure_us": 10, "gain": 2.0, "mode": "b", "on": False, "region": [1, 2]}
    assert type(got["exposure_us"]) is int and type(got["gain"]) is float
    assert TABLE.validate_args("SET", {"exposure_us": 1, "gain": 8.0}) == {"exposure_us": 1, "gain": 8.0}
    assert TABLE.validate_args("NOOP", {}) == {}


@pytest.mark.parametrize("cmd,args,words", [
    ("WARP", {}, "unknown command 'WARP'"),
    ("NOOP", {"now": 1}, r"unknown argument\(s\) \['now'\]"),
    ("SET", {"gain": 1.0}, "missing argument 'exposure_us'"),
    ("SET", {"exposure_us": "long", "gain": 1.0}, "'exposure_us' must be a number"),
    ("SET", {"exposure_us": True, "gain": 1.0}, "'exposure_us' must be a number"),
    ("SET", {"exposure_us": 1.5, "gain": 1.0}, "'exposure_us' must be an integer"),
    ("SET", {"exposure_us": 0, "gain": 1.0}, "'exposure_us'=0 is below 1 us"),
    ("SET", {"exposure_us": 1001, "gain": 1.0}, "'exposure_us'=1001 is above 1000 us"),
    ("SET", {"exposure_us": 5, "gain": float("nan")}, "'gain' must be finite"),
    ("SET", {"exposure_us": 5, "gain": float("inf")}, "'gain' must be finite"),
    ("SET", {"exposure_us": 5, "gain": 10**400}, "'gain' is out of range"),
    ("SET", {"exposure_us": 5, "gain": 1.0, "mode": "c"}, r"'mode' must be one of \['a', 'b'\]"),
    ("SET", {"exposure_us": 5, "gain": 1.0, "mode": 3}, "'mode' must be a string"),
    ("SET", {"exposure_us": 5, "gain": 1.0, "on": 1}, "'on' must be true or false"),
    ("SET", {"exposure_us": 5, "gain": 1.0, "region": "[0, 0, 4, 4]"}, "'region' must be a list"),
    ("FIRE", {"mechanism": 3}, "'mechanism' must be a string"),
])
def test_bad_arguments_are_rejected_naming_the_argument(cmd: str, args: dict[str, Any], words: str) -> None:
    with pytest.raises(CommandRejected, match=words):
        TABLE.validate_args(cmd, args)


def test_rejection_names_the_command() -> None:
    with pytest.raises(CommandRejected, match=r"^SET: "):
        TABLE.validate_args("SET", {"exposure_us": 0, "gain": 1.0})


@pytest.mark.parametrize("commands,events,telemetry,words", [
    ((CommandSpec(1, "A"), CommandSpec(1, "B")), (), (), "opcode 1"),
    ((CommandSpec(1, "A"), CommandSpec(2, "A")), (), (), "name 'A'"),
    ((), (EventSpec(7, "x", "info"), EventSpec(7, "y", "info")), (), "event id 7"),
    ((), (), (ChannelSpec(3, "a", "", int), ChannelSpec(3, "b", "", int)), "channel id 3"),
])
def test_duplicate_names_opcodes_or_ids_are_refused(commands: tuple, events: tuple, telemetry: tuple,
                                                    words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Interface.build("dup", commands, events, telemetry, id_base=0)


def test_bad_severity_argument_type_or_repeated_argument_is_refused() -> None:
    with pytest.raises(ValueError, match="severity"):
        EventSpec(1, "x", "fatal")
    with pytest.raises(ValueError, match="type"):
        Arg("when", dict)
    with pytest.raises(ValueError, match="repeat"):
        CommandSpec(1, "A", (Arg("x", int), Arg("x", int)))


def test_declared_event_gives_its_id_and_severity() -> None:
    assert TABLE.event("link_down") == EventSpec(2, "link_down", "warning")
    assert TABLE.severity("broken") == "error"
    assert TABLE.event_fields("link_up", {"host": "h"}) == {"name": "link_up", "event_id": 1, "severity": "info",
                                                           "host": "h"}
    assert TABLE.event_fields("link_up", {}, severity="error")["severity"] == "error"


def test_undeclared_event_raises_a_clear_error_on_lookup() -> None:
    with pytest.raises(UndeclaredEvent, match="test: event 'nope' is not declared"):
        TABLE.event("nope")
    with pytest.raises(UndeclaredEvent):
        TABLE.severity("nope")


def test_undeclared_event_is_still_published_as_a_warning_with_id_zero_and_logged() -> None:
    with structlog.testing.capture_logs() as logs:
        body = TABLE.event_fields("nope", {"x": 1}, log=structlog.get_logger())
        bad = TABLE.event_fields("link_up", {}, severity="loud", log=structlog.get_logger())
    assert body == {"name": "nope", "event_id": 0, "severity": "warning", "x": 1}
    assert bad["severity"] == "info"
    assert [e["event"] for e in logs] == ["undeclared_event", "undeclared_severity"]


def test_checked_handler_gets_coerced_arguments_and_never_runs_on_bad_ones() -> None:
    calls: list[tuple] = []
    handler = TABLE.checked("FIRE", lambda args, client: calls.append((args, client)) or "ok")
    assert handler({"mechanism": "boom"}, "key") == "ok"
    with pytest.raises(CommandRejected):
        handler({"mechanism": 1}, "key")
    assert calls == [({"mechanism": "boom"}, "key")]
    with pytest.raises(ValueError, match="not declared"):
        TABLE.checked("WARP", lambda args: None)


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)
_keys = st.sampled_from(["exposure_us", "gain", "mode", "on", "region", "mechanism"]) | st.text(max_size=6)


@settings(max_examples=300, deadline=None)
@given(cmd=st.sampled_from(sorted(TABLE.commands)) | st.text(max_size=6),
       args=st.dictionaries(_keys, _values, max_size=6))
def test_any_arguments_validate_or_are_rejected_never_another_error(cmd: str, args: dict[str, Any]) -> None:
    try:
        got = TABLE.validate_args(cmd, args)
    except CommandRejected as exc:
        assert str(exc)
        return
    spec = TABLE.commands[cmd]
    for arg in spec.args:
        if arg.name in got:
            assert isinstance(got[arg.name], arg.type)
            if arg.type in (int, float):
                assert math.isfinite(got[arg.name]) and not isinstance(got[arg.name], bool)
        else:
            assert not arg.required


def test_ids_are_stored_absolute_from_the_components_base() -> None:
    from framework.ids import ID_BASES
    table = Interface.build("downlink", events=(EventSpec(4, "x", "info"),),
                            telemetry=(ChannelSpec(2, "c", "", int),))
    assert table.events["x"].id == ID_BASES["downlink"] + 4
    assert table.telemetry["c"].id == ID_BASES["downlink"] + 2
    assert table.event_fields("x", {})["event_id"] == ID_BASES["downlink"] + 4


@pytest.mark.parametrize("ident", [0, 0x100, 0x301])
def test_an_id_outside_the_components_range_is_refused(ident: int) -> None:
    with pytest.raises(ValueError, match="relative"):
        Interface.build("downlink", events=(EventSpec(ident, "x", "info"),))


def test_a_component_without_an_id_base_is_refused() -> None:
    with pytest.raises(ValueError, match="no id base"):
        Interface.build("nobody", events=(EventSpec(1, "x", "info"),))


def test_id_ranges_of_components_do_not_overlap() -> None:
    from framework.ids import ID_BASES, ID_RANGE
    bases = sorted(ID_BASES.values())
    assert all(b % ID_RANGE == 0 for b in bases)
    assert len(set(bases)) == len(bases)


def test_every_table_gets_the_standard_commands_events_and_counters_once() -> None:
    from framework.interface import STANDARD_CHANNELS, STANDARD_COMMANDS, STANDARD_EVENTS
    table = Interface.build("imaging", events=(EventSpec(1, "x", "info"),))
    assert {c.name for c in STANDARD_COMMANDS} <= set(table.commands)
    assert {e.name for e in STANDARD_EVENTS} <= set(table.events)
    assert {c.name for c in STANDARD_CHANNELS} <= set(table.telemetry)
    assert table.commands["NOOP"].opcode == 0 and table.events["command_rejected"].id == 0x02F0
    with pytest.raises(ValueError, match="NOOP"):
        Interface.build("imaging", commands=(CommandSpec(0x10, "NOOP"),))
