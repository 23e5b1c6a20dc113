"""The station's writer into the archive: what it records, fed from what it already keeps. No sockets.

Why the ledger stays and the archive is fed from it (not the other way round): the ledger is the
station's crash journal (SQLite WAL, ``synchronous=FULL``: a file is recorded before its Finished PDU
leaves, CFDP resumes from its checkpoints) and must stay a local file the station owns; the archive may
be a PostgreSQL server on another machine, which can be down or slow without costing a transfer. So
the archive is *derived*: TM packets are replayed from the ledger's ``tm_packets`` (the raw bytes, the
ledger's row number as a mark kept in the archive in the same transaction as the rows, so each packet
is archived exactly once even across crashes); products from their sidecars (at start, any product the
ledger holds and the archive lacks is added again); commands from the uplink queue (each command row
rewritten with all its stages, idempotent). Nothing is written twice *as the same thing*: the ledger
keeps raw packets for deduplication and recovery, the archive the decoded view operators query.

A write the archive refuses (a PostgreSQL server gone) is counted (``archive_errors``) and reported
(``archive_failed``, rate-limited) and never stops the station: TM, products and commands catch up on
the next successful write or at the next start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from spacepackets.cfdp.pdu import DirectiveType, MetadataPdu, NakPdu, PduFactory

from framework.errors import PdhError, ProtocolError
from ground.archive.records import ProductRecord
from ground.archive.store import Archive
from ground.ledger import Ledger
from link.contacts import Contact, ContactPlan
from link.dictionary import Dictionary
from link.resume import JournalRecord, decode_segments
from link.tmtc import decode_tm

__all__ = ["ArchiveFeed", "ArchivingJournal", "TM_MARK"]

TM_MARK = "ledger.tm_packets"
_REPLAY_BATCH = 2000


class ArchiveFeed:
    """Writes into ``archive`` from the station's ``ledger`` and ``dictionary``; ``report(name, fields)``
    reports a failed write (rate-limited by the caller)."""

    def __init__(self, archive: Archive, ledger: Ledger, dictionary: Dictionary, clock: Callable[[], float],
                 report: Callable[[str, dict[str, Any]], Any]) -> None:
        self.archive = archive
        self.ledger = ledger
        self.dictionary = dictionary
        self.clock = clock
        self.report = report
        self.contact: Contact | None = None
        self.c = {"archive_writes": 0, "archive_errors": 0}

    def _guard(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            out = fn(*args)
        except PdhError as exc:
            self.c["archive_errors"] += 1
            self.report("archive_failed", {"what": what, "reason": str(exc)})
            return None
        self.c["archive_writes"] += 1
        return out

    # -- telemetry: replayed from the ledger ------------------------------------------------------
    def sync_tm(self) -> int:
        """Archive the ledger's TM packets not archived yet; return how many were new."""
        return int(self._guard("tm", self._sync_tm) or 0)

    def _sync_tm(self) -> int:
        new = 0
        while True:
            mark = self.archive.mark(TM_MARK)
            rows = self.ledger.tm_since(mark, _REPLAY_BATCH)
            if not rows:
                return new
            packets = []
            for _rowid, raw, received in rows:
                try:
                    packets.append((decode_tm(raw, self.dictionary), received))
                except ProtocolError:  # stored because it decoded once; a changed dictionary skips it
                    continue
            new += self.archive.record_tm(packets, mark=(TM_MARK, rows[-1][0]))

    # -- products ---------------------------------------------------------------------------------
    def product(self, record: ProductRecord) -> None:
        self._guard("product", self.archive.record_product, record)

    def sync_products(self, product_dir: Path) -> int:
        """At start: the products the ledger holds and the archive lacks, from their sidecars."""
        return int(self._guard("products", self._sync_products, product_dir) or 0)

    def _sync_products(self, product_dir: Path) -> int:
        have = self.archive.product_ids()
        added = 0
        for pid, _crc in self.ledger.product_ids().items():
            side_path = product_dir / f"{pid}.json"
            if pid in have or not side_path.exists():
                continue
            try:
                side = json.loads(side_path.read_text())
            except (OSError, ValueError):
                continue
            label = product_dir / f"{pid}.xml"
            self.archive.record_product(ProductRecord.from_sidecar(side, product_dir / f"{pid}.png", self.clock(),
                                                                   label if label.exists() else None))
            added += 1
        return added

    # -- commands ---------------------------------------------------------------------------------
    def command(self, c: Any) -> None:
        self._guard("command", self.archive.record_command, c)

    # -- CFDP -------------------------------------------------------------------------------------
    def pdu_sent(self, raw: bytes) -> None:
        """A PDU the ground sends back: a NAK counts against its transaction, with the ranges it asks for."""
        if len(raw) < 8:
            return
        try:
            pdu = PduFactory.from_raw(raw)
        except Exception:  # noqa: BLE001 - our own PDUs; a parse fault only costs the NAK count
            return
        if getattr(pdu, "directive_type", None) != DirectiveType.NAK_PDU or not isinstance(pdu, NakPdu):
            return
        key = (pdu.source_entity_id.value, pdu.transaction_seq_num.value)
        ranges = [(int(a), int(b)) for a, b in pdu.segment_requests]
        self._guard("transfer", self.archive.transfer_nak, key, ranges, self.clock())

    def transfer_outcome(self, name: str, delivered: bool, condition: str) -> None:
        self._guard("transfer", self.archive.transfer_outcome, name, delivered, condition, self.clock())

    def sync_transfers(self, journal: list[JournalRecord]) -> None:
        """At start: the archive's open transactions the journal no longer has open were abandoned."""
        still = {(r.source, r.seq) for r in journal if r.open}

        def close() -> None:
            for key in self.archive.open_transfer_keys() - still:
                self.archive.transfer_closed(key, self.clock(), "abandoned", "not open in the journal at start")
        self._guard("transfer", close)

    # -- contacts ---------------------------------------------------------------------------------
    def contacts_step(self, plan: ContactPlan, now: float) -> None:
        """Record a pass as it opens and closes (the contact plan as the station lives it)."""
        c = plan.contact(now)
        prev = self.contact
        if c is not None and prev is not None and (c.relay, c.opened_at) == (prev.relay, prev.opened_at):
            return
        if prev is not None:
            self._guard("contact", self.archive.contact_closed, prev.relay, prev.opened_at, now)
        if c is not None:
            self._guard("contact", self.archive.contact_opened, c.relay, c.opened_at, c.pass_number, c.closes_at,
                        c.rate_bps)
        self.contact = c

    def close(self) -> None:
        if self.contact is not None:
            self._guard("contact", self.archive.contact_closed, self.contact.relay, self.contact.opened_at,
                        self.clock())
        self.archive.close()


class ArchivingJournal:
    """The CFDP destination engine's journal: the ledger (durable, first; its errors propagate as before),
    then the archive's view of the transaction (best effort)."""

    def __init__(self, ledger: Ledger, feed: ArchiveFeed) -> None:
        self.ledger = ledger
        self.feed = feed

    def transfer_opened(self, key: tuple[int, int], name: str, metadata: bytes) -> None:
        self.ledger.transfer_opened(key, name, metadata)
        try:
            size: int | None = int(MetadataPdu.unpack(metadata).file_size)
        except Exception:  # noqa: BLE001 - the engine accepted it; without a size no ranges are missing
            size = None
        self.feed._guard("transfer", self.feed.archive.transfer_opened, key, name, size, self.feed.clock())

    def transfer_progress(self, key: tuple[int, int], segments: bytes, eof: bytes | None) -> None:
        self.ledger.transfer_progress(key, segments, eof)
        try:
            held = decode_segments(segments).ranges
        except ProtocolError:
            return
        self.feed._guard("transfer", self.feed.archive.transfer_progress, key, held, eof is not None,
                         self.feed.clock())

    def transfer_closed(self, key: tuple[int, int], finished: bytes | None) -> None:
        self.ledger.transfer_closed(key, finished)
        self.feed._guard("transfer", self.feed.archive.transfer_closed, key, self.feed.clock())
