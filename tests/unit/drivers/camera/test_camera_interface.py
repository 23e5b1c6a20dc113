"""The camera driver's interface tables and argument validation."""

from __future__ import annotations

import pytest

from drivers.camera.interface import COMMANDS, EVENTS, INTERFACE, TELEMETRY
from framework.errors import CommandRejected


def test_tables_have_unique_ids_and_known_severities() -> None:
    assert len({c.opcode for c in COMMANDS.values()}) == len(COMMANDS)
    assert len({e.id for e in EVENTS.values()}) == len(EVENTS)
    assert len({c.id for c in TELEMETRY.values()}) == len(TELEMETRY)
    assert {e.severity for e in EVENTS.values()} <= {"info", "warning", "error"}


def test_every_required_command_and_channel_is_declared() -> None:
    assert {"NOOP", "RESET_COUNTERS", "STREAM_START", "STREAM_STOP", "CAPTURE", "SET_EXPOSURE", "SET_GAIN",
            "STATUS"} <= set(COMMANDS)
    assert {"link_state", "frames_good", "frames_bad", "counter_gaps", "last_error", "temp_c", "commands_accepted",
            "commands_rejected"} <= set(TELEMETRY)


def test_valid_arguments_are_coerced_to_their_types() -> None:
    assert INTERFACE.validate_args("STREAM_START", {"rate_hz": 2}) == {"rate_hz": 2.0}
    assert INTERFACE.validate_args("SET_EXPOSURE", {"exposure_us": 5000.0}) == {"exposure_us": 5000}
    assert INTERFACE.validate_args("CAPTURE", {}) == {}


@pytest.mark.parametrize("cmd,args,words", [
    ("STREAM_START", {}, "missing"),
    ("STREAM_START", {"rate_hz": "fast"}, "number"),
    ("STREAM_START", {"rate_hz": 0}, "below"),
    ("SET_GAIN", {"gain": 1000.0}, "above"),
    ("SET_GAIN", {"gain": float("nan")}, "finite"),
    ("SET_EXPOSURE", {"exposure_us": 1.5}, "integer"),
    ("SET_EXPOSURE", {"exposure_us": True}, "number"),
    ("CAPTURE", {"now": 1}, "unknown argument"),
    ("WARP", {}, "unknown command"),
])
def test_bad_arguments_are_rejected_with_a_reason(cmd: str, args: dict, words: str) -> None:
    with pytest.raises(CommandRejected, match=words):
        INTERFACE.validate_args(cmd, args)
