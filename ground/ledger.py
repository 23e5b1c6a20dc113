"""The ground's durable record of what it holds: SQLite in WAL mode, synchronous=FULL. No sockets.

``files``: every file a CFDP transaction delivered, recorded (and committed)
*before* the Finished PDU that confirms it leaves, with its state:
``received`` (fsync'd in ``incoming/``), ``written`` (decoded to image and
sidecar, or telemetry stored) or ``failed`` (kept, did not decode).
``products``: each product id the ground has written, once, with its CRC-32C,
so a product sent again (a lost Finished, a lander restart) is recognised.
``telemetry``: every housekeeping, event and verification record received, once, as
``(t, topic, src, fields)`` (``tlm.<process>``, ``evt.<process>``, ``vrf.<process>``), the shape
the bus gave them on board. ``tm_packets``: every TM packet taken in (:meth:`Ledger.add_tm`), once by
``(apid, seq_count, t)``, with its bytes (a realtime datagram and the segment that recorded the
same packet count once). ``parameters``: each housekeeping channel's value, one row per
``(t, src, channel)``, what an operator plots.
``transfers``: the journal of CFDP transactions (:mod:`link.resume`):
each one's Metadata PDU from its start, then at checkpoints the byte ranges
written and fsync'd so far and its EOF PDU; when it closes, its Finished PDU
(kept for the last transactions, to answer a late EOF after a restart).
:meth:`Ledger.open_transfers` lists what a restart resumes.

On open, :meth:`Ledger.unfinished` lists received files not yet written (a
crash between the Finished and the decode) and :meth:`Ledger.known_names`
lets the station delete partial files no transaction completed. Every row's
time ``t`` comes from the injected wall clock (the process's ``ctx.clock``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import msgpack

from framework.errors import StoreError
from link.resume import JournalRecord
from link.tmtc import TmPacket, TmType

__all__ = ["Ledger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (name TEXT PRIMARY KEY, state TEXT NOT NULL, size INTEGER NOT NULL, t REAL NOT NULL);
CREATE TABLE IF NOT EXISTS products (id TEXT PRIMARY KEY, kind TEXT NOT NULL, crc32c INTEGER NOT NULL,
                                     bytes INTEGER NOT NULL, t REAL NOT NULL);
CREATE TABLE IF NOT EXISTS telemetry (t REAL NOT NULL, topic TEXT NOT NULL, src TEXT NOT NULL, fields BLOB NOT NULL,
                                      n INTEGER NOT NULL DEFAULT -1, PRIMARY KEY (t, topic, src, n));
CREATE TABLE IF NOT EXISTS tm_packets (apid INTEGER NOT NULL, seq_count INTEGER NOT NULL, t REAL NOT NULL,
                                       packet_type INTEGER NOT NULL, packet BLOB NOT NULL, received REAL NOT NULL,
                                       PRIMARY KEY (apid, seq_count, t));
CREATE TABLE IF NOT EXISTS parameters (t REAL NOT NULL, src TEXT NOT NULL, channel TEXT NOT NULL, value,
                                       PRIMARY KEY (t, src, channel));
CREATE TABLE IF NOT EXISTS transfers (source INTEGER NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL,
                                      metadata BLOB NOT NULL, segments BLOB, eof BLOB, finished BLOB,
                                      open INTEGER NOT NULL DEFAULT 1, t REAL NOT NULL,
                                      PRIMARY KEY (source, seq));
"""
_CLOSED_TRANSFERS_KEPT = 1024


class Ledger:
    """``clock``: wall-clock seconds for each row's ``t`` (the order of arrival and of pruning)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the ground ledger {path}: {exc}") from None

    def file_received(self, name: str, size: int) -> None:
        """Durable before the Finished PDU leaves; StoreError if it cannot be recorded."""
        try:
            self._db.execute("INSERT INTO files (name, state, size, t) VALUES (?, 'received', ?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET state = 'received', size = excluded.size "
                             "WHERE files.state != 'written'", (name, size, self._clock()))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record {name}: {exc}") from None

    def file_done(self, name: str, state: str) -> None:
        self._db.execute("UPDATE files SET state = ? WHERE name = ?", (state, name))

    def unfinished(self) -> list[tuple[str, int]]:
        return [(r[0], int(r[1])) for r in self._db.execute("SELECT name, size FROM files WHERE state = 'received'")]

    def known_names(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT name FROM files")}

    def product_written(self, pid: str, kind: str, crc32c: int, nbytes: int) -> bool:
        """Record a written product; False if this id was written before (a duplicate)."""
        cur = self._db.execute("INSERT OR IGNORE INTO products (id, kind, crc32c, bytes, t) VALUES (?, ?, ?, ?, ?)",
                               (pid, kind, crc32c, nbytes, self._clock()))
        return cur.rowcount == 1

    def product_ids(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self._db.execute("SELECT id, crc32c FROM products")}

    def thumbnails_first(self) -> dict[str, int]:
        """Of the frames whose thumbnail and full frame both arrived, how many had the thumbnail first."""
        t = {r[0]: float(r[1]) for r in self._db.execute("SELECT id, t FROM products")}
        pairs = [(t[i], t[i[: -len("-thumbnail")] + "-full"]) for i in t
                 if i.endswith("-thumbnail") and i[: -len("-thumbnail")] + "-full" in t]
        return {"frames_with_both": len(pairs), "thumbnail_first": sum(1 for a, b in pairs if a <= b)}

    def add_telemetry(self, records: Iterable[list[Any]]) -> int:
        """Store records [t, topic, src, fields] not seen before; return how many were new."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO telemetry (t, topic, src, fields) VALUES (?, ?, ?, ?)",
                                 ((float(r[0]), r[1], r[2], msgpack.packb(r[3], use_bin_type=True)) for r in records))
            return self._db.total_changes - before

    def telemetry(self, t_start: float = 0.0, t_end: float = float("inf"),
                  topic_prefix: str = "") -> list[tuple[float, str, str, dict]]:
        """Records ``(t, topic, src, fields)`` between two times, in time order (``topic_prefix``:
        only ``evt.``, ``tlm.`` or ``vrf.`` ones)."""
        rows = self._db.execute("SELECT t, topic, src, fields FROM telemetry WHERE t >= ? AND t <= ? "
                                "AND substr(topic, 1, ?) = ? ORDER BY t, rowid",
                                (t_start, min(t_end, 1e18), len(topic_prefix), topic_prefix))
        return [(r[0], r[1], r[2], msgpack.unpackb(r[3], raw=False)) for r in rows]

    def events(self, t_start: float = 0.0, t_end: float = float("inf")) -> list[tuple[float, str, str, dict]]:
        """The lander's events received, in time order: ``(t, topic, src, fields)`` with name, event_id, severity."""
        return self.telemetry(t_start, t_end, "evt.")

    def add_tm(self, packets: Iterable[tuple[TmPacket, bytes]]) -> list[TmPacket]:
        """Store decoded TM packets (with their bytes) not seen before, by ``(apid, seq_count, t)``; return
        the new ones. Housekeeping becomes parameters and a ``tlm.`` record, an event an ``evt.`` record,
        a verification a ``vrf.`` record; all in one transaction."""
        new: list[TmPacket] = []
        received = self._clock()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for p, raw in packets:
                cur = self._db.execute("INSERT OR IGNORE INTO tm_packets (apid, seq_count, t, packet_type, packet, "
                                       "received) VALUES (?, ?, ?, ?, ?, ?)",
                                       (p.apid, p.seq_count, p.t, int(p.packet_type), raw, received))
                if cur.rowcount != 1:
                    continue
                new.append(p)
                topic, fields = _record(p)
                self._db.execute("INSERT OR IGNORE INTO telemetry (t, topic, src, fields, n) VALUES (?, ?, ?, ?, ?)",
                                 (p.t, topic, p.process, msgpack.packb(fields, use_bin_type=True, default=str),
                                  p.apid << 14 | p.seq_count))
                if p.packet_type is TmType.HOUSEKEEPING:
                    self._db.executemany("INSERT OR IGNORE INTO parameters (t, src, channel, value) VALUES (?, ?, ?, ?)",
                                         ((p.t, p.process, k, _param(v)) for k, v in p.values.items()))
        return new

    def parameters(self, src: str, channel: str, t_start: float = 0.0,
                   t_end: float = float("inf")) -> list[tuple[float, Any]]:
        """One channel of one process's housekeeping, ``(t, value)`` in time order."""
        rows = self._db.execute("SELECT t, value FROM parameters WHERE src = ? AND channel = ? AND t >= ? AND t <= ? "
                                "ORDER BY t", (src, channel, t_start, min(t_end, 1e18)))
        return [(float(r[0]), r[1]) for r in rows]

    def tm_since(self, rowid: int, limit: int = 1000) -> list[tuple[int, bytes, float]]:
        """TM packets stored after row ``rowid``, in the order they were stored: ``(rowid, bytes, received)``
        (the archive replays them from here: :mod:`ground.archive.feed`)."""
        rows = self._db.execute("SELECT rowid, packet, received FROM tm_packets WHERE rowid > ? ORDER BY rowid "
                                "LIMIT ?", (rowid, limit))
        return [(int(r[0]), bytes(r[1]), float(r[2])) for r in rows]

    def tm_packet_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM tm_packets").fetchone()[0])

    # -- the transfer journal (called by the CFDP destination engine) ---------------------------------
    def transfer_opened(self, key: tuple[int, int], name: str, metadata: bytes) -> None:
        """A transaction's Metadata arrived and its file exists (fsync'd directory). Durable on return."""
        self._write("INSERT INTO transfers (source, seq, name, metadata, t) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(source, seq) DO UPDATE SET name = excluded.name, metadata = excluded.metadata, "
                    "segments = NULL, eof = NULL, finished = NULL, open = 1, t = excluded.t",
                    (key[0], key[1], name, metadata, self._clock()))

    def transfer_progress(self, key: tuple[int, int], segments: bytes, eof: bytes | None) -> None:
        """The ranges in ``segments`` are fsync'd in the file. Durable on return."""
        self._write("UPDATE transfers SET segments = ?, eof = COALESCE(?, eof), t = ? "
                    "WHERE source = ? AND seq = ? AND open = 1", (segments, eof, self._clock(), key[0], key[1]))

    def transfer_closed(self, key: tuple[int, int], finished: bytes | None) -> None:
        """The transaction ended (with the Finished PDU it sent, if any); old closed rows are pruned."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE transfers SET open = 0, finished = COALESCE(?, finished), segments = NULL, "
                             "t = ? WHERE source = ? AND seq = ?", (finished, self._clock(), key[0], key[1]))
            self._db.execute("DELETE FROM transfers WHERE open = 0 AND rowid NOT IN (SELECT rowid FROM transfers "
                             "WHERE open = 0 ORDER BY t DESC LIMIT ?)", (_CLOSED_TRANSFERS_KEPT,))

    def transfers(self) -> list[JournalRecord]:
        """Every journalled transaction, open ones and the last closed ones, oldest first."""
        rows = self._db.execute("SELECT source, seq, name, metadata, segments, eof, finished, open FROM transfers "
                                "ORDER BY t ASC")
        return [JournalRecord(int(r[0]), int(r[1]), r[2], bytes(r[3]), None if r[4] is None else bytes(r[4]),
                               None if r[5] is None else bytes(r[5]), None if r[6] is None else bytes(r[6]),
                               bool(r[7])) for r in rows]

    def open_names(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT name FROM transfers WHERE open = 1")}

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot journal a transfer: {exc}") from None

    def close(self) -> None:
        self._db.close()


def _record(p: TmPacket) -> tuple[str, dict[str, Any]]:
    """A TM packet as the record the bus carried on board: its topic and fields."""
    if p.packet_type is TmType.HOUSEKEEPING:
        return f"tlm.{p.process}", dict(p.values)
    if p.packet_type is TmType.EVENT:
        name = p.event_name if p.event_name is not None else f"event_{p.event_id:#06x}"
        return f"evt.{p.process}", {**p.fields, "name": name, "event_id": p.event_id, "severity": p.severity}
    v = p.verification
    assert v is not None, "a verification packet carries its verification"
    return f"vrf.{p.process}", {"spi": v.spi, "tc_seq": v.tc_seq, "target_apid": v.target_apid,
                                "opcode": v.opcode, "stage": v.stage, "reason": v.reason}


def _param(value: Any) -> Any:
    """A channel value as SQLite keeps it: numbers and text as they are, a map as compact JSON."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return value
