"""The bus broker: an XSUB/XPUB forwarder. Publishers connect to XSUB, subscribers to XPUB.

The forwarding loop is ours rather than ``zmq.proxy``: libzmq's proxy blocks
in C, where a SIGTERM cannot reliably reach it (seen here: a steerable proxy
that ignored TERMINATE after an interrupted call), and a loop that polls with
a short timeout also lets the broker count what it forwards and publish its
own health. Messages move frame by frame with ``copy=False``, so pixels are
never copied; subscriptions flow back from XPUB to XSUB.
"""

from __future__ import annotations

import zmq

from framework.process import ProcessContext
from framework.reporters import HealthReporter
from framework.bus.client import Publisher

__all__ = ["run"]


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
    pub = Publisher(zctx, ctx.endpoint("xsub"), ctx.name, ctx.config.bus["sndhwm"], clock=ctx.clock)
    counts = {"messages": 0, "bytes": 0, "subscription_changes": 0}
    health = HealthReporter(ctx, pub, lambda: dict(counts))
    poller = zmq.Poller()
    poller.register(xsub, zmq.POLLIN)
    poller.register(xpub, zmq.POLLIN)
    ctx.log.info("broker_started", xsub=ctx.endpoint("xsub"), xpub=ctx.endpoint("xpub"))
    while not ctx.stop.is_set():
        ready = dict(poller.poll(100))
        if xpub in ready:  # subscriptions travel upstream
            for _ in range(256):
                try:
                    xsub.send_multipart(xpub.recv_multipart(zmq.NOBLOCK))
                except zmq.Again:
                    break
                counts["subscription_changes"] += 1
        if xsub in ready:
            for _ in range(256):  # bounded, so subscriptions and stop are seen under load
                try:
                    frames = xsub.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                xpub.send_multipart(frames, copy=False)
                counts["messages"] += 1
                counts["bytes"] += sum(len(f) for f in frames)
        health.tick()
    pub.close()
    for s in (xsub, xpub):
        s.close()
    ctx.log.info("broker_stopped", **counts)
