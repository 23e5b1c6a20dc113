"""Downlink, relay (10% loss) and ground as real processes: products pushed in arrive bit-exact."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import cv2
import msgpack
import numpy as np
import pytest
import yaml
import zmq

from framework.bus.commands import CommandClient
from fsw.imaging.codecs import encode_pixels
from fsw.imaging.product import Product, encode_product, product_id
from framework.crc import pixels_crc32c
from tests.conftest import Processes, link_chain_config, wait_for

pytestmark = pytest.mark.integration


def chain_config(write_config: Any, loss: float) -> Path:
    return link_chain_config(write_config, {"ack_timer_s": 0.3, "nak_timer_s": 0.3},
                             downlink={"rate_bps": 4_000_000},
                             relay={"rate_bps": 4_000_000, "latency_ms": 20, "loss": loss, "seed": 11})


def make_product(counter: int, kind: str, rng: np.random.Generator) -> tuple[Product, np.ndarray]:
    if kind == "full":
        pixels = rng.integers(0, 4096, size=(96, 128), dtype=np.uint16)
        bit_depth = 12
    else:
        pixels = rng.integers(0, 256, size=(24, 32), dtype=np.uint8)
        bit_depth = 8
    payload = encode_pixels("jpegls", pixels)
    p = Product(id=product_id("navcam", counter, kind), kind=kind, camera="navcam", counter=counter,
                t_capture=1000.0 + counter, codec="jpegls", shape=pixels.shape, dtype=str(pixels.dtype),
                bit_depth=bit_depth, payload=payload, crc32c=pixels_crc32c(pixels), meta={"exposure_us": 1200},
                grades={"sharpness": 0.5})
    return p, pixels



def test_products_cross_a_lossy_relay_bit_exact_and_the_store_drains(
        tmp_path: Path, write_config: Any, processes: Processes) -> None:
    cfg = chain_config(write_config, loss=0.1)
    for name in ("broker", "relay", "ground", "downlink"):
        processes.start(cfg, name)
    rng = np.random.default_rng(5)
    products = [make_product(c, kind, rng) for c in range(1, 4) for kind in ("thumbnail", "full")]
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.connect(yaml.safe_load(cfg.read_text())["endpoints"]["products"])
    try:
        for p, _ in products[:2]:
            push_product(push, p)
        ground = processes.out / "ground"
        assert wait_for(lambda: (ground / f"{products[0][0].id}.json").exists(), 60)
        send_junk(yaml.safe_load(cfg.read_text())["endpoints"])
        for p, _ in products[2:]:
            push_product(push, p)
        arrived = wait_for(lambda: all((ground / f"{p.id}.json").exists() for p, _ in products), 90)
        assert arrived, sorted(x.name for x in ground.glob("*"))
        for p, pixels in products:
            got = cv2.imread(str(ground / f"{p.id}.png"), cv2.IMREAD_UNCHANGED)
            assert got is not None and got.dtype == pixels.dtype
            assert np.array_equal(got, pixels), p.id
            side = json.loads((ground / f"{p.id}.json").read_text())
            assert side["crc32c"] == p.crc32c and side["kind"] == p.kind and side["codec"] in ("jpegls", "jpegxl")
        store = processes.out / "store" / "payload"
        assert wait_for(lambda: not any(store.glob("*.prod")), 30), list(store.glob("*"))
    finally:
        push.close()
        ctx.term()
    assert processes.stop("downlink") == 0
    assert processes.stop("ground") == 0
    assert processes.stop("relay") == 0
    pcap = processes.out / "link" / "relay.pcap"
    assert pcap.stat().st_size > 24
    for name in ("downlink", "ground"):  # the junk was counted and reported, not fatal
        assert "datagram_rejected" in (processes.out / "logs" / f"{name}.jsonl").read_text()


def test_the_ground_answers_noop_and_reset_counters_on_its_optional_command_port(
        write_config: Any, processes: Processes) -> None:
    cfg = chain_config(write_config, loss=0.0)
    processes.start(cfg, "ground")
    ctx = zmq.Context()
    client = CommandClient(ctx, yaml.safe_load(cfg.read_text())["endpoints"]["ground_cmd"])
    try:
        noop = client.call("NOOP", timeout_s=20)
        assert noop and noop[-1].status == "completed" and noop[-1].result["version"], noop
        assert client.call("RESET_COUNTERS")[-1].status == "completed"
        refused = client.call("SEND_FULL", {"id": "navcam-00000001-full"})[-1]
        assert refused.status == "rejected" and "unknown command" in refused.reason
    finally:
        client.close()
        ctx.term()
    assert processes.stop("ground") == 0
    assert "command_rejected" in (processes.out / "logs" / "ground.jsonl").read_text()


def push_product(push: zmq.Socket, p: Product) -> None:
    head = msgpack.packb({"id": p.id, "kind": p.kind, "camera": p.camera, "counter": p.counter})
    push.send_multipart([head, encode_product(p)])


def send_junk(endpoints: dict[str, str]) -> None:
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for ep in ("lander_radio", "ground_radio"):
        host, port = endpoints[ep].split("://")[1].split(":")
        junk.sendto(b"\x00garbage" * 3, (host, int(port)))
    junk.close()
