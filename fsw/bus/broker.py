"""The bus broker: an XSUB/XPUB proxy. Publishers connect to XSUB, subscribers to XPUB.

A capture socket sees every message the proxy forwards (libzmq shares large
message bodies by reference, so this costs no pixel copies); a thread counts
them and publishes the broker's health on the bus it serves.
"""

from __future__ import annotations

import threading

import zmq

from fsw.app.process import HealthReporter, ProcessContext
from fsw.bus.client import Publisher

__all__ = ["run"]


def _count_capture(ctx: ProcessContext, capture_addr: str, pub_addr: str) -> None:
    sock = ctx.zmq.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(capture_addr)
    pub = Publisher(ctx.zmq, pub_addr, ctx.name, ctx.config.bus["sndhwm"], clock=ctx.clock)
    counts = {"messages": 0, "bytes": 0}
    health = HealthReporter(ctx, pub, lambda: dict(counts))
    while not ctx.stop.is_set():
        if sock.poll(200):
            frames = sock.recv_multipart(copy=False)
            counts["messages"] += 1
            counts["bytes"] += sum(len(f) for f in frames)
        health.tick()
    sock.close()
    pub.close()


def run(ctx: ProcessContext) -> None:
    zctx = ctx.zmq
    xsub = zctx.socket(zmq.XSUB)
    xpub = zctx.socket(zmq.XPUB)
    for s in (xsub, xpub):
        s.setsockopt(zmq.LINGER, 0)
    xsub.setsockopt(zmq.RCVHWM, ctx.config.bus["rcvhwm"])
    xpub.setsockopt(zmq.SNDHWM, ctx.config.bus["sndhwm"])
    xsub.bind(ctx.endpoint("xsub"))
    xpub.bind(ctx.endpoint("xpub"))
    ctl_addr = f"inproc://broker-ctl-{id(ctx)}"
    capture_addr = f"inproc://broker-capture-{id(ctx)}"
    ctl = zctx.socket(zmq.PAIR)
    ctl.bind(ctl_addr)
    capture = zctx.socket(zmq.PUSH)
    capture.setsockopt(zmq.SNDHWM, 1000)
    capture.setsockopt(zmq.LINGER, 0)
    capture.bind(capture_addr)
    ctx.log.info("broker_started", xsub=ctx.endpoint("xsub"), xpub=ctx.endpoint("xpub"))

    def stopper() -> None:
        ctx.stop.wait()
        s = zctx.socket(zmq.PAIR)
        s.connect(ctl_addr)
        s.send(b"TERMINATE")
        s.close()

    threading.Thread(target=stopper, daemon=True).start()
    counter = threading.Thread(target=_count_capture, args=(ctx, capture_addr, ctx.endpoint("xsub")), daemon=True)
    counter.start()
    zmq.proxy_steerable(xsub, xpub, capture, ctl)
    counter.join(timeout=2)
    for s in (xsub, xpub, ctl, capture):
        s.close()
    ctx.log.info("broker_stopped")
