"""link.dictionary: one APID per process, derived from the config and the interface tables."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from framework.config import load_config
from framework.errors import ConfigError, ProtocolError
from framework.interface import Interface
from framework.kinds import KINDS
from link.dictionary import Dictionary, UnknownEntry

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def _config(processes: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(file="t.yaml", processes={n: {"kind": k} for n, k in processes.items()})


def test_demo_config_gives_each_process_its_block_and_index():
    config = load_config(CONFIGS / "demo.yaml")
    d = Dictionary.from_config(config)
    by_component: dict[str, list[int]] = {}
    for name in config.process_names():
        iface = KINDS[config.processes[name]["kind"]].interface
        if iface is None:
            continue
        by_component.setdefault(iface.component, []).append(d.apid_of(name))
        assert d.process_of(d.apid_of(name)) == name
        assert d.interface_of(d.apid_of(name)) is iface
    assert by_component["imaging"] == [0x20]
    assert by_component["downlink"] == [0x30]
    assert by_component["ground"] == [0x40]
    assert by_component["broker"] == [0x60, 0x61]  # two brokers: index in config order
    assert d.processes() == [n for n in config.process_names() if KINDS[config.processes[n]["kind"]].interface]


def test_same_config_same_apids_every_time():
    config = load_config(CONFIGS / "demo.yaml")
    a, b = Dictionary.from_config(config), Dictionary.from_config(config)
    assert [(e.process, e.apid) for e in a] == [(e.process, e.apid) for e in b]


def test_kinds_without_interface_are_skipped(monkeypatch):
    from framework.kinds import KindSpec
    monkeypatch.setitem(KINDS, "test.nointerface", KindSpec("test.nointerface", "x:y", {}))
    d = Dictionary.from_config(_config({"a": "test.nointerface", "img": "fsw.imaging"}))
    assert d.processes() == ["img"]
    assert d.apid_of("img") == 0x20


def test_more_than_sixteen_of_one_interface_is_a_config_error():
    iface = Interface.build("imaging")
    with pytest.raises(ConfigError, match="processes.p16"):
        Dictionary.from_interfaces({f"p{i}": iface for i in range(17)})


def test_unknown_names_and_apids_raise_typed_errors():
    d = Dictionary.from_interfaces({"imaging": Interface.build("imaging"), "ingest": Interface.build("ingest")})
    assert d.apid_of("ingest") == 0xA0
    for call, arg in ((d.apid_of, "nobody"), (d.process_of, 0x7FF), (d.interface_of, 0x21), (d.process_of, "x")):
        with pytest.raises(UnknownEntry) as err:
            call(arg)
        assert isinstance(err.value, ProtocolError) and isinstance(err.value, LookupError)
        assert "nobody" in str(err.value) or "APID" in str(err.value) or "'x'" in str(err.value)
    assert 0xA0 in d and 0xA1 not in d
