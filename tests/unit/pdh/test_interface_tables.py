"""Every component's interface table is consistent, and its code emits and serves only what it declares."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from drivers.camera.interface import INTERFACE as CAMERA
from drivers.deploy.interface import INTERFACE as DEPLOY
from fsw.downlink.interface import INTERFACE as DOWNLINK
from ground.interface import INTERFACE as GROUND
from fsw.imaging.interface import INTERFACE as IMAGING
from fsw.ingest.interface import INTERFACE as INGEST
from fsw.sequencer.interface import INTERFACE as SEQUENCER
from framework.interface import SEVERITIES, Interface

ROOT = Path(__file__).resolve().parents[3]
# component -> (its table, its source folder, whether it runs a CommandServer, which emits command_* events)
COMPONENTS: dict[str, tuple[Interface, str, bool]] = {
    "camera": (CAMERA, "drivers/camera", True),
    "deploy": (DEPLOY, "drivers/deploy", True),
    "imaging": (IMAGING, "fsw/imaging", True),
    "downlink": (DOWNLINK, "fsw/downlink", True),
    "ground": (GROUND, "ground", True),
    "ingest": (INGEST, "fsw/ingest", True),
    "sequencer": (SEQUENCER, "fsw/sequencer", True),
}
# Event-emitting calls: self.event("x", ...), svc.event(...), self._event / self._emit / self.emit / d.emit,
# self.limited_event, events.limited, self._fault (camera), Event("x", ...) (deploy sequencer), and name = "x"
# (camera decoder errors); each may pick between two names with `"a" if cond else "b"`.
_CALL = re.compile(r'\b(?:_?emit|_?event|limited_event|limited|_fault|Event)\(\s*"(\w+)"(?:\s+if\s[^"\n]+\selse\s+"(\w+)")?')
_ASSIGN = re.compile(r'\bname = "(\w+)"(?:\s+if\s[^"\n]+\selse\s+"(\w+)")?')


def emitted_event_names(folder: str) -> set[str]:
    names: set[str] = set()
    for path in sorted((ROOT / folder).glob("*.py")):
        if path.name == "interface.py":
            continue
        text = path.read_text()
        for m in [*_CALL.finditer(text), *_ASSIGN.finditer(text)]:
            names |= {g for g in m.groups() if g}
    return names


class _Recorder:
    """Stands in for a CommandServer: remembers what is registered."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def register(self, name: str, handler: Any, with_client: bool = False) -> None:
        self.names.append(name)


def registered_commands(component: str) -> set[str]:
    """What the component's ``commands.handlers`` registers through ``register_table`` (the one way)."""
    import importlib

    from framework.bus.commands import register_table
    table, folder, _ = COMPONENTS[component]
    module = importlib.import_module(folder.replace("/", ".") + ".commands")
    server = _Recorder()
    register_table(server, table, module.handlers(SimpleNamespace()),  # type: ignore[arg-type]
                   with_client=getattr(module, "WITH_CLIENT", ()))
    assert len(server.names) == len(set(server.names)), f"{component} registers a command twice"
    return set(server.names)


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_opcodes_ids_and_names_are_unique_and_severities_valid(component: str) -> None:
    table = COMPONENTS[component][0]
    assert table.component == component
    assert len({c.opcode for c in table.commands.values()}) == len(table.commands)
    assert len({e.id for e in table.events.values()}) == len(table.events)
    assert len({c.id for c in table.telemetry.values()}) == len(table.telemetry)
    assert all(e.id != 0 for e in table.events.values()), "event id 0 marks an undeclared event"
    assert {e.severity for e in table.events.values()} <= set(SEVERITIES)
    for name, spec in [*table.commands.items(), *table.events.items(), *table.telemetry.items()]:
        assert spec.name == name


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_every_event_the_source_emits_is_declared(component: str) -> None:
    table, folder, serves_commands = COMPONENTS[component]
    emitted = emitted_event_names(folder)
    assert emitted, f"the regex found no events in {folder}: update it"
    if serves_commands:  # framework.bus.commands.CommandServer raises these through the service's event callback
        emitted |= {"command_rejected", "command_failed"}
    assert sorted(emitted - set(table.events)) == []


def test_the_event_regex_sees_conditional_and_assigned_names() -> None:
    assert {"region_request_done", "region_request_failed"} <= emitted_event_names("fsw/downlink")
    assert {"segment_rejected", "progress_not_recorded"} <= emitted_event_names("fsw/downlink")  # events.limited
    assert {"frame_truncated", "frame_crc_error", "link_garbage"} <= emitted_event_names("drivers/camera")
    assert {"deployment_verdict", "armed"} <= emitted_event_names("drivers/deploy")


@pytest.mark.parametrize("component", ["camera", "deploy", "imaging", "downlink", "ground"])
def test_every_registered_command_is_in_the_table_and_every_table_command_is_served(component: str) -> None:
    table = COMPONENTS[component][0]
    served = registered_commands(component) | {"NOOP", "RESET_COUNTERS"}  # the CommandServer's own two
    assert served == set(table.commands)


def test_hazardous_commands_are_exactly_the_deploy_guarded_ones() -> None:
    hazardous = {n for t, _, _ in COMPONENTS.values() for n, c in t.commands.items() if c.hazardous}
    assert hazardous == {"ARM", "FIRE", "DISARM", "INHIBIT", "ENABLE", "ABORT"}
    assert all(c.args[0].name == "mechanism" and c.args[0].type is str
               for c in DEPLOY.commands.values() if c.hazardous)


def test_ground_answers_the_two_commands_every_component_answers_and_the_uplink_queue() -> None:
    assert set(GROUND.commands) == {"NOOP", "RESET_COUNTERS", "UPLINK", "QUEUE_LIST", "QUEUE_MOVE", "QUEUE_CANCEL"}
    assert not any(c.hazardous for c in GROUND.commands.values())
