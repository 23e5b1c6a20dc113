from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from framework.config import config_dir, find_config, free_loopback_ports, load_config, parse_endpoint, validate_config
from framework.errors import ConfigError

DEMO = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"


def demo_raw() -> dict:
    return yaml.safe_load(DEMO.read_text())


def test_demo_config_is_valid_and_fills_defaults() -> None:
    c = load_config(DEMO)
    assert c.processes["relay"]["pcap"] == "link/relay.pcap"
    assert c.endpoint("navcam_driver", "link") == c.endpoint("navcam_emulator", "link")
    assert c.processes_of_kind("bus.broker") == ["broker", "ground_broker"]


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


# --- hosts: where each process runs, what it binds, what it connects to ---

MULTIHOST = DEMO.with_name("multihost.yaml")


def test_demo_config_places_every_process_on_a_declared_host() -> None:
    c = load_config(DEMO)
    assert c.processes_on("lander") == ["broker", "navcam_emulator", "navcam_driver", "imaging", "downlink"]
    assert c.processes_on("relay") == ["relay"]
    assert c.processes_on("ground") == ["ground_broker", "ground"]


def test_multihost_config_splits_lander_relay_and_ground_over_three_addresses() -> None:
    c = load_config(MULTIHOST)
    assert c.hosts == {"lander": "127.0.0.2", "relay": "127.0.0.3", "ground": "127.0.0.4"}
    assert c.processes_on("relay") == ["relay"] and c.processes_on("ground") == ["ground_broker", "ground"]
    assert c.endpoint("ground", "bus_pub") != c.endpoint("downlink", "bus_pub")  # the ground has its own bus


def test_unknown_host_is_a_config_error_naming_the_hosts() -> None:
    with pytest.raises(ConfigError, match=r"'moon'.*\['ground', 'lander', 'relay'\]"):
        load_config(DEMO).processes_on("moon")
    raw = demo_raw()
    raw["processes"]["relay"]["host"] = "moon"
    with pytest.raises(ConfigError) as e:
        validate_config(raw, "x.yaml")
    assert e.value.key == "processes.relay.host" and "lander" in e.value.expected


def test_a_process_without_host_is_refused_when_several_hosts_are_declared() -> None:
    raw = demo_raw()
    del raw["processes"]["imaging"]["host"]
    with pytest.raises(ConfigError, match=r"processes\.imaging\.host.*missing"):
        validate_config(raw, "x.yaml")


def test_a_config_without_hosts_is_one_local_host() -> None:
    raw = demo_raw()
    del raw["hosts"]
    for p in raw["processes"].values():
        del p["host"]
    c = validate_config(raw, "x.yaml")
    assert c.hosts == {"local": None} and c.processes_on("local") == c.process_names()


def test_binding_another_hosts_address_is_refused() -> None:
    raw = demo_raw()
    raw["hosts"]["ground"] = "127.0.0.4"
    with pytest.raises(ConfigError) as e:  # the ground broker still binds 127.0.0.1
        validate_config(raw, "x.yaml")
    assert e.value.key == "processes.ground_broker.endpoints.xsub"
    assert "host 'ground' (127.0.0.4)" in e.value.expected


def test_star_binds_every_interface_and_tools_reach_it_at_the_hosts_address() -> None:
    raw = demo_raw()
    raw["endpoints"]["navcam_ctl"] = "tcp://*:47115"  # only the emulator binds it; tools connect from outside
    c = validate_config(raw, "x.yaml")
    assert parse_endpoint(c.endpoint("navcam_emulator", "control")) == ("tcp", "0.0.0.0", 47115)
    assert c.reach("navcam_emulator", "control") == "tcp://127.0.0.1:47115"
    assert c.reach("navcam_driver", "command") == c.endpoint("navcam_driver", "command")


def test_connecting_to_star_is_refused_naming_the_process_that_connects() -> None:
    raw = demo_raw()
    raw["endpoints"]["bus_pub"] = "tcp://*:47100"  # the broker may bind it, but the driver connects to it
    with pytest.raises(ConfigError) as e:
        validate_config(raw, "x.yaml")
    assert e.value.key == "processes.navcam_driver.endpoints.bus_pub" and "not *" in e.value.expected


def test_a_key_that_names_an_endpoint_to_connect_to_cannot_name_star() -> None:
    raw = demo_raw()
    raw["endpoints"]["imaging_cmd"] = "tcp://*:47112"  # imaging binds it; the downlink's links connect to it
    with pytest.raises(ConfigError) as e:
        validate_config(raw, "x.yaml")
    assert e.value.key == "processes.downlink.links.imaging_command"


def test_a_udp_peer_at_star_is_no_address_but_a_bound_star_is_every_interface() -> None:
    from link.radio import udp_address

    assert udp_address("udp://*:47120", bind=True) == ("0.0.0.0", 47120)
    assert udp_address("udp://localhost:47120") == ("127.0.0.1", 47120)
    with pytest.raises(ValueError, match="peer"):
        udp_address("udp://*:47120")


def test_hosts_must_be_named_addresses() -> None:
    raw = demo_raw()
    raw["hosts"]["relay"] = "*"
    with pytest.raises(ConfigError, match=r"hosts\.relay"):
        validate_config(raw, "x.yaml")


# --- camera command routing derived from the camera drivers ---

def test_camera_commands_left_out_route_to_each_served_cameras_driver() -> None:
    assert load_config(DEMO).processes["imaging"]["camera_commands"] == {"navcam": "navcam_cmd"}
    raw = demo_raw()
    raw["endpoints"]["context_cmd"] = "tcp://127.0.0.1:47140"
    raw["endpoints"]["monitor_cmd"] = "tcp://127.0.0.1:47141"
    for cam in ("context", "monitor"):
        raw["processes"][f"{cam}_driver"] = {**copy.deepcopy(raw["processes"]["navcam_driver"]), "camera": cam,
                                             "profile_file": cam, "endpoints": {
                                                 **raw["processes"]["navcam_driver"]["endpoints"],
                                                 "command": f"{cam}_cmd"}}
    raw["processes"]["imaging"]["cameras"] = ["navcam", "context"]  # monitor's frames go elsewhere
    routes = validate_config(raw, "x.yaml").processes["imaging"]["camera_commands"]
    assert routes == {"navcam": "navcam_cmd", "context": "context_cmd"}


def test_camera_commands_given_are_kept_as_given() -> None:
    raw = demo_raw()
    raw["processes"]["imaging"]["camera_commands"] = {}
    assert validate_config(raw, "x.yaml").processes["imaging"]["camera_commands"] == {}


# --- shipped configs, found wherever the project is installed ---

def test_shipped_configs_and_profiles_are_found_from_any_directory(tmp_path: Path, monkeypatch) -> None:
    from drivers.camera.profile import PROFILE_DIR as CAMERAS
    from drivers.deploy.profile import PROFILE_DIR as MECHANISMS

    monkeypatch.chdir(tmp_path)
    shipped = config_dir()
    assert (shipped / "demo.yaml").read_text() == DEMO.read_text()
    assert CAMERAS == shipped / "cameras" and (CAMERAS / "navcam.yaml").is_file()
    assert MECHANISMS == shipped / "mechanisms" and (MECHANISMS / "spring_boom.yaml").is_file()
    for ref in ("configs/multihost.yaml", "multihost.yaml", "multihost"):
        assert find_config(ref) == shipped / "multihost.yaml"
    (tmp_path / "mine.yaml").write_text("version: 1\n")
    assert find_config("mine.yaml") == Path("mine.yaml")  # a file here wins
    assert find_config("nowhere.yaml") == Path("nowhere.yaml")  # left for load_config to name


def test_free_ports_keep_each_host_and_share_a_port_between_a_star_and_its_address() -> None:
    eps = {"bound": "tcp://*:47300", "reached": "tcp://127.0.0.2:47300", "radio": "udp://127.0.0.3:47300",
           "zero_a": "tcp://127.0.0.1:0", "zero_b": "tcp://127.0.0.1:0",
           "remote": "tcp://10.1.2.3:47301", "ipc": "ipc:///tmp/x.sock"}
    out = free_loopback_ports(eps)
    ports = {n: parse_endpoint(a)[2] for n, a in out.items() if n != "ipc"}
    assert out["bound"].startswith("tcp://*:") and out["reached"].startswith("tcp://127.0.0.2:")
    assert ports["bound"] == ports["reached"] != 47300
    assert out["radio"].startswith("udp://127.0.0.3:") and ports["radio"] != 47300
    assert ports["zero_a"] != ports["zero_b"] and 0 not in (ports["zero_a"], ports["zero_b"])
    assert out["remote"] == eps["remote"] and out["ipc"] == eps["ipc"]
