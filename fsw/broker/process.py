"""The bus broker process: the zmq adapter around :class:`~fsw.broker.forwarder.Forwarder`.

Publishers connect to XSUB, subscribers to XPUB; messages go downstream, subscriptions
upstream. The forwarding loop is ours rather than ``zmq.proxy``: libzmq's proxy blocks
in C, where a SIGTERM cannot reliably reach it (seen here: a steerable proxy that
ignored TERMINATE after an interrupted call), and a loop that polls with a short
timeout also lets the broker count what it forwards, publish its own health and
answer commands. Messages move frame by frame with ``copy=False``, so pixels are
never copied. The optional ``command`` endpoint answers NOOP and RESET_COUNTERS.
"""

from __future__ import annotations

from typing import Any

import zmq

from framework.bus.client import Publisher
from framework.bus.message import MAX_PART_BYTES
from framework.bus.commands import CommandServer, register_table
from framework.process import ProcessContext
from framework.reporters import EventReporter, HealthReporter
from fsw.broker.commands import handlers
from fsw.broker.forwarder import Forwarder, Give, Message, Take
from fsw.broker.interface import INTERFACE

__all__ = ["run", "Broker"]

POLL_MS = 100
"""How long the loop waits for traffic before it looks at the stop flag and the health timer again."""


MAX_SUBSCRIPTION_BYTES = 64 * 1024


def _take(sock: zmq.Socket, copy: bool) -> Take:
    """The next waiting message of ``sock``, or None: never blocks."""

    def take() -> Message | None:
        try:
            return sock.recv_multipart(zmq.NOBLOCK, copy=copy)
        except zmq.Again:
            return None

    return take


def _give(sock: zmq.Socket, copy: bool) -> Give:
    def give(message: Message) -> None:
        sock.send_multipart(message, copy=copy)

    return give


class Broker:
    """The process: XSUB, XPUB, the optional command ROUTER and the bus publisher of its own health."""

    def __init__(self, ctx: ProcessContext) -> None:
        self.ctx = ctx
        zctx = ctx.zmq
        self.xsub = zctx.socket(zmq.XSUB)
        self.xpub = zctx.socket(zmq.XPUB)
        for s in (self.xsub, self.xpub):
            s.setsockopt(zmq.LINGER, 0)
        # what any local process may send is bounded: a bus message part (an inline frame at most), and
        # subscriptions (a topic prefix each)
        self.xsub.setsockopt(zmq.MAXMSGSIZE, MAX_PART_BYTES)
        self.xpub.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
        self.xsub.setsockopt(zmq.RCVHWM, ctx.config.bus["rcvhwm"])
        self.xpub.setsockopt(zmq.SNDHWM, ctx.config.bus["sndhwm"])
        self.xsub.bind(ctx.endpoint("xsub"))
        self.xpub.bind(ctx.endpoint("xpub"))
        self.pub = Publisher(zctx, ctx.endpoint("xsub"), ctx.name, ctx.config.bus["sndhwm"], clock=ctx.clock)
        self.forwarder = Forwarder()
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic)
        self.cmd: CommandServer | None = None
        if ctx.has_endpoint("command"):
            self.cmd = ctx.command_server(on_event=self.events.emit,
                                     reset_counters=lambda: (self.forwarder.reset(), self.events.reset()), interface=INTERFACE)
            register_table(self.cmd, INTERFACE, handlers(self.forwarder))
        self.health = HealthReporter(ctx, self.pub, self.sample, channels=INTERFACE.telemetry,
                                     events=self.events, commands=self.cmd)
        self.poller = zmq.Poller()
        for s in (self.xsub, self.xpub, *([self.cmd.sock] if self.cmd else [])):
            self.poller.register(s, zmq.POLLIN)
        self._downstream = (_take(self.xsub, copy=False), _give(self.xpub, copy=False))
        self._upstream = (_take(self.xpub, copy=True), _give(self.xsub, copy=True))

    def sample(self) -> dict[str, Any]:
        return self.forwarder.counters()

    def loop(self) -> None:
        self.ctx.log.info("broker_started", xsub=self.ctx.endpoint("xsub"), xpub=self.ctx.endpoint("xpub"),
                          command=self.ctx.endpoint("command") if self.cmd else None)
        while not self.ctx.stop.is_set():
            ready = dict(self.poller.poll(POLL_MS))
            if self.xpub in ready:  # subscriptions first, so a new subscriber sees what follows
                self.forwarder.subscriptions(*self._upstream)
            if self.xsub in ready:
                self.forwarder.forward(*self._downstream)
            if self.cmd is not None:
                self.cmd.poll()
            self.health.tick()
        self.close()
        self.ctx.log.info("broker_stopped", **self.forwarder.counters())

    def close(self) -> None:
        self.pub.close()
        if self.cmd is not None:
            self.cmd.close()
        for s in (self.xsub, self.xpub):
            s.close()


def run(ctx: ProcessContext) -> None:
    Broker(ctx).loop()
