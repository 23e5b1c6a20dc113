"""Store and forward: what the downlink decides, fed messages, datagrams and clocks. No sockets.

A product (:meth:`Forwarder.take_product`) is stored (fsync) and announced
(``product_stored``) before anything else happens to it. Bus housekeeping,
events and command verification (:meth:`Forwarder.record`) become CCSDS TM
packets (:mod:`fsw.downlink.tm`): while a contact is open they go out at once
(realtime datagrams, through the transmitter's pacing, ahead of CFDP), and all
of them are batched into segments (:mod:`fsw.downlink.recorder`) stored and
sent like products, the reliable copy. :meth:`Forwarder.step`
runs the :class:`~fsw.downlink.transmitter.Transmitter` while a contact of the
plan is open: the policy's next items start, several transactions in flight,
and go out through the injected radio; datagrams from the relay come in through
:meth:`Forwarder.take_datagram`: a CFDP PDU goes to its transaction, a TC
space packet to command ingest (the injected ``tc_sink``, never waiting: one
ingest does not take now is dropped, counted and reported; the ground sends
it again), anything else is refused. An item the ground confirms is deleted
(``product_confirmed``); a failed transaction leaves it stored, to go again
after a back-off. After a restart, each transaction that was in flight goes on
from its recorded progress. The injected re-encoder improves waiting lossless
products in the background.

A store that refuses writes (a full disk) costs nothing it was given: what
cannot be written waits in a :class:`~fsw.downlink.backlog.Backlog` (the
product taken, the ground's confirmations, telemetry segments), no more
products are taken meanwhile (:meth:`Forwarder.accepting_products`: the
process stops reading its products port, back-pressure) and everything goes on
by itself when the store takes writes again. Every store call of a turn is
guarded, so no store error ends the process; a damaged index is rebuilt. Payload
integrity (the start-up scrub, the check before sending, what a corrupt payload or
a ground refusal leads to) is :class:`~fsw.downlink.integrity.Integrity`'s.

With ``fec.enabled``, a product goes as a coded transaction (:mod:`link.fec`): its coded file, K source
and R repair RaptorQ symbols with R from the transmitter's running loss estimate, is written to the
:class:`~fsw.downlink.spool.Spool` and sent instead; the coding rides in the recorded suffix, so a
resumed transaction rebuilds the same file. During a contact no product starts whose (coded) file
cannot leave before the window closes while another in policy order can (a thumbnail, say); if none
can, the policy's choice starts anyway (its bytes count, the rest follows next pass).

The process adapter (:mod:`fsw.downlink.process`) owns the sockets and the
loop and hands everything here; the command handlers (:mod:`fsw.downlink.commands`)
act on this object too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

from framework.bus.message import Message
from framework.counters import saturating_add
from framework.errors import CommandRejected, NotSent, ProductError, ProtocolError, StoreError
from framework.reporters import EventReporter
from fsw.downlink.backlog import Backlog
from fsw.downlink.integrity import REFUSAL_CONDITIONS, Integrity
from fsw.downlink.messages import parse_product_message, score_of
from fsw.downlink.payload import remake_args
from fsw.downlink.policy import Policy
from fsw.downlink.recorder import Segment, TelemetryRecorder
from fsw.downlink.reencoder import REENCODE_KINDS, Reencoder
from fsw.downlink.spool import Spool
from fsw.downlink.store import IndexCorrupt, ProductStore, StoredProduct, StoreUnavailable
from fsw.downlink.tm import RealtimeQueue, TmPacketizer, UnknownSource, classify_uplink
from fsw.downlink.transmitter import Transmitter
from fsw.imaging.codecs import codec_tag
from fsw.imaging.product import PRODUCT_KINDS
from link.contacts import ContactClock, load_plan
from link.dictionary import Dictionary
from link.fec import LATE_TARGET, Coding, FecError, coding_for
from link.filestore import PRODUCT_SUFFIX, SEGMENT_SUFFIX
from link.mib import CfdpTimers
from link.packets import apid_for_kind, received_pdu
from link.radio import Radio
from link.tlm_segments import SEGMENT_KINDS
from link.tmtc import MAX_TC_BYTES

__all__ = ["Forwarder", "RegionSender", "ERROR_COUNTERS"]

RETRY_BACKOFF_S = 2.0
"""A product whose transaction failed waits this long before it may start again."""
ERROR_COUNTERS = ("products_rejected", "segments_rejected", "datagrams_rejected", "transactions_failed",
                  "store_faults", "products_corrupt", "products_refused", "tc_dropped", "tm_unknown_source",
                  "tm_unencodable")
"""What RESET_COUNTERS zeroes (the running totals of what was stored and confirmed stay)."""
FIT_CANDIDATES = 16
"""How many items in policy order the window-fit rule looks at for one that can leave before the close."""
MAX_REGION_REQUESTS = 64
"""SEND_REGION requests forwarded to imaging and not yet answered, at most: beyond it the oldest is given up
(a region_request_failed event says so), so a silent imaging core cannot grow the table."""


class RegionSender(Protocol):
    """The imaging core's command port as SEND_REGION needs it (a CommandClient)."""

    def send(self, cmd: str, args: dict[str, Any] | None = None) -> int: ...


class Forwarder:
    """The downlink's state and decisions; every call returns at once.

    ``settings``: the ``fsw.downlink`` kind's keys; ``where``: the config file, for error messages;
    ``name``: this process's bus name (its own info events are not recorded); ``record_telemetry``:
    whether bus telemetry reaches :meth:`record` (the process subscribes only then); ``dictionary``:
    the APID of each source (:mod:`link.dictionary`; without one no message becomes a TM packet);
    ``tc_sink(packet) -> bool``: hands a TC packet to command ingest at once, False if ingest does not
    take it now (None: no ingest configured, every TC packet is dropped).
    """

    def __init__(self, settings: dict[str, Any], out_dir: Path, where: str, name: str, radio: Radio,
                 events: EventReporter, log: Any, clock: Callable[[], float], monotonic: Callable[[], float],
                 record_telemetry: bool = False, imaging: RegionSender | None = None,
                 reencoder: Reencoder | None = None, dictionary: Dictionary | None = None,
                 tc_sink: Callable[[bytes], bool] | None = None) -> None:
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
                              ContactClock(self.plan, clock), self._transaction, s["max_in_flight"],
                              reject=self.events.limited, realtime=RealtimeQueue(s["max_packet_len"]),
                              initial_loss=s["fec"]["initial_loss"])
        self.fec = bool(s["fec"]["enabled"])
        self.spool: Spool | None = None
        if self.fec:
            try:
                self.spool = Spool(self.store.root.parent / f"{self.store.root.name}_spool")
            except OSError as exc:  # no room for coded files: products go plain
                self.fec = False
                self.log.warning("coding_disabled", reason=f"spool: {type(exc).__name__}: {exc}")
        self.packetizer = TmPacketizer(dictionary if dictionary is not None else Dictionary([]))
        self.tc_sink = tc_sink
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
                  "transactions_failed": 0, "transactions_resumed": 0, "tc_forwarded": 0, "tc_dropped": 0,
                  "tm_unknown_source": 0, "tm_unencodable": 0, "fec_started_fitting": 0, "fec_spool_errors": 0}
        self._bytes_at_last_health = 0
        self._figures: dict[str, Any] = {}  # the store's last figures, for health while it cannot be read
        self.backlog = Backlog(events, monotonic)
        self.integrity = Integrity(self.store, events, log, self.tx.abort, self.remake)
        self.resumed = False  # the transactions open at the last stop have been taken up again
        if self.store.ready:
            self.store_opened()
        else:
            self.backlog.fault("open the store", StoreUnavailable(self.store.fault))

    # -- health --------------------------------------------------------------------------------
    def reset_counters(self) -> None:
        for k in ERROR_COUNTERS:
            self.c[k] = 0
        self.integrity.c = dict.fromkeys(self.integrity.c, 0)
        self.backlog.faults = 0

    def sample(self) -> dict[str, Any]:
        sent = self.tx.c["bytes_sent"]
        rate = (sent - self._bytes_at_last_health) * 8
        self._bytes_at_last_health = sent
        flying = self.tx.in_flight()
        contact = self.tx.contact
        out = {**self.c, **self.tx.c, **self.store_figures(flying), "in_flight": ",".join(flying),
               "contact": contact.relay if contact else "", "contact_rate_bps": contact.rate_bps if contact else 0,
               **{k: v for k, v in self.tx.counters().items()
                  if k in ("retransmit_requests", "file_bytes_sent", "resume_skipped_bytes", "finished_refused",
                           "naks_refused", "coded_transactions", "coded_naks_measured", "coded_resend_symbols",
                           "coded_naks_answered_in_full")},
               "fec_loss_estimate": round(self.tx.loss.value, 4),
               "send_rate_bps": rate, "tm_realtime_dropped": self.tx.realtime.dropped, "store_ok": int(self.backlog.ok and self.store.ready),
               "store_faults": self.backlog.faults, **self.backlog.figures(), **self.integrity.c,
               **self.integrity.scrub_figures()}
        if self.reencoder is not None:
            out.update(self.reencoder.c)
        if self.recorder is not None:
            out.update({f"tlm_{k}": v for k, v in self.recorder.c.items()})
        return out

    def queue_depth(self) -> int | None:
        """Items stored, or None while the store cannot be read (for the process's log lines)."""
        try:
            return len(self.store)
        except StoreError:
            return None

    def store_figures(self, flying: list[str]) -> dict[str, Any]:
        """What health says of the store; the last figures read while it cannot be read."""
        try:
            oldest = self.store.oldest_created(PRODUCT_KINDS)
            total = self.store.total_bytes()
            figures = {"queue_depth": len(self.store), "store_bytes": total,
                       "store_fill": round(total / self.store.quota_bytes, 4) if self.store.quota_bytes else 0.0,
                       **{f"queue_{k}": v for k, v in self.store.depth_by_class().items()},
                       "bytes_in_flight": sum(p.size for p in map(self.store.get, flying) if p),
                       "oldest_unconfirmed_s": None if oldest is None else round(self.clock() - oldest, 1)}
            if self.reencoder is not None:
                figures["reencode_backlog"] = self.store.reencode_backlog(REENCODE_KINDS, self.reencoder.tag)
        except StoreError:
            return self._figures
        self._figures = figures
        return figures

    # -- what comes in -------------------------------------------------------------------------
    def accepting_products(self) -> bool:
        """Whether the process should read its products port: not while a product waits for the store
        (what imaging pushes meanwhile stays in imaging's bounded queue, handled by its policy)."""
        return not self.backlog.products and self.store.ready

    def take_product(self, frames: list[Any]) -> None:
        """A products message from imaging: stored and announced, rejected with the reason, or held
        (the store cannot write now) until the store takes it."""
        try:
            head, data, product = parse_product_message(frames)
        except ProductError as exc:
            self.c["products_rejected"] += 1
            self.events.emit("product_rejected", {"reason": str(exc)})
            return
        args = {"product_id": head["id"], "kind": head["kind"], "data": data, "score": score_of(head),
                "requested": head.get("requested") is True, "codec": codec_tag(product.codec, product.codec_params),
                "priority": head["priority"] if isinstance(head.get("priority"), str) else "",
                "remake": remake_args(product)}
        if self.backlog.products:  # earlier ones wait for the store: keep the order
            self.backlog.products.append(args)
            return
        self.store_product(args)

    def store_product(self, args: dict[str, Any], held: bool = False) -> bool:
        """Store one product (ProductStore.add arguments); False if the store refused: it waits in the
        backlog (already there if ``held``)."""
        try:
            stored = self.store.add(**args)
        except (StoreUnavailable, IndexCorrupt) as exc:
            if not held:
                self.backlog.products.append(args)
            self.store_fault("store a product", exc)
            return False
        except StoreError as exc:  # the policy's answer (no room by quota, a duplicate): final
            self.c["products_rejected"] += 1
            self.events.emit("product_rejected", {"id": args["product_id"], "reason": str(exc)})
            return True
        self.c["products_stored"] += 1
        self.events.emit("product_stored", {"id": stored.id, "product_kind": stored.kind, "bytes": stored.size,
                                            "class": stored.cls})
        return True

    def record(self, msg: Message) -> None:
        """A bus message as a TM packet: recorded, and sent at once while a contact is open. The
        ground's own messages and this process's info events are not."""
        h = msg.header
        if self.recorder is None or h.src in self.exclude or (
                h.src == self.name and h.fields.get("severity") == "info"):
            return
        try:
            item = self.packetizer.packet(msg)
        except UnknownSource as exc:
            self.count("tm_unknown_source")
            self.events.limited("tm_dropped", {"src": h.src, "topic": msg.topic, "reason": str(exc)})
            return
        except (KeyError, ValueError, TypeError, ProtocolError) as exc:  # fields the packet cannot carry
            self.count("tm_unencodable")
            self.events.limited("tm_dropped", {"src": h.src, "topic": msg.topic,
                                               "reason": f"not encodable: {type(exc).__name__}: {exc}"})
            return
        if item is None:
            return
        self.recorder.add(item.data, item.alert, self.monotonic())
        if self.tx.contact is not None:
            self.tx.realtime.put(item.data, item.alert)

    def count(self, name: str, n: int = 1) -> None:
        self.c[name] = saturating_add(self.c[name], n)

    def flush_telemetry(self) -> None:
        """Store the segments the recorder has closed (events quickly, housekeeping per period)."""
        if self.recorder is None:
            return
        for seg in self.recorder.due(self.monotonic(), self.tx.contact is not None):
            dropped = self.backlog.keep_segment(seg)
            if dropped is not None:
                self.c["segments_rejected"] += 1
                self.events.limited("segment_rejected", {"id": dropped.id, "reason": "held too long: the store "
                                                         "cannot write and the backlog is full"})
        if self.recorder.archive_error:
            self.store_fault("archive telemetry", StoreUnavailable(self.recorder.archive_error))
            self.recorder.archive_error = ""
        if self.backlog.ok:
            self.save_segments()

    def save_segments(self) -> None:
        """Store the held segments, oldest first; stop at the first refusal (they wait)."""
        while self.backlog.segments:
            seg = self.backlog.segments[0]
            try:
                self.store_segment(seg)
            except (StoreUnavailable, IndexCorrupt) as exc:
                self.store_fault("store a telemetry segment", exc)
                return
            except StoreError as exc:  # no room by quota: final
                self.c["segments_rejected"] += 1
                self.events.limited("segment_rejected", {"id": seg.id, "reason": str(exc)})
            self.backlog.segments.popleft()

    def store_segment(self, seg: Segment) -> None:
        self.store.add(seg.id, seg.kind, seg.data, score=0.0)
        self.c["segments_stored"] += 1

    def take_datagram(self, datagram: bytes) -> None:
        """A datagram from the relay: a CFDP PDU to the transaction that owns it, a TC packet to
        ingest, anything else refused (counted, reported)."""
        kind = classify_uplink(datagram)
        if kind == "cfdp":
            pdu = received_pdu(datagram, self.c, self.events.limited)
            if pdu is not None:
                self.tx.insert(pdu)
            return
        self.count("packets_received")
        if kind == "tc":
            self.take_tc(datagram)
            return
        self.count("datagrams_rejected")
        first = f"first byte {datagram[0]:#04x}" if datagram else "empty"
        self.events.limited("datagram_rejected", {"reason": f"neither a CFDP PDU nor a TC packet ({first})",
                                                  "bytes": len(datagram)})

    def take_tc(self, datagram: bytes) -> None:
        """A TC space packet, copied, to ingest; never waits (a TC ingest does not take now is dropped:
        the ground sends it again when no verification comes back)."""
        if len(datagram) > MAX_TC_BYTES:
            self.count("datagrams_rejected")
            self.events.limited("datagram_rejected", {"reason": f"TC packet of {len(datagram)} bytes is over "
                                                      f"{MAX_TC_BYTES}", "bytes": len(datagram)})
            return
        if self.tc_sink is None:
            reason = "no uplink endpoint: this downlink has no command ingest"
        elif self.tc_sink(bytes(datagram)):
            self.count("tc_forwarded")
            return
        else:
            reason = "command ingest is not taking packets now"
        self.count("tc_dropped")
        self.events.limited("tc_dropped", {"reason": reason, "bytes": len(datagram)})

    # -- SEND_REGION, forwarded to imaging -----------------------------------------------------
    def forward_region(self, request: dict[str, Any]) -> int:
        """Send MAKE_ROI to imaging (``imaging`` must be set); return the forwarded command's id. Never waits:
        CommandRejected if imaging's port is not taking commands now."""
        assert self.imaging is not None, "SEND_REGION checks the imaging link first"
        if len(self.forwarded) >= MAX_REGION_REQUESTS:
            oldest = next(iter(self.forwarded))
            self.events.emit("region_request_failed", {**self.forwarded.pop(oldest), "status": "unanswered",
                                                       "reason": "no answer from imaging", "result": None})
        try:
            cid = self.imaging.send("MAKE_ROI", request)
        except NotSent as exc:  # imaging is down or not reading: refuse now rather than wait
            raise CommandRejected(f"SEND_REGION not forwarded: {exc}") from None
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
        """Everything after the inputs, in order: contact, timers, the store's recovery, outcomes, new
        transactions, sending, progress, re-encoding, the scrub, evictions. ``stop``: ends the sending
        early when the process stops. No store error leaves here: each is reported and tried again."""
        self.tx.update_contact()
        self.tx.run_timers()
        self.guarded(self.heal_store)
        if self.store.ready:
            self.guarded(self.resume_open)
            self.guarded(self.settle)
            if self.backlog.ok:
                self.guarded(self.start_next)
        self.tx.send(stop)
        self.guarded(self.record_progress)
        if self.store.ready:
            self.guarded(self.reencode_step)
            self.guarded(self.integrity.scrub_step)
        self.report_evictions()

    def wait_s(self) -> float:
        """How long the loop may wait for input before the transmitter wants to run again."""
        return self.tx.wait_s()

    # -- the store's faults --------------------------------------------------------------------
    def guarded(self, part: Callable[[], None]) -> None:
        """Run one part of a turn; a store error is reported and the turn goes on."""
        try:
            part()
        except (StoreUnavailable, IndexCorrupt) as exc:
            self.store_fault(part.__name__, exc)
        except StoreError as exc:  # a store refusal no part expects: reported, never fatal
            self.events.limited("store_unavailable", {"op": part.__name__, "reason": str(exc)})

    def store_fault(self, op: str, exc: StoreError) -> None:
        """The store refused: hold on and try again later; a damaged index is rebuilt now."""
        self.backlog.fault(op, exc)
        if isinstance(exc, IndexCorrupt):
            try:
                self.store.reopen()
            except StoreUnavailable as again:
                self.backlog.fault("reopen the store", again)
                return
            self.store_opened()

    def heal_store(self) -> None:
        """While the store refuses: every RETRY_S, open it if it is not, then write what waits (the
        ground's confirmations first: they free space), then a probe if nothing waited."""
        if not self.backlog.due():
            return
        if not self.store.ready:
            self.store.heal()
            self.store_opened()
        nothing_waited = self.backlog.empty
        self.confirm_pending()
        while self.backlog.products:
            if not self.store_product(self.backlog.products[0], held=True):
                return
            self.backlog.products.pop(0)
        self.save_segments()
        if nothing_waited:
            self.store.probe()
        if self.backlog.empty:
            for pid in self.tx.in_flight():
                self.store.set_state(pid, "sending")  # reopening may have reset it
            self.backlog.recovered()

    def store_opened(self) -> None:
        """The store is open (at start, after a disk refused, after a rebuild): report what opening
        found, check every payload (the scrub)."""
        r, rebuilt = self.store.recovery, self.store.rebuilt
        if rebuilt is not None:
            self.store.rebuilt = None
            if rebuilt.store_set_aside:
                self.events.emit("store_set_aside", {"reason": rebuilt.reason, "moved_to": rebuilt.store_set_aside})
            else:
                self.events.emit("index_rebuilt", {"reason": rebuilt.reason, "rows": rebuilt.rows,
                                                   "index_set_aside": rebuilt.index_set_aside,
                                                   "files_set_aside": rebuilt.files_set_aside})
        if not r.clean:
            self.events.emit("store_recovered", {"temp_files": len(r.temp_files_removed),
                                                 "orphans": len(r.orphan_payloads_removed),
                                                 "rows_without_payload": r.rows_without_payload})
        self.integrity.start_scrub()

    def _transaction(self, seq: int) -> tuple[str, int] | None:
        """The transmitter's lookup of an old transaction; unknown while the store cannot be read."""
        try:
            return self.store.transaction(seq)
        except StoreError:
            return None

    # -- outcomes ------------------------------------------------------------------------------
    def settle(self) -> None:
        for out in self.tx.outcomes():
            if self.spool is not None:
                self.spool.remove(out.transaction)
            try:
                self.store.transaction_closed(out.transaction)
            except (StoreUnavailable, IndexCorrupt) as exc:  # a restart resumes it, the ground answers it
                self.store_fault("close a transaction", exc)
            if out.delivered:
                self.retry_after.pop(out.product_id, None)
                self.backlog.confirmations[out.product_id] = out.transaction
                self.tx.abort(out.product_id, "confirmed by a late Finished")
                continue
            try:
                self.not_delivered(out.product_id, out.transaction, out.reason)
            except (StoreUnavailable, IndexCorrupt) as exc:
                self.store_fault("settle a failed transaction", exc)
        self.confirm_pending()

    def confirm_pending(self) -> None:
        """Forget what the ground confirmed; what the store cannot forget now waits (not sent again)."""
        for pid, seq in list(self.backlog.confirmations.items()):
            item = self.store.get(pid)
            gone = self.store.confirm(pid)
            self.backlog.confirmations.pop(pid)
            if not gone:
                continue
            self.integrity.refusals.pop(pid, None)
            self.c["products_confirmed"] += 1
            self.events.emit("product_confirmed", {"id": pid, "transaction": seq,
                                                   "product_kind": item.kind if item else ""})

    def not_delivered(self, product_id: str, transaction: int, reason: str) -> None:
        """A transaction ended without delivery: the item stays and goes again after a back-off; one the
        ground refused is checked and kept (:meth:`Integrity.refused`)."""
        if product_id not in self.store:
            return
        self.store.set_state(product_id, "stored")
        self.c["transactions_failed"] += 1
        if any(code in reason for code in REFUSAL_CONDITIONS):
            backoff = self.integrity.refused(product_id, transaction, reason)
            if backoff is not None:
                self.retry_after[product_id] = self.monotonic() + backoff
            return
        self.retry_after[product_id] = self.monotonic() + RETRY_BACKOFF_S
        self.events.emit("transaction_failed", {"id": product_id, "transaction": transaction, "reason": reason})

    def resume_open(self) -> None:
        """After a restart: each transaction that was in flight goes on from its recorded progress, with
        the same transaction number, so the ground (which journals what it holds) NAKs only what it lacks."""
        if self.resumed:
            return
        for ot in self.store.open_transactions():
            item = self.store.get(ot.product_id)
            try:
                path = item.path if item is not None else None
                if item is not None and Spool.coding_of(ot.suffix) is not None:
                    if self.spool is None:  # coded before a restart without coding: it goes again fresh
                        raise FecError("coding is not enabled")
                    path = self.spool.rebuild(ot.seq, item.path, ot.suffix)
                resumed = item is not None and path is not None and self.tx.resume(
                    ot.product_id, path, ot.apid, ot.seq, ot.suffix, ot.progress, ot.eof_sent)
            except Exception as exc:  # the payload cannot be read: it goes again fresh, or is discarded then
                self.log.warning("transaction_not_resumed", id=ot.product_id, transaction=ot.seq,
                                 reason=f"{type(exc).__name__}: {exc}")
                resumed = False
            if not resumed:
                self.store.transaction_closed(ot.seq)  # it goes again in a fresh transaction
                continue
            self.c["transactions_resumed"] += 1
            self.log.info("transaction_resumed", id=ot.product_id, transaction=ot.seq, progress=ot.progress,
                          eof_sent=ot.eof_sent, bytes=ot.size)
            self.store.set_state(ot.product_id, "sending")
        self.resumed = True

    def record_progress(self) -> None:
        for cp in self.tx.checkpoints():
            try:
                self.store.transaction_progress(cp.seq, cp.progress, cp.eof_sent)
            except StoreError as exc:  # only costs resends after a crash
                self.events.limited("progress_not_recorded", {"transaction": cp.seq, "reason": str(exc)})

    # -- new transactions ----------------------------------------------------------------------
    def start_next(self) -> None:
        if not self.resumed:
            return
        while self.tx.can_start():
            now = self.monotonic()
            waiting = ({pid for pid, t in self.retry_after.items() if t > now} | set(self.tx.in_flight())
                       | set(self.backlog.confirmations))
            item = self.store.next(exclude=waiting)
            if item is None:
                return
            if self.fec:
                item = self.fitting(item, waiting)
            if self.fit_to_send(item):
                self.start(item)

    def coding(self, item: StoredProduct) -> Coding | None:
        """How the item would be coded now (None: it goes plain): for the loss estimate, at the higher
        LATE_TARGET if its EOF would leave less than a round trip before the contact closes (a shortfall
        could not be made up inside the window)."""
        if not self.fec:
            return None
        coding = coding_for(item.size, self.tx.segment_len, self.tx.loss.value)
        contact = self.tx.contact
        if coding is None or contact is None:
            return coding
        eof_at = self.clock() + self.tx.send_s(coding.packets, coding.packet_len)
        if eof_at + 2 * contact.latency_ms / 1000 > contact.closes_at:
            return coding_for(item.size, self.tx.segment_len, self.tx.loss.value, LATE_TARGET)
        return coding

    def fitting(self, item: StoredProduct, waiting: set[str]) -> StoredProduct:
        """The policy's ``item`` if its file can leave before the contact closes; else the first of the
        next items in policy order that can (FIT_CANDIDATES at most); else ``item`` anyway."""
        contact = self.tx.contact
        if contact is None:
            return item
        left_s = contact.closes_at - self.clock()
        exclude = set(waiting)
        candidate: StoredProduct | None = item
        for _ in range(FIT_CANDIDATES):
            if candidate is None:
                break
            coding = self.coding(candidate)
            segments = coding.packets if coding else -(-candidate.size // self.tx.segment_len)
            length = coding.packet_len if coding else self.tx.segment_len
            if self.tx.send_s(segments, length) <= left_s:
                if candidate is not item:
                    self.c["fec_started_fitting"] += 1
                return candidate
            exclude.add(candidate.id)
            candidate = self.store.next(exclude=exclude)
        return item

    def fit_to_send(self, item: StoredProduct) -> bool:
        """Read the payload back first: a corrupt one is dealt with, a missing one discarded, an unreadable
        one waits (a failing disk may come back)."""
        try:
            return self.integrity.fit_to_send(item)
        except FileNotFoundError as exc:
            self.discard(item, exc)
        except OSError as exc:
            self.retry_after[item.id] = self.monotonic() + RETRY_BACKOFF_S
            self.store_fault("read a payload", StoreUnavailable(f"cannot read {item.id}: {exc}"))
        return False

    def start(self, item: StoredProduct) -> None:
        apid = apid_for_kind(item.kind)
        suffix = SEGMENT_SUFFIX if item.kind in SEGMENT_KINDS else PRODUCT_SUFFIX
        coding = self.coding(item)
        seq = self.store.begin_transaction(item.id, apid, suffix + (coding.suffix if coding else ""))
        # (a refusal leaves for the guard: nothing lost)
        path = item.path
        if coding is not None:
            assert self.spool is not None
            try:
                path = self.spool.write(seq, item.path, coding)
            except (OSError, FecError) as exc:  # the product changed or the disk refused: plain this time
                self.c["fec_spool_errors"] += 1
                self.log.warning("coding_failed", id=item.id, transaction=seq, reason=f"{type(exc).__name__}: {exc}")
                self.store.transaction_closed(seq)
                self.spool.remove(seq)
                seq = self.store.begin_transaction(item.id, apid, suffix)
                coding = None
            if coding is not None:
                suffix += coding.suffix
        try:
            self.tx.start(item.id, path, apid, seq, suffix)
        except Exception as exc:  # the payload vanished or cannot be read: nothing can send it
            self.store.transaction_closed(seq)
            if self.spool is not None:
                self.spool.remove(seq)
            self.discard(item, exc)
            return
        self.log.info("transaction_started", id=item.id, transaction=seq, cls=item.cls, bytes=item.size,
                      in_flight=len(self.tx.in_flight()), source=coding.source if coding else None,
                      repair=coding.repair if coding else None, loss_estimate=round(self.tx.loss.value, 4))
        self.store.set_state(item.id, "sending")

    def discard(self, item: StoredProduct, exc: Exception) -> None:
        self.store.confirm(item.id)
        self.events.emit("product_discarded", {"id": item.id, "reason": f"{type(exc).__name__}: {exc}"})

    def remake(self, args: dict[str, Any]) -> str:
        """Ask imaging for MAKE_ROI (a corrupt payload made again); what became of the request, in words."""
        if self.imaging is None:
            return "not requested: no links.imaging_command"
        try:
            cid = self.forward_region(args)
        except Exception as exc:  # the command port is not taking commands now: the event says so
            return f"not requested: {type(exc).__name__}: {exc}"
        return f"MAKE_ROI requested (command {cid}); region_request_done or _failed follows"

    def reencode_step(self) -> None:
        """The re-encoder's turn (:meth:`Reencoder.step`: the worker only gets items that will wait long
        enough by the contact plan); a failed re-encoding is reported and its payload checked."""
        if self.reencoder is None:
            return
        for result in self.reencoder.step(self.store, self.plan, self.clock(), self.log):
            self.events.emit("reencode_failed", {"id": result.id, "reason": result.error})
            item = self.store.get(result.id)
            if item is not None and item.gen == result.gen:
                self.fit_to_send(item)  # did it fail because its payload is corrupt? then that is dealt with

    def report_evictions(self) -> None:
        for v in self.store.evicted:
            self.c["products_evicted"] += 1
            self.events.emit("product_evicted", {"id": v.id, "product_kind": v.kind, "class": v.cls,
                                                 "score": v.score, "bytes": v.size, "reason": "store over quota"})
        self.store.evicted.clear()
