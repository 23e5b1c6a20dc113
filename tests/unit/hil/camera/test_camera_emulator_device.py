"""The emulated camera's behaviour, without sockets: commands in, replies and frames out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivers.camera import protocol as p
from hil.camera.emulator import CameraDevice, Manifest
from hil.camera.frames import FrameSource

PROFILE = {"width": 32, "height": 24, "bit_depth": 10, "pattern": "mono"}


@pytest.fixture
def device() -> CameraDevice:
    return CameraDevice("navcam", FrameSource(PROFILE, 3), max_rate_hz=5.0, clock=lambda: 1000.0)


def test_ping_and_stop_are_acknowledged(device: CameraDevice) -> None:
    assert device.handle(p.Ping(seq=3), 0.0) == [p.Ack(ref_seq=3)]
    assert device.handle(p.StreamStop(seq=4), 0.0) == [p.Ack(ref_seq=4)]


def test_status_reports_settings_and_frames_sent(device: CameraDevice) -> None:
    device.handle(p.SetExposure(exposure_us=5000, seq=1), 0.0)
    device.frame_sent()
    [reply] = device.handle(p.StatusRequest(seq=2), 0.0)
    assert isinstance(reply, p.StatusReply) and reply.ref_seq == 2
    assert reply.exposure_us == 5000 and reply.frames_sent == 1 and not reply.streaming


@pytest.mark.parametrize("cmd", [p.SetExposure(exposure_us=0, seq=1), p.SetGain(gain=0.01, seq=1),
                                 p.StreamStart(rate_hz=-1.0, seq=1)])
def test_out_of_range_settings_are_refused_with_a_reason(device: CameraDevice, cmd: p.Message) -> None:
    [reply] = device.handle(cmd, 0.0)
    assert isinstance(reply, p.Nak) and reply.code == p.Code.OUT_OF_RANGE and reply.reason


def test_decoding_errors_are_answered_with_a_nak_naming_the_fault(device: CameraDevice) -> None:
    [reply] = device.handle(p.UnknownMessageType("unknown message type 0x55", seq=9, msg_type=0x55), 0.0)
    assert isinstance(reply, p.Nak) and reply.code == p.Code.UNKNOWN_TYPE and reply.ref_seq == 9
    assert "UnknownMessageType" in reply.reason
    [reply] = device.handle(p.SyncLostError(12), 0.0)
    assert isinstance(reply, p.Nak) and reply.code == p.Code.MALFORMED and reply.ref_seq == 0


def test_replies_sent_to_the_camera_are_refused(device: CameraDevice) -> None:
    [reply] = device.handle(p.Ack(ref_seq=1, seq=5), 0.0)
    assert isinstance(reply, p.Nak) and reply.code == p.Code.NOT_ALLOWED


def test_capture_acks_then_sends_a_frame_with_the_next_counter(device: CameraDevice) -> None:
    ack, frame = device.handle(p.Capture(seq=1), 0.0)
    assert ack == p.Ack(ref_seq=1) and isinstance(frame, p.Frame)
    assert frame.counter == 0 and (frame.height, frame.width) == (24, 32) and frame.t_capture == 1000.0
    assert device.handle(p.Capture(seq=2), 0.0)[1].counter == 1


def test_stream_rate_is_capped_and_frames_come_due_at_that_rate(device: CameraDevice) -> None:
    [ack] = device.handle(p.StreamStart(rate_hz=50.0, seq=1), 10.0)
    assert isinstance(ack, p.Ack) and "capped" in ack.reason and device.rate_hz == 5.0
    assert device.frame_due(10.0)
    device.stream_frame(10.0)
    assert not device.frame_due(10.1) and device.frame_due(10.2)
    device.handle(p.StreamStop(seq=2), 10.2)
    assert not device.frame_due(11.0)


def test_unsent_frame_gives_its_counter_back(device: CameraDevice) -> None:
    f = device.make_frame()
    device.frame_unsent(f.counter)
    assert device.make_frame().counter == f.counter


def test_manifest_continues_from_the_last_counter_of_its_camera(tmp_path: Path) -> None:
    path = tmp_path / "hil" / "manifest.jsonl"
    m = Manifest(path)
    for cam, n in (("navcam", 4), ("hazcam", 9), ("navcam", 5)):
        m.append({"camera": cam, "counter": n, "shape": [2, 2], "crc32c": 0, "t_capture": 0.0})
    m.close()
    with open(path, "a") as f:
        f.write("{not json\n")
    again = Manifest(path)
    assert again.last_counter("navcam") == 5 and again.last_counter("hazcam") == 9
    assert again.last_counter("other") is None
    assert json.loads(path.read_text().splitlines()[0])["counter"] == 4
