"""The downlink's background re-encoder takes products the capture path made with the same codec at a
faster setting (JPEG XL effort 1) and leaves them at its own (effort 7), bit-exact."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from fsw.imaging.codecs import encode_pixels
from fsw.imaging.product import Product, decode_product, encode_product, product_id
from framework.crc import pixels_crc32c
from tests.conftest import Processes, free_port, peek_sqlite, wait_for

pytestmark = pytest.mark.integration


def _frame(seed: int) -> np.ndarray:
    """A smooth 12-bit scene with noise: effort 7 beats effort 1 on it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:192, 0:192]
    base = 1500 + 600 * np.sin(x / 9.0) * np.cos(y / 13.0)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 4095).astype(np.uint16)


def test_products_captured_at_jpegxl_effort_1_are_reencoded_to_effort_7_bit_exact(
        tmp_path: Path, write_config: Any, processes: Processes) -> None:
    tcp = {n: f"tcp://127.0.0.1:{free_port()}" for n in ("bus_pub", "bus_sub", "products", "cmd")}
    udp = {n: f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}" for n in ("radio", "relay")}
    # One relay whose only window opens an hour from now: every product waits in the store meanwhile.
    plan = {"time_scale": 1.0, "epoch_s": time.time(),
            "relays": [{"name": "relay_a", "period_s": 7200.0, "lander_windows_s": [[3600.0, 3610.0]],
                        "rate_bps": 1_000_000, "latency_ms": 10}]}
    cfg = write_config({
        "version": 1, "endpoints": {**tcp, **udp}, "bus": {"sndhwm": 100, "rcvhwm": 100},
        "processes": {
            "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
            "downlink": {"kind": "fsw.downlink",
                         "endpoints": {"bus_pub": "bus_pub", "products": "products", "radio": "radio",
                                       "relay": "relay", "command": "cmd"},
                         "telemetry": {"enabled": False},
                         "reencode": {"enabled": True, "codec": "jpegxl", "params": {"effort": 7}, "nice": 0},
                         **plan},
        },
    })
    for name in ("broker", "downlink"):
        processes.start(cfg, name)
    frames = {}
    zctx = zmq.Context()
    push = zctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.connect(tcp["products"])
    try:
        for counter in (1, 2):
            px = _frame(counter)
            params = {"bit_depth": 12, "effort": 1}
            p = Product(id=product_id("navcam", counter, "full"), kind="full", camera="navcam", counter=counter,
                        t_capture=1000.0 + counter, codec="jpegxl", shape=px.shape, dtype="uint16", bit_depth=12,
                        payload=encode_pixels("jpegxl", px, params), crc32c=pixels_crc32c(px),
                        grades={"score": 0.5}, codec_params=params)
            frames[p.id] = (px, len(encode_product(p)))
            push.send_multipart([msgpack.packb({"id": p.id, "kind": p.kind, "score": 0.5}), encode_product(p)])
        index = processes.out / "store" / "index.sqlite"

        def codecs() -> dict[str, str]:
            return dict(peek_sqlite(index, "SELECT id, codec FROM items") or [])

        wait_for(lambda: set(codecs().values()) == {"jpegxl:effort=7"}, 60)
        assert codecs() == {pid: "jpegxl:effort=7" for pid in frames}
    finally:
        push.close()
        zctx.term()
    assert processes.stop("downlink") == 0
    payloads = sorted((processes.out / "store").rglob("*.prod"))
    assert len(payloads) == 2
    for path in payloads:
        data = path.read_bytes()
        product, pixels = decode_product(data)
        px, captured_bytes = frames[product.id]
        assert product.codec == "jpegxl" and product.codec_params["effort"] == 7
        assert np.array_equal(pixels, px) and product.crc32c == pixels_crc32c(px)
        assert len(data) < captured_bytes
