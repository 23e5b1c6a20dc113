"""The bus over real sockets: broker process, publisher, subscriber, commands."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from framework.bus.client import Publisher, Subscriber
from framework.bus.commands import CommandClient, CommandServer
from framework.errors import CommandRejected
from tests.conftest import free_port


def _broker_config(write_config, xsub: int, xpub: int):
    return write_config({
        "version": 1,
        "endpoints": {"bus_pub": f"tcp://127.0.0.1:{xsub}", "bus_sub": f"tcp://127.0.0.1:{xpub}"},
        "processes": {"broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}}},
    })


def _recv_until(sub: Subscriber, pub: Publisher, topic: str, deadline_s: float = 10.0):
    """Publish probes until the subscription has joined, then return the first real message."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        pub.publish(topic, "probe", {})
        m = sub.recv(timeout_ms=100)
        if m is not None:
            return m
    raise AssertionError("subscription never joined")


def test_frame_pixels_cross_the_broker_unchanged(write_config, processes) -> None:
    xsub, xpub = free_port(), free_port()
    processes.start(_broker_config(write_config, xsub, xpub), "broker")
    ctx = zmq.Context()
    try:
        pub = Publisher(ctx, f"tcp://127.0.0.1:{xsub}", "cam")
        sub = Subscriber(ctx, f"tcp://127.0.0.1:{xpub}", ["frame."])
        _recv_until(sub, pub, "frame.probe")
        while sub.recv(timeout_ms=300) is not None:
            pass
        pixels = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
        seq = pub.publish("frame.cam", "frame", {"counter": 1}, buffers=[pixels])
        m = sub.recv(timeout_ms=5000)
        assert m is not None and m.topic == "frame.cam" and m.header.seq == seq
        got = np.frombuffer(m.buffers[0], dtype=np.uint16).reshape(64, 48)
        assert np.array_equal(got, pixels)
        assert m.header.fields == {"counter": 1}
    finally:
        ctx.destroy(linger=0)


def test_malformed_message_is_counted_and_skipped(write_config, processes) -> None:
    xsub, xpub = free_port(), free_port()
    processes.start(_broker_config(write_config, xsub, xpub), "broker")
    ctx = zmq.Context()
    try:
        pub = Publisher(ctx, f"tcp://127.0.0.1:{xsub}", "x")
        sub = Subscriber(ctx, f"tcp://127.0.0.1:{xpub}", ["test."])
        _recv_until(sub, pub, "test.probe")
        while sub.recv(timeout_ms=300) is not None:
            pass
        pub.sock.send_multipart([b"test.bad", b"\xc1not msgpack"])
        pub.publish("test.good", "health", {"a": 1})
        seen = []
        end = time.monotonic() + 10
        while time.monotonic() < end and "test.good" not in seen:
            m = sub.recv(timeout_ms=500)
            if m is not None:
                seen.append(m.topic)
        assert seen == ["test.good"]
        assert sub.malformed == 1
    finally:
        ctx.destroy(linger=0)


def test_command_server_accepts_then_completes_and_rejects_unknown() -> None:
    ctx = zmq.Context()
    port = free_port()
    events = []
    try:
        server = CommandServer(ctx, f"tcp://127.0.0.1:{port}", on_event=lambda n, f: events.append((n, f)))

        def set_rate(args):
            if not isinstance(args.get("rate_hz"), (int, float)) or args["rate_hz"] <= 0:
                raise CommandRejected("rate_hz must be a positive number")
            return {"rate_hz": args["rate_hz"]}

        server.register("SET_RATE", set_rate)
        client = CommandClient(ctx, f"tcp://127.0.0.1:{port}")
        cid = client.send("SET_RATE", {"rate_hz": 2})
        cid2 = client.send("FIRE_EVERYTHING", {})
        cid3 = client.send("SET_RATE", {"rate_hz": -1})
        replies = []
        end = time.monotonic() + 5
        while len(replies) < 4 and time.monotonic() < end:
            server.poll(50)
            r = client.recv(0.05)
            while r is not None:
                replies.append(r)
                r = client.recv(0.01)
        by_id = {}
        for r in replies:
            by_id.setdefault(r.id, []).append(r.status)
        assert by_id[cid] == ["accepted", "completed"]
        assert by_id[cid2] == ["rejected"]
        assert by_id[cid3] == ["rejected"]
        assert [n for n, _ in events] == ["command_rejected", "command_rejected"]
        assert "FIRE_EVERYTHING" in events[0][1]["reason"]
    finally:
        ctx.destroy(linger=0)


@pytest.mark.parametrize("payload", [[b"", b"\x92\x01"], [b"junk"], [b"", b"\x81\xa2id\xa1x"]])
def test_malformed_command_is_rejected_and_server_keeps_serving(payload) -> None:
    ctx = zmq.Context()
    port = free_port()
    try:
        server = CommandServer(ctx, f"tcp://127.0.0.1:{port}")
        raw = ctx.socket(zmq.DEALER)
        raw.connect(f"tcp://127.0.0.1:{port}")
        raw.send_multipart(payload)
        end = time.monotonic() + 5
        while server.rejected == 0 and time.monotonic() < end:
            server.poll(50)
        assert server.rejected == 1
        client = CommandClient(ctx, f"tcp://127.0.0.1:{port}")
        client.send("NOOP")
        got = []
        while len(got) < 2 and time.monotonic() < end:
            server.poll(50)
            r = client.recv(0.05)
            if r:
                got.append(r)
        assert [r.status for r in got] == ["accepted", "completed"] and "version" in got[1].result
    finally:
        ctx.destroy(linger=0)


def test_noop_and_reset_counters_with_arguments_are_rejected_by_the_components_table() -> None:
    from fsw.imaging.interface import INTERFACE

    ctx = zmq.Context()
    port = free_port()
    try:
        server = CommandServer(ctx, f"tcp://127.0.0.1:{port}", interface=INTERFACE)
        client = CommandClient(ctx, f"tcp://127.0.0.1:{port}")
        answers = {}
        for cmd, args in (("NOOP", {"x": 1}), ("RESET_COUNTERS", {"all": True}), ("NOOP", {})):
            cid = client.send(cmd, args)
            end = time.monotonic() + 5
            while time.monotonic() < end and not any(r.id == cid and r.status != "accepted"
                                                     for r in answers.get(cid, [])):
                server.poll(50)
                r = client.recv(0.05)
                if r:
                    answers.setdefault(r.id, []).append(r)
        finals = [rs[-1] for _, rs in sorted(answers.items())]
        assert [r.status for r in finals] == ["rejected", "rejected", "completed"]
        assert "unknown argument" in finals[0].reason and "'x'" in finals[0].reason
        assert "RESET_COUNTERS" in finals[1].reason
    finally:
        ctx.destroy(linger=0)


def test_subscriber_to_one_topic_sees_no_gap_from_other_topics(write_config, processes) -> None:
    xsub, xpub = free_port(), free_port()
    processes.start(_broker_config(write_config, xsub, xpub), "broker")
    ctx = zmq.Context()
    try:
        pub = Publisher(ctx, f"tcp://127.0.0.1:{xsub}", "drv")
        sub = Subscriber(ctx, f"tcp://127.0.0.1:{xpub}", ["frame.cam"])
        _recv_until(sub, pub, "frame.cam")
        while sub.recv(timeout_ms=300) is not None:
            pass
        for i in range(5):
            pub.publish("tlm.drv", "health", {"i": i})
            pub.publish("frame.cam", "frame", {"i": i})
        got = [sub.recv(timeout_ms=3000) for _ in range(5)]
        assert [m.header.fields["i"] for m in got] == list(range(5))
        assert sub.gaps.missing == 0
    finally:
        ctx.destroy(linger=0)
