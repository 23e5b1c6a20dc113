"""The downlink's commands are checked against its table before any handler runs."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from framework.bus.commands import register_table
from fsw.downlink.commands import handlers
from fsw.downlink.interface import INTERFACE
from tests.conftest import inproc_commands


@pytest.fixture()
def command() -> Iterator[Any]:
    def wire(server: Any) -> None:
        fwd = SimpleNamespace(imaging=None, recorder=None)
        register_table(server, INTERFACE, handlers(fwd))  # type: ignore[arg-type]

    with inproc_commands(wire) as call:
        yield call


@pytest.mark.parametrize("cmd,args,words", [
    ("TLM_PLAYBACK", {"t_start": "yesterday", "t_end": 5.0}, "'t_start' must be a number"),
    ("TLM_PLAYBACK", {"t_start": 1.0}, "missing argument 't_end'"),
    ("TLM_PLAYBACK", {"t_start": 1.0, "t_end": float("nan")}, "'t_end' must be finite"),
    ("SEND_FULL", {"camera": "navcam", "counter": "3"}, "'counter' must be a number"),
    ("SEND_PRODUCT", {}, "missing argument 'id'"),
    ("DROP", {"id": 42}, "'id' must be a string"),
    ("SEND_REGION", {"camera": "navcam", "counter": 3}, "missing argument 'region'"),
    ("SEND_REGION", {"camera": "navcam", "region": "0,0,8,8"}, "'region' must be a list"),
    ("STORE_LIST", {"all": True}, r"unknown argument\(s\) \['all'\]"),
])
def test_malformed_command_is_rejected_with_the_tables_reason(command: Any, cmd: str, args: dict[str, Any],
                                                              words: str) -> None:
    reply = command(cmd, args)
    assert reply.status == "rejected"
    assert re.search(words, reply.reason), reply.reason


def test_semantic_checks_stay_after_the_table_check(command: Any) -> None:
    backwards = command("TLM_PLAYBACK", {"t_start": 10, "t_end": 5})
    assert backwards.status == "rejected" and "before t_start" in backwards.reason
    nothing = command("SEND_FULL", {"camera": "navcam"})
    assert nothing.status == "rejected" and "give 'id', or 'camera' and 'counter'" in nothing.reason
    unlinked = command("SEND_REGION", {"camera": "navcam", "counter": 3, "region": [0, 0, 8, 8]})
    assert unlinked.status == "rejected" and "MAKE_ROI" in unlinked.reason
