"""Bus throughput of frame messages: through the real broker, against raw PUSH/PULL.

A sender process publishes ``[topic, msgpack header, pixel buffer]`` messages
(the pixels with ``copy=False``) through the real broker (``python -m
pdh.process`` running ``bus.broker``, :mod:`fsw.broker.process`, from a temporary config) with
:class:`framework.bus.client.Publisher`; a receiver process takes them with
:class:`framework.bus.client.Subscriber`. The baseline, in the same run, is pyzmq
PUSH/PULL carrying the same parts straight from sender to receiver, no broker.
Both are measured again with ``ipc://`` sockets (a bus that stays on one host),
against the same TCP baseline.

Both legs keep at most ``window`` messages in flight (the receiver counts what
it has into a shared value), so PUB never reaches its high-water mark and the
figure is the sustained rate without drops; drops are still counted from the
header ``seq`` and shown. Each leg runs in several rounds (at least 3), legs
interleaved; the median and the spread are printed, and the machine's load.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
import zmq

from benchmarks.figures import Column, LoadWatch, Table, ratio, stop_processes
from framework.config import free_loopback_ports
from framework.bus.client import Publisher, Subscriber
from framework.bus.message import Header, encode_header

__all__ = ["bench_bus", "run_leg"]

REPO = Path(__file__).resolve().parent.parent
TOPIC = "frame.bench"
READY_TIMEOUT_S = 20.0
LEG_TIMEOUT_S = 120.0
IDLE_AFTER_SENT_S = 2.0


def _pixels(n_bytes: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 4096, n_bytes // 2, dtype=np.uint16)


def _wait_window(sent: int, received: Any, window: int, deadline: float) -> None:
    while sent - received.value >= window and time.monotonic() < deadline:
        time.sleep(0.0002)


def _bus_sender(endpoint: str, n: int, n_bytes: int, window: int, hwm: int, shared: dict[str, Any]) -> None:
    zctx = zmq.Context()
    pub = Publisher(zctx, endpoint, "bench", sndhwm=hwm)
    pixels = _pixels(n_bytes)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not shared["ready"].is_set() and time.monotonic() < deadline:
        pub.publish(TOPIC, "probe")  # the subscription travels SUB -> broker -> PUB; probe until it has
        time.sleep(0.01)
    deadline = time.monotonic() + LEG_TIMEOUT_S
    shared["t0"].value = time.monotonic()
    for i in range(n):
        _wait_window(i, shared["received"], window, deadline)
        pub.publish(TOPIC, "frame", {"counter": i, "shape": [1, pixels.size], "dtype": "uint16"}, [pixels])
    shared["sent_all"].set()
    shared["done"].wait(LEG_TIMEOUT_S)
    pub.close()
    zctx.term()


def _bus_receiver(endpoint: str, n: int, hwm: int, shared: dict[str, Any], results: Any) -> None:
    zctx = zmq.Context()
    sub = Subscriber(zctx, endpoint, [TOPIC], rcvhwm=hwm)
    got, n_bytes, t_last = 0, 0, 0.0
    deadline = time.monotonic() + READY_TIMEOUT_S + LEG_TIMEOUT_S
    idle_since = time.monotonic()
    while got < n and time.monotonic() < deadline:
        msg = sub.recv(timeout_ms=100)
        if msg is None:
            if shared["sent_all"].is_set() and time.monotonic() - idle_since > IDLE_AFTER_SENT_S:
                break
            continue
        idle_since = time.monotonic()
        if msg.header.kind == "probe":
            shared["ready"].set()
            continue
        got += 1
        n_bytes += sum(memoryview(b).nbytes for b in msg.buffers)
        t_last = time.monotonic()
        shared["received"].value = got
    results.put({"received": got, "pixel_bytes": n_bytes, "t_last": t_last, "missing": sub.gaps.missing,
                 "malformed": sub.malformed})
    sub.close()
    zctx.term()


def _raw_sender(endpoint: str, n: int, n_bytes: int, window: int, hwm: int, shared: dict[str, Any]) -> None:
    zctx = zmq.Context()
    push = zctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, hwm)
    push.setsockopt(zmq.LINGER, 500)
    push.connect(endpoint)
    pixels = _pixels(n_bytes)
    deadline = time.monotonic() + LEG_TIMEOUT_S
    shared["t0"].value = time.monotonic()
    for i in range(n):
        _wait_window(i, shared["received"], window, deadline)
        header = encode_header(Header("bench", i, time.time(), "frame",
                                      {"counter": i, "shape": [1, pixels.size], "dtype": "uint16"}))
        push.send_multipart([TOPIC.encode(), header, pixels], copy=False)
    shared["sent_all"].set()
    shared["done"].wait(LEG_TIMEOUT_S)
    push.close()
    zctx.term()


def _raw_receiver(endpoint: str, n: int, hwm: int, shared: dict[str, Any], results: Any) -> None:
    zctx = zmq.Context()
    pull = zctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, hwm)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind(endpoint)
    shared["ready"].set()
    got, n_bytes, t_last = 0, 0, 0.0
    deadline = time.monotonic() + LEG_TIMEOUT_S
    while got < n and time.monotonic() < deadline:
        if not pull.poll(100):
            continue
        parts = pull.recv_multipart(copy=False)
        got += 1
        n_bytes += sum(len(p) for p in parts[2:])
        t_last = time.monotonic()
        shared["received"].value = got
    results.put({"received": got, "pixel_bytes": n_bytes, "t_last": t_last, "missing": n - got, "malformed": 0})
    pull.close()
    zctx.term()


def _shared(mpc: Any) -> dict[str, Any]:
    return {"ready": mpc.Event(), "sent_all": mpc.Event(), "done": mpc.Event(),
            "received": mpc.Value("q", 0, lock=False), "t0": mpc.Value("d", 0.0, lock=False)}


def run_leg(leg: str, n: int, n_bytes: int, window: int, hwm: int, endpoints: tuple[str, str]) -> dict[str, Any]:
    """One leg ("bus" or "raw") in two spawned processes; return counts, seconds and rates."""
    mpc = mp.get_context("spawn")
    shared = _shared(mpc)
    results = mpc.Queue()
    pub_ep, sub_ep = endpoints
    if leg == "bus":
        recv = mpc.Process(target=_bus_receiver, args=(sub_ep, n, hwm, shared, results), daemon=True)
        send = mpc.Process(target=_bus_sender, args=(pub_ep, n, n_bytes, window, hwm, shared), daemon=True)
    else:
        recv = mpc.Process(target=_raw_receiver, args=(sub_ep, n, hwm, shared, results), daemon=True)
        send = mpc.Process(target=_raw_sender, args=(sub_ep, n, n_bytes, window, hwm, shared), daemon=True)
    recv.start()
    if leg == "raw":
        shared["ready"].wait(READY_TIMEOUT_S)  # PULL binds first, so PUSH never waits on a reconnect
    send.start()
    try:
        res = results.get(timeout=READY_TIMEOUT_S + LEG_TIMEOUT_S + 10)
    finally:
        shared["done"].set()
        for p in (send, recv):
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)
    elapsed = res["t_last"] - shared["t0"].value
    msg_bytes = n_bytes + len(TOPIC) + 80  # pixels plus topic and a header of about 80 bytes
    rate = res["received"] / elapsed if res["received"] and elapsed > 0 else None
    return {**res, "sent": n, "elapsed_s": elapsed, "msg_s": rate,
            "mb_s": rate * msg_bytes / 1e6 if rate else None}


class _Broker:
    """The real broker process from a temporary config, ended on exit."""

    def __init__(self, workdir: Path, hwm: int, ipc: bool = False) -> None:
        if ipc:
            ep = {"bus_pub": f"ipc://{workdir}/bus_pub", "bus_sub": f"ipc://{workdir}/bus_sub"}
        else:
            ep = free_loopback_ports({"bus_pub": "tcp://127.0.0.1:0", "bus_sub": "tcp://127.0.0.1:0"})
        self.pub_ep, self.sub_ep = ep["bus_pub"], ep["bus_sub"]
        cfg = {"version": 1, "endpoints": {"bus_pub": self.pub_ep, "bus_sub": self.sub_ep},
               "bus": {"sndhwm": hwm, "rcvhwm": hwm},
               "processes": {"broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}}}}
        self.cfg_path = workdir / f"bench_bus_{'ipc' if ipc else 'tcp'}.yaml"
        self.cfg_path.write_text(yaml.safe_dump(cfg))
        self.out = workdir / f"out_{'ipc' if ipc else 'tcp'}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "_Broker":
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, "-m", "pdh.process", str(self.cfg_path), "broker",
                                      "--out", str(self.out)], cwd=REPO, env=env)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.proc is not None
        stop_processes([self.proc])


def _row(label: str, legs: list[dict[str, Any]], base: float | None) -> dict[str, Any]:
    rates = [leg["msg_s"] or 0.0 for leg in legs]
    med = statistics.median(rates)
    mb = statistics.median([leg["mb_s"] or 0.0 for leg in legs])
    return {"path": label, "vs_raw": ratio(med, base), "msg_s": med, "min": min(rates), "max": max(rates),
            "mb_s": mb, "received": sum(leg["received"] for leg in legs), "sent": sum(leg["sent"] for leg in legs),
            "missing": sum(leg["missing"] for leg in legs)}


LEGS = (("raw PUSH/PULL, tcp (baseline)", "raw", "tcp"), ("bus: Publisher -> broker -> Subscriber, tcp", "bus", "tcp"),
        ("raw PUSH/PULL, ipc://", "raw", "ipc"), ("bus: Publisher -> broker -> Subscriber, ipc://", "bus", "ipc"))


def _raw_endpoint(transport: str, workdir: Path, n: int) -> str:
    if transport == "ipc":
        return f"ipc://{workdir}/raw{n}"
    return free_loopback_ports({"raw": "tcp://127.0.0.1:0"})["raw"]


def bench_bus(n_messages: int = 200, message_bytes: int = 8 << 20, rounds: int = 3, window: int = 4,
              hwm: int = 8) -> Table:
    """Frame messages/s and MB/s through the broker and over raw PUSH/PULL, on tcp and ipc; median of at least
    3 rounds each (legs interleaved, so a slow moment of the machine spreads over all of them)."""
    rounds = max(3, rounds)
    watch = LoadWatch()
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in LEGS}
    with tempfile.TemporaryDirectory(prefix="bench_bus_", dir="/tmp") as tmp, \
            _Broker(Path(tmp), hwm) as tcp_broker, _Broker(Path(tmp), hwm, ipc=True) as ipc_broker:
        brokers = {"tcp": tcp_broker, "ipc": ipc_broker}
        n = 0
        for _ in range(rounds):
            for label, leg, transport in LEGS:
                n += 1
                if leg == "raw":
                    raw_ep = _raw_endpoint(transport, Path(tmp), n)
                    eps = (raw_ep, raw_ep)
                else:
                    eps = (brokers[transport].pub_ep, brokers[transport].sub_ep)
                runs[label].append(run_leg(leg, n_messages, message_bytes, window, hwm, eps))
    load = watch.done()
    base = statistics.median([r["msg_s"] or 0.0 for r in runs[LEGS[0][0]]])
    columns = [Column("path", "path"), Column("vs_raw", "vs raw tcp", ".3f", True),
               Column("msg_s", "msg/s median", ".1f"), Column("min", "min", ".1f"), Column("max", "max", ".1f"),
               Column("mb_s", "MB/s", ".0f"), Column("received", "received", "d"), Column("sent", "sent", "d"),
               Column("missing", "missing", "d")]
    rows = [_row(label, runs[label], base) for label, _, _ in LEGS]
    baseline = f"raw pyzmq PUSH/PULL over tcp, same parts, no broker: median {base:.1f} msg/s"
    notes = [f"message: [topic, msgpack header, {message_bytes / (1 << 20):g} MiB pixels (copy=False)] "
             "over tcp 127.0.0.1 or ipc:// (a Unix socket)",
             f"sender and receiver in separate processes (spawn); {rounds} rounds of {n_messages} messages per leg, "
             "legs interleaved; median and min-max over the rounds",
             f"at most {window} messages in flight, high-water marks {hwm}; MB = 1e6 bytes",
             "rate: messages received / (last receipt - first send), one monotonic clock for both processes",
             "on one host the imaging core takes frames from the camera driver's shared-memory ring instead "
             "(benchmarks.camera); pixels inline on the bus are for a bus that leaves the host"]
    return Table("bus", "Bus throughput of frame messages", baseline, columns, rows, notes, load=load)
