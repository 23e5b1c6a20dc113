"""Every reader, driven with garbage and with well-formed-but-wrong input (unknown names, extreme numbers,
huge or deep maps, wrong types), gives a typed error or a message: never another exception, never a hang.

Readers: bus message decode, command request and reply decode (and a command server fed raw envelopes),
the camera stream decoder (its work per byte bounded too), the device envelope, the camera emulator's
device link, and both emulators' control requests. Sizes are bounded so each property runs fast.
"""

from __future__ import annotations

import math
import struct
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import crc32c
import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings, strategies as st

from drivers.camera import decoder as decoder_module
from drivers.camera import protocol as p
from drivers.camera.decoder import StreamDecoder
from drivers.deploy.profile import load_profile
from drivers.links import envelope
from drivers.links.messages import FamilyType
from framework.bus.client import NullPublisher
from framework.bus.commands import (
    CommandReply, CommandRequest, CommandServer, decode_reply, decode_request, register_table,
)
from framework.bus.message import Header, Message, decode_message, encode_header
from framework.errors import BusError, CommandRejected, ProtocolError
from framework.reporters import EventReporter
from hil.camera.commands import handlers as camera_handlers
from hil.camera.device import CameraDevice
from hil.camera.faults import FaultInjector
from hil.camera.frames import FrameSource
from hil.camera.interface import INTERFACE as CAMERA_EMULATOR
from hil.deploy.commands import handlers as deploy_handlers
from hil.deploy.device import DeviceCore
from hil.deploy.interface import INTERFACE as DEPLOY_EMULATOR

EXTREME_INTS = st.sampled_from([0, 1, -1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, -(2**63), 2**64 - 1])
EXTREME_FLOATS = st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, float("inf"), float("-inf"), float("nan")])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), EXTREME_INTS, st.floats(),
                    EXTREME_FLOATS, st.text(max_size=30), st.binary(max_size=30))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=5)),
                      max_leaves=20)
KEYS = st.one_of(st.sampled_from(["v", "src", "seq", "t", "kind", "id", "cmd", "args", "status", "reason",
                                  "result", "camera", "fault", "deg", "count"]), st.text(max_size=12))


def packed(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def huge_map(n: int) -> bytes:
    return packed({f"k{i}": i for i in range(n)})


wrong_maps = st.dictionaries(KEYS, VALUES, max_size=8)


# --- the bus -------------------------------------------------------------------------------------

@given(st.lists(st.binary(max_size=200), max_size=20))
def test_garbage_bus_messages_give_bus_errors_only(parts: list[bytes]) -> None:
    try:
        assert isinstance(decode_message(parts), Message)
    except BusError:
        pass


@given(wrong_maps, st.sampled_from([b"frame.navcam", b"evt.x", b"\xff\xfe", b""]),
       st.lists(st.binary(max_size=16), max_size=3))
def test_well_formed_but_wrong_headers_give_bus_errors_only(body: dict[str, Any], topic: bytes,
                                                            buffers: list[bytes]) -> None:
    for head in ({**body, "v": 1}, body, {"v": 1, "src": "x", "seq": 1, "t": 0.0, "kind": "k", **body}):
        try:
            msg = decode_message([topic, packed(head), *buffers])
        except BusError:
            continue
        assert isinstance(msg.header.seq, int) and msg.header.seq >= 0 and math.isfinite(msg.header.t)


def test_a_huge_header_map_is_refused_before_it_is_unpacked() -> None:
    with pytest.raises(BusError):
        decode_message([b"evt.x", huge_map(20_000)])


@given(wrong_maps)
def test_encoding_any_fields_gives_bytes_or_a_bus_error(fields: dict[str, Any]) -> None:
    try:
        encode_header(Header(src="x", seq=0, t=0.0, kind="k", fields=fields))
    except BusError:
        pass


# --- commands -------------------------------------------------------------------------------------

@given(st.one_of(st.binary(max_size=200), wrong_maps.map(packed), VALUES.map(packed),
                 st.fixed_dictionaries({"id": VALUES, "cmd": VALUES, "args": VALUES}).map(packed)))
def test_garbage_command_requests_are_rejected_with_a_reason(data: bytes) -> None:
    try:
        req = decode_request(data)
    except CommandRejected as exc:
        assert str(exc)
        return
    assert isinstance(req, CommandRequest) and isinstance(req.id, int) and isinstance(req.cmd, str)
    assert all(isinstance(k, str) for k in req.args)


@given(st.one_of(st.binary(max_size=200), wrong_maps.map(packed),
                 st.fixed_dictionaries({"id": VALUES, "status": VALUES, "reason": VALUES,
                                        "result": VALUES}).map(packed)))
def test_garbage_command_replies_give_bus_errors_only(data: bytes) -> None:
    try:
        reply = decode_reply(data)
    except BusError:
        return
    assert isinstance(reply, CommandReply) and isinstance(reply.reason, str)


@pytest.fixture(scope="module")
def command_port() -> Iterator[tuple[CommandServer, zmq.Socket]]:
    ctx = zmq.Context()
    server = CommandServer(ctx, "inproc://garbage-commands", clock=lambda: 0.0)
    server.register("ECHO", lambda args: {"n": len(args)})
    raw = ctx.socket(zmq.DEALER)
    raw.connect("inproc://garbage-commands")
    try:
        yield server, raw
    finally:
        ctx.destroy(linger=0)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=64), max_size=4), wrong_maps)
def test_a_command_port_fed_garbage_envelopes_answers_and_keeps_serving(
        command_port: tuple[CommandServer, zmq.Socket], envelope_parts: list[bytes], body: dict[str, Any]) -> None:
    server, raw = command_port
    for parts in (envelope_parts or [b""], [b"", packed(body)], [b"", packed({**body, "id": 5, "cmd": "ECHO"})]):
        raw.send_multipart(parts)
        deadline = time.monotonic() + 5
        while server.poll(10) == 0 and time.monotonic() < deadline:
            pass
    raw.send_multipart([b"", packed({"id": 1, "cmd": "NOOP", "args": {}})])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        server.poll(10)
        while raw.poll(0):
            reply = decode_reply(raw.recv_multipart()[-1])
            if reply.id == 1 and reply.status == "completed":
                return
    raise AssertionError("NOOP after garbage was not answered")


# --- the camera stream decoder --------------------------------------------------------------------

_MAX = 4096


@st.composite
def sound_messages(draw: st.DrawFn) -> bytes:
    """A sound envelope of any type with an extreme or random length, its payload random or absent,
    its message CRC right or wrong."""
    known = sorted({v for k, v in vars(p.MsgType).items() if k.isupper() and isinstance(v, int)})
    mtype = draw(st.one_of(st.sampled_from(known), st.integers(0, 255)))
    payload = draw(st.binary(max_size=96))
    length = draw(st.one_of(st.just(len(payload)), st.integers(0, _MAX), st.sampled_from([_MAX + 1, 2**32 - 1])))
    head = envelope.pack_header(mtype, draw(st.integers(0, 2**32 - 1)), length)
    body = head + payload
    crc = envelope.U32.pack(crc32c.crc32c(body)) if draw(st.booleans()) else b"\0\0\0\0"
    return body + crc


@st.composite
def frames_that_lie(draw: st.DrawFn) -> bytes:
    """A FRAME with a sound CRC whose metadata lies: extreme sizes and counters, bad depth, bad camera id."""
    meta = struct.pack("<QIIBBBxIddd", draw(EXTREME_INTS.filter(lambda v: 0 <= v < 2**64)),
                       draw(st.sampled_from([0, 1, 2**32 - 1])), draw(st.sampled_from([0, 1, 2**32 - 1])),
                       draw(st.integers(0, 255)), draw(st.integers(0, 255)), draw(st.integers(0, 255)),
                       draw(st.integers(0, 2**32 - 1)), draw(EXTREME_FLOATS), draw(EXTREME_FLOATS), draw(EXTREME_FLOATS))
    payload = meta + draw(st.binary(max_size=64))
    head = envelope.pack_header(p.MsgType.FRAME, 1, len(payload))
    return head + payload + envelope.U32.pack(crc32c.crc32c(head + payload))


class CountingCrc:
    def __init__(self, real: Any) -> None:
        self.real, self.bytes = real, 0

    def crc32c(self, data: Any, value: int = 0) -> int:
        self.bytes += memoryview(data).nbytes
        return self.real.crc32c(data, value)


@given(st.lists(st.one_of(sound_messages(), frames_that_lie(), st.binary(max_size=64)), max_size=30),
       st.lists(st.integers(1, 512), min_size=1, max_size=6))
def test_the_camera_decoder_gives_typed_errors_and_bounded_work_for_lying_streams(
        pieces: list[bytes], chunks: list[int]) -> None:
    stream = b"".join(pieces)
    shim = CountingCrc(decoder_module.crc32c)
    real, decoder_module.crc32c = decoder_module.crc32c, shim
    try:
        dec = StreamDecoder(_MAX)
        items: list[object] = []
        at, i = 0, 0
        while at < len(stream):
            n = chunks[i % len(chunks)]
            items += dec.feed(stream[at:at + n])
            while dec.busy:
                items += dec.pump()
            at, i = at + n, i + 1
        items += dec.finish()
    finally:
        decoder_module.crc32c = real
    assert all(isinstance(item, ProtocolError) or isinstance(item, tuple(p.Message.__args__)) for item in items)
    assert shim.bytes <= 8 * len(stream) + 4 * (_MAX + p.OVERHEAD)
    assert dec.buffered_bytes == 0 and not dec.in_message


# --- the device envelope ----------------------------------------------------------------------------

@given(st.binary(min_size=envelope.HEADER_LEN, max_size=envelope.HEADER_LEN + 8), st.integers(0, 2**33))
def test_any_header_bytes_parse_or_give_a_wire_error(head: bytes, max_payload: int) -> None:
    try:
        mtype, seq, length = envelope.parse_header(head, max_payload)
    except envelope.WireError:
        return
    assert length <= max_payload


@given(st.sampled_from([FamilyType.ACK, FamilyType.NAK]), st.binary(max_size=64))
def test_any_reply_payload_decodes_or_gives_a_wire_error(mtype: int, payload: bytes) -> None:
    try:
        envelope.decode_reply(mtype, 1, payload)
    except envelope.WireError:
        pass


# --- the camera emulator: its device link and its control port ---------------------------------------

_PROFILE = {"width": 32, "height": 24, "bit_depth": 10, "pattern": "mono", "readout_s": 0.01,
            "exposure_us": 20000, "max_frame_rate_hz": 5.0, "boot_s": 0.5}
u32 = st.integers(0, 2**32 - 1)
extreme_commands = st.one_of(
    st.builds(p.SetExposure, exposure_us=st.one_of(u32, st.just(2**32 - 1))),
    st.builds(p.SetGain, gain=st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(p.StreamStart, rate_hz=st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(p.CaptureBurst, count=u32),
    st.builds(p.SetWindow, x=u32, y=u32, width=u32, height=u32),
    st.builds(p.SetBinning, factor=st.integers(0, 255)),
    st.builds(p.Capture), st.builds(p.StreamStop), st.builds(p.Ping), st.builds(p.StatusRequest),
    st.builds(p.Ack, ref_seq=u32, code=st.integers(0, 2**16 - 1), reason=st.text(max_size=10)),
)


@settings(max_examples=60)
@given(st.lists(extreme_commands, max_size=8))
def test_the_emulated_camera_answers_extreme_commands_without_raising(cmds: list[p.Message]) -> None:
    device = CameraDevice("navcam", FrameSource(_PROFILE, 3), clock=lambda: 1000.0, now=0.0)
    now = 0.0
    for cmd in cmds:
        replies = device.handle(cmd, now)
        assert all(isinstance(r, (p.Ack, p.Nak, p.StatusReply)) for r in replies)
        now += 0.5
        assert device.frames_ready(now) >= 0
        assert device.next_event_s(now) >= 0 or math.isinf(device.next_event_s(now))


def _camera_emulator() -> Any:
    device = CameraDevice("navcam", FrameSource(_PROFILE, 3), clock=lambda: 1000.0, now=0.0)
    log = SimpleNamespace(info=lambda *a, **k: None, warning=lambda *a, **k: None, error=lambda *a, **k: None)
    events = EventReporter(CAMERA_EMULATOR, NullPublisher(), "evt.cam", log, time.monotonic)
    return SimpleNamespace(ctx=SimpleNamespace(monotonic=time.monotonic), camera="navcam", device=device,
                           faults=FaultInjector(3), events=events, connected=True, powered=lambda now: True)


def _deploy_emulator() -> Any:
    log = SimpleNamespace(info=lambda *a, **k: None, warning=lambda *a, **k: None, error=lambda *a, **k: None)
    return SimpleNamespace(core=DeviceCore(load_profile("spring_boom"), seed=1, physics_hz=200.0),
                           events=EventReporter(DEPLOY_EMULATOR, NullPublisher(), "evt.mech", log, time.monotonic))


class _Registry:
    """Takes what register_table registers, so the checked handlers can be called directly."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def register(self, name: str, handler: Any, with_client: bool = False) -> None:
        self.handlers[name] = handler


def _checked(interface: Any, handlers: dict[str, Any]) -> dict[str, Any]:
    registry = _Registry()
    register_table(registry, interface, handlers)  # type: ignore[arg-type]
    return registry.handlers


@settings(max_examples=150)
@given(st.sampled_from(sorted(set(CAMERA_EMULATOR.commands) - {"NOOP", "RESET_COUNTERS"})), wrong_maps,
       st.dictionaries(st.sampled_from(["fault", "count", "deg", "dust", "kind", "duration_s", "bytes", "keep",
                                        "delay_s", "flat_level", "boom_angle_deg"]),
                       st.one_of(VALUES, st.sampled_from(["late", "stall", "corrupt", "garbage", "lunar"])),
                       max_size=4))
def test_camera_emulator_control_requests_are_answered_or_rejected(cmd: str, junk: dict[str, Any],
                                                                    plausible: dict[str, Any]) -> None:
    emu = _camera_emulator()
    handler = _checked(CAMERA_EMULATOR, camera_handlers(emu))[cmd]
    for args in (junk, plausible):
        try:
            handler(args)
        except CommandRejected:
            pass


@settings(max_examples=150)
@given(st.sampled_from(sorted(set(DEPLOY_EMULATOR.commands) - {"NOOP", "RESET_COUNTERS"})), wrong_maps,
       st.dictionaries(st.sampled_from(["fault", "angle_deg", "factor", "switch", "closed", "active", "circuit",
                                        "temp_c"]),
                       st.one_of(VALUES, st.sampled_from(["jam", "slow", "stuck_switch", "primary", "stowed"])),
                       max_size=4))
def test_mechanism_emulator_control_requests_are_answered_or_rejected(cmd: str, junk: dict[str, Any],
                                                                       plausible: dict[str, Any]) -> None:
    emu = _deploy_emulator()
    handler = _checked(DEPLOY_EMULATOR, deploy_handlers(emu))[cmd]
    for args in (junk, plausible):
        try:
            handler(args)
        except CommandRejected:
            pass
    emu.core.advance_to(5.0)  # whatever was injected, the physics still steps
