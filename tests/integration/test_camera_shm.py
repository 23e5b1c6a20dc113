"""Camera emulator -> driver (frame_transport: shm) -> bus -> imaging core: products bit-exact to the manifest."""

from __future__ import annotations

import time
from typing import Any

import msgpack
import pytest
import zmq

from framework.bus.client import Subscriber
from framework.bus.frames_shm import ring_path
from fsw.imaging.product import decode_product
from framework.crc import pixels_crc32c
from tests.conftest import free_port
from tests.integration.test_camera_chain import manifest_lines

pytestmark = pytest.mark.integration

CAMERA = "navcam"
H, W = 256, 320  # 160 KiB of pixels: large enough that the driver receives each frame into a ring slot


def shm_config(ring: str) -> dict[str, Any]:
    ports = {n: free_port() for n in ("bus_pub", "bus_sub", "cam_link", "cam_cmd", "cam_ctl", "products",
                                       "imaging_cmd")}
    return {
        "version": 1,
        "security": {"curve": False},  # plain command ports: this test is not about keys
        "endpoints": {n: f"tcp://127.0.0.1:{p}" for n, p in ports.items()},
        "processes": {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
            "cam_emulator": {"kind": "hil.camera", "endpoints": {"link": "cam_link", "control": "cam_ctl"},
                             "camera": CAMERA, "seed": 5,
                             "profile": {"width": W, "height": H, "bit_depth": 12, "pattern": "mono",
                                         "max_frame_rate_hz": 20.0, "readout_s": 0.005}},
            "cam_driver": {"kind": "drivers.camera", "endpoints": {"link": "cam_link", "bus_pub": "bus_pub",
                                                                   "command": "cam_cmd"},
                           "camera": CAMERA, "frame_rate_hz": 4.0, "stream_on_start": False,
                           "profile": {"width": W, "height": H}, "frame_transport": "shm", "shm_ring": ring},
            "imaging": {"kind": "fsw.imaging", "cameras": [CAMERA], "thumbnail_px": 64,
                        "endpoints": {"bus_pub": "bus_pub", "bus_sub": "bus_sub", "products": "products",
                                      "command": "imaging_cmd"}},
        },
    }


def _wait_for(sub: Subscriber, topic: str, timeout_s: float = 20.0) -> Any:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        msg = sub.recv(200)
        if msg is not None and msg.topic == topic:
            return msg
    raise AssertionError(f"nothing on {topic} within {timeout_s} s")


def test_frames_through_shared_memory_become_products_bit_exact_to_the_manifest(write_config: Any,
                                                                               processes: Any) -> None:
    ring = f"it-{free_port()}-{time.monotonic_ns() % 10**9}"
    raw = shm_config(ring)
    cfg = write_config(raw)
    ep = raw["endpoints"]
    zctx = zmq.Context()
    pull = zctx.socket(zmq.PULL)
    pull.bind(ep["products"])
    sub = Subscriber(zctx, ep["bus_sub"], [f"frame.{CAMERA}", "tlm.imaging", "tlm.cam_driver"])
    try:
        for name in ("broker", "imaging", "cam_emulator", "cam_driver"):
            processes.start(cfg, name)
        _wait_for(sub, "tlm.imaging")
        _wait_for(sub, "tlm.cam_driver")
        time.sleep(0.5)  # the imaging core's frame subscription joins the broker
        from framework.bus.commands import CommandClient
        client = CommandClient(zctx, ep["cam_cmd"])
        assert client.call("CAPTURE_BURST", {"count": 3}, timeout_s=20.0)[-1].status == "completed"
        client.close()

        frames = []
        end = time.monotonic() + 20.0
        while len(frames) < 3 and time.monotonic() < end:
            msg = sub.recv(200)
            if msg is not None and msg.topic == f"frame.{CAMERA}":
                frames.append(msg)
        assert len(frames) == 3
        for msg in frames:
            assert not msg.buffers and msg.header.fields["shm"]["name"] == ring
        assert ring_path(ring).exists()

        fulls: dict[int, Any] = {}
        end = time.monotonic() + 40.0
        while len(fulls) < 3 and time.monotonic() < end:
            if pull.poll(200):
                head, body = pull.recv_multipart()
                if msgpack.unpackb(head)["kind"] == "full":
                    product, px = decode_product(body)
                    fulls[product.counter] = px
        manifest = manifest_lines(processes.out)
        assert len(fulls) == 3
        for counter, px in fulls.items():
            assert px.shape == (H, W)
            assert pixels_crc32c(px) == manifest[counter]["crc32c"]
        processes.stop("cam_driver")
        assert not ring_path(ring).exists()  # the writer unlinks its ring on a clean stop
    finally:
        for name in ("cam_driver", "cam_emulator", "imaging", "broker"):
            if name in processes.procs:
                processes.stop(name)
        ring_path(ring).unlink(missing_ok=True)
        sub.close()
        pull.close()
        zctx.destroy(linger=0)
