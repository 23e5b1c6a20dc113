"""``ipc://NAME`` endpoints: sockets in the run's private directory (0700), the same for every process and
tool of a run, refused where they cannot work (across hosts, outside the directory)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
import yaml

import pdh.topology  # noqa: F401  (registers every kind)
from framework.config import IPC_DIR, ipc_directory, load_config, validate_config
from framework.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def demo_raw() -> dict:
    return yaml.safe_load((CONFIGS / "demo.yaml").read_text())


def test_relative_ipc_names_become_sockets_of_the_runs_private_directory(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "demo.yaml")
    run = config.for_run(tmp_path / "out")
    assert run.ipc_dir == tmp_path / "out" / IPC_DIR
    assert stat.S_IMODE(os.stat(run.ipc_dir).st_mode) == 0o700
    assert run.endpoint("downlink", "products") == f"ipc://{tmp_path / 'out' / IPC_DIR / 'products'}"
    assert run.reach("downlink", "command") == f"ipc://{tmp_path / 'out' / IPC_DIR / 'downlink_cmd'}"
    assert run.endpoint("navcam_emulator", "link") == config.endpoint("navcam_emulator", "link")  # tcp stays
    assert config.for_run(tmp_path / "out").endpoints == run.endpoints  # every process resolves the same


def test_a_tool_cannot_reach_a_relative_ipc_endpoint_without_the_run_directory() -> None:
    config = load_config(CONFIGS / "demo.yaml")
    with pytest.raises(ConfigError, match="--out"):
        config.reach("downlink", "command")


def test_a_directory_too_deep_for_a_socket_path_moves_under_the_runtime_directory(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    runtime = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short, as /run/user/UID is
    try:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
        deep = tmp_path / ("d" * 60) / ("e" * 60)
        first, again = ipc_directory(deep), ipc_directory(deep)
        assert first == again and first.parent == runtime and first.name.startswith("lunar-pdh-")
        assert stat.S_IMODE(os.stat(first).st_mode) == 0o700
        assert len(os.fsencode(first / ("n" * 32))) <= 107
        assert ipc_directory(tmp_path / "other") != first  # another run, another directory
    finally:
        shutil.rmtree(runtime)


def test_an_open_directory_of_ours_is_closed_and_one_of_another_user_or_a_link_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / IPC_DIR).mkdir(parents=True, mode=0o777)
    os.chmod(out / IPC_DIR, 0o777)
    assert stat.S_IMODE(os.stat(ipc_directory(out, 16)).st_mode) == 0o700
    link_out = tmp_path / "linked"
    link_out.mkdir()
    (link_out / IPC_DIR).symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ConfigError, match="not a link"):
        ipc_directory(link_out, 16)
    if os.geteuid() == 0:  # only root can give a directory away to test the other case
        theirs = tmp_path / "theirs"
        (theirs / IPC_DIR).mkdir(parents=True)
        os.chown(theirs / IPC_DIR, 65534, 65534)
        with pytest.raises(ConfigError, match="another user"):
            ipc_directory(theirs, 16)


@pytest.mark.parametrize("address", ["ipc://../bus", "ipc://a/b", "ipc://.hidden", "ipc://" + "x" * 33])
def test_an_ipc_name_that_is_not_a_plain_name_is_refused(address: str) -> None:
    raw = demo_raw()
    raw["endpoints"]["bus_pub"] = address
    with pytest.raises(ConfigError, match="plain name"):
        validate_config(raw, "x.yaml")


def test_an_ipc_endpoint_used_on_two_hosts_is_refused() -> None:
    raw = yaml.safe_load((CONFIGS / "multihost.yaml").read_text())
    raw["processes"]["ground"]["endpoints"]["bus_pub"] = "bus_pub"  # the lander's bus, from the ground host
    with pytest.raises(ConfigError) as e:
        validate_config(raw, "x.yaml")
    assert e.value.key == "processes.ground.endpoints.bus_pub" and "across hosts" in e.value.expected


@pytest.mark.parametrize("name", ["demo.yaml", "multihost.yaml"])
def test_the_shipped_configs_keep_every_bus_and_internal_port_in_the_private_directory(name: str) -> None:
    config = load_config(CONFIGS / name)
    internal = {"bus.broker": ("xsub", "xpub"), "drivers.camera": ("bus_pub", "command"),
                "fsw.imaging": ("bus_pub", "bus_sub", "products", "command"),
                "fsw.downlink": ("bus_pub", "products", "command"), "ground.station": ("bus_pub",)}
    for pname, p in config.processes.items():
        for role in internal.get(p["kind"], ()):
            address = config.endpoint(pname, role)
            assert address.startswith("ipc://") and not address.startswith("ipc:///"), (pname, role, address)
