"""Storage faults under a real downlink process, with a real relay and ground: a disk that fills and empties
again, and a store whose index and one payload were damaged while it was down. The downlink never dies of
them, says what happened, and everything it was given that is intact reaches the ground bit-exact.

The disk fills for real without root: the downlink runs under a small wrapper that sets its file-size
limit (RLIMIT_FSIZE) while a control file exists and lifts it when the file goes, so the kernel refuses
every write that would extend a file of that process past the limit (SQLite's WAL, the product files),
where a full disk refuses with ENOSPC. A tmpfs or a loop device would need privileges; the limit binds
only the downlink, and lifting it is "space returns" without restarting anything. The limit is set above
the size the process's own log file reaches in this test (a full disk under the log is a different
fault: the logging layer's), and the products pushed while it holds are larger than it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import msgpack
import numpy as np
import pytest
import yaml
import zmq

from framework.bus.client import Subscriber
from framework.crc import pixels_crc32c
from fsw.downlink.store import ProductStore
from fsw.imaging.codecs import encode_pixels
from fsw.imaging.product import Product, encode_product, product_id
from tests.conftest import Processes, link_chain_config, undeclared_in_logs, wait_for
from tests.unit.fsw.downlink.chain import flip_bytes

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
LIMIT_BYTES = 512 * 1024
_WRAPPER = """
import os, resource, runpy, signal, sys, threading, time
control, limit = sys.argv[1], int(sys.argv[2])
sys.argv = ["pdh.process", *sys.argv[3:]]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full disk sends no signal: the write just fails
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
def follow():
    full = False
    while True:
        now = os.path.exists(control)
        if now != full:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit if now else soft, hard))
            full = now
        time.sleep(0.02)
threading.Thread(target=follow, daemon=True).start()
runpy.run_module("pdh.process", run_name="__main__")
"""


def chain(write_config: Any) -> Path:
    return link_chain_config(write_config, {"ack_timer_s": 0.3, "nak_timer_s": 0.3},
                             downlink={"rate_bps": 8_000_000, "reencode": {"enabled": False}},
                             relay={"rate_bps": 8_000_000, "latency_ms": 5})


def make(counter: int, h: int, w: int) -> tuple[Product, np.ndarray]:
    pixels = np.random.default_rng(counter).integers(0, 4096, size=(h, w), dtype=np.uint16)
    return Product(id=product_id("navcam", counter, "full"), kind="full", camera="navcam", counter=counter,
                   t_capture=1000.0 + counter, codec="jpegls", shape=pixels.shape, dtype="uint16", bit_depth=12,
                   payload=encode_pixels("jpegls", pixels), crc32c=pixels_crc32c(pixels), meta={},
                   grades={"score": 0.5}), pixels


def push(sock: zmq.Socket, p: Product) -> None:
    sock.send_multipart([msgpack.packb({"id": p.id, "kind": p.kind, "score": 0.5}), encode_product(p)])


def at_ground(out: Path, p: Product, pixels: np.ndarray) -> bool:
    png = out / "ground" / f"{p.id}.png"
    if not (out / "ground" / f"{p.id}.json").exists():
        return False
    got = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    return got is not None and np.array_equal(got, pixels)


class Watch:
    """The downlink's events and health, as they arrive on the bus."""

    def __init__(self, zctx: zmq.Context, endpoint: str) -> None:
        self.sub = Subscriber(zctx, endpoint, ["evt.downlink", "tlm.downlink"])
        self.events: list[dict[str, Any]] = []
        self.health: dict[str, Any] = {}

    def drain(self) -> None:
        while (msg := self.sub.recv(0)) is not None:
            if msg.topic == "evt.downlink":
                self.events.append(msg.header.fields)
            else:
                self.health = msg.header.fields

    def names(self) -> list[str]:
        self.drain()
        return [e.get("name") for e in self.events]

    def until(self, predicate: Any, timeout_s: float) -> bool:
        return wait_for(lambda: (self.drain(), predicate())[1], timeout_s, 0.05)


def start_limited(processes: Processes, cfg: Path, control: Path) -> subprocess.Popen[bytes]:
    """The downlink under the file-size wrapper, ended by the fixture like every other process."""
    logs = processes.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "downlink.stderr", "ab") as err:
        p = subprocess.Popen([sys.executable, "-c", _WRAPPER, str(control), str(LIMIT_BYTES), str(cfg), "downlink",
                              "--out", str(processes.out)], cwd=REPO, stdout=err, stderr=err,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    processes.procs["downlink"] = p
    return p


def test_a_disk_that_fills_holds_products_back_and_everything_goes_down_once_space_returns(
        tmp_path: Path, write_config: Any, processes: Processes) -> None:
    cfg = chain(write_config)
    endpoints = yaml.safe_load(cfg.read_text())["endpoints"]
    control = tmp_path / "disk_full"
    zctx = zmq.Context()
    watch = Watch(zctx, endpoints["bus_sub"])
    sock = zctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 4)
    sock.connect(endpoints["products"])
    try:
        for name in ("broker", "relay", "ground"):
            processes.start(cfg, name)
        downlink = start_limited(processes, cfg, control)
        assert watch.until(lambda: bool(watch.health), 30), "no health from the downlink"
        first = make(1, 48, 64)
        push(sock, first[0])
        assert wait_for(lambda: at_ground(processes.out, *first), 60)
        assert (processes.out / "logs" / "downlink.jsonl").stat().st_size < LIMIT_BYTES // 2
        control.touch()  # the disk is full
        time.sleep(0.3)
        big = [make(c, 768, 1024) for c in (2, 3, 4)]  # each product file is larger than the limit
        for p, _ in big:
            push(sock, p)
        assert watch.until(lambda: {"store_unavailable", "product_rejected"} & set(watch.names()), 30)
        assert "product_rejected" not in watch.names(), "a product was refused, not held"
        assert watch.until(lambda: watch.health.get("store_ok") == 0 and watch.health.get("products_held") == 1,
                           30), watch.health
        time.sleep(2.0)  # the downlink goes on turning while full: nothing taken, nothing lost, still alive
        assert downlink.poll() is None
        assert watch.health.get("products_held") == 1 and watch.health.get("products_stored") == 1
        control.unlink()  # space returns
        assert wait_for(lambda: all(at_ground(processes.out, p, px) for p, px in big), 120), \
            sorted(x.name for x in (processes.out / "ground").glob("*.json"))
        assert watch.until(lambda: watch.health.get("store_ok") == 1 and watch.health.get("products_held") == 0, 30)
        names = watch.names()
        assert "store_available" in names and "product_rejected" not in names
        assert downlink.poll() is None, "the downlink restarted or died"
    finally:
        sock.close()
        watch.sub.close()
        zctx.term()
    assert processes.stop("downlink") == 0
    assert [line for line in undeclared_in_logs(processes.out) if '"process": "downlink"' in line] == []


def test_a_store_with_a_damaged_index_and_a_rotten_payload_comes_up_and_sends_what_is_intact(
        write_config: Any, processes: Processes) -> None:
    cfg = chain(write_config)
    endpoints = yaml.safe_load(cfg.read_text())["endpoints"]
    store = ProductStore(processes.out / "store")
    made = [make(c, 48, 64) for c in (1, 2, 3)]
    for p, _ in made:
        store.add(p.id, p.kind, encode_product(p), score=0.5)
    rotten = made[1][0]
    flip_bytes(store.get(rotten.id).path, 64)
    store.close()
    (processes.out / "store" / "index.sqlite").write_bytes(b"\x00not an index\x00" * 512)
    zctx = zmq.Context()
    watch = Watch(zctx, endpoints["bus_sub"])
    try:
        for name in ("broker", "relay", "ground"):
            processes.start(cfg, name)
        time.sleep(0.5)  # the subscription reaches the broker before the downlink's first events
        downlink = processes.start(cfg, "downlink")
        intact = [m for m in made if m[0] is not rotten]
        assert wait_for(lambda: all(at_ground(processes.out, p, px) for p, px in intact), 60), \
            (processes.out / "logs" / "downlink.jsonl").read_text()[-3000:]
        assert watch.until(lambda: "product_corrupt" in watch.names(), 20), watch.names()
        corrupt = [e for e in watch.events if e.get("name") == "product_corrupt"]
        assert [e["id"] for e in corrupt] == [rotten.id]
        assert not (processes.out / "ground" / f"{rotten.id}.json").exists()
        assert downlink.poll() is None
    finally:
        watch.sub.close()
        zctx.term()
    assert processes.stop("downlink") == 0
    log = (processes.out / "logs" / "downlink.jsonl").read_text()
    assert "index_rebuilt" in log and "process_crashed" not in log
    assert list((processes.out / "store" / "aside").glob("*index.sqlite"))
