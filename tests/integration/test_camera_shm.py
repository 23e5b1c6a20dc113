"""Camera emulator -> driver (frame_transport: shm) -> bus -> imaging core: products bit-exact to the manifest."""

from __future__ import annotations

import time
from typing import Any, Callable

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


def test_a_fast_camera_on_a_two_slot_ring_never_yields_a_product_of_the_wrong_pixels(write_config: Any,
                                                                                      processes: Any) -> None:
    """The imaging core works on frames in place while the driver rewrites a ring of only 2 slots as fast as
    the camera sends: every full product that comes out is its frame's (bit-exact to the emulator's manifest),
    and every frame of the burst has its full product or is named (frames_lost with reason shm_overwritten, or
    frames_thumbnail_only: queue_full, falling_behind); none is silently missing."""
    ring = f"it2-{free_port()}-{time.monotonic_ns() % 10**9}"
    raw = shm_config(ring)
    emu, drv, img = (raw["processes"][n] for n in ("cam_emulator", "cam_driver", "imaging"))
    emu["profile"].update(max_frame_rate_hz=200.0, readout_s=0.001, exposure_us=1000)
    drv["shm_slots"] = 2
    drv["profile"].update(exposure_us=1000)
    img.update(workers=1, lossless_codec="png", lossless_params={"level": 9})  # slow: frames are rewritten
    cfg = write_config(raw)
    ep = raw["endpoints"]
    zctx = zmq.Context()
    pull = zctx.socket(zmq.PULL)
    pull.bind(ep["products"])
    sub = Subscriber(zctx, ep["bus_sub"], ["tlm.imaging", "tlm.cam_driver", "evt.imaging"])
    burst = 24
    try:
        for name in ("broker", "imaging", "cam_emulator", "cam_driver"):
            processes.start(cfg, name)
        _wait_for(sub, "tlm.imaging")
        _wait_for(sub, "tlm.cam_driver")
        time.sleep(0.5)
        from framework.bus.commands import CommandClient
        client = CommandClient(zctx, ep["cam_cmd"])
        fulls: dict[int, Any] = {}
        named: dict[int, set[str]] = {}
        reasons: set[str] = set()

        def collect(until: Callable[[], bool]) -> None:
            end = time.monotonic() + 40.0
            while time.monotonic() < end and not until():
                if pull.poll(50):
                    head, body = pull.recv_multipart()
                    if msgpack.unpackb(head)["kind"] == "full":
                        product, px = decode_product(body)
                        fulls[product.counter] = px
                msg = sub.recv(0)
                while msg is not None:
                    f = msg.header.fields
                    if msg.topic == "evt.imaging" and f.get("name") in ("frames_lost", "frames_thumbnail_only") \
                            and "full" in f.get("products", ["full"]):
                        counters = [c for a, b in f.get("ranges", []) for c in range(a, b + 1)] + f.get("counters", [])
                        for c in counters:
                            named.setdefault(c, set()).add(f.get("reason", ""))
                        reasons.add(f.get("reason", ""))
                    msg = sub.recv(0)

        for n in range(2):  # one frame at a time first: nothing rewrites its slot, so it is made
            assert client.call("CAPTURE", {}, timeout_s=20.0)[-1].status == "completed"
            collect(lambda: len(fulls) > n)
        assert sorted(fulls) == [0, 1]
        assert client.call("CAPTURE_BURST", {"count": burst}, timeout_s=20.0)[-1].status == "completed"
        client.close()
        total = burst + 2
        collect(lambda: len(set(fulls) | set(named)) >= total)
        manifest = manifest_lines(processes.out)
        sent = sorted(manifest)[:total]
        assert len(sent) == total
        for counter, px in fulls.items():  # nothing forged: a full product is its own frame's pixels
            assert pixels_crc32c(px) == manifest[counter]["crc32c"], counter
        missing = [c for c in sent if c not in fulls and c not in named]
        assert missing == [], f"frames neither made nor named: {missing}"
        # falling_behind: the core saw a frame's slot due before its work could be done (thumbnail by policy)
        assert reasons <= {"shm_overwritten", "queue_full", "not_received", "rule", "falling_behind"}, reasons
    finally:
        for name in ("cam_driver", "cam_emulator", "imaging", "broker"):
            if name in processes.procs:
                processes.stop(name)
        ring_path(ring).unlink(missing_ok=True)
        sub.close()
        pull.close()
        zctx.destroy(linger=0)
