from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from framework.config import load_config, validate_config
from framework.errors import ConfigError

DEMO = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"


def demo_raw() -> dict:
    return yaml.safe_load(DEMO.read_text())


def test_demo_config_is_valid_and_fills_defaults() -> None:
    c = load_config(DEMO)
    assert c.processes["relay"]["pcap"] == "link/relay.pcap"
    assert c.endpoint("navcam_driver", "link") == c.endpoint("navcam_emulator", "link")
    assert c.processes_of_kind("bus.broker") == ["broker"]


def test_unknown_endpoint_reference_names_file_key_and_choices() -> None:
    raw = demo_raw()
    raw["processes"]["navcam_driver"]["endpoints"]["link"] = "no_such_endpoint"
    with pytest.raises(ConfigError) as e:
        validate_config(raw, "demo.yaml")
    assert e.value.file == "demo.yaml"
    assert e.value.key == "processes.navcam_driver.endpoints.link"
    assert "navcam_link" in e.value.expected


def test_missing_required_key_is_named() -> None:
    raw = demo_raw()
    del raw["processes"]["navcam_driver"]["camera"]
    with pytest.raises(ConfigError, match=r"processes\.navcam_driver\.camera.*required"):
        validate_config(raw, "x.yaml")


def test_wrong_type_is_named_with_expected_type() -> None:
    raw = demo_raw()
    raw["processes"]["relay"]["loss"] = "lots"
    with pytest.raises(ConfigError) as e:
        validate_config(raw, "x.yaml")
    assert e.value.key == "processes.relay.loss" and "float" in e.value.expected


def test_out_of_range_value_is_refused() -> None:
    raw = demo_raw()
    raw["processes"]["relay"]["loss"] = 1.5
    with pytest.raises(ConfigError, match="<= 0.95"):
        validate_config(raw, "x.yaml")


def test_unknown_key_is_refused() -> None:
    raw = demo_raw()
    raw["processes"]["imaging"]["thumbnial_px"] = 128
    with pytest.raises(ConfigError, match=r"processes\.imaging\.thumbnial_px"):
        validate_config(raw, "x.yaml")


def test_endpoint_of_wrong_scheme_is_refused() -> None:
    raw = demo_raw()
    raw["processes"]["relay"]["endpoints"]["lander"] = "bus_pub"
    with pytest.raises(ConfigError, match="udp endpoint"):
        validate_config(raw, "x.yaml")


def test_duplicate_address_is_refused() -> None:
    raw = demo_raw()
    raw["endpoints"]["extra"] = raw["endpoints"]["bus_pub"]
    with pytest.raises(ConfigError, match="already used"):
        validate_config(raw, "x.yaml")


def test_unknown_kind_is_refused() -> None:
    raw = demo_raw()
    raw["processes"]["imaging"]["kind"] = "fsw.imagin"
    with pytest.raises(ConfigError, match=r"processes\.imaging\.kind"):
        validate_config(raw, "x.yaml")


def test_bad_yaml_file_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("version: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(p)


def test_nested_profile_key_is_checked() -> None:
    raw = copy.deepcopy(demo_raw())
    raw["processes"]["navcam_emulator"]["profile"]["bit_depth"] = 11
    with pytest.raises(ConfigError, match=r"profile\.bit_depth"):
        validate_config(raw, "x.yaml")


def test_bus_roles_accept_ipc_and_name_both_schemes_when_wrong() -> None:
    raw = demo_raw()
    raw["endpoints"]["bus_pub"] = "ipc:///tmp/pdh-bus-pub.sock"
    assert validate_config(raw, "x.yaml").endpoint("broker", "xsub") == "ipc:///tmp/pdh-bus-pub.sock"
    raw["endpoints"]["bus_sub"] = "udp://127.0.0.1:40000"
    with pytest.raises(ConfigError, match="tcp or ipc endpoint"):
        validate_config(raw, "x.yaml")
