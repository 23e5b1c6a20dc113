"""The mechanism emulator's link to the camera scenes: never blocks, tolerates a camera that is down."""

from __future__ import annotations

import time

import msgpack
import zmq

from hil.deploy.process import CameraViewLink
from tests.conftest import free_port


def test_camera_down_costs_a_counted_update_and_never_blocks_then_updates_flow_when_it_is_up() -> None:
    zctx = zmq.Context()
    address = f"tcp://127.0.0.1:{free_port()}"
    view = CameraViewLink(zctx, {"navcam": address})
    try:
        t0 = time.monotonic()
        for i in range(20):
            view.update(i * 0.2, 3.0 * i, True)
        assert time.monotonic() - t0 < 1.0  # generous: a blocking send would hang here for ever
        assert view.sent == 0 and view.unsent == 20

        camera = zctx.socket(zmq.ROUTER)
        camera.bind(address)
        got: list[dict] = []
        end = time.monotonic() + 10
        now = 10.0
        while not got and time.monotonic() < end:
            now += 0.2
            view.update(now, 47.0, False)
            if camera.poll(100):
                ident, _, body = camera.recv_multipart()
                got.append(msgpack.unpackb(body, raw=False))
                camera.send_multipart([ident, b"", msgpack.packb({"id": got[0]["id"], "status": "accepted"})])
        assert got and got[0]["cmd"] == "set_boom_angle" and got[0]["args"] == {"deg": 47.0}
        assert view.sent >= 1
        camera.close()
    finally:
        view.close()
        zctx.destroy(linger=0)
