"""Store and forward: what the downlink decides, fed messages, datagrams and clocks. No sockets.

A product (:meth:`Forwarder.take_product`) is stored (fsync) and announced
(``product_stored``) before anything else happens to it. Bus housekeeping and
events (:meth:`Forwarder.record`) are batched into segments
(:mod:`fsw.downlink.recorder`) and stored the same way. :meth:`Forwarder.step`
runs the :class:`~fsw.downlink.transmitter.Transmitter` while a contact of the
plan is open: the policy's next items start, several transactions in flight,
and go out through the injected radio; PDUs from the ground come in through
:meth:`Forwarder.take_datagram`. An item the ground confirms is deleted
(``product_confirmed``); a failed transaction leaves it stored, to go again
after a back-off. After a restart, each transaction that was in flight goes on
from its recorded progress. The injected re-encoder improves waiting lossless
products in the background.

The process adapter (:mod:`fsw.downlink.process`) owns the sockets and the
loop and hands everything here; the command handlers (:mod:`fsw.downlink.commands`)
act on this object too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

from framework.bus.message import Message
from framework.errors import ProductError, StoreError
from framework.reporters import EventReporter
from fsw.downlink.messages import parse_product_message, score_of
from fsw.downlink.policy import Policy
from fsw.downlink.recorder import Segment, TelemetryRecorder
from fsw.downlink.reencoder import REENCODE_KINDS, Reencoder
from fsw.downlink.store import ProductStore
from fsw.downlink.transmitter import Transmitter
from fsw.imaging.codecs import codec_tag
from fsw.imaging.product import PRODUCT_KINDS
from link.contacts import ContactClock, load_plan
from link.filestore import PRODUCT_SUFFIX, SEGMENT_SUFFIX
from link.mib import CfdpTimers
from link.packets import apid_for_kind, received_pdu
from link.radio import Radio
from link.tlm_segments import SEGMENT_KINDS

__all__ = ["Forwarder", "RegionSender", "ERROR_COUNTERS"]

RETRY_BACKOFF_S = 2.0
"""A product whose transaction failed waits this long before it may start again."""
ERROR_COUNTERS = ("products_rejected", "segments_rejected", "datagrams_rejected", "transactions_failed")
"""What RESET_COUNTERS zeroes (the running totals of what was stored and confirmed stay)."""


class RegionSender(Protocol):
    """The imaging core's command port as SEND_REGION needs it (a CommandClient)."""

    def send(self, cmd: str, args: dict[str, Any] | None = None) -> int: ...


class Forwarder:
    """The downlink's state and decisions; every call returns at once.

    ``settings``: the ``fsw.downlink`` kind's keys; ``where``: the config file, for error messages;
    ``name``: this process's bus name (its own info events are not recorded); ``record_telemetry``:
    whether bus telemetry reaches :meth:`record` (the process subscribes only then).
    """

    def __init__(self, settings: dict[str, Any], out_dir: Path, where: str, name: str, radio: Radio,
                 events: EventReporter, log: Any, clock: Callable[[], float], monotonic: Callable[[], float],
                 record_telemetry: bool = False, imaging: RegionSender | None = None,
                 reencoder: Reencoder | None = None) -> None:
        s = settings
        self.name = name
        self.events = events
        self.log = log
        self.clock = clock
        self.monotonic = monotonic
        self.plan = load_plan(s, where)
        policy = Policy.from_settings(s["priority"], s["age_weight_per_h"], where)
        self.store = ProductStore(out_dir / s["store_dir"], clock=clock, policy=policy, quota_bytes=s["quota_bytes"])
        self.tx = Transmitter(s["entity_id"], s["ground_entity_id"], s["max_packet_len"],
                              CfdpTimers.from_settings(s), self.plan, radio, clock, monotonic,
                              ContactClock(self.plan, clock), self.store.transaction, s["max_in_flight"],
                              reject=self.events.limited)
        tl = s["telemetry"]
        self.recorder: TelemetryRecorder | None = None
        if record_telemetry:
            self.recorder = TelemetryRecorder(out_dir / s["store_dir"] / tl["archive_dir"], tl["archive_bytes"],
                                              tl["segment_s"], tl["alert_flush_s"])
        self.exclude = set(tl["exclude_sources"])
        self.imaging = imaging
        self.forwarded: dict[int, dict[str, Any]] = {}
        self.reencoder = reencoder
        self.retry_after: dict[str, float] = {}
        self.c = {"products_stored": 0, "products_confirmed": 0, "products_rejected": 0, "products_evicted": 0,
                  "segments_stored": 0, "segments_rejected": 0, "packets_received": 0, "datagrams_rejected": 0,
                  "transactions_failed": 0, "transactions_resumed": 0}
        self._bytes_at_last_health = 0
        if not self.store.recovery.clean:
            r = self.store.recovery
            self.events.emit("store_recovered", {"temp_files": len(r.temp_files_removed),
                                                 "orphans": len(r.orphan_payloads_removed),
                                                 "rows_without_payload": r.rows_without_payload})
        self.resume_open()

    # -- health --------------------------------------------------------------------------------
    def reset_counters(self) -> None:
        for k in ERROR_COUNTERS:
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
               "oldest_unconfirmed_s": None if oldest is None else round(self.clock() - oldest, 1),
               "contact": contact.relay if contact else "", "contact_rate_bps": contact.rate_bps if contact else 0,
               **{k: v for k, v in self.tx.counters().items()
                  if k in ("retransmit_requests", "file_bytes_sent", "resume_skipped_bytes", "finished_refused",
                           "naks_refused")},
               "send_rate_bps": rate}
        if self.reencoder is not None:
            out.update(self.reencoder.c, reencode_backlog=self.store.reencode_backlog(REENCODE_KINDS,
                                                                                      self.reencoder.tag))
        if self.recorder is not None:
            out.update({f"tlm_{k}": v for k, v in self.recorder.c.items()})
        return out

    # -- what comes in -------------------------------------------------------------------------
    def take_product(self, frames: list[Any]) -> None:
        """A products message from imaging: stored and announced, or rejected with the reason."""
        try:
            head, data, product = parse_product_message(frames)
            stored = self.store.add(head["id"], head["kind"], data, score=score_of(head),
                                    requested=head.get("requested") is True,
                                    codec=codec_tag(product.codec, product.codec_params),
                                    priority=head["priority"] if isinstance(head.get("priority"), str) else "")
        except (ProductError, StoreError) as exc:
            self.c["products_rejected"] += 1
            self.events.emit("product_rejected", {"reason": str(exc)})
            return
        self.c["products_stored"] += 1
        self.events.emit("product_stored", {"id": stored.id, "product_kind": stored.kind, "bytes": stored.size,
                                            "class": stored.cls})

    def record(self, msg: Message) -> None:
        """A bus message for the telemetry recorder; the ground's own and this process's info events are not."""
        h = msg.header
        if self.recorder is None or h.src in self.exclude or (
                h.src == self.name and h.fields.get("severity") == "info"):
            return
        self.recorder.add(h.t, msg.topic, h.src, h.fields, self.monotonic())

    def flush_telemetry(self) -> None:
        """Store the segments the recorder has closed (events quickly, housekeeping per period)."""
        if self.recorder is None:
            return
        for seg in self.recorder.due(self.monotonic(), self.tx.contact is not None):
            try:
                self.store_segment(seg)
            except StoreError as exc:
                self.c["segments_rejected"] += 1
                self.events.limited("segment_rejected", {"id": seg.id, "reason": str(exc)})

    def store_segment(self, seg: Segment) -> None:
        self.store.add(seg.id, seg.kind, seg.data, score=0.0)
        self.c["segments_stored"] += 1

    def take_datagram(self, datagram: bytes) -> None:
        """A datagram from the relay: its PDU to the transaction that owns it."""
        pdu = received_pdu(datagram, self.c, self.events.limited)
        if pdu is not None:
            self.tx.insert(pdu)

    # -- SEND_REGION, forwarded to imaging -----------------------------------------------------
    def forward_region(self, request: dict[str, Any]) -> int:
        """Send MAKE_ROI to imaging (``imaging`` must be set); return the forwarded command's id."""
        assert self.imaging is not None, "SEND_REGION checks the imaging link first"
        cid = self.imaging.send("MAKE_ROI", request)
        self.forwarded[cid] = request
        return cid

    def region_reply(self, reply: Any) -> None:
        """A reply from imaging (a CommandReply); its final one ends the forwarded request with an event."""
        if reply.status in ("completed", "failed", "rejected"):
            req = self.forwarded.pop(reply.id, {})
            ok = reply.status == "completed"
            self.events.emit("region_request_done" if ok else "region_request_failed",
                             {**req, "status": reply.status, "reason": reply.reason, "result": reply.result})

    # -- one turn ------------------------------------------------------------------------------
    def step(self, stop: Callable[[], bool]) -> None:
        """Everything after the inputs, in order: contact, timers, outcomes, new transactions, sending,
        progress, re-encoding, evictions. ``stop``: ends the sending early when the process stops."""
        self.tx.update_contact()
        self.tx.run_timers()
        self.settle()
        self.start_next()
        self.tx.send(stop)
        self.record_progress()
        self.reencode_step()
        self.report_evictions()

    def wait_s(self) -> float:
        """How long the loop may wait for input before the transmitter wants to run again."""
        return self.tx.wait_s()

    def settle(self) -> None:
        for out in self.tx.outcomes():
            self.store.transaction_closed(out.transaction)
            if out.delivered:
                self.retry_after.pop(out.product_id, None)
                item = self.store.get(out.product_id)
                if self.store.confirm(out.product_id):
                    self.c["products_confirmed"] += 1
                    self.events.emit("product_confirmed", {"id": out.product_id, "transaction": out.transaction,
                                                           "product_kind": item.kind if item else ""})
                self.tx.abort(out.product_id, "confirmed by a late Finished")
                continue
            if out.product_id in self.store:
                self.store.set_state(out.product_id, "stored")
                self.c["transactions_failed"] += 1
                self.retry_after[out.product_id] = self.monotonic() + RETRY_BACKOFF_S
                self.events.emit("transaction_failed", {"id": out.product_id, "transaction": out.transaction,
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
                self.events.limited("progress_not_recorded", {"transaction": cp.seq, "reason": str(exc)})

    def start_next(self) -> None:
        while self.tx.can_start():
            now = self.monotonic()
            waiting = {pid for pid, t in self.retry_after.items() if t > now} | set(self.tx.in_flight())
            item = self.store.next(exclude=waiting)
            if item is None:
                return
            apid = apid_for_kind(item.kind)
            try:
                suffix = SEGMENT_SUFFIX if item.kind in SEGMENT_KINDS else PRODUCT_SUFFIX
                seq = self.store.begin_transaction(item.id, apid, suffix)
                self.tx.start(item.id, item.path, apid, seq, suffix)
            except Exception as exc:  # the payload vanished or cannot be read: nothing can send it
                self.store.confirm(item.id)
                self.events.emit("product_discarded", {"id": item.id, "reason": f"{type(exc).__name__}: {exc}"})
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
                self.events.emit("reencode_failed", {"id": result.id, "reason": result.error})
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
            self.events.emit("product_evicted", {"id": v.id, "product_kind": v.kind, "class": v.cls,
                                                 "score": v.score, "bytes": v.size, "reason": "store over quota"})
        self.store.evicted.clear()
