"""Camera emulator -> driver -> bus, as real processes over real sockets."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from framework.bus.client import Subscriber
from framework.bus.commands import CommandClient
from framework.crc import pixels_crc32c
from tests.conftest import free_port

pytestmark = pytest.mark.integration

CAMERA = "navcam"


def chain_config(rate_hz: float) -> dict[str, Any]:
    ports = {name: free_port() for name in ("bus_pub", "bus_sub", "cam_link", "cam_cmd", "cam_ctl")}
    return {
        "version": 1,
        "security": {"curve": False},  # plain command ports: this test is not about keys
        "endpoints": {name: f"tcp://127.0.0.1:{port}" for name, port in ports.items()},
        "bus": {"sndhwm": 100, "rcvhwm": 100},
        "processes": {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
            "cam_emulator": {"kind": "hil.camera", "endpoints": {"link": "cam_link", "control": "cam_ctl"},
                             "camera": CAMERA, "seed": 9,
                             "profile": {"width": 128, "height": 96, "bit_depth": 12, "pattern": "mono",
                                         "max_frame_rate_hz": 20.0, "readout_s": 0.005}},
            "cam_driver": {"kind": "drivers.camera", "endpoints": {"link": "cam_link", "bus_pub": "bus_pub",
                                                                   "command": "cam_cmd"},
                           "camera": CAMERA, "frame_rate_hz": rate_hz, "reconnect_max_s": 0.5},
        },
    }


def stop_producers_first(processes: Any) -> None:
    """Stop the driver and emulator before the broker (see the report on the broker's capture socket)."""
    for name in ("cam_driver", "cam_emulator", "broker"):
        if name in processes.procs:
            processes.stop(name)


def manifest_lines(out: Path) -> dict[int, dict[str, Any]]:
    path = out / "hil" / "manifest.jsonl"
    if not path.exists():
        return {}
    return {rec["counter"]: rec for rec in map(json.loads, path.read_text().splitlines())}


def wait_manifest(out: Path, counter: int, timeout_s: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rec = manifest_lines(out).get(counter)
        if rec is not None:
            return rec
        time.sleep(0.05)
    raise AssertionError(f"counter {counter} never reached the manifest")


def collect_frames(sub: Subscriber, n: int, timeout_s: float = 20.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        msg = sub.recv(200)
        if msg is not None and msg.header.kind == "frame":
            got.append(msg)
    return got


def test_streamed_frames_match_the_manifest_and_stream_stop_ends_them(tmp_path: Path, write_config: Any,
                                                                      processes: Any) -> None:
    raw = chain_config(rate_hz=10.0)
    cfg = write_config(raw)
    out = processes.out
    zctx = zmq.Context()
    sub = Subscriber(zctx, raw["endpoints"]["bus_sub"], [f"frame.{CAMERA}", "tlm.cam_driver"])
    client = CommandClient(zctx, raw["endpoints"]["cam_cmd"])
    try:
        processes.start(cfg, "broker")
        processes.start(cfg, "cam_emulator")
        processes.start(cfg, "cam_driver")
        frames = collect_frames(sub, 5)
        assert len(frames) >= 5
        for msg in frames:
            f = msg.header.fields
            assert msg.topic == f"frame.{CAMERA}" and f["camera"] == CAMERA
            assert f["shape"] == [96, 128] and f["dtype"] == "uint16" and f["bit_depth"] == 12
            pixels = np.frombuffer(msg.buffers[0], dtype=f["dtype"]).reshape(f["shape"])
            assert pixels_crc32c(pixels) == f["crc32c"]
            assert wait_manifest(out, f["counter"])["crc32c"] == f["crc32c"]
        counters = [m.header.fields["counter"] for m in frames]
        assert counters == sorted(counters)

        replies = client.call("STREAM_STOP", {}, timeout_s=10.0)
        assert [r.status for r in replies] == ["accepted", "completed"], replies
        while sub.recv(100) is not None:  # frames already in flight on the bus
            pass
        sent_at_stop = len(manifest_lines(out))  # after the drain: every sent frame's line is written by now
        assert not [m for m in collect_frames(sub, 1, timeout_s=1.0)]
        assert len(manifest_lines(out)) == sent_at_stop

        rejected = client.call("SET_GAIN", {"gain": -1.0})
        assert [r.status for r in rejected] == ["rejected"] and "gain" in rejected[0].reason

        assert client.call("SET_EXPOSURE", {"exposure_us": 5000})[-1].status == "completed"
        assert client.call("CAPTURE", {})[-1].status == "completed"
        [captured] = collect_frames(sub, 1, timeout_s=5.0)
        assert captured.header.fields["exposure_us"] == 5000
        wait_manifest(out, captured.header.fields["counter"])  # the emulator writes its line as it sends
        assert captured.header.fields["counter"] == max(manifest_lines(out)) == sent_at_stop  # counters from 0
        status = client.call("STATUS", {})[-1]
        assert status.status == "completed" and status.result["streaming"] is False
    finally:
        stop_producers_first(processes)
        sub.close()
        client.close()
        zctx.destroy(linger=0)


def test_restarted_emulator_continues_counters_and_driver_reconnects(tmp_path: Path, write_config: Any,
                                                                     processes: Any) -> None:
    raw = chain_config(rate_hz=10.0)
    cfg = write_config(raw)
    zctx = zmq.Context()
    sub = Subscriber(zctx, raw["endpoints"]["bus_sub"], [f"frame.{CAMERA}"])
    try:
        processes.start(cfg, "broker")
        processes.start(cfg, "cam_emulator")
        processes.start(cfg, "cam_driver")
        first = collect_frames(sub, 2)
        assert len(first) == 2
        assert processes.stop("cam_emulator") == 0
        processes.start(cfg, "cam_emulator")
        later = collect_frames(sub, 30)
        counters = [m.header.fields["counter"] for m in first + later]
        assert len(later) == 30 and len(set(counters)) == len(counters)
        recorded = [json.loads(line)["counter"] for line in (processes.out / "hil" / "manifest.jsonl").open()]
        assert len(recorded) == len(set(recorded))
    finally:
        stop_producers_first(processes)
        sub.close()
        zctx.destroy(linger=0)


def test_driver_publishes_only_sound_frames_from_a_camera_that_sends_garbage(write_config: Any,
                                                                           processes: Any) -> None:
    import socket

    from drivers.camera import protocol as p
    from drivers.camera.decoder import StreamDecoder

    raw = chain_config(rate_hz=1.0)
    del raw["processes"]["cam_emulator"]
    cfg = write_config(raw)
    port = int(raw["endpoints"]["cam_link"].rsplit(":", 1)[1])
    server = socket.create_server(("127.0.0.1", port))
    server.settimeout(10.0)
    zctx = zmq.Context()
    sub = Subscriber(zctx, raw["endpoints"]["bus_sub"], [f"frame.{CAMERA}", "evt.cam_driver", "tlm.cam_driver"])

    def frame(counter: int) -> bytes:
        return p.encode(p.Frame(camera=CAMERA, counter=counter, width=4, height=2, bit_depth=8, pattern="mono",
                                exposure_us=1, gain=1.0, temp_c=20.0, t_capture=1.0, pixels=bytes(range(8))))

    try:
        processes.start(cfg, "broker")
        processes.start(cfg, "cam_driver")
        conn, _ = server.accept()
        with conn:
            first = StreamDecoder().feed(conn.recv(4096))
            assert first and isinstance(first[0], p.StreamStart)  # stream_on_start
            # Health telemetry arriving proves the subscription is live before the bytes that matter.
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                msg = sub.recv(200)
                if msg is not None and msg.topic == "tlm.cam_driver":
                    break
            corrupt = bytearray(frame(1))
            corrupt[-6] ^= 0x40
            conn.sendall(b"\xde\xad" * 100 + frame(0) + bytes(corrupt) + frame(2) + frame(5)[:30])
            seen: list[Any] = []
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and not any(
                    m.header.kind == "frame" and m.header.fields["counter"] == 2 for m in seen):
                msg = sub.recv(200)
                if msg is not None:
                    seen.append(msg)
        frames = [m.header.fields["counter"] for m in seen if m.header.kind == "frame"]
        events = [m.header.fields["name"] for m in seen if m.header.kind == "evt"]
        assert frames == [0, 2]
        assert {"link_garbage", "frame_crc_error", "frame_counter_gap"} <= set(events)
    finally:
        stop_producers_first(processes)
        server.close()
        sub.close()
        zctx.destroy(linger=0)
