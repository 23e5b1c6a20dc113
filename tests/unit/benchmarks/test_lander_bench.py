"""The whole-lander benchmark: its config, /proc reading, the verdict per frame, the bound it names, its tables.

No timing assertions: the figures are the benchmark's; here only that they are made and told right.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks.figures import LoadWatch, MachineLoad, Table, render
from benchmarks.lander import (CAMERAS, LanderRun, _bound, _tables, bench_lander, classify_frames, lander_config,
                               process_tree, read_proc)
from framework.config import validate_config


def test_lander_config_runs_every_camera_into_one_imaging_core_down_to_the_ground() -> None:
    raw = lander_config(sizes={"navcam": (64, 64), "context": (64, 48)})
    config = validate_config(raw, "<lander>")
    kinds = [p["kind"] for p in config.processes.values()]
    assert kinds.count("hil.camera") == kinds.count("drivers.camera") == len(CAMERAS)
    assert {"bus.broker", "fsw.imaging", "fsw.downlink", "hil.relay", "ground.station"} <= set(kinds)
    assert config.processes["imaging"]["cameras"] == list(CAMERAS)
    for camera, rate in CAMERAS.items():
        driver = config.processes[f"{camera}_driver"]
        assert driver["frame_rate_hz"] == rate and driver["stream_on_start"] is False
        assert driver["frame_transport"] == "shm"
        assert config.processes[f"{camera}_emulator"]["max_frame_rate_hz"] == rate
    assert (config.processes["navcam_emulator"]["profile"]["width"], config.processes["navcam_emulator"]["profile"]["height"]) == (64, 64)
    assert config.security["curve"] is True  # the commands the bench sends go with the run's operator key
    tcp = [a for a in config.endpoints.values() if not a.startswith("ipc://")]
    assert len(set(tcp)) == len(tcp)


def test_read_proc_and_the_process_tree_see_a_spawned_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        me = read_proc(os.getpid())
        assert me is not None and me.cpu_s > 0 and me.hwm_kb > 0 and me.ppid == os.getppid()
        tree = process_tree({"bench": os.getpid()})
        assert tree[os.getpid()] == "bench"
        assert tree[child.pid].startswith("bench/") and tree[child.pid].endswith(str(child.pid))
    finally:
        child.kill()
        child.wait()
    assert read_proc(child.pid) is None


def test_every_frame_is_at_ground_on_board_thumbnail_only_or_lost_with_why() -> None:
    manifest = [("navcam", n) for n in range(6)] + [("monitor", 0)]
    stored = {"navcam-00000001-full", "navcam-00000002-full", "navcam-00000003-full"}
    got = classify_frames(manifest, at_ground={"navcam/0", "monitor/0"}, thumbnail_only={"navcam/3"},
                          stored=stored, named={"navcam/4": ["imaging: frames_lost (shm_overwritten)"]})
    nav = got["navcam"]
    assert (nav["sent"], nav["at_ground"], nav["on_board"], nav["thumbnail_only"], nav["lost"]) == (6, 1, 2, 1, 2)
    assert nav["why_lost"] == {"imaging: frames_lost (shm_overwritten)": 1, "unnamed": 1}
    assert got["monitor"]["at_ground"] == 1 and got["monitor"]["lost"] == 0


def _run(processes: list[dict], peaks: dict[str, float] | None = None) -> LanderRun:
    frames = {"navcam": {"sent": 100, "at_ground": 10, "on_board": 70, "thumbnail_only": 15, "lost": 5,
                         "why_lost": {"imaging: frames_lost (shm_overwritten)": 5}},
              "monitor": {"sent": 5, "at_ground": 5, "on_board": 0, "thumbnail_only": 0, "lost": 0, "why_lost": {}}}
    kinds = {"imaging": "fsw.imaging", "downlink": "fsw.downlink", "navcam_emulator": "hil.camera",
             "ground": "ground.station"}
    return LanderRun(10.0, {"navcam": 10.0, "monitor": 0.5}, frames, processes, kinds, peaks or {},
                     {"queue_full": 15})


def test_the_bound_is_the_busiest_lander_process_never_the_harness() -> None:
    procs = [{"process": "navcam_emulator", "pid": 1, "cpu_s": 9.0, "cores": 0.9, "peak_mb": 50.0},
             {"process": "imaging", "pid": 2, "cpu_s": 8.0, "cores": 0.8, "peak_mb": 300.0},
             {"process": "downlink/worker 7", "pid": 7, "cpu_s": 1.0, "cores": 0.1, "peak_mb": 90.0}]
    text = _bound(_run(procs, {"imaging.queue_depth": 8.0}), cores=2)
    assert text.startswith("bound: imaging at 0.80 of a core")
    assert "the machine's cores are the bound" in text and "imaging.queue_depth 8" in text
    assert "queue_full x15" in text


def test_the_tables_give_rate_ratios_and_mark_a_busy_machine() -> None:
    procs = [{"process": "imaging", "pid": 2, "cpu_s": 8.0, "cores": 0.8, "peak_mb": 300.0},
             {"process": "downlink/worker 7", "pid": 7, "cpu_s": 0.0, "cores": 0.0, "peak_mb": 90.0}]
    busy = MachineLoad((9.0, 5.0, 3.0), (8.0, 5.0, 3.0), 2)
    cams, per_process = _tables(_run(procs), {"navcam": "64x64"}, 10.0, busy)
    rows = {r["camera"]: r for r in cams.rows}
    assert rows["navcam"]["vs_rate"] == pytest.approx(0.8) and rows["navcam"]["thumbnail_only"] == 15
    assert rows["monitor"]["vs_rate"] == pytest.approx(1.0)
    assert per_process.rows[1]["role"] == "fsw.downlink (spawned)"
    for table in (cams, per_process):
        assert table.columns[1].is_ratio
        text = render(table)
        assert all(line.endswith("BUSY") for line in text.splitlines()[6:6 + len(table.rows)])
        assert "BUSY MACHINE" in text
        json.dumps(table.to_json())


def test_a_quiet_machine_is_not_marked_busy() -> None:
    table = Table("t", "T", "b", [], load=MachineLoad((0.1, 0.1, 0.1), (0.2, 0.1, 0.1), 2))
    assert not table.busy and "BUSY" not in render(table)
    assert LoadWatch().done().cpus >= 1


@pytest.mark.integration
def test_the_lander_at_toy_size_judges_every_frame_and_measures_every_process() -> None:
    cams, per_process = bench_lander(duration_s=3.0, drain_s=3.0, cameras={"navcam": 2.0, "monitor": 0.5},
                                     sizes={"navcam": (64, 64)})
    rows = {r["camera"]: r for r in cams.rows}
    assert set(rows) == {"navcam", "monitor"}
    nav = rows["navcam"]
    assert nav["sent"] == nav["at_ground"] + nav["on_board"] + nav["thumbnail_only"] + nav["lost"]
    assert nav["sent"] > 0
    names = {r["process"].split("/")[0] for r in per_process.rows}
    assert {"broker", "imaging", "downlink", "relay", "ground", "navcam_driver", "navcam_emulator"} <= names
    assert all(r["peak_mb"] > 0 for r in per_process.rows)
