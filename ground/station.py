"""The ground station's logic: CFDP over CCSDS in, received files to images and the ledger. No sockets.

Each datagram (:meth:`Station.take_datagram`) is unwrapped (Space Packet, then
CFDP PDU) and fed to the destination engine (one cfdp-py DestHandler per
transaction); what the engine answers goes back through the injected radio.
Files land in ``<out>/<out_subdir>/incoming/``; a complete one is fsync'd and,
before its Finished PDU leaves, a product is decoded and its pixels checked
against its CRC-32C (:func:`ground.images.check_product`): one that fails is
*refused*, not recorded, and its Finished says filestore rejection, so the
lander keeps its copy (``product_failed`` with ``refused``; the refused file is
removed). A file that passes is recorded in the ledger (SQLite WAL,
:mod:`ground.ledger`) before its Finished leaves. The injected ``decoder`` (an
executor: the process gives it one worker thread) writes ``<id>.png`` and
``<id>.json`` from the pixels checked; :meth:`Station.collect` then publishes ``product_received``
once per product id, ever.

Datagrams that are TM packets (version 000, type TM, not the CFDP APID:
:func:`ground.telemetry.is_tm`) go to the TM intake (:mod:`ground.telemetry`),
as do the packets of telemetry segment files (``.tlm``, :mod:`link.tlm_segments`,
announced as ``telemetry_received``): housekeeping, events and command
verification into the ledger.

Everything the station records also goes to the archive operators query (:mod:`ground.archive`,
SQLite or PostgreSQL at the ``archive.url`` setting, relative to the run's output directory): products
(full frames with a PDS4 label, :mod:`ground.pds4`), parameters and events replayed from the ledger,
the ground's own events, each command with its stages, CFDP transactions with the ranges they hold
and the NAKs sent, contact passes as they open and close (:class:`ground.archive.feed.ArchiveFeed`,
which says why the ledger stays the crash journal and the archive is fed from it). The uplink (:mod:`ground.uplink`) sends the
operator's queued commands through the same radio and takes the verification
packets the intake finds.

The engine's timers run only while the contact plan has a contact open, so
an outage does not exhaust NAK limits or inactivity. On start, the transfers
the ledger's journal has open resume where their checkpoints left them (the
engine's NAKs ask only for the missing ranges), files the ledger holds but
never wrote are decoded, and other partial files are removed.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
from spacepackets.ccsds.spacepacket import PacketType

from framework.errors import ConfigError, ProductError, ProtocolError
from framework.reporters import EventReporter
from fsw.imaging.product import Product
from ground.archive import DEFAULT_URL, Archive, ArchiveFeed, ArchivingJournal, ProductRecord
from ground.images import WrittenProduct, check_product, sidecar_of, write_checked
from ground.ledger import Ledger
from ground.pds4 import write_pds4
from ground.queue import CommandQueue
from ground.telemetry import TelemetryIntake, is_tm
from ground.uplink import SignerSource, Uplink, UplinkSettings
from link.contacts import ContactClock, load_plan
from link.dictionary import Dictionary
from link.dest_engine import DestEngine, ReceivedFile
from link.filestore import SEGMENT_SUFFIX, id_from_transfer_name
from link.mib import CfdpTimers
from link.packets import APID_DIRECTIVE, SpacePacketWrapper, received_pdu
from link.radio import Radio
from link.tlm_segments import decode_segment, segment_kind

__all__ = ["Station", "archive_url"]

_ERROR_COUNTERS = ("products_failed", "transfers_failed", "datagrams_rejected")
_QUEUE_FILE = "commands.sqlite"
"""What RESET_COUNTERS zeroes (the running totals of what arrived stay)."""


_Written = tuple[WrittenProduct, ProductRecord]


class Publishing(Protocol):
    """What the station publishes through: the ground bus's Publisher (or a test's recorder)."""

    def publish(self, topic: str, kind: str, fields: dict[str, Any] | None = None, buffers: Any = (),
                t: float | None = None) -> int: ...


def archive_url(config: Any, ground: str) -> str:
    """The archive URL of ground station ``ground`` in a validated ``config``: its ``archive.url``
    (a relative ``sqlite:///`` path is under the run's output directory). The station writes there;
    the console and ``pdh missing --config`` read there."""
    settings = config.processes[ground]
    if settings.get("kind") != "ground.station":
        raise ConfigError(config.file, f"processes.{ground}", "a ground.station process", settings.get("kind"))
    return str((settings.get("archive") or {}).get("url", DEFAULT_URL))


def _write_archived(product: Product, pixels: np.ndarray, product_bytes: int, out_dir: Path,
                    clock: Callable[[], float]) -> _Written:
    """Write PNG and sidecar (a full frame: also its PDS4 pixel file and label); the archive's row of it."""
    written = write_checked(product, pixels, product_bytes, out_dir)
    t = clock()
    label = write_pds4(product, pixels, out_dir, t) if product.kind == "full" and pixels.ndim == 2 else None
    return written, ProductRecord.from_sidecar(sidecar_of(product, pixels, product_bytes), written.png, t, label)


def _decode_and_write(path: Path, out_dir: Path, clock: Callable[[], float]) -> _Written:
    raw = path.read_bytes()
    product, pixels = check_product(raw)
    return _write_archived(product, pixels, len(raw), out_dir, clock)


class Station:
    """One ground station: fed datagrams and a clock; sends through ``radio``, reports through ``events``.

    ``settings``: the ``ground.station`` kind's keys; ``where``: the config file, for error messages.
    ``dictionary``: APIDs and interface tables of the run's config (without one every TM packet is
    unknown); with ``signers`` as well, the station has an uplink (:attr:`uplink`). ``name``: the
    process's name, the source of its own events in the archive. ``publisher``: the ground bus, where
    the TM intake publishes the lander's decoded housekeeping and events for live views (None: not
    published).
    """

    def __init__(self, settings: dict[str, Any], out_dir: Path, where: str, radio: Radio,
                 events: EventReporter, clock: Callable[[], float], decoder: Executor, *,
                 dictionary: Dictionary | None = None, signers: SignerSource | None = None,
                 name: str = "ground", publisher: Publishing | None = None) -> None:
        s = settings
        self.out_dir = out_dir / s["out_subdir"]
        self.incoming = self.out_dir / "incoming"
        self.plan = load_plan(s, where)
        self.clock = clock
        self.radio = radio
        self.events = events
        self.decoder = decoder
        self.ledger = Ledger(self.out_dir / "ledger.sqlite", clock=clock)
        self.name = name
        self.feed = ArchiveFeed(Archive(s["archive"]["url"], out_dir), self.ledger, dictionary or Dictionary([]),
                                clock, self.events.limited)
        self._archive_own_events()
        self.engine = DestEngine(s["entity_id"], s["lander_entity_id"], s["max_packet_len"],
                                 CfdpTimers.from_settings(s), self.incoming,
                                 clock=ContactClock(self.plan, clock), on_delivered=self.accept,
                                 journal=ArchivingJournal(self.ledger, self.feed), reject=self.events.limited)
        self.wrapper = SpacePacketWrapper(PacketType.TC)
        self.decoding: deque[tuple[str, Path, Future[_Written]]] = deque()
        self.checked: dict[str, tuple[Product, np.ndarray, int]] = {}  # file name -> what check_product gave
        self.unsent: deque[bytes] = deque()
        self.c = {"products_received": 0, "products_failed": 0, "products_duplicate": 0, "transfers_failed": 0,
                  "packets_received": 0, "bytes_received": 0, "datagrams_rejected": 0, "packets_sent": 0,
                  "telemetry_records": 0, "telemetry_segments": 0, "recovered_files": 0, "partial_files_removed": 0,
                  "transfers_resumed": 0}
        self._bytes_at_last_health = 0
        self.uplink: Uplink | None = None
        if dictionary is not None and signers is not None:
            self.uplink = Uplink(CommandQueue(self.out_dir / _QUEUE_FILE, clock), dictionary, self.plan, clock, radio,
                                 events, signers, UplinkSettings.from_settings(s))
        self.tm = TelemetryIntake(dictionary or Dictionary([]), self.ledger, events,
                                  on_verification=self.uplink.verified if self.uplink else lambda p: None,
                                  publisher=publisher)
        self._recover()
        self._archive_catch_up()

    def _archive_own_events(self) -> None:
        """Every event the station publishes also goes to the archive (``limited`` publishes through
        ``emit``, so wrapping ``emit`` of this reporter catches all); a ``command_stage`` rewrites that
        command's row with its stages."""
        emit = self.events.emit

        def emit_and_archive(name: str, fields: dict[str, Any] | None = None, severity: str | None = None,
                             log_exclude: Any = ()) -> dict[str, Any]:
            body = emit(name, fields, severity, log_exclude)
            details = {k: v for k, v in body.items() if k not in ("name", "event_id", "severity")}
            self.feed._guard("event", self.feed.archive.record_event, self.name, self.clock(), name,
                             str(body.get("severity", "info")), details, body.get("event_id"))
            uplink = getattr(self, "uplink", None)  # events before the uplink exists have no command
            if name == "command_stage" and uplink is not None and isinstance(body.get("id"), int):
                self.feed.command(uplink.queue.get(body["id"]))
            return body

        self.events.emit = emit_and_archive  # type: ignore[method-assign]

    def _archive_catch_up(self) -> None:
        """At start: what the ledger, the sidecars and the queue hold that the archive does not."""
        self.feed.sync_tm()
        self.feed.sync_products(self.out_dir)
        self.feed.sync_transfers(self.ledger.transfers())
        self.feed._guard("contact", self.feed.archive.close_contacts, self.clock())
        if self.uplink is not None:
            for c in self.uplink.queue.listing(include_done=True):
                self.feed.command(c)

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

    # -- health --------------------------------------------------------------------------------
    def sample(self) -> dict[str, Any]:
        got = self.c["bytes_received"]
        rate = (got - self._bytes_at_last_health) * 8
        self._bytes_at_last_health = got
        contact = self.plan.contact(self.clock())
        return {**self.c, "active_transactions": self.engine.active, "decode_queue": len(self.decoding),
                "receive_rate_bps": rate, "contact": contact.relay if contact else "",
                **{f"cfdp_{k}": v for k, v in self.engine.counters.items()}, **self.tm.c,
                **(self.uplink.sample() if self.uplink else {}), **self.feed.c}

    def reset_counters(self) -> None:
        for k in _ERROR_COUNTERS:
            self.c[k] = 0
        self.tm.reset_counters()
        if self.uplink is not None:
            self.uplink.reset_counters()

    # -- the link ------------------------------------------------------------------------------
    def take_datagram(self, datagram: bytes) -> None:
        """One datagram from the relay: TM packets to the intake; a PDU to the engine, its answers out at once."""
        self.c["bytes_received"] += len(datagram)
        if is_tm(datagram):
            self._take_tm(datagram)
            return
        pdu = received_pdu(datagram, self.c, self.events.limited)
        if pdu is None:
            return
        self.engine.insert(pdu)
        self.reply()

    def _take_tm(self, datagram: bytes) -> None:
        self.c["packets_received"] += 1
        try:
            self.tm.take_datagram(datagram)
        except ProtocolError as exc:
            self.c["datagrams_rejected"] += 1
            self.events.limited("datagram_rejected", {"reason": f"TM: {exc}", "bytes": len(datagram)})
            return
        self.feed.sync_tm()

    def step(self) -> None:
        """Once per turn: the engine's timers (only during a contact), answers out, the uplink, finished files on."""
        now = self.clock()
        self.feed.contacts_step(self.plan, now)
        if self.plan.is_open(now):
            self.engine.tick()
        self.reply()
        if self.uplink is not None:
            self.uplink.step()
        self.hand_over()
        self.collect()

    def reply(self) -> None:
        while True:
            raw = self.engine.pop()
            if raw is None:
                break
            self.feed.pdu_sent(raw)
            self.unsent.append(self.wrapper.wrap(APID_DIRECTIVE, raw))
        while self.unsent:
            if not self.radio.send(self.unsent[0]):
                return
            self.unsent.popleft()
            self.c["packets_sent"] += 1

    # -- received files ------------------------------------------------------------------------
    def accept(self, name: str, size: int) -> None:
        """A complete file, before its Finished PDU is built: a product must decode to pixels matching
        its CRC-32C, or it is refused (raises: the Finished says filestore rejection and the lander keeps
        its copy); then the file is recorded in the ledger (StoreError if it cannot be: refused too)."""
        if not name.endswith(SEGMENT_SUFFIX):
            try:
                raw = (self.incoming / name).read_bytes()
                product, pixels = check_product(raw)
            except (ProductError, OSError) as exc:
                self.c["products_failed"] += 1
                self.events.emit("product_failed", {"file": name, "reason": str(exc), "refused": True})
                raise
            self.checked[name] = (product, pixels, len(raw))
        self.ledger.file_received(name, size)

    def hand_over(self) -> None:
        while self.engine.received:
            rf: ReceivedFile = self.engine.received.popleft()
            if rf.name:
                self.feed.transfer_outcome(rf.transfer_name or rf.name, rf.delivered, rf.condition)
            if not rf.delivered:
                self.checked.pop(rf.name, None)
                self.c["transfers_failed"] += 1
                self.events.emit("transfer_failed", {"file": rf.name, "condition": rf.condition})
                if rf.name and rf.path.name == rf.name:
                    rf.path.unlink(missing_ok=True)  # refused or incomplete: the lander still has it
                continue
            self._dispatch(rf.name, rf.path)

    def _dispatch(self, name: str, path: Path) -> None:
        if name.endswith(SEGMENT_SUFFIX):
            self._take_telemetry(name, path)
            return
        checked = self.checked.pop(name, None)
        job = (self.decoder.submit(_write_archived, *checked, self.out_dir, self.clock) if checked is not None
               else self.decoder.submit(_decode_and_write, path, self.out_dir, self.clock))
        self.decoding.append((name, path, job))

    def _take_telemetry(self, name: str, path: Path) -> None:
        """A telemetry segment: its TM packets into the ledger through the intake (once each)."""
        try:
            packets = decode_segment(path.read_bytes())
        except (ProtocolError, OSError) as exc:
            self.ledger.file_done(name, "failed")
            self.events.emit("telemetry_failed", {"file": name, "reason": str(exc)})
            return
        got = self.tm.take_packets(packets, name)
        self.feed.sync_tm()
        self.ledger.file_done(name, "written")
        path.unlink(missing_ok=True)
        self.c["telemetry_segments"] += 1
        self.c["telemetry_records"] += got.new
        item = id_from_transfer_name(name)
        self.events.emit("telemetry_received", {"id": item, "segment_kind": segment_kind(item) or "",
                                                "records": got.packets, "new_records": got.new,
                                                "rejected": got.rejected, "t0": got.t0, "t1": got.t1})

    def collect(self) -> None:
        """Record and announce the products the decoder has finished, in the order they arrived."""
        while self.decoding and self.decoding[0][2].done():
            name, path, fut = self.decoding.popleft()
            try:
                w, record = fut.result()
            except (ProductError, OSError) as exc:
                self.ledger.file_done(name, "failed")
                self.c["products_failed"] += 1
                self.events.emit("product_failed", {"file": name, "raw": str(path), "reason": str(exc)})
                self.events.emit("product_received", {"id": id_from_transfer_name(name), "product_kind": "",
                                                      "crc32c": 0, "ok": False, "reason": str(exc)}, "error")
                continue
            first = self.ledger.product_written(w.id, w.kind, w.crc32c, w.product_bytes)
            self.ledger.file_done(name, "written")
            self.feed.product(record)
            path.unlink(missing_ok=True)
            if not first:
                self.c["products_duplicate"] += 1
                continue
            self.c["products_received"] += 1
            self.events.emit("product_received", {"id": w.id, "product_kind": w.kind, "crc32c": w.crc32c,
                                                  "ok": True, "bytes": w.product_bytes})

    def close(self) -> None:
        """Close the received files and the ledger (collect the decoder's last results first)."""
        self.engine.filestore.close()
        self.feed.close()
        self.ledger.close()
        if self.uplink is not None:
            self.uplink.queue.close()
