"""The campaign's additions to the scenario runner (docs/campaign.md): ``expect ... before`` (priority order)
and the ``datagram`` step (forged and replayed uplink datagrams, pdh.scenario.forge): parsed with each mistake
named, run by the engine on a fake clock, and the forged bytes themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from framework.errors import ConfigError
from fsw.ingest.interface import INTERFACE as INGEST
from hil.relay.pcap import PcapRecorder
from link.dictionary import Dictionary
from link.sdls import SecurityAssociation, protect
from link.tmtc import encode_command, read_tc_header
from pdh.scenario.forge import GARBAGE, UNKNOWN_SPI, forge, last_uplink
from pdh.scenario.model import DatagramAction
from tests.unit.pdh.scenario.test_scenario_steps import drive, sc


def _received(t: float, kind: str, pid: str) -> tuple[float, str, dict[str, Any]]:
    return (t, "evt.ground", {"name": "product_received", "product_kind": kind, "id": pid})


BEFORE = {"expect": {"event": "product_received", "from": "ground", "fields": {"product_kind": "thumbnail"},
                     "count": 2, "before": {"product_kind": "full"}}}


def test_before_holds_when_the_first_matches_came_before_any_later_kind() -> None:
    bus = [_received(0.1, "thumbnail", "a"), _received(0.2, "thumbnail", "b"), _received(0.3, "full", "a"),
           _received(0.4, "thumbnail", "c")]
    eng, _ = drive([{"wait": 1}, BEFORE], {}, bus)
    assert eng.ok(), eng.results[1].detail


def test_before_fails_out_of_order_naming_both_times() -> None:
    bus = [_received(0.1, "thumbnail", "a"), _received(0.2, "full", "a"), _received(0.3, "thumbnail", "b")]
    eng, _ = drive([{"wait": 1}, BEFORE], {}, bus)
    assert not eng.ok()
    assert "out of order" in eng.results[1].detail and "t=0.20 s" in eng.results[1].detail


def test_before_fails_with_too_few_matches() -> None:
    eng, _ = drive([{"wait": 1}, BEFORE], {}, [_received(0.1, "thumbnail", "a")])
    assert not eng.ok() and "1 of 2 matching" in eng.results[1].detail


@pytest.mark.parametrize("expect, key", [
    ({"telemetry": "downlink", "channel": "x", "value": 1, "before": {"y": 1}}, "steps[0].expect.before"),
    ({"event": "e", "from": "ground", "before": {}}, "steps[0].expect.before"),
    ({"event": "e", "from": "ground", "before": {"k": 1}, "within_s": 3}, "steps[0].expect.within_s"),
    ({"event": "e", "from": "ground", "before": {"k": 1}, "absent": True}, "steps[0].expect"),
])
def test_before_mistakes_name_the_key(expect: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        sc([{"expect": expect}])
    assert err.value.key == key


def test_a_datagram_step_parses_and_acts_through_the_io() -> None:
    s = sc([{"datagram": {"process": "relay", "forge": "bad_mac", "target": "downlink", "cmd": "STORE_STATUS",
                          "count": 2}}])
    assert s.steps[0].action == DatagramAction("relay", "bad_mac", "downlink", "STORE_STATUS", {}, 1, 2)
    eng, io = drive([{"datagram": {"process": "relay", "forge": "replay"}}], {})
    assert eng.ok()
    assert io.acts[0][1:] == ("relay", "datagram", {"forge": "replay", "target": "", "cmd": "", "args": {},
                                                    "spi": 1, "count": 1})


@pytest.mark.parametrize("step, key", [
    ({"process": "relay", "forge": "nonsense"}, "steps[0].datagram.forge"),
    ({"process": "relay", "forge": "bad_mac", "cmd": "X"}, "steps[0].datagram.target"),
    ({"process": "downlink", "forge": "replay"}, "steps[0].datagram.process"),
    ({"process": "relay", "forge": "bad_mac", "target": "nobody", "cmd": "X"}, "steps[0].datagram.target"),
    ({"process": "relay", "forge": "replay", "count": 0}, "steps[0].datagram.count"),
])
def test_datagram_mistakes_name_the_key(step: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        sc([{"datagram": step}])
    assert err.value.key == key


DICT = Dictionary.from_interfaces({"ingest": INGEST})
SA = SecurityAssociation(spi=1, key_id="k")


def _genuine(seq: int) -> bytes:
    spec = INGEST.commands["SA_STATUS"]
    return protect(encode_command(DICT.apid_of("ingest"), 0, 1, seq, spec, {}), SA, bytes(32))


def test_forged_commands_are_well_formed_tc_packets_that_only_the_mac_or_spi_can_refuse() -> None:
    captured = _genuine(41)
    bad = forge("bad_mac", captured=captured, dictionary=DICT, target="ingest", cmd="SA_STATUS")
    header = read_tc_header(bad)
    assert header.spi == 1 and header.seq == 42 and header.apid == DICT.apid_of("ingest")
    assert bad != _genuine(42)  # the same command, another key
    assert read_tc_header(forge("unknown_spi", dictionary=DICT, target="ingest", cmd="SA_STATUS")).spi == UNKNOWN_SPI
    tampered = forge("tampered", captured=captured)
    assert len(tampered) == len(captured) and sum(a != b for a, b in zip(tampered, captured)) == 1
    assert forge("replay", captured=captured) == captured and forge("garbage") == GARBAGE
    with pytest.raises(ValueError):
        forge("replay")
    with pytest.raises(ValueError):
        forge("bad_mac", dictionary=DICT, target="nobody", cmd="SA_STATUS")


def test_last_uplink_is_the_last_command_the_relay_carried_up(tmp_path: Path) -> None:
    pcap = PcapRecorder(tmp_path / "relay.pcap")
    lander, ground = ("127.0.0.1", 5000), ("127.0.0.1", 6000)
    pcap.record(_genuine(1), ("127.0.0.1", 7000), lander, 1.0)
    pcap.record(_genuine(2), ("127.0.0.1", 7000), lander, 2.0)
    pcap.record(b"a downlink datagram", ("127.0.0.1", 7001), ground, 3.0)
    pcap.record(b"\x18\x01junk", ("127.0.0.1", 7000), lander, 4.0)  # no command of the dictionary
    pcap.close()
    assert last_uplink(tmp_path / "relay.pcap", lander[1], DICT) == _genuine(2)
    assert last_uplink(tmp_path / "none.pcap", lander[1], DICT) is None
