"""The imaging core's commands are checked against its table before any handler runs."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from framework.bus.commands import register_table
from fsw.imaging.commands import handlers
from fsw.imaging.interface import INTERFACE
from tests.conftest import inproc_commands


def _held(camera: str, counter: int | None) -> tuple[str, dict[str, Any]] | None:
    """Frame 5 is held (as a placeholder no handler gets to use in these tests); no other is."""
    return ("frame 5", {}) if counter == 5 else None


@pytest.fixture()
def command() -> Iterator[Any]:
    def wire(server: Any) -> None:
        core = SimpleNamespace(cameras=["cam"], recent={}, recent_frame=_held)
        register_table(server, INTERFACE, handlers(core))  # type: ignore[arg-type]

    with inproc_commands(wire) as call:
        yield call


@pytest.mark.parametrize("cmd,args,words", [
    ("MAKE_LOSSY", {"camera": "cam", "counter": 7, "budget_bytes": "lots"}, "'budget_bytes' must be a number"),
    ("MAKE_LOSSY", {"camera": "cam", "budget_bytes": 10}, "'budget_bytes'=10 is below 1000"),
    ("MAKE_ROI", {"camera": "cam", "counter": 7}, "missing argument 'region'"),
    ("MAKE_ROI", {"camera": "cam", "counter": -1, "region": [0, 0, 8, 8]}, "'counter'=-1 is below 0"),
    ("MAKE_PREVIEW", {"camera": "cam", "factor": 1}, "'factor'=1 is below 2"),
    ("CAL_COLLECT", {"camera": "cam", "role": "bright", "count": 4}, r"'role' must be one of \['dark', 'flat'\]"),
    ("CAL_COLLECT", {"camera": "cam", "role": "dark", "count": 65}, "'count'=65 is above 64"),
    ("AE_ENABLE", {"camera": "cam", "now": True}, r"unknown argument\(s\) \['now'\]"),
    ("AE_DISABLE", {}, "missing argument 'camera'"),
])
def test_malformed_command_is_rejected_with_the_tables_reason(command: Any, cmd: str, args: dict[str, Any],
                                                              words: str) -> None:
    reply = command(cmd, args)
    assert reply.status == "rejected"
    assert re.search(words, reply.reason), reply.reason


def test_semantic_checks_stay_after_the_table_check(command: Any) -> None:
    other = command("MAKE_ROI", {"camera": "other", "counter": 3, "region": [0, 0, 8, 8]})
    assert other.status == "rejected" and "'camera' must be one of ['cam']" in other.reason
    shape = command("MAKE_ROI", {"camera": "cam", "counter": 5, "region": [0, 0, 8]})
    assert shape.status == "rejected" and "[x, y, width, height]" in shape.reason
    gone = command("MAKE_PREVIEW", {"camera": "cam", "counter": 3, "factor": 4})
    assert gone.status == "rejected" and "not held" in gone.reason


def test_handlers_cover_exactly_the_tables_commands_but_the_servers_own_two() -> None:
    assert set(handlers(SimpleNamespace())) == set(INTERFACE.commands) - {"NOOP", "RESET_COUNTERS"}  # type: ignore[arg-type]


def test_ae_enable_and_disable_switch_the_named_cameras_loop() -> None:
    ae = {"cam": SimpleNamespace(enabled=False)}
    table = handlers(SimpleNamespace(cameras=["cam"], ae=ae))  # type: ignore[arg-type]
    assert table["AE_ENABLE"]({"camera": "cam"}) == {"camera": "cam", "autoexposure": True}
    assert ae["cam"].enabled is True
    assert table["AE_DISABLE"]({"camera": "cam"}) == {"camera": "cam", "autoexposure": False}
    assert ae["cam"].enabled is False
