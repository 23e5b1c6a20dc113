"""The downlink process: products and telemetry in, kept on disk, out by priority as CFDP over CCSDS on UDP.

``run(ctx)`` binds a PULL socket on ``products``; each message is
``[msgpack {id, kind, camera, counter, score, requested, priority}, product bytes]``. A
product is stored (fsync) and announced (``product_stored``) before anything
else happens to it. With ``links.bus_sub`` set, the lander's housekeeping and
events are recorded into segments (:mod:`fsw.downlink.recorder`) and stored
the same way. The :class:`~fsw.downlink.transmitter.Transmitter` sends the
policy's next item whenever a contact of the plan is open, several
transactions in flight; PDUs from the ground arrive on ``radio``. An item the
ground confirms is deleted (``product_confirmed``). A background process
re-encodes waiting lossless products (:mod:`fsw.downlink.reencoder`).
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import zmq

from framework.process import ProcessContext
from framework.reporters import HealthReporter
from framework.bus.client import Subscriber
from framework.bus.commands import CommandClient, CommandServer
from link.contacts import ContactClock, load_plan
from fsw.downlink.interface import INTERFACE
from link.mib import CfdpTimers
from link.packets import apid_for_kind, unwrap
from fsw.downlink.policy import Policy
from link.radio import RadioPort
from fsw.downlink.recorder import SEGMENT_KINDS, Segment, TelemetryRecorder
from fsw.downlink.reencoder import REENCODE_KINDS, Reencoder
from fsw.downlink.commands import register_requests
from fsw.downlink.store import ProductStore
from fsw.downlink.transmitter import Transmitter
from framework.errors import BusError, ProductError, ProtocolError, StoreError
from fsw.imaging.codecs import codec_tag
from fsw.imaging.product import PRODUCT_KINDS, Product, read_product_header

__all__ = ["run", "DownlinkService", "parse_product_message"]

_RETRY_BACKOFF_S = 2.0
_EVENT_PERIOD_S = 1.0
_PRODUCTS_PER_TURN = 4
_DATAGRAMS_PER_TURN = 512
_BUS_MESSAGES_PER_TURN = 200


def parse_product_message(frames: list[Any]) -> tuple[dict[str, Any], bytes, Product]:
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
    return head, data, product


def _score(head: dict[str, Any]) -> float:
    v = head.get("score")
    return min(1.0, max(0.0, float(v))) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


class DownlinkService:
    """One turn of the loop at a time; every socket lives here."""

    def __init__(self, ctx: ProcessContext) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.log = ctx.log
        self.plan = load_plan(s, ctx.config.file)
        policy = Policy.from_settings(s["priority"], s["age_weight_per_h"], ctx.config.file)
        self.store = ProductStore(ctx.out_dir / s["store_dir"], clock=ctx.clock, policy=policy,
                                  quota_bytes=s["quota_bytes"])
        self.pub = ctx.publisher()
        self.radio = RadioPort(ctx.endpoint("radio"), ctx.endpoint("relay"))
        self.tx = Transmitter(s["entity_id"], s["ground_entity_id"], s["max_packet_len"],
                              CfdpTimers.from_settings(s), self.plan, self.radio, ctx.clock, ctx.monotonic,
                              ContactClock(self.plan, ctx.clock), self.store.transaction, s["max_in_flight"])
        self.pull = ctx.zmq.socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.setsockopt(zmq.RCVHWM, 16)
        self.pull.bind(ctx.endpoint("products"))
        self.commands = CommandServer(ctx.zmq, ctx.endpoint("command"), on_event=self.event,
                                      reset_counters=self.reset_counters, interface=INTERFACE)
        self.poller = zmq.Poller()
        self.poller.register(self.pull, zmq.POLLIN)
        self.poller.register(self.commands.sock, zmq.POLLIN)
        self.poller.register(self.radio.fileno(), zmq.POLLIN)
        self._links(s)
        re = s["reencode"]
        self.reencoder = Reencoder(re["codec"], re["params"], re["nice"]) if re["enabled"] else None
        register_requests(self)
        self.retry_after: dict[str, float] = {}
        self._last_event: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.c = {"products_stored": 0, "products_confirmed": 0, "products_rejected": 0, "products_evicted": 0,
                  "segments_stored": 0, "segments_rejected": 0, "packets_received": 0, "datagrams_rejected": 0,
                  "transactions_failed": 0, "transactions_resumed": 0}
        self._bytes_at_last_health = 0
        self.health = HealthReporter(ctx, self.pub, self.sample, channels=INTERFACE.telemetry)
        if not self.store.recovery.clean:
            r = self.store.recovery
            self.event("store_recovered", {"temp_files": len(r.temp_files_removed),
                                           "orphans": len(r.orphan_payloads_removed),
                                           "rows_without_payload": r.rows_without_payload})
        self.resume_open()
        self.log.info("downlink_started", radio=self.radio.address, stored=len(self.store),
                      relays=[r.name for r in self.plan.relays], time_scale=self.plan.time_scale,
                      telemetry=self.recorder is not None, reencode=self.reencoder is not None)

    def _links(self, s: dict[str, Any]) -> None:
        links = s["links"]
        eps = self.ctx.config.endpoints
        self.sub: Subscriber | None = None
        self.recorder: TelemetryRecorder | None = None
        tl = s["telemetry"]
        if "bus_sub" in links and tl["enabled"]:
            self.sub = Subscriber(self.ctx.zmq, eps[links["bus_sub"]], tl["topics"], self.ctx.config.bus["rcvhwm"])
            self.poller.register(self.sub.sock, zmq.POLLIN)
            self.recorder = TelemetryRecorder(self.ctx.out_dir / s["store_dir"] / tl["archive_dir"],
                                              tl["archive_bytes"], tl["segment_s"], tl["alert_flush_s"])
        self.exclude = set(tl["exclude_sources"])
        self.imaging: CommandClient | None = None
        self.forwarded: dict[int, dict[str, Any]] = {}
        if "imaging_command" in links:
            self.imaging = CommandClient(self.ctx.zmq, eps[links["imaging_command"]])
            self.poller.register(self.imaging.sock, zmq.POLLIN)

    # -- bus -----------------------------------------------------------------------------------
    def event(self, name: str, fields: dict[str, Any], severity: str | None = None) -> None:
        """Publish an event with its id and severity from the table (``severity`` overrides it)."""
        body = INTERFACE.event_fields(name, fields, severity, self.log)
        try:
            self.pub.publish(f"evt.{self.ctx.name}", "evt", body)
        except BusError as exc:  # a bad event must not end the process; the log keeps it
            self.log.error("event_not_published", event_name=name, reason=str(exc))
        log = self.log.warning if body["severity"] != "info" else self.log.info
        log(name, **fields)

    def limited_event(self, name: str, fields: dict[str, Any]) -> None:
        """At most one such event per second, carrying how many were folded into it."""
        now = self.ctx.monotonic()
        self._suppressed[name] = self._suppressed.get(name, 0) + 1
        if now - self._last_event.get(name, -math.inf) >= _EVENT_PERIOD_S:
            self._last_event[name] = now
            self.event(name, {**fields, "count": self._suppressed.pop(name)})

    def reset_counters(self) -> None:
        for k in ("products_rejected", "segments_rejected", "datagrams_rejected", "transactions_failed"):
            self.c[k] = 0

    def sample(self) -> dict[str, Any]:
        sent = self.tx.c["bytes_sent"]
        rate = (sent - self._bytes_at_last_health) * 8
        self._bytes_at_last_health = sent
        flying = self.tx.in_flight()
        oldest = self.store.oldest_created(PRODUCT_KINDS)
        contact = self.tx.contact
        out = {**self.c, **self.tx.c, "queue_depth": len(self.store), "store_bytes": self.store.total_bytes(),
               "store_fill": round(self.store.total_bytes() / self.store.quota_bytes, 4),
               **{f"queue_{k}": v for k, v in self.store.depth_by_class().items()},
               "in_flight": ",".join(flying), "bytes_in_flight": sum(p.size for p in map(self.store.get, flying) if p),
               "oldest_unconfirmed_s": None if oldest is None else round(self.ctx.clock() - oldest, 1),
               "contact": contact.relay if contact else "", "contact_rate_bps": contact.rate_bps if contact else 0,
               **{k: v for k, v in self.tx.counters().items()
                  if k in ("retransmit_requests", "file_bytes_sent", "resume_skipped_bytes")},
               "send_rate_bps": rate,
               "commands_accepted": self.commands.accepted, "commands_rejected": self.commands.rejected}
        if self.reencoder is not None:
            out.update(self.reencoder.c, reencode_backlog=self.store.reencode_backlog(REENCODE_KINDS,
                                                                                      self.reencoder.tag))
        if self.recorder is not None:
            out.update({f"tlm_{k}": v for k, v in self.recorder.c.items()})
        return out

    # -- the loop ------------------------------------------------------------------------------
    def turn(self) -> None:
        self.poller.poll(max(1, math.ceil(self.tx.wait_s() * 1000)))
        self.take_products()
        self.take_telemetry()
        self.receive()
        self.commands.poll(0)
        self.take_forwarded_replies()
        self.tx.update_contact()
        self.tx.run_timers()
        self.settle()
        self.start_next()
        self.tx.send(self.ctx.stop.is_set)
        self.record_progress()
        self.reencode_step()
        self.report_evictions()
        self.health.tick()

    def take_products(self) -> None:
        for _ in range(_PRODUCTS_PER_TURN):
            try:
                frames = self.pull.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                head, data, product = parse_product_message(frames)
                stored = self.store.add(head["id"], head["kind"], data, score=_score(head),
                                        requested=head.get("requested") is True,
                                        codec=codec_tag(product.codec, product.codec_params),
                                        priority=head["priority"] if isinstance(head.get("priority"), str) else "")
            except (ProductError, StoreError) as exc:
                self.c["products_rejected"] += 1
                self.event("product_rejected", {"reason": str(exc)})
                continue
            self.c["products_stored"] += 1
            self.event("product_stored", {"id": stored.id, "product_kind": stored.kind, "bytes": stored.size,
                                          "class": stored.cls})

    def take_telemetry(self) -> None:
        if self.sub is None or self.recorder is None:
            return
        now = self.ctx.monotonic()
        for _ in range(_BUS_MESSAGES_PER_TURN):
            msg = self.sub.recv(timeout_ms=0)
            if msg is None:
                break
            h = msg.header
            if h.src in self.exclude or (h.src == self.ctx.name and h.fields.get("severity") == "info"):
                continue
            self.recorder.add(h.t, msg.topic, h.src, h.fields, now)
        for seg in self.recorder.due(now, self.tx.contact is not None):
            try:
                self.store_segment(seg)
            except StoreError as exc:
                self.c["segments_rejected"] += 1
                self.limited_event("segment_rejected", {"id": seg.id, "reason": str(exc)})

    def store_segment(self, seg: Segment) -> None:
        self.store.add(seg.id, seg.kind, seg.data, score=0.0)
        self.c["segments_stored"] += 1

    def take_forwarded_replies(self) -> None:
        while self.imaging is not None and self.forwarded:
            reply = self.imaging.recv(0)
            if reply is None:
                return
            if reply.status in ("completed", "failed", "rejected"):
                req = self.forwarded.pop(reply.id, {})
                ok = reply.status == "completed"
                self.event("region_request_done" if ok else "region_request_failed",
                           {**req, "status": reply.status, "reason": reply.reason,
                            "result": reply.result})

    def receive(self) -> None:
        for _ in range(_DATAGRAMS_PER_TURN):
            got = self.radio.recv()
            if got is None:
                return
            self.c["packets_received"] += 1
            try:
                packet = unwrap(got[0], require_crc=True)
            except ProtocolError as exc:
                self.c["datagrams_rejected"] += 1
                self.limited_event("datagram_rejected", {"reason": str(exc), "bytes": len(got[0])})
                continue
            self.tx.insert(packet.pdu)

    def settle(self) -> None:
        for out in self.tx.outcomes():
            self.store.transaction_closed(out.transaction)
            if out.delivered:
                self.retry_after.pop(out.product_id, None)
                item = self.store.get(out.product_id)
                if self.store.confirm(out.product_id):
                    self.c["products_confirmed"] += 1
                    self.event("product_confirmed", {"id": out.product_id, "transaction": out.transaction,
                                                     "product_kind": item.kind if item else ""})
                self.tx.abort(out.product_id, "confirmed by a late Finished")
                continue
            if out.product_id in self.store:
                self.store.set_state(out.product_id, "stored")
                self.c["transactions_failed"] += 1
                self.retry_after[out.product_id] = self.ctx.monotonic() + _RETRY_BACKOFF_S
                self.event("transaction_failed", {"id": out.product_id, "transaction": out.transaction,
                                                  "reason": out.reason})

    def resume_open(self) -> None:
        """After a restart: each transaction that was in flight goes on from its recorded progress, with
        the same transaction number, so the ground (which journals what it holds) NAKs only what it lacks."""
        for ot in self.store.open_transactions():
            item = self.store.get(ot.product_id)
            try:
                resumed = item is not None and self.tx.resume(ot.product_id, item.path, ot.apid, ot.seq,
                                                              ot.suffix, ot.progress, ot.eof_sent)
            except Exception as exc:  # the payload cannot be read: it goes again fresh, or is discarded then
                self.log.warning("transaction_not_resumed", id=ot.product_id, transaction=ot.seq,
                                 reason=f"{type(exc).__name__}: {exc}")
                resumed = False
            if not resumed:
                self.store.transaction_closed(ot.seq)  # it goes again in a fresh transaction
                continue
            self.store.set_state(ot.product_id, "sending")
            self.c["transactions_resumed"] += 1
            self.log.info("transaction_resumed", id=ot.product_id, transaction=ot.seq, progress=ot.progress,
                          eof_sent=ot.eof_sent, bytes=ot.size)

    def record_progress(self) -> None:
        for cp in self.tx.checkpoints():
            try:
                self.store.transaction_progress(cp.seq, cp.progress, cp.eof_sent)
            except StoreError as exc:  # only costs resends after a crash
                self.limited_event("progress_not_recorded", {"transaction": cp.seq, "reason": str(exc)})

    def start_next(self) -> None:
        while self.tx.can_start():
            now = self.ctx.monotonic()
            waiting = {pid for pid, t in self.retry_after.items() if t > now} | set(self.tx.in_flight())
            item = self.store.next(exclude=waiting)
            if item is None:
                return
            apid = apid_for_kind(item.kind)
            try:
                suffix = ".tlm" if item.kind in SEGMENT_KINDS else ".prod"
                seq = self.store.begin_transaction(item.id, apid, suffix)
                self.tx.start(item.id, item.path, apid, seq, suffix)
            except Exception as exc:  # the payload vanished or cannot be read: nothing can send it
                self.store.confirm(item.id)
                self.event("product_discarded", {"id": item.id, "reason": f"{type(exc).__name__}: {exc}"})
                continue
            self.store.set_state(item.id, "sending")
            self.log.info("transaction_started", id=item.id, transaction=seq, cls=item.cls, bytes=item.size,
                          in_flight=len(self.tx.in_flight()))

    def reencode_step(self) -> None:
        r = self.reencoder
        if r is None:
            return
        result = r.poll()
        if result is not None:
            item = self.store.get(result.id)
            if result.error:
                r.c["reencode_failed"] += 1
                self.event("reencode_failed", {"id": result.id, "reason": result.error})
            elif result.data is None:
                r.c["reencode_not_smaller"] += 1
            elif item is not None and item.gen == result.gen and self.store.replace_payload(
                    result.id, result.data, r.tag):
                r.c["reencoded"] += 1
                r.c["reencode_bytes_saved"] += item.size - len(result.data)
            if item is not None:
                self.store.mark_reencoded(result.id)
        if r.busy is None:
            for cand in self.store.reencode_candidates(REENCODE_KINDS, r.tag, 1):
                r.offer(cand.id, cand.gen, cand.path)

    def report_evictions(self) -> None:
        for v in self.store.evicted:
            self.c["products_evicted"] += 1
            self.event("product_evicted", {"id": v.id, "product_kind": v.kind, "class": v.cls, "score": v.score,
                                           "bytes": v.size, "reason": "store over quota"})
        self.store.evicted.clear()

    def close(self) -> None:
        self.health.tick(force=True)
        closers = [self.commands.close, self.pull.close, self.radio.close, self.store.close, self.pub.close]
        if self.reencoder is not None:
            closers.insert(0, self.reencoder.close)
        if self.sub is not None:
            closers.append(self.sub.close)
        if self.imaging is not None:
            closers.append(self.imaging.close)
        for closer in closers:
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
