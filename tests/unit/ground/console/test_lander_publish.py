"""The ground's hook for live views: each new lander housekeeping and event packet goes on the ground bus."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from framework.interface import Interface
from framework.reporters import EventReporter
from fsw.imaging.interface import INTERFACE as IMAGING
from ground.interface import INTERFACE
from ground.ledger import Ledger
from ground.telemetry import TelemetryIntake
from link.dictionary import Dictionary
from link.tmtc import encode_event, encode_housekeeping, encode_verification
from tests.unit.link.fakes import Bus, Log

DICTIONARY = Dictionary.from_interfaces({"imaging": IMAGING, "ingest": Interface.build("ingest")})


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any], float | None]] = []

    def publish(self, topic: str, kind: str, fields: dict[str, Any] | None = None, buffers: Any = (),
                t: float | None = None) -> int:
        self.sent.append((topic, kind, dict(fields or {}), t))
        return len(self.sent)


def test_new_housekeeping_and_events_are_published_once_with_the_landers_time(tmp_path: Path) -> None:
    pub = Recorder()
    events = EventReporter(INTERFACE, Bus(), "evt.ground", Log(), time.monotonic)
    tm = TelemetryIntake(DICTIONARY, Ledger(tmp_path / "ledger.sqlite"), events, publisher=pub)
    img, ing = DICTIONARY.apid_of("imaging"), DICTIONARY.apid_of("ingest")
    spec = next(iter(IMAGING.events.values()))
    batch = (encode_housekeeping(img, 1, 100.5, IMAGING, {"frames_in": 7})
             + encode_event(img, 2, 100.75, spec.id, "warning", {"camera": "navcam"})
             + encode_verification(ing, 1, 101.0, 1, 42, img, 0x220, "completed", ""))
    tm.take_datagram(batch)
    tm.take_datagram(batch)  # the same packets again: stored and published once
    assert [(t, k, when) for t, k, _, when in pub.sent] == [("lander.tlm.imaging", "health", 100.5),
                                                           ("lander.evt.imaging", "evt", 100.75)]
    assert pub.sent[0][2]["frames_in"] == 7
    assert pub.sent[1][2] | {} == {"camera": "navcam", "name": spec.name, "event_id": spec.id, "severity": "warning"}


def test_without_a_bus_publisher_nothing_is_published(tmp_path: Path) -> None:
    bus = Bus()
    events = EventReporter(INTERFACE, bus, "evt.ground", Log(), time.monotonic)
    tm = TelemetryIntake(DICTIONARY, Ledger(tmp_path / "ledger.sqlite"), events)
    tm.take_datagram(encode_housekeeping(DICTIONARY.apid_of("imaging"), 1, 1.0, IMAGING, {}))
    assert tm.publisher is None and bus.events == []


def test_the_station_hands_its_bus_publisher_to_the_tm_intake(tmp_path: Path) -> None:
    """ground.process passes the ground bus's publisher through Station into the intake; nothing reaches
    into the event reporter for it (without one the lander's packets are stored, not published)."""
    from framework.config import check_mapping
    from ground.interface import KIND
    from ground.station import Station
    from tests.unit.ground.test_station import TIMERS, Inline
    from tests.unit.link.fakes import Radio

    settings = check_mapping("<test>", "ground", KIND.keys, {**TIMERS, "archive": {"url": "sqlite:///a.sqlite"}})
    img = DICTIONARY.apid_of("imaging")
    pub, bus = Recorder(), Bus()
    for publisher, out in ((pub, "with"), (None, "without")):
        events = EventReporter(INTERFACE, bus, "evt.ground", Log(), time.monotonic)
        station = Station(settings, tmp_path / out, "<test>", Radio(), events, time.time, Inline(),
                          dictionary=DICTIONARY, publisher=publisher)
        station.take_datagram(encode_housekeeping(img, 1, 7.0, IMAGING, {"frames_in": 3}))
        assert station.tm.publisher is publisher
        station.close()
    assert [(t, f["frames_in"]) for t, _k, f, _t in pub.sent] == [("lander.tlm.imaging", 3)]
    assert all(not e.get("name", "").startswith("lander") and "frames_in" not in e for e in bus.events)
