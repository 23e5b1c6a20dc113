"""The one EventReporter every component uses: table ids, rate limits, reserved keys, bus failures."""

from __future__ import annotations

from typing import Any

from framework.errors import BusError
from framework.interface import EventSpec, Interface
from framework.reporters import MAX_LIMITED_NAMES, EventReporter

TABLE = Interface.build("t", events=(EventSpec(1, "hello", "info"), EventSpec(2, "bad_input", "warning")),
                        id_base=0x0300)


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.lines.append((level, event, kw))


class Bus:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = fail

    def publish(self, topic: str, kind: str, fields: dict[str, Any]) -> int:
        if self.fail:
            raise BusError("header too large")
        self.sent.append((topic, kind, fields))
        return len(self.sent)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def reporter(bus: Bus, clock: Clock | None = None, **kw: Any) -> tuple[EventReporter, Log]:
    log = Log()
    return EventReporter(TABLE, bus, "evt.x", log, clock or Clock(), **kw), log


def test_an_event_carries_the_tables_absolute_id_and_severity_and_the_fixed_fields() -> None:
    bus = Bus()
    events, log = reporter(bus, fixed={"mechanism": "boom"})
    events.emit("hello", {"n": 1})
    assert bus.sent == [("evt.x", "evt", {"name": "hello", "event_id": 0x0301, "severity": "info",
                                          "mechanism": "boom", "n": 1})]
    assert log.lines == [("info", "hello", {"mechanism": "boom", "n": 1})]


def test_a_detail_named_like_a_reserved_header_key_is_renamed_not_refused() -> None:
    bus = Bus()
    events, _ = reporter(bus)
    events.emit("hello", {"kind": "full", "seq": 3})
    assert bus.sent[0][2]["kind_"] == "full" and bus.sent[0][2]["seq_"] == 3


def test_a_bus_failure_is_logged_and_counted_never_raised() -> None:
    events, log = reporter(Bus(fail=True))
    events.emit("bad_input", {"why": "x"})
    assert events.counters() == {"events_published": 0, "events_unpublished": 1, "events_suppressed": 0}
    assert ("error", "event_not_published", {"event_name": "bad_input", "reason": "header too large"}) in log.lines


def test_a_flood_is_folded_into_one_event_per_period_with_its_count() -> None:
    bus, clock = Bus(), Clock()
    events, _ = reporter(bus, clock)
    sent_now = [events.limited("bad_input", {"i": i}) for i in range(1000)]
    assert sent_now.count(True) == 1 and bus.sent[0][2]["count"] == 1
    clock.t += 1.0
    assert events.limited("bad_input", {"i": 1000})
    assert bus.sent[1][2]["count"] == 1000  # the 999 folded ones and this one
    assert events.counters()["events_suppressed"] == 999


def test_the_rate_limit_table_stays_bounded_whatever_names_arrive() -> None:
    events, _ = reporter(Bus())
    for i in range(MAX_LIMITED_NAMES * 3):
        events.limited(f"undeclared_{i}", {})
        events.limited(f"undeclared_{i}", {})  # folded: waits in the table for the next period
    assert len(events._last) <= MAX_LIMITED_NAMES and len(events._folded) <= MAX_LIMITED_NAMES


def test_reset_zeroes_the_counts() -> None:
    events, _ = reporter(Bus())
    events.emit("hello")
    events.reset()
    assert events.counters() == {"events_published": 0, "events_unpublished": 0, "events_suppressed": 0}


def test_a_log_line_the_disk_refuses_is_dropped_and_counted_never_raised(tmp_path) -> None:
    """On a full disk a service degrades; its own logging must not be what ends it."""
    import os
    import resource
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import resource, signal
        from pathlib import Path
        from framework import logs
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        log = logs.configure_logging("p", Path({str(tmp_path)!r}))
        log.info("before")
        size = (Path({str(tmp_path)!r}) / "p.jsonl").stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
        for i in range(50):
            log.info("refused", i=i)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        log.info("after")
        print(logs.lines_dropped())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=os.getcwd())
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) == 50
    text = (tmp_path / "p.jsonl").read_text()
    assert '"before"' in text and '"after"' in text and '"refused"' not in text


def test_health_carries_the_standard_command_and_event_counters_for_every_component() -> None:
    from types import SimpleNamespace

    from framework.interface import STANDARD_CHANNELS
    from framework.reporters import HealthReporter

    bus, clock = Bus(), Clock()
    events, log = reporter(bus, clock)
    events.emit("hello")
    ctx = SimpleNamespace(monotonic=clock, log=log, name="x")
    standard = [c.name for c in STANDARD_CHANNELS]
    server = SimpleNamespace(accepted=3, rejected=2)
    HealthReporter(ctx, bus, lambda: {"own": 1}, channels=["own", *standard], events=events,
                   commands=server).tick()
    HealthReporter(ctx, bus, lambda: {}, channels=standard).tick()  # no command port: zeros, no events
    with_port, without = bus.sent[-2][2], bus.sent[-1][2]
    assert with_port["own"] == 1 and with_port["commands_accepted"] == 3 and with_port["commands_rejected"] == 2
    assert with_port["events_published"] == 1 and with_port["events_suppressed"] == 0
    assert without["commands_accepted"] == 0 and "events_published" not in without
    assert not [line for line in log.lines if line[1] == "undeclared_channel"]
