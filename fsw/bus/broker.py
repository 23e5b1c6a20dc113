"""The bus broker: an XSUB/XPUB proxy. Publishers connect to XSUB, subscribers to XPUB."""

from __future__ import annotations

import threading

import zmq

from fsw.app.process import ProcessContext

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
    ctl_addr = f"inproc://broker-ctl-{id(ctx)}"
    ctl = zctx.socket(zmq.PAIR)
    ctl.bind(ctl_addr)
    ctx.log.info("broker_started", xsub=ctx.endpoint("xsub"), xpub=ctx.endpoint("xpub"))

    def stopper() -> None:
        ctx.stop.wait()
        s = zctx.socket(zmq.PAIR)
        s.connect(ctl_addr)
        s.send(b"TERMINATE")
        s.close()

    threading.Thread(target=stopper, daemon=True).start()
    zmq.proxy_steerable(xsub, xpub, None, ctl)
    for s in (xsub, xpub, ctl):
        s.close()
    ctx.log.info("broker_stopped")
