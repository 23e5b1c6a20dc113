"""The ground station process: CFDP over CCSDS in on UDP, products out as images, telemetry into a ledger.

``run(ctx)`` binds UDP on ``radio`` and answers through ``relay``. Each
datagram is unwrapped (Space Packet, then CFDP PDU) and fed to the
destination engine (one cfdp-py DestHandler per transaction). Files land in
``<out>/<out_subdir>/incoming/``; a complete one is fsync'd and recorded in
the ledger (SQLite WAL, :mod:`ground.ledger`) before its Finished PDU
leaves. A worker thread decodes each product (CRC-32C checked) and writes
``<id>.png`` and ``<id>.json``; the main thread then publishes
``product_received`` once per product id, ever. Telemetry and event segments
(``.tlm``) go into the ledger and are announced as ``telemetry_received``.

The engine's timers run only while the contact plan has a contact open, so
an outage does not exhaust NAK limits or inactivity. On start, the transfers
the ledger's journal has open resume where their checkpoints left them (the
engine's NAKs ask only for the missing ranges), files the ledger holds but
never wrote are decoded, and other partial files are removed.
"""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import zmq
from spacepackets.ccsds.spacepacket import PacketType

from framework.process import ProcessContext
from framework.reporters import HealthReporter
from link.contacts import ContactClock, load_plan
from link.mib import CfdpTimers
from link.packets import APID_DIRECTIVE, SpacePacketWrapper, unwrap
from link.radio import RadioPort
from link.dest_engine import DestEngine, ReceivedFile
from fsw.downlink.recorder import decode_segment
from framework.errors import BusError, ProductError, ProtocolError
from ground.images import WrittenProduct, write_product
from ground.interface import INTERFACE
from ground.ledger import Ledger

__all__ = ["run", "GroundStation"]

_DATAGRAMS_PER_TURN = 1024
_EVENT_PERIOD_S = 1.0


def _id_from_name(name: str) -> str:
    """The product id in a received file name ``<transaction seq>-<id>.prod``."""
    stem = name.rsplit(".", 1)[0] if name.endswith((".prod", ".tlm")) else name
    return stem.split("-", 1)[1] if "-" in stem else stem


def _decode_and_write(path: Path, out_dir: Path) -> WrittenProduct:
    return write_product(path.read_bytes(), out_dir)


class GroundStation:
    def __init__(self, ctx: ProcessContext) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.log = ctx.log
        self.out_dir = ctx.out_dir / s["out_subdir"]
        self.incoming = self.out_dir / "incoming"
        self.plan = load_plan(s, ctx.config.file)
        self.ledger = Ledger(self.out_dir / "ledger.sqlite")
        self.engine = DestEngine(s["entity_id"], s["lander_entity_id"], s["max_packet_len"],
                                 CfdpTimers.from_settings(s), self.incoming,
                                 clock=ContactClock(self.plan, ctx.clock), on_delivered=self.ledger.file_received,
                                 journal=self.ledger)
        self.wrapper = SpacePacketWrapper(PacketType.TC)
        self.radio = RadioPort(ctx.endpoint("radio"), ctx.endpoint("relay"))
        self.pub = ctx.publisher()
        self.poller = zmq.Poller()
        self.poller.register(self.radio.fileno(), zmq.POLLIN)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ground-decode")
        self.decoding: deque[tuple[str, Path, Future[WrittenProduct]]] = deque()
        self.unsent: deque[bytes] = deque()
        self._last_event: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.c = {"products_received": 0, "products_failed": 0, "products_duplicate": 0, "transfers_failed": 0,
                  "packets_received": 0, "bytes_received": 0, "datagrams_rejected": 0, "packets_sent": 0,
                  "telemetry_records": 0, "telemetry_segments": 0, "recovered_files": 0, "partial_files_removed": 0,
                  "transfers_resumed": 0}
        self._bytes_at_last_health = 0
        self.health = HealthReporter(ctx, self.pub, self.sample, channels=INTERFACE.telemetry)
        self._recover()
        self.log.info("ground_started", radio=self.radio.address, out=str(self.out_dir),
                      relays=[r.name for r in self.plan.relays], recovered=self.c["recovered_files"],
                      resumed=self.c["transfers_resumed"], resumed_bytes=self.engine.counters["resumed_bytes"])

    def _recover(self) -> None:
        """Resume the transfers the journal has open (their partial files stay), decode what was
        confirmed but not written before a crash, drop any other partial file."""
        known = self.ledger.known_names()
        keep = known | self.ledger.open_names()
        for p in sorted(self.incoming.glob("*")) if self.incoming.exists() else []:
            if p.name not in keep:
                p.unlink(missing_ok=True)
                self.c["partial_files_removed"] += 1
        unfinished = self.ledger.unfinished()  # before restore: a transfer it completes is handed over anyway
        self.c["transfers_resumed"] = self.engine.restore(self.ledger.transfers(), delivered=known)
        for name, _size in unfinished:
            path = self.incoming / name
            if path.exists():
                self.c["recovered_files"] += 1
                self._dispatch(name, path)
            else:
                self.ledger.file_done(name, "failed")

    def event(self, name: str, fields: dict[str, Any], severity: str | None = None) -> None:
        """Publish an event with its id and severity from the table; ``severity`` overrides it for
        an event whose severity depends on the occurrence (``product_received`` that did not decode)."""
        body = INTERFACE.event_fields(name, fields, severity, self.log)
        try:
            self.pub.publish(f"evt.{self.ctx.name}", "evt", body)
        except BusError as exc:  # a bad event must not end the process; the log keeps it
            self.log.error("event_not_published", event_name=name, reason=str(exc))
        (self.log.info if body["severity"] == "info" else self.log.warning)(name, **fields)

    def limited_event(self, name: str, fields: dict[str, Any]) -> None:
        now = self.ctx.monotonic()
        self._suppressed[name] = self._suppressed.get(name, 0) + 1
        if now - self._last_event.get(name, -math.inf) >= _EVENT_PERIOD_S:
            self._last_event[name] = now
            self.event(name, {**fields, "count": self._suppressed.pop(name)})

    def sample(self) -> dict[str, Any]:
        got = self.c["bytes_received"]
        rate = (got - self._bytes_at_last_health) * 8
        self._bytes_at_last_health = got
        contact = self.plan.contact(self.ctx.clock())
        return {**self.c, "active_transactions": self.engine.active, "decode_queue": len(self.decoding),
                "receive_rate_bps": rate, "contact": contact.relay if contact else "",
                **{f"cfdp_{k}": v for k, v in self.engine.counters.items()}}

    def turn(self) -> None:
        self.poller.poll(10)
        self.receive()
        if self.plan.is_open(self.ctx.clock()):
            self.engine.tick()
        self.reply()
        self.hand_over()
        self.collect()
        self.health.tick()

    def receive(self) -> None:
        for _ in range(_DATAGRAMS_PER_TURN):
            got = self.radio.recv()
            if got is None:
                return
            self.c["packets_received"] += 1
            self.c["bytes_received"] += len(got[0])
            try:
                packet = unwrap(got[0], require_crc=True)
            except ProtocolError as exc:
                self.c["datagrams_rejected"] += 1
                self.limited_event("datagram_rejected", {"reason": str(exc), "bytes": len(got[0])})
                continue
            self.engine.insert(packet.pdu)
            self.reply()

    def reply(self) -> None:
        while True:
            raw = self.engine.pop()
            if raw is None:
                break
            self.unsent.append(self.wrapper.wrap(APID_DIRECTIVE, raw))
        while self.unsent:
            if not self.radio.send(self.unsent[0]):
                return
            self.unsent.popleft()
            self.c["packets_sent"] += 1

    def hand_over(self) -> None:
        while self.engine.received:
            rf: ReceivedFile = self.engine.received.popleft()
            if not rf.delivered:
                self.c["transfers_failed"] += 1
                self.event("transfer_failed", {"file": rf.name, "condition": rf.condition})
                continue
            self._dispatch(rf.name, rf.path)

    def _dispatch(self, name: str, path: Path) -> None:
        if name.endswith(".tlm"):
            self._take_telemetry(name, path)
            return
        self.decoding.append((name, path, self.worker.submit(_decode_and_write, path, self.out_dir)))

    def _take_telemetry(self, name: str, path: Path) -> None:
        try:
            body = decode_segment(path.read_bytes())
        except (ProtocolError, OSError) as exc:
            self.ledger.file_done(name, "failed")
            self.event("telemetry_failed", {"file": name, "reason": str(exc)})
            return
        new = self.ledger.add_telemetry(body["records"])
        self.ledger.file_done(name, "written")
        path.unlink(missing_ok=True)
        self.c["telemetry_segments"] += 1
        self.c["telemetry_records"] += new
        self.event("telemetry_received", {"id": _id_from_name(name), "segment_kind": body["kind"],
                                          "records": len(body["records"]), "new_records": new,
                                          "t0": body["t0"], "t1": body["t1"]})

    def collect(self) -> None:
        while self.decoding and self.decoding[0][2].done():
            name, path, fut = self.decoding.popleft()
            try:
                w = fut.result()
            except (ProductError, OSError) as exc:
                self.ledger.file_done(name, "failed")
                self.c["products_failed"] += 1
                self.event("product_failed", {"file": name, "raw": str(path), "reason": str(exc)})
                self.event("product_received", {"id": _id_from_name(name), "product_kind": "", "crc32c": 0,
                                                "ok": False, "reason": str(exc)}, "error")
                continue
            first = self.ledger.product_written(w.id, w.kind, w.crc32c, w.product_bytes)
            self.ledger.file_done(name, "written")
            path.unlink(missing_ok=True)
            if not first:
                self.c["products_duplicate"] += 1
                continue
            self.c["products_received"] += 1
            self.event("product_received", {"id": w.id, "product_kind": w.kind, "crc32c": w.crc32c, "ok": True,
                                            "bytes": w.product_bytes})

    def close(self) -> None:
        self.worker.shutdown(wait=True)
        self.collect()
        self.health.tick(force=True)
        self.engine.filestore.close()
        self.radio.close()
        self.pub.close()
        self.ledger.close()


def run(ctx: ProcessContext) -> None:
    """Entry point of kind ``ground.station``; returns when ``ctx.stop`` is set."""
    station = GroundStation(ctx)
    try:
        while not ctx.stop.is_set():
            station.turn()
    finally:
        ctx.log.info("ground_stopping", received=station.c["products_received"])
        station.close()
