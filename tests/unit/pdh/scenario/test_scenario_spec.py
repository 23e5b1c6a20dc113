"""Scenario files: parsing, and a ConfigError naming the file and key for every mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from framework.config import validate_config
from framework.errors import ConfigError
from pdh.scenario.spec import CommandAction, ExpectAction, InjectAction, WaitAction, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[4]

CONFIG: dict[str, Any] = {
    "version": 1,
    "endpoints": {"bus_pub": "tcp://127.0.0.1:1", "bus_sub": "tcp://127.0.0.1:2", "link": "tcp://127.0.0.1:3",
                  "ctl": "tcp://127.0.0.1:4", "cmd": "tcp://127.0.0.1:5"},
    "processes": {
        "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
        "emu": {"kind": "hil.deploy", "endpoints": {"link": "link", "control": "ctl", "bus_pub": "bus_pub"},
                "profile": "spring_boom"},
        "drv": {"kind": "drivers.deploy", "endpoints": {"link": "link", "bus_pub": "bus_pub", "command": "cmd"},
                "mechanism": "boom", "profile": "spring_boom"},
    },
}


def scenario(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"config": CONFIG, "steps": [
        {"id": "arm", "command": {"process": "drv", "cmd": "ARM", "args": {"mechanism": "boom"}, "curve": True}},
        {"at": 1.0, "inject": {"process": "emu", "fault": "jam", "params": {"angle_deg": 40}}},
        {"expect": {"event": "deployment_verdict", "from": "drv", "fields": {"outcome": "partial"},
                    "since": "arm", "within_s": 20}},
        {"after": 0.5, "wait": 1.5},
    ]}
    base.update(over)
    return base


def test_a_valid_scenario_parses_into_typed_steps() -> None:
    sc = parse_scenario(scenario(), "s.yaml")
    kinds = [type(s.action) for s in sc.steps]
    assert kinds == [CommandAction, InjectAction, ExpectAction, WaitAction]
    assert sc.steps[0].action.curve and sc.uses_curve()
    assert sc.steps[1].at_s == 1.0 and sc.steps[3].after_s == 0.5
    cond = sc.steps[2].action.condition
    assert cond.topic == "evt.drv" and [k for k, _ in cond.fields] == ["name", "outcome"]
    assert sc.free_ports and sc.timeout_s == 300.0


@pytest.mark.parametrize("mutate,key", [
    (lambda s: s.update(steps=[]), "steps"),
    (lambda s: s.update(bogus=1), "bogus"),
    (lambda s: s["steps"][0].update(wait=1), "steps[0]"),
    (lambda s: s["steps"][0]["command"].update(expect="done"), "steps[0].command.expect"),
    (lambda s: s["steps"][0]["command"].pop("cmd"), "steps[0].command.cmd"),
    (lambda s: s["steps"][0]["command"].update(process="nobody"), "steps[0].command.process"),
    (lambda s: s["steps"][0]["command"].update(process="emu"), "steps[0].command.process"),
    (lambda s: s["steps"][1]["inject"].update(fault="meteor"), "steps[1].inject.fault"),
    (lambda s: s["steps"][1]["inject"].update(process="drv"), "steps[1].inject.process"),
    (lambda s: s["steps"][1].update(at=-1), "steps[1].at"),
    (lambda s: s["steps"][2]["expect"].update(since="later"), "steps[2].expect.since"),
    (lambda s: s["steps"][2]["expect"].update(fields={"angle_deg": {"approx": "x"}}),
     "steps[2].expect.fields.angle_deg"),
    (lambda s: s["steps"][2]["expect"].pop("from"), "steps[2].expect.from"),
    (lambda s: s["steps"][2]["expect"].update(count=0), "steps[2].expect.count"),
    (lambda s: s["steps"][3].update(at=0.5), "steps[3]"),
    (lambda s: s.update(overrides={"ghost": {"seed": 1}}), "overrides.ghost"),
    (lambda s: s.update(start=["broker", "ghost"]), "start[1]"),
    (lambda s: s.update(start=["broker", "drv"]), "steps[1].inject.process"),
])
def test_each_mistake_is_a_config_error_naming_file_and_key(mutate, key) -> None:
    data = scenario()
    mutate(data)
    with pytest.raises(ConfigError) as err:
        parse_scenario(data, "bad.yaml")
    assert err.value.file == "bad.yaml"
    assert err.value.key == key, str(err.value)


def test_steps_at_times_must_not_go_back() -> None:
    data = scenario()
    data["steps"][0]["at"] = 5.0
    with pytest.raises(ConfigError) as err:
        parse_scenario(data, "bad.yaml")
    assert err.value.key == "steps[1].at"


def test_overrides_merge_into_the_config_process_sections() -> None:
    sc = parse_scenario(scenario(overrides={"emu": {"time_scale": 5.0, "faults": [{"fault": "slow"}]}}), "s.yaml")
    emu = sc.config["processes"]["emu"]
    assert emu["time_scale"] == 5.0 and emu["profile"] == "spring_boom" and emu["faults"] == [{"fault": "slow"}]
    assert "time_scale" not in CONFIG["processes"]["emu"]  # the caller's mapping is untouched


def test_config_file_is_found_relative_to_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(CONFIG))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario(config="bench.yaml")))
    sc = load_scenario(tmp_path / "s.yaml")
    assert sc.config_path == (tmp_path / "bench.yaml").resolve()


def test_missing_config_file_names_the_config_key(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario(config="nowhere.yaml")))
    with pytest.raises(ConfigError) as err:
        load_scenario(tmp_path / "s.yaml")
    assert err.value.key == "config"


def test_unreadable_yaml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("steps: [\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(tmp_path / "s.yaml")
    assert err.value.key == "<file>"


@pytest.mark.parametrize("path", [p for p in sorted((ROOT / "configs" / "scenarios").glob("*.yaml"))
                                  if not p.stem.startswith("bench")], ids=lambda p: p.stem)
def test_shipped_scenarios_parse_and_their_configs_validate(path: Path) -> None:
    sc = load_scenario(path)
    assert sc.steps
    validate_config(sc.config, str(path))
