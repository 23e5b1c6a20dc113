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
    assert c.processes_on("lander") == ["broker", "navcam_emulator", "navcam_driver", "imaging", "downlink", "sequencer", "ingest"]
    assert c.processes_on("relay") == ["relay"]
    assert c.processes_on("ground") == ["ground_broker", "ground", "console"]


def test_multihost_config_splits_lander_relay_and_ground_over_three_addresses() -> None:
    c = load_config(MULTIHOST)
    assert c.hosts == {"lander": "127.0.0.2", "relay": "127.0.0.3", "ground": "127.0.0.4"}
    assert c.processes_on("relay") == ["relay"] and c.processes_on("ground") == ["ground_broker", "ground", "console"]
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
    with pytest.raises(ConfigError) as e:  # the ground station still binds its radio at 127.0.0.1
        validate_config(raw, "x.yaml")
    assert e.value.key == "processes.ground.endpoints.radio"
    assert "host 'ground' (127.0.0.4)" in e.value.expected


def test_star_binds_every_interface_and_tools_reach_it_at_the_hosts_address() -> None:
    raw = demo_raw()
    raw["endpoints"]["navcam_ctl"] = "tcp://*:47115"  # only the emulator binds it; tools connect from outside
    c = validate_config(raw, "x.yaml")
    assert parse_endpoint(c.endpoint("navcam_emulator", "control")) == ("tcp", "0.0.0.0", 47115)
    assert c.reach("navcam_emulator", "control") == "tcp://127.0.0.1:47115"
    assert c.reach("navcam_emulator", "link") == c.endpoint("navcam_emulator", "link")


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


# --- a config check-config accepts can start: every value in the range its process runs with ---

def _refused(raw: dict, key: str, **kw) -> ConfigError:
    """The ConfigError validating ``raw`` raises; it names the file and ``key``."""
    with pytest.raises(ConfigError) as e:
        validate_config(raw, "x.yaml", **kw)
    assert e.value.file == "x.yaml" and e.value.key == key, str(e.value)
    return e.value


def _no_hosts(raw: dict) -> dict:
    """``raw`` as one machine's config: no ``hosts:``, so every process starts here."""
    del raw["hosts"]
    for p in raw["processes"].values():
        del p["host"]
    return raw


def test_a_nan_float_is_refused_at_any_depth() -> None:
    raw = demo_raw()
    raw["processes"]["navcam_driver"]["frame_rate_hz"] = float("nan")
    assert "NaN" in _refused(raw, "processes.navcam_driver.frame_rate_hz").expected
    raw = demo_raw()
    raw["processes"]["imaging"]["thumbnail_only_rule"] = {"min_score": float("nan")}
    _refused(raw, "processes.imaging.thumbnail_only_rule.min_score")


def test_an_infinite_float_is_refused_unless_its_field_allows_it() -> None:
    from framework.config import check_mapping
    from framework.kinds import Field

    raw = demo_raw()
    raw["processes"]["downlink"]["time_scale"] = float("inf")
    assert "finite" in _refused(raw, "processes.downlink.time_scale").expected
    raw = demo_raw()
    raw["processes"]["relay"]["time_scale"] = 1e12  # beyond what the contact plan takes
    _refused(raw, "processes.relay.time_scale")
    spec = {"limit": Field(float, 1.0, min=0.0, finite=False)}
    assert check_mapping("x.yaml", "p", spec, {"limit": float("inf")}) == {"limit": float("inf")}
    with pytest.raises(ConfigError, match="NaN"):
        check_mapping("x.yaml", "p", spec, {"limit": float("nan")})


@pytest.mark.parametrize("key, value, named", [
    ("lander_windows_s", [[-5, 10]], "lander_windows_s[0]"),          # negative
    ("lander_windows_s", [[10, 10]], "lander_windows_s[0]"),          # zero length
    ("lander_windows_s", [[3000, 0]], "lander_windows_s[0]"),         # reversed
    ("ground_windows_s", [[0, 7201]], "ground_windows_s[0]"),         # beyond the period
    ("lander_windows_s", [[0, 3000], [2000, 4000]], "lander_windows_s[1]"),  # overlapping
    ("lander_windows_s", [[4000, 5000], [0, 3000]], "lander_windows_s[1]"),  # out of order
    ("lander_windows_s", [], "lander_windows_s"),                     # no window at all
    ("lander_windows_s", [[0, float("nan")]], "lander_windows_s[0]"),
    ("rate_bps", [0], "rate_bps"),
    ("rate_bps", -24000000, "rate_bps"),
    ("rate_bps", [], "rate_bps"),
    ("rate_bps", float("inf"), "rate_bps"),
    ("period_s", 0, "period_s"),
    ("latency_ms", float("nan"), "latency_ms"),
    ("burst", {"enter": 0.1, "leav": 0.2}, "burst"),
])
def test_a_relay_plan_no_process_can_run_is_refused_naming_the_relay_key(key: str, value, named: str) -> None:
    for process in ("downlink", "relay", "ground"):  # the plan is one YAML alias shared by all three
        raw = demo_raw()
        raw["processes"][process]["relays"] = copy.deepcopy(raw["processes"][process]["relays"])
        raw["processes"][process]["relays"][1][key] = value
        _refused(raw, f"processes.{process}.relays[1].{named}")


def test_a_schedule_file_is_read_and_checked_by_check_config(tmp_path: Path) -> None:
    raw = demo_raw()
    raw["processes"]["relay"]["relays_file"] = str(tmp_path / "missing.yaml")
    _refused(raw, "processes.relay.relays_file")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"relays": [{"name": "a", "period_s": 100, "lander_windows_s": [[50, 10]]}]}))
    raw["processes"]["relay"]["relays_file"] = str(bad)
    with pytest.raises(ConfigError) as e:
        validate_config(raw, "x.yaml")
    assert e.value.file == str(bad) and e.value.key == "relays[0].lander_windows_s[0]"


@pytest.mark.parametrize("priority", [[], ["alert"], ["alert", "thumbnail", "telemetry", "requested", "playback",
                                                       "playback"], ["alert", "thumbnail", "telemetry", "requested",
                                                                     "playback", "rest", "junk"]])
def test_a_downlink_priority_that_is_not_every_class_once_is_refused(priority: list) -> None:
    raw = demo_raw()
    raw["processes"]["downlink"]["priority"] = priority
    with pytest.raises(ConfigError) as e:
        validate_config(raw, "x.yaml")
    assert e.value.key.startswith("processes.downlink.priority")


def test_a_directory_key_naming_a_file_is_refused(tmp_path: Path, monkeypatch) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    raw = demo_raw()
    raw["processes"]["downlink"]["store_dir"] = str(a_file)
    assert "is a file" in _refused(raw, "processes.downlink.store_dir").expected
    raw["processes"]["downlink"]["store_dir"] = str(a_file / "store")  # under a file: mkdir fails
    _refused(raw, "processes.downlink.store_dir")
    raw["processes"]["downlink"]["store_dir"] = str(tmp_path / "new" / "store")  # to be made: fine
    validate_config(raw, "x.yaml")
    # relative to the output directory: checked when the caller knows it
    raw["processes"]["downlink"]["store_dir"] = "a_file"
    validate_config(raw, "x.yaml")
    _refused(raw, "processes.downlink.store_dir", out_dir=tmp_path)
    # relative to the working directory (the deploy driver's keys): checked against it
    monkeypatch.chdir(tmp_path)
    raw = demo_raw()
    raw["endpoints"]["boom_link"] = "tcp://127.0.0.1:47140"
    raw["endpoints"]["boom_cmd"] = "tcp://127.0.0.1:47141"
    raw["processes"]["boom_driver"] = {"kind": "drivers.deploy", "host": "lander", "mechanism": "boom",
                                       "profile": "spring_boom", "keys_dir": "a_file",
                                       "endpoints": {"link": "boom_link", "bus_pub": "bus_pub", "command": "boom_cmd"}}
    _refused(raw, "processes.boom_driver.keys_dir")


def test_a_file_key_naming_a_directory_is_refused(tmp_path: Path) -> None:
    raw = demo_raw()
    raw["processes"]["relay"]["pcap"] = str(tmp_path)
    assert "is a directory" in _refused(raw, "processes.relay.pcap").expected


@pytest.mark.parametrize("name", ["../x", "a b", "-ring", "x" * 129])
def test_a_shm_ring_name_the_ring_cannot_take_is_refused(name: str) -> None:
    from framework.bus.frames_shm import ShmError, ring_path

    with pytest.raises(ShmError):
        ring_path(name)  # what the driver would die of
    raw = demo_raw()
    raw["processes"]["navcam_driver"]["shm_ring"] = name
    _refused(raw, "processes.navcam_driver.shm_ring")


def test_a_shm_ring_name_the_ring_takes_is_accepted() -> None:
    raw = demo_raw()
    raw["processes"]["navcam_driver"]["shm_ring"] = "navcam.ring-2"
    assert validate_config(raw, "x.yaml").processes["navcam_driver"]["shm_ring"] == "navcam.ring-2"


def test_a_bind_address_this_machine_does_not_have_is_refused() -> None:
    raw = _no_hosts(demo_raw())
    raw["endpoints"]["navcam_ctl"] = "tcp://192.0.2.1:47115"  # TEST-NET-1: never a local address
    e = _refused(raw, "processes.navcam_emulator.endpoints.control")
    assert "this machine" in e.expected
    raw["endpoints"]["navcam_ctl"] = "tcp://127.0.0.9:47115"  # every 127.x.x.x is the loopback on Linux
    validate_config(raw, "x.yaml")
    raw["endpoints"]["lander_radio"] = "udp://no-such-host.invalid:47120"
    _refused(raw, "processes.downlink.endpoints.radio")


def test_a_foreign_host_address_is_refused_where_that_host_starts() -> None:
    from framework.config import EVERY_HOST

    raw = demo_raw()
    raw["hosts"]["relay"] = "192.0.2.1"  # the relay's own machine: not this one
    for role in ("relay_lander", "relay_ground"):
        raw["endpoints"][role] = raw["endpoints"][role].replace("127.0.0.1", "192.0.2.1")
    c = validate_config(raw, "x.yaml")  # each machine of a multi-machine config checks its own host
    assert c.processes_on("lander")
    with pytest.raises(ConfigError) as e:
        c.processes_on("relay")  # pdh run --host relay, here
    assert e.value.key == "processes.relay.endpoints.lander_in"
    with pytest.raises(ConfigError):
        c.check_here()
    _refused(raw, "processes.relay.endpoints.lander_in", here="relay")
    _refused(raw, "processes.relay.endpoints.lander_in", here=EVERY_HOST)
    validate_config(raw, "x.yaml", here="ground")


@pytest.mark.parametrize("other", ["tcp://*:{port}", "tcp://localhost:{port}", "tcp://0.0.0.0:{port}"])
def test_two_sockets_binding_one_port_are_refused(other: str) -> None:
    raw = _no_hosts(demo_raw())  # demo.yaml's hosts would refuse 0.0.0.0 as not the lander's address
    port = raw["endpoints"]["navcam_link"].rsplit(":", 1)[1]
    raw["endpoints"]["navcam_ctl"] = other.format(port=port)
    with pytest.raises(ConfigError) as e:
        validate_config(raw, "x.yaml")
    assert "no other socket binds" in e.value.expected


def test_one_endpoint_bound_by_two_processes_is_refused() -> None:
    raw = demo_raw()
    raw["processes"]["ground_broker"]["endpoints"] = {"xsub": "bus_pub", "xpub": "ground_bus_sub"}
    raw["processes"]["ground_broker"]["host"] = "lander"
    _refused(raw, "processes.ground_broker.endpoints.xsub")


def test_a_udp_and_a_tcp_socket_may_share_a_port_number() -> None:
    raw = demo_raw()
    raw["endpoints"]["lander_radio"] = "udp://127.0.0.1:" + raw["endpoints"]["navcam_link"].rsplit(":", 1)[1]
    validate_config(raw, "x.yaml")


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:0", "tcp://127.0.0.1:70000", "tcp://127.0.0.1:47112\n"])
def test_an_endpoint_without_a_usable_port_is_refused(address: str) -> None:
    raw = demo_raw()
    raw["endpoints"]["imaging_cmd"] = address
    _refused(raw, "endpoints.imaging_cmd")


def test_a_camera_id_the_imaging_core_would_refuse_is_refused() -> None:
    for process, key in (("navcam_driver", "camera"), ("navcam_emulator", "camera")):
        raw = demo_raw()
        raw["processes"][process][key] = "../nav cam"
        _refused(raw, f"processes.{process}.{key}")
    raw = demo_raw()
    raw["processes"]["imaging"]["cameras"] = ["navcam", "navcam"]
    _refused(raw, "processes.imaging.cameras")


def test_a_camera_profile_that_cannot_load_is_refused_by_check_config() -> None:
    raw = demo_raw()
    raw["processes"]["navcam_driver"]["profile_file"] = "no_such_camera"
    _refused(raw, "processes.navcam_driver.profile_file")
    raw = demo_raw()
    raw["processes"]["navcam_emulator"]["profile"]["black_level_dn"] = 1 << 12  # not below 2**bit_depth
    with pytest.raises(ConfigError, match="black_level_dn"):
        validate_config(raw, "x.yaml")


def test_a_process_name_too_long_for_its_log_and_ring_is_refused() -> None:
    raw = demo_raw()
    raw["processes"]["x" * 65] = raw["processes"].pop("imaging")
    _refused(raw, "processes." + "x" * 65)


def test_check_config_with_a_host_refuses_a_bind_address_this_machine_lacks(tmp_path) -> None:
    """pdh check-config --host NAME: that host's bind addresses are checked against this machine."""
    import subprocess
    import sys

    import yaml

    from framework.config import find_config

    text = find_config("multihost").read_text()
    assert yaml.safe_load(text)["hosts"]["lander"] == "127.0.0.2"
    cfg = tmp_path / "far.yaml"
    cfg.write_text(text.replace("127.0.0.2", "192.0.2.7"))  # TEST-NET-1: never an address of this machine
    here = subprocess.run([sys.executable, "-m", "pdh.cli", "check-config", str(cfg), "--host", "relay"],
                          capture_output=True, text=True, timeout=60)
    far = subprocess.run([sys.executable, "-m", "pdh.cli", "check-config", str(cfg), "--host", "lander"],
                         capture_output=True, text=True, timeout=60)
    assert here.returncode == 0, here.stderr
    assert far.returncode == 2 and "192.0.2.7" in far.stderr
