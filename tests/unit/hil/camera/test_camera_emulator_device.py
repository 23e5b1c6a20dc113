"""The emulated camera's behaviour, without sockets: commands in, replies and frames out, on a fake clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivers.camera import protocol as p
from hil.camera.device import CameraDevice
from hil.camera.manifest import Manifest
from hil.camera.frames import FrameSource

PROFILE = {"width": 32, "height": 24, "bit_depth": 10, "pattern": "mono", "readout_s": 0.01, "exposure_us": 20000,
           "max_frame_rate_hz": 5.0, "boot_s": 0.5, "gain_dn_per_e": 0.05}


@pytest.fixture
def device() -> CameraDevice:
    return CameraDevice("navcam", FrameSource(PROFILE, 3), clock=lambda: 1000.0, now=0.0)


def test_ping_and_stop_are_acknowledged(device: CameraDevice) -> None:
    assert device.handle(p.Ping(seq=3), 0.0) == [p.Ack(ref_seq=3)]
    assert device.handle(p.StreamStop(seq=4), 0.0) == [p.Ack(ref_seq=4)]


def test_status_reports_settings_geometry_and_frames_sent(device: CameraDevice) -> None:
    device.handle(p.SetExposure(exposure_us=5000, seq=1), 0.0)
    device.frame_sent()
    [reply] = device.handle(p.StatusRequest(seq=2), 0.0)
    assert isinstance(reply, p.StatusReply) and reply.ref_seq == 2
    assert reply.exposure_us == 5000 and reply.frames_sent == 1 and not reply.streaming
    assert (reply.width, reply.height, reply.binning) == (32, 24, 1)


@pytest.mark.parametrize("cmd", [p.SetExposure(exposure_us=0, seq=1), p.SetGain(gain=0.01, seq=1),
                                 p.StreamStart(rate_hz=-1.0, seq=1), p.CaptureBurst(count=0, seq=1),
                                 p.SetWindow(x=30, y=0, width=8, height=8, seq=1), p.SetBinning(factor=3, seq=1)])
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


def test_capture_is_ready_after_exposure_plus_readout(device: CameraDevice) -> None:
    assert device.handle(p.Capture(seq=1), 0.0) == [p.Ack(ref_seq=1)]
    assert device.frames_ready(0.029) == 0 and device.frames_ready(0.031) == 1
    frame = device.take_frame(0.031)
    assert frame.counter == 0 and (frame.height, frame.width) == (24, 32) and frame.t_capture == 1000.0


def test_burst_frames_come_one_frame_time_apart(device: CameraDevice) -> None:
    device.handle(p.CaptureBurst(count=3, seq=1), 0.0)
    assert device.frames_ready(0.031) == 1 and device.frames_ready(10.0) == 3
    assert [device.take_frame(10.0).counter for _ in range(3)] == [0, 1, 2]


def test_window_and_binning_change_the_frame_size(device: CameraDevice) -> None:
    assert isinstance(device.handle(p.SetWindow(x=8, y=4, width=16, height=16, seq=1), 0.0)[0], p.Ack)
    assert isinstance(device.handle(p.SetBinning(factor=2, seq=2), 0.0)[0], p.Ack)
    device.handle(p.Capture(seq=3), 0.0)
    assert device.take_frame(1.0).pixels.shape == (8, 8)


def test_stream_rate_is_capped_and_frames_come_due_at_that_rate(device: CameraDevice) -> None:
    [ack] = device.handle(p.StreamStart(rate_hz=50.0, seq=1), 10.0)
    assert isinstance(ack, p.Ack) and "capped" in ack.reason and device.rate_hz == 5.0
    assert device.frames_ready(10.031)
    device.take_frame(10.031)
    assert not device.frames_ready(10.1) and device.frames_ready(10.25)
    device.handle(p.StreamStop(seq=2), 10.3)
    assert not device.frames_ready(11.0)


def test_latch_up_silences_everything_but_power_cycle(device: CameraDevice) -> None:
    device.handle(p.StreamStart(rate_hz=1.0, seq=1), 0.0)
    device.faults.inject("latch_up", {}, 0.0)
    assert device.handle(p.Ping(seq=2), 0.1) == [] and device.frames_ready(5.0) == 0
    [ack] = device.handle(p.PowerCycle(seq=3), 0.2)
    assert isinstance(ack, p.Ack) and device.power_cycle_pending
    device.rebooted(1.0)
    assert not device.latched and device.boot_count == 1 and not device.streaming
    assert device.handle(p.Ping(seq=1), 1.0) == [p.Ack(ref_seq=1)]


def test_over_temperature_refuses_exposures_and_fails_self_test(device: CameraDevice) -> None:
    device.faults.inject("over_temperature", {"delta_c": 80.0}, 0.0)
    [nak] = device.handle(p.Capture(seq=1), 0.0)
    assert isinstance(nak, p.Nak) and nak.code == p.Code.OVER_TEMPERATURE
    [nak] = device.handle(p.SelfTest(seq=2), 0.0)
    assert nak.code == p.Code.SELF_TEST_FAILED and "above" in nak.reason


def test_stuck_and_dead_pixels_show_in_frames_and_self_test(device: CameraDevice) -> None:
    assert isinstance(device.handle(p.SelfTest(seq=1), 0.0)[0], p.Ack)
    device.faults.inject("stuck_pixels", {"count": 5}, 0.0)
    device.faults.inject("dead_pixels", {"count": 3}, 0.0)
    px = device.make_frame(0.0).pixels
    assert int((px == 1023).sum()) == 5 and int((px == 0).sum()) == 3
    [nak] = device.handle(p.SelfTest(seq=2), 0.0)
    assert nak.code == p.Code.SELF_TEST_FAILED and "5 stuck" in nak.reason and "3 dead" in nak.reason


def test_unsent_frame_gives_its_counter_back(device: CameraDevice) -> None:
    f = device.make_frame(0.0)
    device.frame_unsent(f.counter)
    assert device.make_frame(0.0).counter == f.counter


def test_sensor_warms_with_streaming_duty(device: CameraDevice) -> None:
    cold = device.temp_c(0.0)
    device.handle(p.StreamStart(rate_hz=5.0, seq=1), 0.0)
    assert device.temp_c(600.0) > cold


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


def test_manifest_fsyncs_in_batches_and_on_close_but_writes_every_record_at_once(tmp_path: Path) -> None:
    path = tmp_path / "hil" / "manifest.jsonl"
    now = [0.0]
    m = Manifest(path, sync_s=0.2, clock=lambda: now[0])
    for counter in range(3):
        m.append({"camera": "navcam", "counter": counter})
    assert m.unsynced == 3 and len(path.read_text().splitlines()) == 3  # in the file, not yet fsynced
    now[0] = 0.25
    m.tick()
    assert m.unsynced == 0
    m.append({"camera": "navcam", "counter": 3})
    m.close()
    assert m.unsynced == 0 and Manifest(path).last_counter("navcam") == 3
