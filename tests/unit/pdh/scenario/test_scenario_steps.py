"""The mission steps (link, signal, restart, disk, uplink, request) and expectations (product, during_s,
unique): parsed with every mistake named by file, step and reason; run by the engine on a fake clock."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from framework.errors import ConfigError
from pdh.scenario.engine import Engine, Reply
from pdh.scenario.expect import Record, Recording
from pdh.scenario.model import DiskAction, LinkAction, ProductAction, SignalAction, UplinkAction
from pdh.scenario.spec import parse_scenario
from tests.unit.pdh.scenario.test_scenario_engine import FakeClock, FakeIO

CONFIG: dict[str, Any] = {
    "version": 1,
    "endpoints": {"bus_pub": "tcp://127.0.0.1:1", "bus_sub": "tcp://127.0.0.1:2", "relay_cmd": "ipc://relay_cmd",
                  "ground_cmd": "ipc://ground_cmd", "downlink_cmd": "ipc://downlink_cmd", "a": "udp://127.0.0.1:3",
                  "b": "udp://127.0.0.1:4", "c": "udp://127.0.0.1:5", "d": "udp://127.0.0.1:6",
                  "products": "ipc://products", "link": "tcp://127.0.0.1:7", "ctl": "tcp://127.0.0.1:8"},
    "processes": {
        "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
        "cam": {"kind": "hil.camera", "endpoints": {"link": "link", "control": "ctl"}},
        "relay": {"kind": "hil.relay", "endpoints": {"lander_in": "a", "ground_in": "b", "lander": "c", "ground": "d",
                                                     "command": "relay_cmd", "bus_pub": "bus_pub"},
                  "relays": [{"name": "ra", "period_s": 60, "lander_windows_s": [[0, 30]]}]},
        "downlink": {"kind": "fsw.downlink", "endpoints": {"bus_pub": "bus_pub", "products": "products",
                                                           "radio": "c", "relay": "a", "command": "downlink_cmd"},
                     "store_dir": "store"},
        "ground": {"kind": "ground.station", "endpoints": {"radio": "d", "relay": "b", "bus_pub": "bus_pub",
                                                           "command": "ground_cmd"}},
    },
}


def sc(steps: list[dict[str, Any]], **top: Any) -> Any:
    return parse_scenario({"config": copy.deepcopy(CONFIG), "steps": steps, **top}, "m.yaml")


def test_each_new_step_parses_into_its_action() -> None:
    s = sc([
        {"link": {"window": "closed", "duration_s": 5}},
        {"link": {"relay_out": "ra", "duration_s": 60}},
        {"link": {"set": {"loss": 0.2, "corrupt": 0.001, "rate_bps": 1e6}, "relay": "ra"}},
        {"link": {"clock_step_s": -3}},
        {"signal": {"process": "downlink", "signal": "SIGSTOP", "hold_s": 2}},
        {"restart": {"process": "downlink"}},
        {"disk": {"process": "downlink", "limit_bytes": 4096}},
        {"disk": {"process": "downlink", "ballast_bytes": 1000}},
        {"uplink": {"target": "downlink", "cmd": "STORE_STATUS", "wait": "queued"}},
        {"request": {"frame": "full", "camera": "navcam", "counter": 3}},
        {"request": {"region": [0, 0, 64, 64], "camera": "navcam"}},
        {"expect": {"product": {"camera": "navcam", "counter": 3}, "within_s": 5}},
        {"expect": {"telemetry": "downlink", "channel": "store_fill", "value": {"lt": 0.9}, "during_s": 5}},
        {"expect": {"event": "product_received", "from": "ground", "unique": "id"}},
    ], contact_epoch={"at_s": 12})
    a = [st.action for st in s.steps]
    assert a[0] == LinkAction("relay", "WINDOW", {"state": "closed", "duration_s": 5.0})
    assert a[1].cmd == "RELAY_OUT" and a[1].args == {"relay": "ra", "duration_s": 60.0}
    assert a[2].cmd == "SET_LINK" and a[2].args["relay"] == "ra" and a[2].args["loss"] == 0.2
    assert a[3].cmd == "STEP_CLOCK" and a[3].args == {"seconds": -3.0}
    assert a[4] == SignalAction("downlink", "STOP", 2.0)
    assert a[6] == DiskAction("downlink", limit_bytes=4096) and a[7].ballast_bytes == 1000
    assert isinstance(a[8], UplinkAction) and a[8].ground == "ground" and a[8].wait == "queued"
    assert (a[9].target, a[9].cmd, a[9].args) == ("downlink", "SEND_FULL", {"camera": "navcam", "counter": 3})
    assert a[10].cmd == "SEND_REGION" and a[10].args["region"] == [0, 0, 64, 64]
    assert a[11] == ProductAction("navcam", 3, "full", 5.0)
    assert a[12].during_s == 5.0 and a[13].unique == "id"
    assert s.contact_epoch_s == 12.0 and s.startup_s == 10.0
    assert [st.kind for st in s.steps][:9] == ["link", "link", "link", "link", "signal", "restart", "disk", "disk",
                                               "uplink"]


@pytest.mark.parametrize("step,key,why", [
    ({"link": {"window": "ajar"}}, "steps[0].link.window", "open, closed or plan"),
    ({"link": {"window": "open", "clear": True}}, "steps[0].link", "exactly one of"),
    ({"link": {"set": {}}}, "steps[0].link.set", "at least one"),
    ({"link": {"set": {"loss": 2}}}, "steps[0].link.set.loss", "a number in"),
    ({"link": {"set": {"jitter": 1}}}, "steps[0].link.set.jitter", "known keys"),
    ({"link": {"relay_in": "ra", "duration_s": 3}}, "steps[0].link.duration_s", "only with window or relay_out"),
    ({"link": {"process": "downlink", "clear": True}}, "steps[0].link.process", "hil.relay"),
    ({"signal": {"process": "downlink", "signal": "HUP"}}, "steps[0].signal.signal", "one of"),
    ({"signal": {"process": "downlink", "signal": "KILL", "hold_s": 3}}, "steps[0].signal.hold_s", "only with"),
    ({"signal": {"process": "ghost", "signal": "KILL"}}, "steps[0].signal.process", "a process of the config"),
    ({"restart": {}}, "steps[0].restart.process", "required"),
    ({"disk": {"process": "downlink"}}, "steps[0].disk", "exactly one of"),
    ({"disk": {"process": "downlink", "limit_bytes": -1}}, "steps[0].disk.limit_bytes", "bytes"),
    ({"disk": {"process": "ground", "ballast_bytes": 10}}, "steps[0].disk.process", "store_dir"),
    ({"uplink": {"target": "downlink"}}, "steps[0].uplink.cmd", "required"),
    ({"uplink": {"target": "downlink", "cmd": "X", "expect": "done"}}, "steps[0].uplink.expect", "not_delivered"),
    ({"uplink": {"target": "nobody", "cmd": "X"}}, "steps[0].uplink.target", "a process of the config"),
    ({"request": {"frame": "full", "camera": "navcam"}}, "steps[0].request", "'camera' and 'counter'"),
    ({"request": {"region": [0, 0, 5], "camera": "navcam"}}, "steps[0].request.region", "[x, y, width, height]"),
    ({"expect": {"product": {"counter": 1}}}, "steps[0].expect.product.camera", "required"),
    ({"expect": {"product": {"camera": "navcam", "kind": "roi"}}}, "steps[0].expect.product.kind", "full or"),
    ({"expect": {"event": "x", "from": "ground", "during_s": 3}}, "steps[0].expect.during_s", "only with telemetry"),
    ({"expect": {"event": "x", "from": "ground", "unique": "id", "absent": True}}, "steps[0].expect", "at most one"),
    ({"expect": {"event": "x", "from": "ground", "unique": "id", "within_s": 3}}, "steps[0].expect.within_s",
     "no within_s"),
])
def test_each_mistake_in_a_new_step_names_file_step_and_reason(step: dict[str, Any], key: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        sc([step])
    assert err.value.file == "m.yaml" and err.value.key == key, str(err.value)
    assert why in str(err.value)


def test_link_without_a_process_needs_exactly_one_relay_with_a_command_port() -> None:
    cfg = copy.deepcopy(CONFIG)
    del cfg["processes"]["relay"]["endpoints"]["command"]
    with pytest.raises(ConfigError) as err:
        parse_scenario({"config": cfg, "steps": [{"link": {"clear": True}}]}, "m.yaml")
    assert err.value.key == "steps[0].link.process"


def test_contact_epoch_needs_at_s() -> None:
    with pytest.raises(ConfigError) as err:
        sc([{"wait": 1}], contact_epoch={"startup_s": 3})
    assert err.value.key == "contact_epoch.at_s"


class ActIO(FakeIO):
    def __init__(self, clock: FakeClock, script: dict[str, list[tuple[float, Reply]]]) -> None:
        super().__init__(clock, script)
        self.acts: list[tuple[float, str, str, dict[str, Any]]] = []

    def act(self, process: str, what: str, params: dict[str, Any]) -> tuple[bool, str]:
        self.acts.append((self.clock.t, process, what, params))
        return process != "broker", f"{what} done"


def drive(steps: list[dict[str, Any]], script: dict[str, list[tuple[float, Reply]]],
          bus: list[tuple[float, str, dict[str, Any]]] = (), timeout_s: float = 100.0) -> tuple[Engine, ActIO]:
    s = sc(steps, timeout_s=timeout_s)
    clock = FakeClock()
    io = ActIO(clock, script)
    rec = Recording()
    eng = Engine(s, io, rec, clock, product=lambda cam, n, kind: (clock.t >= 103.0, f"{cam}-{n}-{kind}"))
    eng.start()
    t0 = clock.t
    waiting = sorted(bus, key=lambda b: b[0])
    for _ in range(100_000):
        while waiting and waiting[0][0] <= clock.t - t0:
            t, topic, fields = waiting.pop(0)
            rec.add(Record(t0 + t, topic, topic.split(".")[1], "evt" if topic.startswith("evt") else "health",
                           fields))
        if eng.tick():
            break
        clock.t += 0.05
    return eng, io


def stage(t: float, cid: int, name: str) -> tuple[float, str, dict[str, Any]]:
    return (t, "evt.ground", {"name": "command_stage", "id": cid, "stage": name})


QUEUED = {"UPLINK": [(0.01, Reply("completed", "", {"id": 7}))]}


def test_an_uplink_is_judged_on_its_stages_at_the_ground() -> None:
    bus = [stage(0.5, 7, "sent#1"), stage(0.6, 8, "completed"), stage(2.0, 7, "received"),
           stage(2.1, 7, "completed")]
    eng, io = drive([{"uplink": {"target": "downlink", "cmd": "STORE_STATUS", "args": {}}}], QUEUED, bus)
    assert eng.ok(), eng.results[0].detail
    assert io.sent[0][1:4] == ("ground", "command", "UPLINK")
    assert io.sent[0][4]["target"] == "downlink" and io.sent[0][4]["args_json"] == "{}"
    assert [s["stage"] for s in eng.results[0].seen] == ["sent#1", "received", "completed"]


def test_an_uplink_fails_on_another_final_stage_a_refusal_or_silence() -> None:
    eng, _ = drive([{"uplink": {"target": "downlink", "cmd": "X"}}], QUEUED, [stage(1.0, 7, "not_delivered")])
    assert not eng.ok() and "not_delivered (expected completed)" in eng.results[0].detail
    eng, _ = drive([{"uplink": {"target": "downlink", "cmd": "X"}}],
                   {"UPLINK": [(0.01, Reply("rejected", "unknown command"))]})
    assert not eng.ok() and "UPLINK rejected at the ground: unknown command" in eng.results[0].detail
    eng, _ = drive([{"uplink": {"target": "downlink", "cmd": "X", "timeout_s": 2}}], QUEUED)
    assert not eng.ok() and "no final stage within 2 s" in eng.results[0].detail


def test_a_queued_uplink_goes_on_in_the_background_while_later_steps_run() -> None:
    eng, _ = drive([{"uplink": {"target": "downlink", "cmd": "X", "wait": "queued"}}, {"wait": 1}],
                   QUEUED, [stage(3.0, 7, "completed")])
    assert eng.ok()
    assert eng.results[1].finished_s < 3.0 and "final stage at t=3" in eng.results[0].detail


def test_signal_restart_disk_act_at_once_and_a_hang_is_continued() -> None:
    eng, io = drive([{"signal": {"process": "downlink", "signal": "STOP", "hold_s": 2}}, {"wait": 3},
                     {"restart": {"process": "downlink"}}, {"disk": {"process": "downlink", "limit_bytes": 10}},
                     {"disk": {"process": "downlink", "lift": True}}], {})
    assert eng.ok()
    what = [(a[2], a[3]) for a in io.acts]
    assert what == [("signal", {"signal": "STOP"}), ("signal", {"signal": "CONT"}), ("restart", {}),
                    ("disk", {"limit_bytes": 10}), ("disk", {"lift": True})]
    assert io.acts[1][0] - io.acts[0][0] == pytest.approx(2.0, abs=0.06) and not eng.held


def test_a_signal_the_io_could_not_send_fails_its_step() -> None:
    eng, _ = drive([{"signal": {"process": "broker", "signal": "KILL"}}], {})
    assert not eng.ok() and eng.results[0].ok is False


def test_a_link_step_is_a_command_to_the_relays_command_port() -> None:
    eng, io = drive([{"link": {"window": "closed", "duration_s": 5}}], {"WINDOW": [(0.01, Reply("completed"))]})
    assert eng.ok() and io.sent[0][1:5] == ("relay", "command", "WINDOW", {"state": "closed", "duration_s": 5.0})


def test_a_product_expectation_asks_until_it_is_at_the_ground() -> None:
    eng, _ = drive([{"expect": {"product": {"camera": "navcam", "counter": 1}, "within_s": 10}}], {})
    assert eng.ok() and "navcam-1-full" in eng.results[0].detail
    eng, _ = drive([{"expect": {"product": {"camera": "navcam"}, "within_s": 1}}], {})
    assert not eng.ok() and "not within 1 s" in eng.results[0].detail


def fill(t: float, v: float) -> tuple[float, str, dict[str, Any]]:
    return (t, "tlm.downlink", {"store_fill": v})


def test_during_holds_only_if_every_sample_of_the_interval_holds() -> None:
    step = {"expect": {"telemetry": "downlink", "channel": "store_fill", "value": {"lt": 0.9}, "during_s": 3,
                       "since": "step"}}
    eng, _ = drive([step], {}, [fill(0.5, 0.2), fill(1.5, 0.5), fill(2.5, 0.8)])
    assert eng.ok() and "3 samples" in eng.results[0].detail
    eng, _ = drive([step], {}, [fill(0.5, 0.2), fill(1.5, 0.95), fill(2.5, 0.8)])
    assert not eng.ok() and "store_fill=0.95" in eng.results[0].detail and eng.results[0].finished_s < 2.0
    eng, _ = drive([step], {}, [])
    assert not eng.ok() and "no sample of store_fill" in eng.results[0].detail


def test_unique_fails_naming_the_repeated_value() -> None:
    rx = [(0.1, "evt.ground", {"name": "product_received", "id": "a"}),
          (0.2, "evt.ground", {"name": "product_received", "id": "b"})]
    step = [{"wait": 1}, {"expect": {"event": "product_received", "from": "ground", "unique": "id"}}]
    eng, _ = drive(step, {}, rx)
    assert eng.ok() and "2 matching" in eng.results[1].detail
    eng, _ = drive(step, {}, [*rx, (0.3, "evt.ground", {"name": "product_received", "id": "a"})])
    assert not eng.ok() and 'id="a" twice' in eng.results[1].detail
