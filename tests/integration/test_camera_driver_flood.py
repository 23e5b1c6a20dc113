"""A camera link that lies cannot hang the camera driver: flooded with sound headers announcing 4 MiB
messages every 24 bytes (each message then fails its CRC), the driver still answers NOOP and stops on
SIGTERM. The "camera" is this test's own TCP server; the driver is a real process."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
import zmq

from drivers.camera import protocol as p
from framework.bus.commands import CommandClient
from tests.conftest import Processes, free_port

pytestmark = pytest.mark.integration

ANNOUNCED = 4 * 1024 * 1024
FLOOD = b"".join(p.pack_header(p.MsgType.FRAME, n, ANNOUNCED).ljust(24, b"\x00") for n in range(4096))


class FloodingCamera:
    """Accepts the driver and sends it sound headers without end; every other connection ends after
    12 MiB, so the driver also has to finish a stream that stopped inside the flood."""

    def __init__(self, port: int) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.2)
        self.stop = threading.Event()
        self.sent = 0
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            limit = 12 << 20 if self.connections % 2 else None
            conn.settimeout(0.2)
            sent = 0
            with conn:
                while not self.stop.is_set() and (limit is None or sent < limit):
                    try:
                        n = conn.send(FLOOD)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    sent += n
                    self.sent += n

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.server.close()


def _config(tmp: Path, link: int) -> Path:
    eps = {"cam_link": f"tcp://127.0.0.1:{link}", "cam_cmd": f"tcp://127.0.0.1:{free_port()}",
           "bus_pub": f"tcp://127.0.0.1:{free_port()}"}
    cfg = tmp / "flood.yaml"
    cfg.write_text(yaml.safe_dump({
        "version": 1,
        "security": {"curve": False},  # plain command ports: this test is not about keys
        "endpoints": eps,
        "processes": {
            # The navcam profile's full 2048x2048 frame: 4 MiB announcements are within what the driver takes.
            "cam_driver": {"kind": "drivers.camera", "camera": "navcam", "profile_file": "navcam",
                           "endpoints": {"link": "cam_link", "bus_pub": "bus_pub", "command": "cam_cmd"},
                           "reconnect_max_s": 0.2, "reply_timeout_s": 1.0, "power_cycle_on_latch": False},
        },
    }))
    return cfg


def test_flooded_driver_answers_noop_and_stops_on_sigterm(tmp_path: Path, processes: Processes) -> None:
    link = free_port()
    camera = FloodingCamera(link)
    cfg = _config(tmp_path, link)
    ctx = zmq.Context()
    try:
        proc = processes.start(cfg, "cam_driver")
        end = time.monotonic() + 60
        while (camera.sent < 40 << 20 or camera.connections < 2) and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.05)  # until the driver has taken a good part of the flood and had one stream end
        assert proc.poll() is None, "the driver died of the flood"
        client = CommandClient(ctx, yaml.safe_load(cfg.read_text())["endpoints"]["cam_cmd"])
        answered: list[Any] = []
        for _ in range(3):  # generous bounds: before the fix NOOP went unanswered for minutes
            replies = client.call("NOOP", timeout_s=20.0)
            assert replies and replies[-1].status == "completed", f"NOOP unanswered while flooded: {replies}"
            answered.append(replies[-1].result)
        assert proc.poll() is None, "the driver died of the flood"
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except Exception:
            pytest.fail("the flooded driver did not stop on SIGTERM")
        assert proc.returncode == 0
        log = (processes.out / "logs" / "cam_driver.jsonl").read_text()
        assert "process_crashed" not in log
    finally:
        ctx.destroy(linger=0)
        camera.close()
