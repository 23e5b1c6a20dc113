"""The ground station process: CFDP over CCSDS in on UDP, products out as images and sidecars.

``run(ctx)`` binds UDP on ``radio`` and answers through ``relay``. Each
datagram is unwrapped (Space Packet, then CFDP PDU) and fed to the
destination engine (one cfdp-py DestHandler per transaction). Files land in
``<out>/<out_subdir>/incoming/`` and are fsync'd before the Finished PDU
leaves. A worker thread decodes each complete file (CRC-32C checked) and
writes ``<out>/<out_subdir>/<id>.png`` and ``<id>.json``; the main thread then
publishes ``product_received``. A file that does not decode is kept and
reported (``product_failed``).
"""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import zmq
from spacepackets.ccsds.spacepacket import PacketType

from fsw.app.process import HealthReporter, ProcessContext
from fsw.downlink.mib import CfdpTimers
from fsw.downlink.packets import APID_DIRECTIVE, SpacePacketWrapper, unwrap
from fsw.downlink.radio import RadioPort
from fsw.downlink.receiver import DestEngine, ReceivedFile
from fsw.errors import BusError, ProductError, ProtocolError
from fsw.ground.images import WrittenProduct, write_product

__all__ = ["run", "GroundStation"]

_DATAGRAMS_PER_TURN = 1024
_EVENT_PERIOD_S = 1.0


def _id_from_name(name: str) -> str:
    """The product id in a received file name ``<transaction seq>-<id>.prod``."""
    stem = name[:-5] if name.endswith(".prod") else name
    return stem.split("-", 1)[1] if "-" in stem else stem


def _decode_and_write(received: ReceivedFile, out_dir: Path) -> WrittenProduct:
    raw = received.path.read_bytes()
    written = write_product(raw, out_dir)
    received.path.unlink(missing_ok=True)
    return written


class GroundStation:
    def __init__(self, ctx: ProcessContext) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.log = ctx.log
        self.out_dir = ctx.out_dir / s["out_subdir"]
        self.engine = DestEngine(s["entity_id"], s["lander_entity_id"], s["max_packet_len"],
                                 CfdpTimers.from_settings(s), self.out_dir / "incoming", clock=ctx.monotonic)
        self.wrapper = SpacePacketWrapper(PacketType.TC)
        self.radio = RadioPort(ctx.endpoint("radio"), ctx.endpoint("relay"))
        self.pub = ctx.publisher()
        self.poller = zmq.Poller()
        self.poller.register(self.radio.fileno(), zmq.POLLIN)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ground-decode")
        self.decoding: deque[tuple[ReceivedFile, Future[WrittenProduct]]] = deque()
        self.unsent: deque[bytes] = deque()
        self.written: dict[str, int] = {}
        self._last_event: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.c = {"products_received": 0, "products_failed": 0, "products_duplicate": 0, "transfers_failed": 0,
                  "packets_received": 0, "bytes_received": 0, "datagrams_rejected": 0, "packets_sent": 0}
        self._bytes_at_last_health = 0
        self.health = HealthReporter(ctx, self.pub, self.sample)
        self.log.info("ground_started", radio=self.radio.address, rcvbuf=self.radio.rcvbuf, out=str(self.out_dir))

    def event(self, name: str, fields: dict[str, Any], severity: str = "warning") -> None:
        try:
            self.pub.publish(f"evt.{self.ctx.name}", "evt", {"name": name, "severity": severity, **fields})
        except BusError as exc:  # a bad event must not end the process; the log keeps it
            self.log.error("event_not_published", event=name, reason=str(exc))
        (self.log.info if severity == "info" else self.log.warning)(name, **fields)

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
        return {**self.c, "active_transactions": self.engine.active, "decode_queue": len(self.decoding),
                "receive_rate_bps": rate, **{f"cfdp_{k}": v for k, v in self.engine.counters.items()}}

    def turn(self) -> None:
        self.poller.poll(10)
        self.receive()
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
                packet = unwrap(got[0])
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
            rf = self.engine.received.popleft()
            if not rf.delivered:
                self.c["transfers_failed"] += 1
                self.event("transfer_failed", {"file": rf.name, "condition": rf.condition})
                continue
            self.decoding.append((rf, self.worker.submit(_decode_and_write, rf, self.out_dir)))

    def collect(self) -> None:
        while self.decoding and self.decoding[0][1].done():
            rf, fut = self.decoding.popleft()
            try:
                w = fut.result()
            except (ProductError, OSError) as exc:
                self.c["products_failed"] += 1
                self.event("product_failed", {"file": rf.name, "raw": str(rf.path), "reason": str(exc)}, "error")
                self.event("product_received", {"id": _id_from_name(rf.name), "product_kind": "", "crc32c": 0, "ok": False,
                                                "reason": str(exc)}, "error")
                continue
            if self.written.get(w.id) == w.crc32c:
                self.c["products_duplicate"] += 1
                continue
            self.written[w.id] = w.crc32c
            self.c["products_received"] += 1
            self.event("product_received", {"id": w.id, "product_kind": w.kind, "crc32c": w.crc32c, "ok": True,
                                            "bytes": w.product_bytes}, "info")

    def close(self) -> None:
        self.worker.shutdown(wait=True)
        self.collect()
        self.health.tick(force=True)
        self.engine.filestore.close()
        self.radio.close()
        self.pub.close()


def run(ctx: ProcessContext) -> None:
    """Entry point of kind ``fsw.ground``; returns when ``ctx.stop`` is set."""
    station = GroundStation(ctx)
    try:
        while not ctx.stop.is_set():
            station.turn()
    finally:
        ctx.log.info("ground_stopping", received=station.c["products_received"])
        station.close()
