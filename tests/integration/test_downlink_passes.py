"""Downlink, relay and ground as real processes with contact windows: transfers span passes without
starting over, operator requests reorder and drop, housekeeping is recorded and played back on request."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

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

LEAD_S = 8.0  # the first window opens this long after the processes start
WINDOWS = [[k * 3.0, k * 3.0 + 2.0] for k in range(8)]  # 2 s open, 1 s closed, then closed until the period ends


def passes_config(write_config: Any, epoch_s: float) -> Path:
    plan = {"time_scale": 1.0, "epoch_s": epoch_s,
            "relays": [{"name": "relay_a", "period_s": 60.0, "lander_windows_s": WINDOWS, "rate_bps": 1_000_000,
                        "latency_ms": 50, "burst": {"enter": 0.01, "leave": 0.3, "loss": 0.8}}]}
    return link_chain_config(write_config, {"ack_timer_s": 0.3, "nak_timer_s": 0.3, "inactivity_s": 10.0},
                             downlink={"links": {"bus_sub": "bus_sub"},
                                       "telemetry": {"exclude_sources": ["ground"], "segment_s": 1.0},
                                       "reencode": {"enabled": False}},
                             relay={"seed": 3}, plan=plan)


def product(counter: int, kind: str, score: float, side: int, rng: np.random.Generator) -> Product:
    depth = 8 if kind == "thumbnail" else 12
    pixels = rng.integers(0, 1 << depth, size=(side, side), dtype=np.uint8 if depth == 8 else np.uint16)
    return Product(id=product_id("navcam", counter, kind), kind=kind, camera="navcam", counter=counter,
                   t_capture=float(counter), codec="jpegls", shape=pixels.shape, dtype=str(pixels.dtype),
                   bit_depth=depth, payload=encode_pixels("jpegls", pixels), crc32c=pixels_crc32c(pixels),
                   grades={"score": score})


def call(client: CommandClient, cmd: str, args: dict[str, Any] | None = None) -> Any:
    replies = client.call(cmd, args or {}, timeout_s=5.0)
    assert replies, f"{cmd}: no reply"
    return replies[-1]



def products_only(ids: list[str]) -> list[str]:
    return [i for i in ids if i.startswith("navcam-")]


def test_requests_reorder_and_drop_transfers_span_passes_and_telemetry_plays_back(
        tmp_path: Path, write_config: Any, processes: Processes) -> None:
    t_start = time.time()
    cfg = passes_config(write_config, epoch_s=t_start + LEAD_S)
    endpoints = yaml.safe_load(cfg.read_text())["endpoints"]
    for name in ("broker", "relay", "ground", "downlink"):
        processes.start(cfg, name)
    rng = np.random.default_rng(1)
    made = [product(1, "thumbnail", 0.5, 32, rng), product(2, "full", 0.1, 460, rng),
            product(3, "full", 0.9, 460, rng), product(4, "full", 0.5, 460, rng)]
    thumb, low, high, mid = (p.id for p in made)
    zctx = zmq.Context()
    push = zctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.connect(endpoints["products"])
    client = CommandClient(zctx, endpoints["downlink_cmd"])
    try:
        for p in made:
            push.send_multipart([msgpack.packb({"id": p.id, "kind": p.kind, "score": p.grades["score"]}),
                                 encode_product(p)])
        assert wait_for(lambda: len(products_only(call(client, "STORE_LIST").result["ids"])) == 4, 20)
        assert time.time() < t_start + LEAD_S, "the window opened before the queue could be checked"
        assert products_only(call(client, "STORE_LIST").result["ids"]) == [thumb, high, mid, low]
        assert call(client, "SEND_FULL", {"camera": "navcam", "counter": 2}).status == "completed"
        assert call(client, "DROP", {"id": mid}).status == "completed"
        assert products_only(call(client, "STORE_LIST").result["ids"]) == [thumb, low, high]
        region = call(client, "SEND_REGION", {"camera": "navcam", "counter": 3, "region": [0, 0, 64, 64]})
        assert region.status == "rejected" and "MAKE_ROI" in region.reason
        playbacks: list[Any] = []  # rejected until the first housekeeping segment is archived (segment_s)
        assert wait_for(lambda: playbacks.append(call(client, "TLM_PLAYBACK", {"t_start": t_start,
                                                                               "t_end": time.time()}))
                        or playbacks[-1].status == "completed", 20, poll_s=0.5), playbacks[-1].reason
        assert playbacks[-1].result["records"] > 0
        assert call(client, "TLM_PLAYBACK", {"t_start": 10.0, "t_end": 5.0}).status == "rejected"
        ledger = processes.out / "ground" / "ledger.sqlite"

        def at_ground() -> list[str]:
            return [r[0] for r in peek_sqlite(ledger, "SELECT id FROM products ORDER BY t") or []]

        assert wait_for(lambda: len(at_ground()) == 3, 40), at_ground()
        assert at_ground() == [thumb, low, high]
        assert wait_for(lambda: products_only(call(client, "STORE_LIST").result["ids"]) == [], 10)
    finally:
        client.close()
        push.close()
        zctx.term()
    for name in ("downlink", "ground", "relay"):
        assert processes.stop(name) == 0
    logs = processes.out / "logs"
    events = [json.loads(line) for line in (logs / "downlink.jsonl").read_text().splitlines()]
    starts = [e["id"] for e in events if e["event"] == "transaction_started" and e["id"].startswith("navcam-")]
    assert sorted(starts) == sorted([thumb, low, high]), "each product went in one transaction, across passes"
    assert not [e for e in events if e["event"] == "transaction_failed" and e["id"].startswith("navcam-")]
    relay = [json.loads(line) for line in (logs / "relay.jsonl").read_text().splitlines()]
    opened = [e for e in relay if e["event"] == "contact_changed" and e["relay"]]
    assert len(opened) >= 2, "the transfers met at least two passes"
    db = sqlite3.connect(processes.out / "ground" / "ledger.sqlite")
    srcs = {r[0] for r in db.execute("SELECT DISTINCT src FROM telemetry")}
    recorded = db.execute("SELECT COUNT(*) FROM files WHERE name LIKE '%-rec-%'").fetchone()[0]
    db.close()
    assert "downlink" in srcs and "ground" not in srcs
    assert recorded >= 1, "housekeeping recorded outside the window was played back"
