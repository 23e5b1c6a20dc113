"""The ingest's table and its code agree: every event it raises and every channel it samples is declared,
every declared channel is sampled, and every table command has its handler."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from framework.bus.commands import register_table
from framework.interface import STANDARD_CHANNELS
from fsw.ingest.commands import handlers
from fsw.ingest.interface import INTERFACE, KIND

from tests.unit.fsw.ingest.test_ingest_core import Rig

FOLDER = Path(__file__).resolve().parents[4] / "fsw" / "ingest"
_EVENT_CALL = re.compile(r'\.(?:emit|limited)\(\s*(?:f?)"(\w+)"')


def test_every_event_the_ingest_raises_is_in_its_table() -> None:
    raised = {m.group(1) for path in FOLDER.glob("*.py") if path.name != "interface.py"
              for m in _EVENT_CALL.finditer(path.read_text())}
    assert raised and raised <= set(INTERFACE.events), sorted(raised - set(INTERFACE.events))


def test_the_health_sample_is_exactly_the_tables_own_channels(tmp_path: Path) -> None:
    sampled = set(Rig(tmp_path).core.counters())
    own = set(INTERFACE.telemetry) - {c.name for c in STANDARD_CHANNELS}
    assert sampled == own


def test_every_table_command_has_a_handler_and_the_kind_names_the_table() -> None:
    class Recorder:
        names: list[str] = []

        def register(self, name: str, handler: Any, with_client: bool = False) -> None:
            self.names.append(name)

    server = Recorder()
    register_table(server, INTERFACE, handlers(SimpleNamespace()))  # type: ignore[arg-type]
    assert set(server.names) == set(INTERFACE.commands) - {"NOOP", "RESET_COUNTERS"}
    assert KIND.interface is INTERFACE and KIND.entry == "fsw.ingest.process:run"
