"""The downlink process: the sockets and the loop around the store-and-forward logic.

``run(ctx)`` binds a PULL socket on ``products`` (messages from imaging,
:mod:`fsw.downlink.messages`), the radio's UDP socket on ``radio`` (sending to
``relay``) and the command port on ``command``; with ``links.bus_sub`` set it
subscribes to the lander's housekeeping and events for recording, and with
``links.imaging_command`` it forwards SEND_REGION to imaging; with ``uplink``
it connects a PUSH socket to command ingest, which gets the TC packets that
arrive on the radio (never waiting: a packet ingest does not take at once is
dropped and the ground retries). Everything it
receives goes to the I/O-free :class:`~fsw.downlink.forwarder.Forwarder`,
which decides what is stored, sent, confirmed and reported. A background
process re-encodes waiting lossless products (:mod:`fsw.downlink.reencoder`).
"""

from __future__ import annotations

import math
from typing import Any

import zmq

from framework.bus.client import Subscriber
from framework.bus.commands import CommandClient, CommandServer, register_table
from framework.process import ProcessContext
from framework.reporters import EventReporter, HealthReporter
from fsw.downlink.commands import handlers
from fsw.downlink.forwarder import Forwarder
from fsw.downlink.interface import INTERFACE
from fsw.downlink.reencoder import Reencoder
from fsw.imaging.product import MAX_PRODUCT_BYTES
from link.dictionary import Dictionary
from link.radio import RadioPort
from link.tmtc import MAX_TC_BYTES

__all__ = ["run", "DownlinkProcess"]

_PRODUCTS_PER_TURN = 4
_DATAGRAMS_PER_TURN = 512
_BUS_MESSAGES_PER_TURN = 200
_UPLINK_HWM = 16
"""TC packets queued towards ingest at most; beyond it a packet is dropped (the ground retries)."""


class DownlinkProcess:
    """Owns every socket, the re-encoding worker and the reporters; one :meth:`turn` at a time."""

    def __init__(self, ctx: ProcessContext) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.pub = ctx.publisher()
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic)
        # Only the relay's datagrams are read; others are counted (datagrams_refused) and reported.
        self.radio = RadioPort(ctx.endpoint("radio"), ctx.endpoint("relay"), only_from_peer=True,
                               reject=self.events.limited)
        self.pull = ctx.zmq.socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.setsockopt(zmq.RCVHWM, 16)
        # the largest product the format allows, or the store could hold: a larger message costs imaging its link
        self.pull.setsockopt(zmq.MAXMSGSIZE, min(MAX_PRODUCT_BYTES, s["quota_bytes"]))
        self.pull.bind(ctx.endpoint("products"))
        self.poller = zmq.Poller()
        self.poller.register(self.pull, zmq.POLLIN)
        self.pulling = True  # the products port is in the poller (not while the store refuses)
        self.poller.register(self.radio.fileno(), zmq.POLLIN)
        self.sub, self.imaging = self._links(s)
        self.uplink = self._uplink()
        re = s["reencode"]
        reencoder = Reencoder(re["codec"], re["params"], re["nice"]) if re["enabled"] else None
        self.fwd = Forwarder(s, ctx.out_dir, ctx.config.file, ctx.name, self.radio, self.events, ctx.log, ctx.clock,
                             ctx.monotonic, record_telemetry=self.sub is not None, imaging=self.imaging,
                             reencoder=reencoder, dictionary=Dictionary.from_config(ctx.config),
                             tc_sink=self.send_tc if self.uplink is not None else None)
        self.commands = ctx.command_server(on_event=self.events.emit,
                                      reset_counters=lambda: (self.fwd.reset_counters(), self.events.reset()), interface=INTERFACE)
        register_table(self.commands, INTERFACE, handlers(self.fwd))
        self.poller.register(self.commands.sock, zmq.POLLIN)
        self.health = HealthReporter(ctx, self.pub, self.sample, channels=INTERFACE.telemetry,
                                     events=self.events, commands=self.commands)
        ctx.log.info("downlink_started", radio=self.radio.address, stored=self.fwd.queue_depth(),
                     relays=[r.name for r in self.fwd.plan.relays], time_scale=self.fwd.plan.time_scale,
                     telemetry=self.fwd.recorder is not None, reencode=reencoder is not None)

    def _links(self, s: dict[str, Any]) -> tuple[Subscriber | None, CommandClient | None]:
        """The optional links: the bus subscription for recording, the imaging core's command port."""
        links, eps, tl = s["links"], self.ctx.config.endpoints, s["telemetry"]
        sub = imaging = None
        if "bus_sub" in links and tl["enabled"]:
            sub = Subscriber(self.ctx.zmq, eps[links["bus_sub"]], tl["topics"], self.ctx.config.bus["rcvhwm"])
            self.poller.register(sub.sock, zmq.POLLIN)
        if "imaging_command" in links:
            imaging = self.ctx.command_client(eps[links["imaging_command"]])
            self.poller.register(imaging.sock, zmq.POLLIN)
        return sub, imaging

    def _uplink(self) -> Any:
        """The PUSH socket to command ingest, or None without an ``uplink`` endpoint. IMMEDIATE: while
        ingest is not connected nothing queues (a TC would only go stale); LINGER 0: none at a stop."""
        if not self.ctx.has_endpoint("uplink"):
            return None
        sock = self.ctx.zmq.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.SNDHWM, _UPLINK_HWM)
        sock.connect(self.ctx.endpoint("uplink"))
        return sock

    def send_tc(self, packet: bytes) -> bool:
        """Hand one TC packet to ingest without waiting; False if it cannot take it now."""
        assert self.uplink is not None and len(packet) <= MAX_TC_BYTES
        try:
            self.uplink.send(packet, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def sample(self) -> dict[str, Any]:
        return {**self.fwd.sample(), "datagrams_refused": self.radio.refused}

    # -- the loop ------------------------------------------------------------------------------
    def turn(self) -> None:
        self.poller.poll(max(1, math.ceil(self.fwd.wait_s() * 1000)))
        self.take_products()
        self.take_telemetry()
        self.receive()
        self.commands.poll(0)
        self.take_forwarded_replies()
        self.fwd.step(self.ctx.stop.is_set)
        self.health.tick()

    def take_products(self) -> None:
        """Read the products port only while the store can take products: otherwise they stay queued
        (back-pressure up to imaging), and the port leaves the poller so the loop does not spin on it."""
        accepting = self.fwd.accepting_products()
        if accepting != self.pulling:
            self.poller.modify(self.pull, zmq.POLLIN if accepting else 0)
            self.pulling = accepting
        if not accepting:
            return
        for _ in range(_PRODUCTS_PER_TURN):
            if not self.fwd.accepting_products():
                return
            try:
                frames = self.pull.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.fwd.take_product(frames)

    def take_telemetry(self) -> None:
        if self.sub is None:
            return
        for _ in range(_BUS_MESSAGES_PER_TURN):
            msg = self.sub.recv(timeout_ms=0)
            if msg is None:
                break
            self.fwd.record(msg)
        self.fwd.flush_telemetry()

    def receive(self) -> None:
        for _ in range(_DATAGRAMS_PER_TURN):
            got = self.radio.recv()
            if got is None:
                return
            self.fwd.take_datagram(got[0])

    def take_forwarded_replies(self) -> None:
        while self.imaging is not None and self.fwd.forwarded:
            reply = self.imaging.recv(0)
            if reply is None:
                return
            self.fwd.region_reply(reply)

    def close(self) -> None:
        self.health.tick(force=True)
        closers = [self.commands.close, self.pull.close, self.radio.close, self.fwd.store.close, self.pub.close]
        if self.fwd.reencoder is not None:
            closers.insert(0, self.fwd.reencoder.close)
        if self.sub is not None:
            closers.append(self.sub.close)
        if self.imaging is not None:
            closers.append(self.imaging.close)
        if self.uplink is not None:
            closers.append(self.uplink.close)
        for closer in closers:
            try:
                closer()
            except Exception:  # closing must not hide the reason we stop
                pass


def run(ctx: ProcessContext) -> None:
    """Entry point of kind ``fsw.downlink``; returns when ``ctx.stop`` is set."""
    process = DownlinkProcess(ctx)
    try:
        while not ctx.stop.is_set():
            process.turn()
    finally:
        ctx.log.info("downlink_stopping", stored=process.fwd.queue_depth(), confirmed=process.fwd.c["products_confirmed"])
        process.close()
