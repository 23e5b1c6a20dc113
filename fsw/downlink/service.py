"""The downlink process: products in on ZeroMQ, stored on disk, out as CFDP over CCSDS on UDP.

``run(ctx)`` binds a PULL socket on ``products``; each message is
``[msgpack {id, kind, camera, counter}, product bytes]``. A product is stored
(fsync) and announced (``product_stored``) before anything else happens to it.
The send loop takes ``store.next()``, runs it through the CFDP source engine,
and sends every PDU as one Space Packet in one UDP datagram to ``relay``,
paced by a token bucket at ``rate_bps``. PDUs from the ground arrive on
``radio``. A product the ground confirms is deleted (``product_confirmed``).
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import zmq
from spacepackets.ccsds.spacepacket import PacketType

from fsw.app.process import HealthReporter, ProcessContext
from fsw.bus.commands import CommandServer
from fsw.downlink.engine import SourceEngine
from fsw.downlink.mib import CfdpTimers
from fsw.downlink.pacing import TokenBucket
from fsw.downlink.packets import SpacePacketWrapper, apid_for_kind, unwrap
from fsw.downlink.radio import RadioPort
from fsw.downlink.store import ProductStore
from fsw.errors import BusError, ProductError, ProtocolError, StoreError
from fsw.imaging.product import PRODUCT_KINDS, read_product_header

__all__ = ["run", "DownlinkService", "parse_product_message"]

_RETRY_BACKOFF_S = 2.0
_EVENT_PERIOD_S = 1.0
_PRODUCTS_PER_TURN = 4
_DATAGRAMS_PER_TURN = 512


def parse_product_message(frames: list[Any]) -> tuple[dict[str, Any], bytes]:
    """Check a products message; raise ProductError naming what is wrong."""
    if len(frames) != 2:
        raise ProductError(f"products message has {len(frames)} parts, expected 2")
    raw_head = frames[0].bytes if hasattr(frames[0], "bytes") else bytes(frames[0])
    try:
        head = msgpack.unpackb(raw_head, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProductError(f"products header is not msgpack: {type(exc).__name__}") from None
    if not isinstance(head, dict):
        raise ProductError("products header is not a map")
    pid, kind = head.get("id"), head.get("kind")
    if not isinstance(pid, str) or kind not in PRODUCT_KINDS:
        raise ProductError(f"products header needs id (str) and kind in {PRODUCT_KINDS}, got {pid!r}, {kind!r}")
    data = frames[1].bytes if hasattr(frames[1], "bytes") else bytes(frames[1])
    product = read_product_header(data)
    if product.id != pid or product.kind != kind:
        raise ProductError(f"header says {pid}/{kind}, product says {product.id}/{product.kind}")
    return head, data


class DownlinkService:
    """One turn of the loop at a time; every socket lives here."""

    def __init__(self, ctx: ProcessContext) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.log = ctx.log
        self.store = ProductStore(ctx.out_dir / s["store_dir"], clock=ctx.clock)
        self.pub = ctx.publisher()
        self.engine = SourceEngine(s["entity_id"], s["ground_entity_id"], s["max_packet_len"],
                                   CfdpTimers.from_settings(s), clock=ctx.monotonic)
        self.wrapper = SpacePacketWrapper(PacketType.TM)
        burst = max(4 * (s["max_packet_len"] + 64), int(s["rate_bps"] / 8 * 0.005))
        self.bucket = TokenBucket(s["rate_bps"], burst, clock=ctx.monotonic)
        self.radio = RadioPort(ctx.endpoint("radio"), ctx.endpoint("relay"))
        self.pull = ctx.zmq.socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.setsockopt(zmq.RCVHWM, 16)
        self.pull.bind(ctx.endpoint("products"))
        self.commands = CommandServer(ctx.zmq, ctx.endpoint("command"), on_event=self.event,
                                      reset_counters=self.reset_counters)
        self.commands.register("STORE_LIST", lambda args: {"ids": self.store.ids()})
        self.poller = zmq.Poller()
        self.poller.register(self.pull, zmq.POLLIN)
        self.poller.register(self.commands.sock, zmq.POLLIN)
        self.poller.register(self.radio.fileno(), zmq.POLLIN)
        self.held: bytes | None = None
        self.retry_after: dict[str, float] = {}
        self._last_event: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.c = {"products_stored": 0, "products_confirmed": 0, "products_rejected": 0, "bytes_sent": 0,
                  "packets_sent": 0, "packets_received": 0, "datagrams_rejected": 0, "transactions_failed": 0}
        self._bytes_at_last_health = 0
        self.health = HealthReporter(ctx, self.pub, self.sample)
        if not self.store.recovery.clean:
            r = self.store.recovery
            self.event("store_recovered", {"temp_files": len(r.temp_files_removed),
                                           "orphans": len(r.orphan_payloads_removed),
                                           "rows_without_payload": r.rows_without_payload}, "warning")
        self.log.info("downlink_started", radio=self.radio.address, rcvbuf=self.radio.rcvbuf,
                      sndbuf=self.radio.sndbuf, stored=len(self.store), rate_bps=s["rate_bps"])

    # -- bus -----------------------------------------------------------------------------------
    def event(self, name: str, fields: dict[str, Any], severity: str = "warning") -> None:
        try:
            self.pub.publish(f"evt.{self.ctx.name}", "evt", {"name": name, "severity": severity, **fields})
        except BusError as exc:  # a bad event must not end the process; the log keeps it
            self.log.error("event_not_published", event=name, reason=str(exc))
        log = self.log.warning if severity != "info" else self.log.info
        log(name, **fields)

    def limited_event(self, name: str, fields: dict[str, Any]) -> None:
        """At most one such event per second, carrying how many were folded into it."""
        now = self.ctx.monotonic()
        self._suppressed[name] = self._suppressed.get(name, 0) + 1
        if now - self._last_event.get(name, -math.inf) >= _EVENT_PERIOD_S:
            self._last_event[name] = now
            self.event(name, {**fields, "count": self._suppressed.pop(name)})

    def reset_counters(self) -> None:
        for k in ("products_rejected", "datagrams_rejected", "transactions_failed"):
            self.c[k] = 0

    def sample(self) -> dict[str, Any]:
        sent = self.c["bytes_sent"]
        rate = (sent - self._bytes_at_last_health) * 8
        self._bytes_at_last_health = sent
        return {**self.c, "queue_depth": len(self.store), "store_bytes": self.store.total_bytes(),
                "in_flight": self.engine.in_flight, "retransmit_requests": self.engine.counters["retransmit_requests"],
                "send_rate_bps": rate, "commands_accepted": self.commands.accepted,
                "commands_rejected": self.commands.rejected}

    # -- the loop ------------------------------------------------------------------------------
    def turn(self) -> None:
        self.poller.poll(self._timeout_ms())
        self.take_products()
        self.receive()
        self.commands.poll(0)
        self.engine.pump(0)
        self.settle()
        self.start_next()
        self.send()
        self.health.tick()

    def _timeout_ms(self) -> int:
        if self.held is not None:
            return max(1, math.ceil(self.bucket.wait_s(len(self.held)) * 1000))
        if self.engine.busy:
            return 10
        return 50

    def take_products(self) -> None:
        for _ in range(_PRODUCTS_PER_TURN):
            try:
                frames = self.pull.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                head, data = parse_product_message(frames)
                stored = self.store.add(head["id"], head["kind"], data)
            except (ProductError, StoreError) as exc:
                self.c["products_rejected"] += 1
                self.event("product_rejected", {"reason": str(exc)})
                continue
            self.c["products_stored"] += 1
            self.event("product_stored", {"id": stored.id, "product_kind": stored.kind, "bytes": stored.size}, "info")

    def receive(self) -> None:
        for _ in range(_DATAGRAMS_PER_TURN):
            got = self.radio.recv()
            if got is None:
                return
            self.c["packets_received"] += 1
            try:
                packet = unwrap(got[0])
            except ProtocolError as exc:
                self.c["datagrams_rejected"] += 1
                self.limited_event("datagram_rejected", {"reason": str(exc), "bytes": len(got[0])})
                continue
            self.engine.insert(packet.pdu)

    def settle(self) -> None:
        while self.engine.outcomes:
            out = self.engine.outcomes.popleft()
            if out.delivered:
                self.retry_after.pop(out.product_id, None)
                if self.store.confirm(out.product_id):
                    self.c["products_confirmed"] += 1
                    self.event("product_confirmed", {"id": out.product_id, "transaction": out.transaction}, "info")
                if self.engine.in_flight == out.product_id:
                    self.engine.abort("confirmed by a late Finished")
                continue
            if out.product_id in self.store:
                self.store.set_state(out.product_id, "stored")
                self.c["transactions_failed"] += 1
                self.retry_after[out.product_id] = self.ctx.monotonic() + _RETRY_BACKOFF_S
                self.event("transaction_failed", {"id": out.product_id, "transaction": out.transaction,
                                                  "reason": out.reason})

    def start_next(self) -> None:
        if self.engine.busy:
            return
        now = self.ctx.monotonic()
        waiting = {pid for pid, t in self.retry_after.items() if t > now}
        product = self.store.next(exclude=waiting)
        if product is None:
            return
        try:
            seq = self.store.reserve_transaction_seqs(1)
            self.engine.start(product.id, product.path, apid_for_kind(product.kind), seq)
        except Exception as exc:  # the payload vanished or cannot be read: nothing can send it
            self.store.confirm(product.id)
            self.event("product_discarded", {"id": product.id, "reason": f"{type(exc).__name__}: {exc}"}, "error")
            return
        self.store.set_state(product.id, "sending")

    def send(self) -> None:
        while not self.ctx.stop.is_set():
            if self.held is None:
                if self.engine.pending == 0:
                    self.engine.pump(8)
                item = self.engine.pop()
                if item is None:
                    return
                self.held = self.wrapper.wrap(*item)
            if not self.bucket.try_take(len(self.held)):
                return
            if not self.radio.send(self.held):
                self.bucket.give_back(len(self.held))
                return
            self.c["bytes_sent"] += len(self.held)
            self.c["packets_sent"] += 1
            self.held = None

    def close(self) -> None:
        self.health.tick(force=True)
        for closer in (self.commands.close, self.pull.close, self.radio.close, self.store.close, self.pub.close):
            try:
                closer()
            except Exception:  # closing must not hide the reason we stop
                pass


def run(ctx: ProcessContext) -> None:
    """Entry point of kind ``fsw.downlink``; returns when ``ctx.stop`` is set."""
    service = DownlinkService(ctx)
    try:
        while not ctx.stop.is_set():
            service.turn()
    finally:
        ctx.log.info("downlink_stopping", stored=len(service.store), confirmed=service.c["products_confirmed"])
        service.close()
