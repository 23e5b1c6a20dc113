"""SIGKILL the lander's downlink and the ground station at random moments of transfers, 24 times in one run,
restarting each, over two relays with contact windows and 5% loss: at the end every product reached the ground
once and bit-exact, and at every moment nothing the lander had deleted (confirmed) was missing at the ground."""

from __future__ import annotations

import random
import signal
import sqlite3
import time
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
from tests.conftest import Processes, link_chain_config, peek_sqlite, wait_for

pytestmark = pytest.mark.integration

KILLS = 24
RELAYS = [  # a 4 s (wall) orbit each, time_scale 1: gaps every few seconds, the relays alternate
    {"name": "relay_a", "period_s": 4.0, "lander_windows_s": [[0.0, 2.6]], "rate_bps": 1_000_000,
     "latency_ms": 20, "burst": {"enter": 0.01, "leave": 0.25, "loss": 0.8}, "corrupt": 0.001},
    {"name": "relay_b", "period_s": 4.0, "lander_windows_s": [[2.0, 3.6]], "rate_bps": [800_000, 1_200_000],
     "latency_ms": 30, "loss": 0.02, "corrupt": 0.001},
]


def crash_config(write_config: Any) -> Path:
    return link_chain_config(write_config, {"ack_timer_s": 0.3, "nak_timer_s": 0.3, "inactivity_s": 4.0},
                             relay={"seed": 23}, plan={"relays": RELAYS, "time_scale": 1.0})


def make_products(n: int, rng: np.random.Generator) -> list[tuple[Product, np.ndarray]]:
    out = []
    for counter in range(1, n + 1):
        for kind, shape, depth in (("thumbnail", (32, 32), 8), ("full", (320, 320), 12)):
            pixels = rng.integers(0, 1 << depth, size=shape, dtype=np.uint8 if depth == 8 else np.uint16)
            p = Product(id=product_id("navcam", counter, kind), kind=kind, camera="navcam", counter=counter,
                        t_capture=1000.0 + counter, codec="jpegls", shape=shape, dtype=str(pixels.dtype),
                        bit_depth=depth, payload=encode_pixels("jpegls", pixels), crc32c=pixels_crc32c(pixels),
                        grades={"score": 0.5})
            out.append((p, pixels))
    return out


def lander_ids(out: Path) -> set[str]:
    return {r[0] for r in peek_sqlite(out / "store" / "index.sqlite", "SELECT id FROM items") or []}


def ground_holds(out: Path) -> set[str]:
    ledger = out / "ground" / "ledger.sqlite"
    held = {r[0] for r in peek_sqlite(ledger, "SELECT id FROM products") or []}
    for (name,) in peek_sqlite(ledger, "SELECT name FROM files WHERE state != 'failed'") or []:
        held.add(name.split("-", 1)[1].rsplit(".", 1)[0])
    return held



def test_twenty_four_sigkills_lose_nothing_duplicate_nothing_and_confirm_nothing_early(
        tmp_path: Path, write_config: Any, processes: Processes) -> None:
    cfg = crash_config(write_config)
    endpoints = yaml.safe_load(cfg.read_text())["endpoints"]
    for name in ("broker", "relay", "ground", "downlink"):
        processes.start(cfg, name)
    products = make_products(10, np.random.default_rng(9))
    ids = {p.id for p, _ in products}
    zctx = zmq.Context()
    push = zctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.connect(endpoints["products"])
    client = CommandClient(zctx, endpoints["downlink_cmd"])
    try:
        for p, _ in products:
            push.send_multipart([msgpack.packb({"id": p.id, "kind": p.kind, "score": 0.5}), encode_product(p)])
        assert wait_for(lambda: lander_ids(processes.out) | ground_holds(processes.out) >= ids, 30)
        rng = random.Random(4)
        out = processes.out
        for k in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.2))
            victim = "ground" if k % 2 else "downlink"
            processes.stop(victim, sig=signal.SIGKILL)
            confirmed = ids - lander_ids(out)
            assert confirmed <= ground_holds(out), f"kill {k}: confirmed but not at the ground"
            processes.start(cfg, victim)
        assert wait_for(lambda: not lander_ids(out), 120), sorted(lander_ids(out))
    finally:
        client.close()
        push.close()
        zctx.term()
    for name in ("downlink", "ground", "relay"):
        assert processes.stop(name) == 0
    ground = processes.out / "ground"
    for p, pixels in products:
        got = cv2.imread(str(ground / f"{p.id}.png"), cv2.IMREAD_UNCHANGED)
        assert got is not None and np.array_equal(got, pixels), p.id
    db = sqlite3.connect(ground / "ledger.sqlite")
    assert sorted(r[0] for r in db.execute("SELECT id FROM products")) == sorted(ids)
    db.close()
    received = [line for line in (processes.out / "logs" / "ground.jsonl").read_text().splitlines()
                if '"product_received"' in line and '"ok": true' in line]
    assert sorted(eval_id(x) for x in received) == sorted(ids)  # each announced once, across restarts


def eval_id(line: str) -> str:
    import json

    return json.loads(line)["id"]
