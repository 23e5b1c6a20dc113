"""The broker as a real process with its optional command port: NOOP, RESET_COUNTERS, health and events."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
import zmq

from framework.bus.client import Subscriber
from framework.bus.commands import CommandClient
from fsw.broker.interface import INTERFACE
from tests.conftest import free_port


@pytest.fixture
def broker(write_config, processes) -> Iterator[tuple[zmq.Context, dict[str, str]]]:
    ep = {k: f"tcp://127.0.0.1:{free_port()}" for k in ("bus_pub", "bus_sub", "broker_cmd")}
    cfg = write_config({
        "version": 1,
        "endpoints": ep,
        "security": {"curve": False},  # a plain command port: this test is about the broker, not about keys
        "processes": {"broker": {"kind": "bus.broker",
                                 "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub", "command": "broker_cmd"}}},
    })
    processes.start(cfg, "broker")
    ctx = zmq.Context()
    try:
        yield ctx, ep
    finally:
        ctx.destroy(linger=0)


def _health(sub: Subscriber, until: Any, deadline_s: float = 10.0) -> dict[str, Any]:
    """The broker's next health sample for which ``until(fields)`` holds."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        m = sub.recv(timeout_ms=200)
        if m is not None and m.topic == "tlm.broker" and until(m.header.fields):
            return m.header.fields
    raise AssertionError("no such health sample from the broker")


def test_command_port_answers_noop_and_reset_counters_zeroes_the_forwarding_counts(broker) -> None:
    ctx, ep = broker
    sub = Subscriber(ctx, ep["bus_sub"], ["tlm.broker"])
    # the broker's own health crosses it once this subscription has joined, and is counted
    before = _health(sub, lambda f: f["messages"] >= 3)
    assert set(before) <= {"uptime_s", *INTERFACE.telemetry}
    client = CommandClient(ctx, ep["broker_cmd"])
    noop = client.call("NOOP")
    assert noop[-1].status == "completed" and "version" in noop[-1].result
    assert client.call("RESET_COUNTERS")[-1].status == "completed"
    after = _health(sub, lambda f: f["messages"] < before["messages"])  # counts only grow, but for a reset
    assert after["bytes"] < before["bytes"] and after["commands_accepted"] <= 1
    client.close()


def test_an_unknown_command_is_rejected_counted_and_raised_as_the_tables_event(broker) -> None:
    ctx, ep = broker
    sub = Subscriber(ctx, ep["bus_sub"], ["tlm.broker", "evt.broker"])
    _health(sub, lambda f: True)  # the subscription has joined
    client = CommandClient(ctx, ep["broker_cmd"])
    reply = client.call("FLUSH")
    assert reply[-1].status == "rejected" and "unknown command" in reply[-1].reason
    end = time.monotonic() + 10
    event = None
    while event is None and time.monotonic() < end:
        m = sub.recv(timeout_ms=200)
        if m is not None and m.topic == "evt.broker":
            event = m.header.fields
    assert event is not None
    assert event["name"] == "command_rejected"
    assert event["event_id"] == INTERFACE.events["command_rejected"].id
    assert _health(sub, lambda f: f["commands_rejected"] == 1)["events_published"] >= 1
    client.close()


def test_an_oversized_message_is_refused_and_the_bus_goes_on(broker) -> None:
    """A local process that sends a part beyond MAX_PART_BYTES loses its connection; nothing of it is
    forwarded, the broker keeps forwarding everyone else's messages."""
    from framework.bus.client import Publisher
    from framework.bus.message import MAX_PART_BYTES

    ctx, ep = broker
    sub = Subscriber(ctx, ep["bus_sub"], ["x.", "tlm.broker"])
    _health(sub, lambda f: True)  # the subscription has joined
    rogue = ctx.socket(zmq.PUB)
    rogue.connect(ep["bus_pub"])
    time.sleep(0.3)  # let the rogue's connection settle before it sends (not asserted on)
    rogue.send_multipart([b"x.big", b"\x80", bytes(MAX_PART_BYTES + 1)])
    honest = Publisher(ctx, ep["bus_pub"], "honest")
    seen: list[str] = []
    end = time.monotonic() + 15
    while time.monotonic() < end and "x.small" not in seen:
        honest.publish("x.small", "t", {})
        m = sub.recv(timeout_ms=200)
        if m is not None:
            seen.append(m.topic)
    assert "x.small" in seen and "x.big" not in seen
    rogue.close()
    honest.close()
