"""The imaging core as a real process: frames in on the bus, products out on PUSH, commands on its ROUTER."""

from __future__ import annotations

import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from framework.bus.client import Publisher, Subscriber
from framework.bus.commands import CommandClient, CommandServer
from fsw.imaging.product import decode_product
from framework.crc import pixels_crc32c
from tests.conftest import free_port

pytestmark = pytest.mark.integration

H, W = 192, 256


def _config(write_config, ports: dict[str, int], **imaging) -> Path:
    ep = {k: f"tcp://127.0.0.1:{v}" for k, v in ports.items()}
    return write_config({
        "version": 1,
        "security": {"curve": False},  # plain command ports: this test is not about keys
        "endpoints": ep,
        "processes": {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
            "imaging": {"kind": "fsw.imaging", "cameras": ["cam"], "thumbnail_px": 64,
                        "endpoints": {"bus_pub": "bus_pub", "bus_sub": "bus_sub", "products": "products",
                                      "command": "imaging_cmd"}, **imaging},
        },
    })


def _frame(counter: int, brightness: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(counter)
    y, x = np.mgrid[0:H, 0:W]
    base = 600 + 500 * np.sin(x / 9.0) * np.cos(y / 13.0)
    return np.clip(base * brightness + rng.normal(0, 8, (H, W)), 0, 4095).astype(np.uint16)


def _publish(pub: Publisher, counter: int, px: np.ndarray, exposure_us: int = 1000, gain: float = 1.0,
             **over) -> None:
    fields = dict(camera="cam", counter=counter, shape=[H, W], dtype="uint16", bit_depth=12, pattern="mono",
                  exposure_us=exposure_us, gain=gain, temp_c=-20.0, t_capture=time.time(), crc32c=pixels_crc32c(px))
    fields.update(over)
    pub.publish("frame.cam", "frame", fields, buffers=[px])


def _wait_joined(pub: Publisher, ctx: zmq.Context, sub_ep: str) -> None:
    """Until the imaging core's own telemetry shows up, its subscription may not be live either."""
    s = Subscriber(ctx, sub_ep, ["tlm.imaging"])
    end = time.monotonic() + 20
    while time.monotonic() < end and s.recv(200) is None:
        pass
    s.close()
    time.sleep(0.5)


def _pull_products(pull: zmq.Socket, n: int, timeout_s: float = 30.0) -> list[tuple[dict, bytes]]:
    got = []
    end = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < end:
        if pull.poll(200):
            head, body = pull.recv_multipart()
            got.append((msgpack.unpackb(head), body))
    return got


@pytest.fixture
def core(write_config, processes):
    ports = {k: free_port() for k in ("bus_pub", "bus_sub", "products", "imaging_cmd", "cam_cmd")}
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(f"tcp://127.0.0.1:{ports['products']}")
    yield ctx, pull, ports, (lambda **imaging: _config(write_config, ports, **imaging))
    ctx.destroy(linger=0)


def test_frames_become_thumbnail_then_bit_exact_full_and_bad_frames_are_rejected(core, processes) -> None:
    ctx, pull, ports, make = core
    cfg = make()
    processes.start(cfg, "broker")
    processes.start(cfg, "imaging")
    pub = Publisher(ctx, f"tcp://127.0.0.1:{ports['bus_pub']}", "testcam")
    _wait_joined(pub, ctx, f"tcp://127.0.0.1:{ports['bus_sub']}")
    frames = {i: _frame(i) for i in range(3)}
    evt = Subscriber(ctx, f"tcp://127.0.0.1:{ports['bus_sub']}", ["evt.imaging"])
    time.sleep(0.3)
    for i, px in frames.items():
        _publish(pub, i, px)
    _publish(pub, 99, frames[0], crc32c=12345)  # corrupt: must be rejected, never a product
    got = _pull_products(pull, 6)
    kinds = [(h["counter"], h["kind"]) for h, _ in got]
    assert sorted(kinds) == sorted([(i, k) for i in range(3) for k in ("thumbnail", "full")])
    for i in range(3):
        assert kinds.index((i, "thumbnail")) < kinds.index((i, "full"))
    for head, body in got:
        p, px = decode_product(body)
        if p.kind == "full":
            assert np.array_equal(px, frames[p.counter])
    names = []
    end = time.monotonic() + 10
    while "frame_rejected" not in names and time.monotonic() < end:
        m = evt.recv(200)
        if m:
            names.append(m.header.fields.get("name"))
    assert "frame_rejected" in names
    assert _pull_products(pull, 1, timeout_s=1.0) == []


def test_requests_make_lossy_roi_and_preview_and_refuse_unknown_frames(core, processes) -> None:
    ctx, pull, ports, make = core
    cfg = make()
    processes.start(cfg, "broker")
    processes.start(cfg, "imaging")
    pub = Publisher(ctx, f"tcp://127.0.0.1:{ports['bus_pub']}", "testcam")
    _wait_joined(pub, ctx, f"tcp://127.0.0.1:{ports['bus_sub']}")
    px = _frame(7)
    _publish(pub, 7, px)
    assert len(_pull_products(pull, 2)) == 2
    client = CommandClient(ctx, f"tcp://127.0.0.1:{ports['imaging_cmd']}")
    r = client.call("MAKE_LOSSY", {"camera": "cam", "counter": 7, "budget_bytes": 8000}, timeout_s=20)
    assert r[-1].status == "completed", r
    r = client.call("MAKE_ROI", {"camera": "cam", "counter": 7, "region": [10, 20, 64, 32]}, timeout_s=10)
    assert r[-1].status == "completed", r
    r = client.call("MAKE_PREVIEW", {"camera": "cam", "counter": 7, "factor": 4}, timeout_s=10)
    assert r[-1].status == "completed", r
    got = {h["kind"]: body for h, body in _pull_products(pull, 3)}
    lossy, lpx = decode_product(got["lossy"])
    assert abs(len(lossy.payload) - 8000) <= 400 and lossy.meta["psnr_db"] > 20
    roi, rpx = decode_product(got["roi"])
    assert np.array_equal(rpx, px[20:52, 10:74])
    prev, ppx = decode_product(got["preview"])
    assert ppx.shape == (H // 4, W // 4)
    r = client.call("MAKE_ROI", {"camera": "cam", "counter": 8, "region": [0, 0, 8, 8]})
    assert r[-1].status == "rejected" and "not held" in r[-1].reason
    r = client.call("MAKE_LOSSY", {"camera": "cam", "counter": 7, "budget_bytes": "lots"})
    assert r[-1].status == "rejected" and "budget_bytes" in r[-1].reason
    assert client.call("NOOP")[-1].status == "completed"


def test_autoexposure_commands_the_camera_toward_target(core, processes) -> None:
    ctx, pull, ports, make = core
    cfg = make(autoexposure={"enabled": True}, camera_commands={"cam": "cam_cmd"})
    cam = CommandServer(ctx, f"tcp://127.0.0.1:{ports['cam_cmd']}")
    exposures: list[int] = []
    cam.register("SET_EXPOSURE", lambda a: exposures.append(a["exposure_us"]))
    cam.register("SET_GAIN", lambda a: None)
    processes.start(cfg, "broker")
    processes.start(cfg, "imaging")
    pub = Publisher(ctx, f"tcp://127.0.0.1:{ports['bus_pub']}", "testcam")
    _wait_joined(pub, ctx, f"tcp://127.0.0.1:{ports['bus_sub']}")
    _publish(pub, 1, _frame(1, brightness=0.3), exposure_us=1000)  # dark frame: the loop must lengthen exposure
    end = time.monotonic() + 20
    while not exposures and time.monotonic() < end:
        cam.poll(100)
    assert exposures and exposures[0] > 1000
    client = CommandClient(ctx, f"tcp://127.0.0.1:{ports['imaging_cmd']}")
    assert client.call("AE_DISABLE", {"camera": "cam"})[-1].status == "completed"
    _publish(pub, 2, _frame(2, brightness=0.3), exposure_us=exposures[-1])
    _pull_products(pull, 4, timeout_s=10)
    n = len(exposures)
    for _ in range(10):
        cam.poll(50)
    assert len(exposures) == n
    cam.close()
