"""The emulators' interface tables agree with their code: commands served, events raised, scene options, faults."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from framework.bus.commands import BUILT_IN
from framework.ids import ID_BASES
from framework.interface import Interface
from hil.camera import commands as camera_commands
from hil.camera.faults import FAULTS as CAMERA_FAULTS
from hil.camera.interface import INTERFACE as CAMERA
from hil.camera.view import SceneOptions
from hil.deploy import commands as deploy_commands
from hil.deploy.interface import INTERFACE as DEPLOY
from hil.deploy.mechanism import FAULTS as DEPLOY_FAULTS
from hil.relay import commands as relay_commands
from hil.relay.interface import INTERFACE as RELAY

ROOT = Path(__file__).resolve().parents[3]
EMULATORS: dict[str, tuple[Interface, str, object]] = {
    "camera_emulator": (CAMERA, "hil/camera", camera_commands),
    "deploy_emulator": (DEPLOY, "hil/deploy", deploy_commands),
    "relay_emulator": (RELAY, "hil/relay", relay_commands),
}
_EMIT = re.compile(r'\.(?:emit|limited)\(\s*"(\w+)"')


@pytest.mark.parametrize("name", sorted(EMULATORS))
def test_table_numbers_from_the_components_base_and_answers_noop_and_reset_counters(name: str) -> None:
    table = EMULATORS[name][0]
    assert table.component == name and table.id_base == ID_BASES[name]
    assert table.commands["NOOP"].opcode == 0x00 and table.commands["RESET_COUNTERS"].opcode == 0x01
    ids = [s.id for s in (*table.events.values(), *table.telemetry.values())]
    assert all(ID_BASES[name] < i < ID_BASES[name] + 0x100 for i in ids)
    assert {"command_rejected", "command_failed"} <= set(table.events)
    assert {"commands_accepted", "commands_rejected", "events_published", "events_unpublished",
            "events_suppressed"} <= set(table.telemetry)


@pytest.mark.parametrize("name", sorted(EMULATORS))
def test_every_table_command_has_a_handler_and_every_handler_a_command(name: str) -> None:
    table, _, commands = EMULATORS[name]
    served = set(commands.handlers(SimpleNamespace()))  # type: ignore[attr-defined]
    assert served == set(table.commands) - set(BUILT_IN)


@pytest.mark.parametrize("name", sorted(EMULATORS))
def test_every_event_the_source_raises_is_declared(name: str) -> None:
    table, folder, _ = EMULATORS[name]
    raised = {m.group(1) for path in sorted((ROOT / folder).glob("*.py")) for m in _EMIT.finditer(path.read_text())}
    assert raised, f"the regex found no events in {folder}: update it"
    assert sorted(raised - set(table.events)) == []


def test_camera_set_scene_takes_exactly_the_scene_options() -> None:
    args = {a.name for a in CAMERA.commands["set_scene"].args}
    assert args == {f.name for f in dataclasses.fields(SceneOptions)}
    assert all(not a.required for a in CAMERA.commands["set_scene"].args)


def test_camera_inject_fault_declares_every_fault_and_every_fault_argument() -> None:
    args = {a.name: a for a in CAMERA.commands["inject_fault"].args}
    assert set(args["fault"].choices) == set(CAMERA_FAULTS)
    assert set(args) - {"fault"} == {k for defaults, _ in CAMERA_FAULTS.values() for k in defaults}


def test_deploy_inject_declares_every_fault() -> None:
    args = {a.name: a for a in DEPLOY.commands["INJECT"].args}
    assert set(args["fault"].choices) == set(DEPLOY_FAULTS) and args["fault"].required


def test_control_wire_names_are_kept() -> None:
    assert {"inject_fault", "clear_faults", "set_boom_angle", "set_scene", "status"} <= set(CAMERA.commands)
    assert {"INJECT", "CLEAR_FAULTS", "SET_AMBIENT", "TRUTH", "RESET"} <= set(DEPLOY.commands)
    assert {"WINDOW", "RELAY_OUT", "RELAY_IN", "SET_LINK", "STEP_CLOCK", "CLEAR_OVERRIDES", "LINK_STATUS"} <= set(RELAY.commands)
