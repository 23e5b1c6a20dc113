"""pdh tlm / pdh events without a running system: bus messages to samples and events, filters, lines, --since."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from framework.interface import ChannelSpec
from pdh.live import (Event, EventFilter, Sample, Seen, TlmFilter, archive_event, event_json, event_line,
                      from_message, parse_since, sample_json, sample_line)

T = 1_700_000_000.25


def test_a_process_bus_health_message_is_a_sample_via_bus() -> None:
    got = from_message("tlm.downlink", "downlink", T, {"store_fill": 0.5, "queue_depth": 3})
    assert got == Sample(T, "downlink", "bus", {"store_fill": 0.5, "queue_depth": 3})


def test_a_housekeeping_packet_republished_by_the_ground_is_a_sample_via_tm() -> None:
    got = from_message("lander.tlm.imaging", "ground", T, {"frames": 7})
    assert got == Sample(T, "imaging", "tm", {"frames": 7})


def test_an_event_loses_its_name_severity_and_id_into_the_record() -> None:
    got = from_message("lander.evt.downlink", "ground", T,
                       {"name": "product_stored", "severity": "info", "event_id": 769, "id": "x"})
    assert got == Event(T, "downlink", "product_stored", "info", "tm", {"id": "x"})


def test_other_topics_are_not_telemetry_nor_events() -> None:
    assert from_message("product.full", "imaging", T, {"id": "x"}) is None
    assert from_message("frame.navcam", "navcam_driver", T, {}) is None


def test_tlm_filter_keeps_the_named_process_and_only_the_matching_channels() -> None:
    s = Sample(T, "downlink", "bus", {"queue_rest": 1, "queue_alert": 0, "store_fill": 0.1})
    f = TlmFilter(frozenset({"downlink"}), ("queue_*",))
    assert f.apply(s) == Sample(T, "downlink", "bus", {"queue_rest": 1, "queue_alert": 0})
    assert TlmFilter(frozenset({"ground"})).apply(s) is None
    assert TlmFilter(channels=("nothing_*",)).apply(s) is None
    assert TlmFilter(via="tm").apply(s) is None
    assert TlmFilter().apply(s) == s


def test_event_filter_by_minimum_severity_source_name_and_way() -> None:
    warn = Event(T, "downlink", "transaction_failed", "warning", "tm")
    info = Event(T, "ground", "product_received", "info", "bus")
    assert [e for e in (warn, info) if EventFilter("warning").keeps(e)] == [warn]
    assert not EventFilter("error").keeps(warn)
    assert [e for e in (warn, info) if EventFilter(sources=frozenset({"ground"})).keeps(e)] == [info]
    assert [e for e in (warn, info) if EventFilter(names=("transaction_*",)).keeps(e)] == [warn]
    assert [e for e in (warn, info) if EventFilter(via="bus").keeps(e)] == [info]


def test_an_event_seen_on_both_buses_is_shown_once_and_a_later_one_again() -> None:
    seen = Seen()
    direct = Event(T, "downlink", "product_stored", "info", "bus", {"id": "a"})
    via_tm = Event(T + 1 / 65536, "downlink", "product_stored", "info", "tm", {"id": "a"})
    later = Event(T + 0.5, "downlink", "product_stored", "info", "tm", {"id": "b"})
    other = Event(T, "imaging", "product_stored", "info", "bus")
    assert [seen.first(e) for e in (direct, via_tm, later, other)] == [True, False, True, True]


def test_sample_line_marks_a_value_outside_its_limits_and_json_names_it() -> None:
    specs = {"products_corrupt": ChannelSpec(1, "products_corrupt", "count", int, high=0),
             "store_fill": ChannelSpec(2, "store_fill", "fraction", float, 0.0, 0.9)}
    s = Sample(T, "downlink", "bus", {"products_corrupt": 2, "store_fill": 0.25, "contact": "relay_a"})
    line = sample_line(s, specs)
    assert "products_corrupt=2!high" in line and "store_fill=0.25 " in line + " " and "contact=relay_a" in line
    assert line.startswith(datetime.fromtimestamp(T, timezone.utc).strftime("%H:%M:%S.250"))
    got = json.loads(sample_json(s, specs))
    assert got == {"t": T, "process": "downlink", "via": "bus", "channels": s.channels,
                   "out_of_limits": {"products_corrupt": "high"}}


def test_event_line_and_json() -> None:
    e = Event(T, "ground", "product_received", "info", "bus", {"id": "navcam-1", "ok": True})
    assert event_line(e).endswith("info    ground           bus     product_received  id=navcam-1 ok=True")
    assert json.loads(event_json(e)) == {"t": T, "source": "ground", "name": "product_received", "severity": "info",
                                         "via": "bus", "fields": {"id": "navcam-1", "ok": True}}


def test_an_archive_row_is_an_event_via_archive_without_its_name_in_the_fields() -> None:
    row = {"t": T, "source": "downlink", "origin": "lander", "severity": "warning", "name": "transaction_failed",
           "event_id": 4, "fields": {"name": "transaction_failed", "reason": "lost"}}
    assert archive_event(row) == Event(T, "downlink", "transaction_failed", "warning", "archive", {"reason": "lost"})


@pytest.mark.parametrize(("text", "expected"), [
    ("30s", T - 30), ("10m", T - 600), ("2h", T - 7200), ("1d", T - 86400), ("1.5m", T - 90),
    ("1700000000", 1_700_000_000.0), ("2023-11-14T22:13:20", 1_700_000_000.0),
    ("2023-11-14T23:13:20+01:00", 1_700_000_000.0)])
def test_since_is_relative_unix_or_iso(text: str, expected: float) -> None:
    assert parse_since(text, T) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["yesterday", "10 minutes", "-5m", "nan", ""])
def test_since_that_is_none_of_those_is_refused_saying_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="expected 30s, 10m"):
        parse_since(text, T)
