"""The ``clock`` step: parsed into a ClockAction, every mistake named with its file, step and reason."""

from __future__ import annotations

from typing import Any

import pytest

from framework.errors import ConfigError
from pdh.scenario.engine import describe_step
from pdh.scenario.model import ClockAction
from tests.unit.pdh.scenario.test_scenario_steps import sc


def test_a_clock_step_parses_for_one_process_or_all() -> None:
    s = sc([{"clock": {"process": "downlink", "step_s": -86400}}, {"clock": {"process": "all", "step_s": 3.5}}])
    assert [st.action for st in s.steps] == [ClockAction("downlink", -86400.0), ClockAction("all", 3.5)]
    assert [st.kind for st in s.steps] == ["clock", "clock"]
    assert "steps -86400 s" in describe_step(s.steps[0])


@pytest.mark.parametrize("step, key, why", [
    ({"clock": {"step_s": 5}}, "steps[0].clock.process", "required"),
    ({"clock": {"process": "downlink"}}, "steps[0].clock.step_s", "required"),
    ({"clock": {"process": "downlink", "step_s": "soon"}}, "steps[0].clock.step_s", "a number"),
    ({"clock": {"process": "downlink", "step_s": 1e12}}, "steps[0].clock.step_s", "a number"),
    ({"clock": {"process": "nobody", "step_s": 1}}, "steps[0].clock.process", "a process of the config"),
    ({"clock": {"process": "downlink", "step_s": 1, "when": "now"}}, "steps[0].clock.when", "unknown key"),
])
def test_each_mistake_in_a_clock_step_names_file_step_and_reason(step: dict[str, Any], key: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        sc([step])
    assert err.value.file == "m.yaml" and err.value.key == key, str(err.value)
    assert why in str(err.value)
