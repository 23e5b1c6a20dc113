"""No input can kill, hang or bloat a bus user: size limits on every socket, sends that never block,
bounded work per call, bad messages counted instead of raised."""

from __future__ import annotations

import threading
import time
from typing import Any

import msgpack
import pytest
import zmq

from framework.bus.client import Publisher, Subscriber
from framework.bus.commands import CommandClient, CommandServer
from framework.bus.message import GapCounter, Header, encode_header
from framework.errors import BusError
from tests.conftest import free_port

U64_MAX = 2**64 - 1


@pytest.fixture()
def zctx() -> Any:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def _endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def test_gap_counter_saturates_on_extreme_sequence_numbers() -> None:
    gaps = GapCounter()
    for seq in (0, U64_MAX, 0, U64_MAX, 0, U64_MAX):
        gaps.observe("cam|frame.navcam", seq)
    assert gaps.missing == U64_MAX
    encode_header(Header(src="x", seq=0, t=0.0, kind="health", fields={"missing": gaps.missing}))


def test_gap_counter_keeps_a_bounded_table_whatever_sources_claim() -> None:
    gaps = GapCounter()
    for n in range(20_000):
        gaps.observe(f"forged{n}|evt.x", 1)
    assert len(gaps) <= GapCounter.MAX_STREAMS


def test_a_header_that_cannot_be_encoded_is_a_bus_error_not_a_crash() -> None:
    with pytest.raises(BusError):
        encode_header(Header(src="x", seq=0, t=0.0, kind="health", fields={"n": 2**70}))
    with pytest.raises(BusError):
        encode_header(Header(src="x", seq=0, t=0.0, kind="health", fields={"n": object()}))


def test_every_socket_the_bus_library_creates_has_a_message_size_limit(zctx: zmq.Context) -> None:
    server = CommandServer(zctx, _endpoint())
    client = CommandClient(zctx, _endpoint())
    sub = Subscriber(zctx, _endpoint(), ["x."])
    pub = Publisher(zctx, _endpoint(), "x")
    for sock in (server.sock, client.sock, sub.sock, pub.sock):
        limit = sock.getsockopt(zmq.MAXMSGSIZE)
        assert 0 < limit <= 128 * 1024 * 1024, sock


def test_oversized_command_is_refused_by_the_socket_and_the_server_keeps_serving(zctx: zmq.Context) -> None:
    ep = _endpoint()
    server = CommandServer(zctx, ep)
    big = zctx.socket(zmq.DEALER)
    big.setsockopt(zmq.LINGER, 0)
    big.connect(ep)
    big.send_multipart([b"", msgpack.packb({"id": 1, "cmd": "NOOP", "args": {"pad": b"x" * (32 << 20)}})])
    client = CommandClient(zctx, ep)
    cid = client.send("NOOP")
    final = None
    end = time.monotonic() + 10
    while final is None and time.monotonic() < end:
        server.poll(50)
        reply = client.recv(0.05)
        if reply is not None and reply.id == cid and reply.status == "completed":
            final = reply
    assert final is not None, "NOOP after an oversized request was not answered"
    assert server.accepted == 1  # the oversized request never reached a handler
    big.close()


def test_command_client_send_never_blocks_when_nobody_takes_commands(zctx: zmq.Context) -> None:
    client = CommandClient(zctx, _endpoint())  # nothing listens there
    outcome: dict[str, Any] = {}

    def flood() -> None:
        refused = 0
        for _ in range(3000):
            try:
                client.send("SEND_REGION", {"camera": "navcam"})
            except BusError:
                refused += 1
        outcome["refused"] = refused

    worker = threading.Thread(target=flood, daemon=True)
    worker.start()
    worker.join(timeout=30)  # a generous bound: before the fix this thread blocked for ever
    assert not worker.is_alive(), "CommandClient.send blocked"
    assert outcome["refused"] > 0 and client.unsent == outcome["refused"]
    assert client.call("NOOP", timeout_s=0.1) == []  # call turns the refusal into "no reply", never raises


def test_malformed_replies_are_counted_and_skipped(zctx: zmq.Context) -> None:
    ep = _endpoint()
    router = zctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(ep)
    client = CommandClient(zctx, ep)
    cid = client.send("NOOP")
    ident = router.recv_multipart()[0]
    for junk in (b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"id": "x", "status": 5}),
                 msgpack.packb({"id": cid, "status": "completed", "reason": {"deep": [1] * 10}})):
        router.send_multipart([ident, b"", junk])
    router.send_multipart([ident, b"", msgpack.packb({"id": cid, "status": "completed", "reason": "",
                                                      "result": {"version": "x"}})])
    got = None
    end = time.monotonic() + 10
    while got is None and time.monotonic() < end:
        got = client.recv(0.1)
    assert got is not None and got.id == cid and got.status == "completed"
    assert client.malformed == 4
    router.close()


def test_subscriber_recv_returns_after_bounded_work_in_a_flood_of_malformed_messages(zctx: zmq.Context) -> None:
    ep = _endpoint()
    pub = zctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.SNDHWM, 100_000)
    pub.bind(ep)
    sub = Subscriber(zctx, ep, ["x."], rcvhwm=100_000)
    end = time.monotonic() + 10
    while sub.malformed == 0 and time.monotonic() < end:  # until the subscription has joined
        pub.send_multipart([b"x.bad", b"\xc1"])
        sub.recv(timeout_ms=20)
    for _ in range(20_000):
        pub.send_multipart([b"x.bad", b"\xc1"])
    time.sleep(0.5)  # let them queue up on the subscriber's side
    before = sub.malformed
    assert sub.recv(timeout_ms=0) is None
    assert 0 < sub.malformed - before <= Subscriber.MAX_SKIPPED_PER_RECV
    pub.close()


def test_command_server_poll_answers_a_bounded_number_of_commands_per_call(zctx: zmq.Context) -> None:
    ep = _endpoint()
    server = CommandServer(zctx, ep)
    client = CommandClient(zctx, ep)
    for _ in range(500):
        client.send("NOOP")
    end = time.monotonic() + 10
    while server.sock.poll(0) == 0 and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(0.3)
    handled = server.poll(0)
    assert 0 < handled <= CommandServer.MAX_COMMANDS_PER_POLL


def test_a_flood_of_garbage_commands_gives_rate_limited_rejection_events(zctx: zmq.Context) -> None:
    ep = _endpoint()
    events: list[tuple[str, dict[str, Any]]] = []
    server = CommandServer(zctx, ep, on_event=lambda n, f: events.append((n, f)), clock=lambda: 100.0)
    raw = zctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(ep)
    for n in range(300):
        raw.send_multipart([b"", msgpack.packb({"id": n, "cmd": "X" * 100_000})])
    end = time.monotonic() + 10
    while server.rejected < 300 and time.monotonic() < end:
        server.poll(20)
    assert server.rejected == 300
    assert 0 < len(events) <= CommandServer.REJECTION_EVENTS_PER_PERIOD
    assert all(len(f["reason"]) <= 1000 for _, f in events)  # a huge name is not echoed back in full
    raw.close()


def test_a_forged_shared_memory_handle_length_is_refused_before_anything_is_allocated() -> None:
    import uuid

    from framework.bus.frames_shm import FrameRing, FrameRingReader, ShmError

    ring = FrameRing(f"test-{uuid.uuid4().hex[:12]}", slots=2, slot_bytes=1000)
    reader = FrameRingReader(ring.name)
    try:
        handle = ring.put(b"x" * 10)
        with pytest.raises(ShmError):
            reader.read(handle.slot, handle.generation, 2**62)  # before the fix: MemoryError or OverflowError
        assert reader.read(handle.slot, handle.generation, 10) == b"x" * 10
    finally:
        reader.close()
        ring.close()


def test_an_oversized_request_over_inproc_is_rejected_too(zctx: zmq.Context) -> None:
    server = CommandServer(zctx, "inproc://big-requests", max_request_bytes=1024)
    raw = zctx.socket(zmq.DEALER)
    raw.connect("inproc://big-requests")
    raw.send_multipart([b"", msgpack.packb({"id": 7, "cmd": "NOOP", "args": {"pad": b"x" * 4096}})])
    assert server.poll(2000) == 1
    assert server.rejected == 1 and server.accepted == 0
    reply = msgpack.unpackb(raw.recv_multipart()[-1])
    assert reply["status"] == "rejected" and "over 1024" in reply["reason"]
    raw.close()
