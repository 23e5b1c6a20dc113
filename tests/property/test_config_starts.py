"""Whatever ``pdh check-config`` accepts starts: the demo's processes, under the supervisor, run for a few
seconds and none of them restarts.

Hypothesis draws variations of configs/demo.yaml (its processes and keys: frame rate, the shared contact
plan's time scale, windows and rates, the downlink's priority and store, the shm ring, bind addresses,
processes left out, codecs), good values more often than bad ones, so some examples are refused and some
start. A refused one must say which key (``config error: FILE: key '...'``); an accepted one must start
and keep running. Every example gets fresh free ports and its own output directory; the camera is small
(320x256) and fast (2 frames/s) so the capture is short.

Cost: about 6 s per accepted example (start, 4 s of running, stop), a few ms per refused one; with the
six examples below it takes 20-45 s. Shrinking is off (each step would start the whole demo again): a
failure prints the drawn variation with ``note``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import HealthCheck, Phase, event, example, given, note, settings
from hypothesis import strategies as st

from framework.config import free_loopback_ports, load_config
from fsw.downlink.policy import CLASSES
from pdh.cli import main as pdh_main
from pdh.supervisor import Supervisor

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
RUN_S = 4.0  # how long every process must keep running, once all are started

Mutation = tuple[str, Callable[[dict[str, Any], Path], None]]


def _base() -> dict[str, Any]:
    """demo.yaml with a small, fast camera; YAML aliases expanded so one process's plan can differ."""
    raw = yaml.safe_load(yaml.safe_dump(yaml.safe_load(DEMO.read_text())))
    procs = raw["processes"]
    procs["navcam_emulator"]["profile"] = {"width": 320, "height": 256, "bit_depth": 12, "pattern": "mono"}
    procs["navcam_driver"]["frame_rate_hz"] = 2.0
    return raw


def _often(good: list[Any], bad: list[Any]) -> st.SearchStrategy[Any]:
    """A good value three times in four."""
    return st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(good), st.sampled_from(bad))


def _set(process: str, key: str, value: Any) -> Mutation:
    def apply(raw: dict[str, Any], _out: Path) -> None:
        raw["processes"].get(process, {})[key] = value
    return f"{process}.{key} = {value!r}", apply


def _plan(key: str, value: Any, processes: tuple[str, ...]) -> Mutation:
    def apply(raw: dict[str, Any], _out: Path) -> None:
        for p in processes:
            if p in raw["processes"]:
                raw["processes"][p][key] = copy.deepcopy(value)
    return f"{'/'.join(processes)}.{key} = {value!r}", apply


def _relay(index: int, key: str, value: Any, processes: tuple[str, ...]) -> Mutation:
    def apply(raw: dict[str, Any], _out: Path) -> None:
        for p in processes:
            if p in raw["processes"]:
                raw["processes"][p]["relays"][index][key] = copy.deepcopy(value)
    return f"{'/'.join(processes)}.relays[{index}].{key} = {value!r}", apply


def _store_dir(choice: str) -> Mutation:
    def apply(raw: dict[str, Any], out: Path) -> None:
        (out.parent / "a_file").write_text("not a directory")
        raw["processes"]["downlink"]["store_dir"] = choice.format(tmp=out.parent)
    return f"downlink.store_dir = {choice!r}", apply


def _bind(endpoint: str, host: str) -> Mutation:
    def apply(raw: dict[str, Any], _out: Path) -> None:
        scheme, rest = raw["endpoints"][endpoint].split("://", 1)
        raw["endpoints"][endpoint] = f"{scheme}://{host}:{rest.rsplit(':', 1)[1]}"
    return f"endpoints.{endpoint} on {host}", apply


def _drop(process: str) -> Mutation:
    def apply(raw: dict[str, Any], _out: Path) -> None:
        raw["processes"].pop(process, None)
    return f"without {process}", apply


PLAN_ENDS = st.sampled_from([("downlink", "relay", "ground"), ("relay",), ("downlink",)])
FINITE = st.floats(-200, 8000, allow_nan=False)
WINDOW = st.lists(st.lists(FINITE, min_size=2, max_size=2), max_size=3)

MUTATIONS: st.SearchStrategy[Mutation] = st.one_of(
    _often([0.5, 2.0, 4.0], [math.nan, math.inf, 0.0, -1.0]).map(lambda v: _set("navcam_driver", "frame_rate_hz", v)),
    st.builds(_plan, st.just("time_scale"), _often([360.0, 36.0, 3600.0], [math.inf, math.nan, 0.0, -1.0, 1e12]),
              PLAN_ENDS),
    st.builds(_relay, st.integers(0, 1), st.sampled_from(["lander_windows_s", "ground_windows_s"]),
              st.one_of(st.just([[0, 7200]]), st.just([[0, 3000], [3600, 6600]]), WINDOW), PLAN_ENDS),
    st.builds(_relay, st.integers(0, 1), st.just("rate_bps"),
              st.one_of(_often([24_000_000, 1_000_000], [0, -1, 999, math.inf]),
                        st.lists(st.integers(-1000, 50_000_000), max_size=3)), PLAN_ENDS),
    st.one_of(st.permutations(CLASSES), st.lists(st.sampled_from(CLASSES), max_size=7))
    .map(lambda v: _set("downlink", "priority", list(v))),
    _often(["store", "nested/store", "{tmp}/abs_store"], ["{tmp}/a_file", "{tmp}/a_file/store"]).map(_store_dir),
    _often(["", "ring_ok", "r.2-x"], ["../bad", "a b", "-x", "x" * 129]).map(lambda v: _set("navcam_driver",
                                                                                            "shm_ring", v)),
    st.builds(_bind, st.sampled_from(["navcam_ctl", "navcam_link", "lander_radio", "relay_ground", "ground_radio"]),
              _often(["127.0.0.1", "localhost", "127.0.0.7"], ["192.0.2.1", "*", "no-such-host.invalid"])),
    st.sampled_from(["relay", "ground", "ground_broker", "imaging", "navcam_emulator", "broker"]).map(_drop),
    _often(["inline", "shm"], ["pixels"]).map(lambda v: _set("navcam_driver", "frame_transport", v)),
    _often(["jpegls", "png", "zstd"], ["webp"]).map(lambda v: _set("imaging", "lossless_codec", v)),
    _often([0.0, 0.2], [1.5, -0.1, math.nan]).map(lambda v: _set("relay", "loss", v)),
)


def _without_hosts(raw: dict[str, Any]) -> None:
    """One machine's config: no hosts:, so every address a process binds must be one this machine has."""
    raw.pop("hosts", None)
    for p in raw["processes"].values():
        p.pop("host", None)


def _run_briefly(config_path: Path, out: Path) -> dict[str, list[int]]:
    """Start every process of the config under the supervisor, keep it RUN_S seconds; the exit codes of
    every process that died (each a restart)."""
    sup = Supervisor(load_config(config_path), config_path, out, restart_backoff_s=0.2)
    try:
        sup.start()
        end = time.monotonic() + RUN_S
        while time.monotonic() < end:
            sup.watch()
            time.sleep(0.1)
        sup.watch()
    finally:
        sup.stop(grace_s=5.0)
    return {n: c.exits for n, c in sup.children.items() if c.exits}


def _log_tails(out: Path, names: list[str]) -> str:
    tails = []
    for n in names:
        with contextlib.suppress(OSError):
            tails.append(f"--- {n}\n" + (out / "logs" / f"{n}.stderr").read_text()[-1500:])
        with contextlib.suppress(OSError):
            tails.append((out / "logs" / f"{n}.jsonl").read_text()[-1500:])
    return "\n".join(tails)


@settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=3), one_machine=st.booleans())
@example(mutations=[], one_machine=False)  # demo.yaml itself: it must start
def test_every_config_check_config_accepts_starts_and_keeps_running(mutations: list[Mutation], one_machine: bool,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="pdh-cfg-") as tmp:
        out = Path(tmp) / "out"
        raw = _base()
        if one_machine:
            _without_hosts(raw)
        for what, apply in mutations:
            note(what)
            apply(raw, out)
        raw["endpoints"] = free_loopback_ports(raw["endpoints"])
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        capsys.readouterr()
        verdict = pdh_main(["check-config", str(config_path)])
        said = capsys.readouterr()
        note(f"check-config: {verdict} {said.out}{said.err}")
        event("refused" if verdict else "accepted and started")
        if verdict != 0:
            assert verdict == 2 and f"config error: {config_path}: key '" in said.err  # names file and key
            return
        died = _run_briefly(config_path, out)
        assert died == {}, f"accepted, then restarted: {died}\n{_log_tails(out, list(died))}"
