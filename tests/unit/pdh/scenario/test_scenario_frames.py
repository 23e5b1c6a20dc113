"""``expect: {frames: accounted}``: parsed, checked against the config, and judged by the engine from the
frames verdict it is given (a fake here; the runner's is pdh.verify.judge_frames on the run's output)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest

from framework.errors import ConfigError
from pdh.scenario.engine import Engine
from pdh.scenario.expect import Recording
from pdh.scenario.model import FramesAction
from pdh.scenario.spec import parse_scenario
from tests.unit.pdh.scenario.test_scenario_engine import FakeClock, FakeIO
from tests.unit.pdh.scenario.test_scenario_spec import CONFIG

WITH_CAMERA = copy.deepcopy(CONFIG)
WITH_CAMERA["endpoints"]["cam_link"] = "tcp://127.0.0.1:6"
WITH_CAMERA["endpoints"]["cam_ctl"] = "tcp://127.0.0.1:7"
WITH_CAMERA["processes"]["cam_emu"] = {"kind": "hil.camera", "endpoints": {"link": "cam_link", "control": "cam_ctl"},
                                       "camera": "navcam", "profile_file": "navcam"}


@dataclass
class Verdict:
    """Stands in for pdh.verify.FramesCheck."""

    frames: int
    missing: dict[str, list[str]] = field(default_factory=dict)
    spoilt: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.frames > len(self.spoilt) and not self.missing

    def failure(self) -> str:
        return "; ".join(f"{k} ({'+'.join(v)})" for k, v in self.missing.items())

    def summary(self) -> dict[str, Any]:
        return {"frames_at_ground": self.frames - len(self.missing)}


def _run(verdicts: list[Verdict], within_s: float = 5.0, min_frames: int = 1) -> tuple[Engine, int]:
    sc = parse_scenario({"config": WITH_CAMERA, "steps": [
        {"expect": {"frames": "accounted", "within_s": within_s, "min_frames": min_frames}}]}, "s.yaml")
    clock = FakeClock()
    asked = []

    def frames() -> Verdict:
        asked.append(clock.t)
        return verdicts[min(len(asked) - 1, len(verdicts) - 1)]

    eng = Engine(sc, FakeIO(clock, {}), Recording(), clock, frames=frames)
    for _ in range(10_000):
        if eng.tick():
            break
        clock.t += 0.05
    return eng, len(asked)


def test_the_step_parses_and_needs_a_camera_emulator_to_count_against() -> None:
    sc = parse_scenario({"config": WITH_CAMERA, "steps": [{"expect": {"frames": "accounted", "within_s": 30}}]},
                        "s.yaml")
    assert sc.steps[0].action == FramesAction(within_s=30.0, min_frames=1) and sc.steps[0].kind == "expect"
    with pytest.raises(ConfigError, match=r"steps\[0\]\.expect\.frames"):
        parse_scenario({"config": CONFIG, "steps": [{"expect": {"frames": "accounted"}}]}, "s.yaml")
    with pytest.raises(ConfigError, match=r"steps\[0\]\.expect\.frames"):
        parse_scenario({"config": WITH_CAMERA, "steps": [{"expect": {"frames": "all"}}]}, "s.yaml")
    with pytest.raises(ConfigError, match=r"steps\[0\]\.expect\.min_frames"):
        parse_scenario({"config": WITH_CAMERA, "steps": [{"expect": {"frames": "accounted", "min_frames": 0}}]},
                       "s.yaml")
    with pytest.raises(ConfigError, match=r"steps\[0\]\.expect\.count"):
        parse_scenario({"config": WITH_CAMERA, "steps": [{"expect": {"frames": "accounted", "count": 2}}]},
                       "s.yaml")


def test_it_passes_once_every_frame_is_accounted_for_asking_at_most_once_a_second() -> None:
    eng, asked = _run([Verdict(4, {"navcam/3": ["full"]}), Verdict(4, {"navcam/3": ["full"]}), Verdict(4)])
    assert eng.ok(), eng.results[0].detail
    assert asked == 3 and "4 sound frames" in eng.results[0].detail


def test_a_lost_frame_fails_the_scenario_and_is_named() -> None:
    eng, _ = _run([Verdict(5, {"navcam/2": ["full", "thumbnail"]})], within_s=3.0)
    assert not eng.ok()
    assert "navcam/2 (full+thumbnail)" in eng.results[0].detail and "not within 3 s" in eng.results[0].detail


def test_too_few_frames_in_the_manifest_fails() -> None:
    eng, _ = _run([Verdict(2)], within_s=2.0, min_frames=3)
    assert not eng.ok() and "only 2 sound frames" in eng.results[0].detail
