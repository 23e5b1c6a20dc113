"""What a new user hit on the command line, each refused before anything starts and said plainly
(issue 14 item 4): negative durations, an --out that cannot be written or holds a previous run, a busy
port, an unknown process, a stopped service. No test here starts a process."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from pdh.cli import main
from tests.conftest import free_port


def _camera_only(write_config: Any, link_port: int | None = None) -> Path:
    """A valid config with no broker: pdh demo refuses it after its checks, before starting anything."""
    return write_config({
        "version": 1,
        "endpoints": {"cam_link": f"tcp://127.0.0.1:{link_port or free_port()}",
                      "cam_ctl": f"tcp://127.0.0.1:{free_port()}"},
        "processes": {"cam_emulator": {"kind": "hil.camera", "endpoints": {"link": "cam_link", "control": "cam_ctl"},
                                       "camera": "cam", "seed": 5, "profile_file": "navcam"}},
    })


@pytest.fixture()
def no_demo(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """run_demo replaced by a recorder: a refusal must come before it."""
    import pdh.demo

    calls: list[Any] = []
    monkeypatch.setattr(pdh.demo, "run_demo", lambda *a, **k: calls.append((a, k)) or 0)
    return calls


@pytest.mark.parametrize("flag,value", [("--duration", "-5"), ("--duration", "nan"), ("--drain", "-1")])
def test_negative_or_nan_duration_is_refused_before_the_demo_starts(flag: str, value: str, no_demo: list[Any],
                                                                     tmp_path: Path, capsys: Any) -> None:
    rc = main(["demo", flag, value, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and no_demo == []
    assert flag in err and value in err


def test_out_that_is_a_file_is_a_clear_error_not_a_traceback(write_config: Any, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "out"
    out.write_text("not a directory")
    rc = main(["demo", "--config", str(_camera_only(write_config)), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"--out {out}" in err and "not a directory" in err
    assert out.read_text() == "not a directory"


def test_out_that_cannot_be_written_is_a_clear_error(write_config: Any, tmp_path: Path, capsys: Any) -> None:
    if os.geteuid() == 0:  # root writes through modes: a place no one can make a directory in
        out = Path("/sys/pdh-test-out")
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        out = ro / "out"
    rc = main(["demo", "--config", str(_camera_only(write_config)), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"--out {out}" in err and "cannot" in err


def test_out_holding_a_previous_run_is_refused_unless_forced(write_config: Any, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "out"
    (out / "ground").mkdir(parents=True)
    (out / "summary.json").write_text("{}")
    cfg = _camera_only(write_config)
    rc = main(["demo", "--config", str(cfg), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "--force" in err and "not empty" in err
    assert (out / "summary.json").exists() and (out / "ground").is_dir()  # nothing of the last run deleted
    rc = main(["demo", "--config", str(cfg), "--out", str(out), "--force"])
    err = capsys.readouterr().err
    assert rc == 2 and "bus.broker" in err  # past the --out check: the config has no broker
    assert not (out / "summary.json").exists()


def test_a_busy_port_is_named_before_anything_starts(write_config: Any, tmp_path: Path, capsys: Any) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        rc = main(["demo", "--config", str(_camera_only(write_config, port)), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"tcp://127.0.0.1:{port}" in err and "cam_emulator" in err and "in use" in err
    assert not (tmp_path / "out" / "logs").exists()  # no process was started


def test_check_config_names_a_busy_port_only_when_asked_about_this_host(write_config: Any, capsys: Any) -> None:
    port = free_port()
    cfg = _camera_only(write_config, port)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        assert main(["check-config", str(cfg)]) == 0
        assert main(["check-config", str(cfg), "--ports"]) == 2
    assert f"tcp://127.0.0.1:{port}" in capsys.readouterr().err


def test_cmd_to_an_unknown_process_names_the_known_ones(write_config: Any, tmp_path: Path, capsys: Any) -> None:
    rc = main(["cmd", str(_camera_only(write_config)), "imagin", "NOOP", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "no process 'imagin'" in err and "cam_emulator" in err and "has no command endpoint" not in err


def test_cmd_to_a_process_without_a_command_port_says_that(write_config: Any, tmp_path: Path, capsys: Any) -> None:
    cfg = write_config({
        "version": 1,
        "endpoints": {"bus_pub": f"tcp://127.0.0.1:{free_port()}", "bus_sub": f"tcp://127.0.0.1:{free_port()}"},
        "processes": {"broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}}},
    })
    rc = main(["cmd", str(cfg), "broker", "NOOP", "--out", str(tmp_path)])
    assert rc == 2 and "broker has no command port" in capsys.readouterr().err


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_cmd_to_a_stopped_service_says_it_is_not_running(transport: str, write_config: Any, tmp_path: Path,
                                                         capsys: Any) -> None:
    cmd_ep = "ipc://cam_cmd" if transport == "ipc" else f"tcp://127.0.0.1:{free_port()}"
    cfg = write_config({
        "version": 1,
        "endpoints": {"bus_pub": f"tcp://127.0.0.1:{free_port()}", "cam_link": f"tcp://127.0.0.1:{free_port()}",
                      "cam_cmd": cmd_ep},
        "processes": {"cam_driver": {"kind": "drivers.camera", "camera": "cam", "profile_file": "navcam",
                                     "endpoints": {"link": "cam_link", "bus_pub": "bus_pub", "command": "cam_cmd"}}},
    })
    rc = main(["cmd", str(cfg), "cam_driver", "NOOP", "--out", str(tmp_path / "run"), "--timeout", "30"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "cam_driver is not running" in err and "no reply" not in err
