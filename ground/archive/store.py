"""The archive: what the ground holds, for operators to query, in SQLite or PostgreSQL. No sockets.

:class:`Archive` opens (and creates) the schema of :mod:`ground.archive.schema` at a URL
(:func:`ground.archive.db.open_db`) and has one method per thing the station records. Every write is
idempotent (natural keys, ``ON CONFLICT``), so the station can replay its ledger into the archive after
a crash without counting anything twice (:mod:`ground.archive.feed`). Reading is
:mod:`ground.archive.queries` and :mod:`ground.archive.missing`, reached through the same object.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from ground.archive import missing as _missing
from ground.archive import queries as _queries
from ground.archive.db import Db, open_db
from ground.archive.records import ProductRecord, Result
from ground.archive.schema import SCHEMA_VERSION, STATEMENTS
from link.tmtc import TmPacket, TmType

__all__ = ["Archive", "DEFAULT_URL"]

DEFAULT_URL = "sqlite:///archive.sqlite"
_SEVERITIES = ("info", "warning", "error")


def _json(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), sort_keys=True, default=str)


def _value(v: Any) -> tuple[float | None, str | None]:
    """A housekeeping value as (number, text): numbers (and bools) as numbers, the rest as text/JSON."""
    if isinstance(v, bool):
        return float(v), None
    if isinstance(v, (int, float)):
        f = float(v)
        return (f, None) if math.isfinite(f) else (None, repr(f))
    if isinstance(v, str):
        return None, v
    return None, _json(v)


class Archive:
    """The archive at ``url`` (``sqlite:///x`` relative to ``base_dir``); ``readonly`` for the CLI and console."""

    def __init__(self, url: str = DEFAULT_URL, base_dir: Path = Path("."), *, readonly: bool = False) -> None:
        self.url = url
        self.db: Db = open_db(url, base_dir, readonly=readonly)
        if not readonly:
            self.db.script(STATEMENTS)
            self.db.execute("INSERT INTO archive_meta (key, value) VALUES ('schema_version', ?) "
                            "ON CONFLICT (key) DO NOTHING", (str(SCHEMA_VERSION),))
        self._ground_n: dict[str, int] = {}

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- marks: how far a replay got --------------------------------------------------------------
    def mark(self, name: str) -> int:
        rows = self.db.query("SELECT value FROM marks WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def _set_mark(self, name: str, value: int) -> None:
        self.db.execute("INSERT INTO marks (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                        "SET value = excluded.value", (name, value))

    # -- products ---------------------------------------------------------------------------------
    def record_product(self, p: ProductRecord) -> None:
        """A product written at the ground (again: its row is refreshed, e.g. a label added)."""
        self.db.execute(
            "INSERT INTO products (id, kind, camera, counter, t_capture, t_received, grade, codec, crc32c, bytes, "
            "width, height, bit_depth, path, label, grades) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET path = excluded.path, label = COALESCE(excluded.label, products.label)",
            (p.id, p.kind, p.camera, p.counter, p.t_capture, p.t_received, p.grade, p.codec, p.crc32c, p.bytes,
             p.width, p.height, p.bit_depth, p.path, p.label, _json(p.grades)))

    def product_ids(self) -> set[str]:
        return {r[0] for r in self.db.query("SELECT id FROM products")}

    # -- telemetry --------------------------------------------------------------------------------
    def record_tm(self, packets: Iterable[tuple[TmPacket, float]], mark: tuple[str, int] | None = None) -> int:
        """TM packets with the wall time each was received: the packet's key, housekeeping values as
        parameters, events as events (verification stages arrive through the command queue). ``mark``:
        set in the same transaction (how far a replay got). Returns the packets new to the archive."""
        new = 0
        with self.db.transaction():
            for p, received in packets:
                if not self.db.execute("INSERT INTO tm_packets (apid, seq_count, t, source, packet_type, t_received) "
                                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (apid, seq_count, t) DO NOTHING",
                                       (p.apid, p.seq_count, p.t, p.process, int(p.packet_type), received)):
                    continue
                new += 1
                if p.packet_type is TmType.HOUSEKEEPING:
                    self.db.executemany("INSERT INTO parameters (source, channel, t, value_num, value_text) "
                                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, channel, t) DO NOTHING",
                                        [(p.process, k, p.t, *_value(v)) for k, v in p.values.items()])
                elif p.packet_type is TmType.EVENT:
                    name = p.event_name if p.event_name is not None else f"event_{p.event_id:#06x}"
                    self._event(p.process, p.t, p.apid << 14 | p.seq_count, name, p.event_id,
                                p.severity or "info", "lander", p.fields)
            if mark is not None:
                self._set_mark(*mark)
        return new

    def record_event(self, source: str, t: float, name: str, severity: str, fields: dict[str, Any],
                     event_id: int | None = None) -> None:
        """One of the ground's own events (``origin`` ground)."""
        if source not in self._ground_n:
            rows = self.db.query("SELECT COALESCE(MAX(n), 0) FROM events WHERE source = ? AND origin = 'ground'",
                                 (source,))
            self._ground_n[source] = int(rows[0][0])
        self._ground_n[source] += 1
        self._event(source, t, self._ground_n[source], name, event_id, severity, "ground", fields)

    def _event(self, source: str, t: float, n: int, name: str, event_id: int | None, severity: str, origin: str,
               fields: dict[str, Any]) -> None:
        if severity not in _SEVERITIES:
            severity = "info"
        self.db.execute("INSERT INTO events (source, t, n, name, event_id, severity, origin, fields) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, t, n) DO NOTHING",
                        (source, t, n, name, event_id, severity, origin, _json(fields)))

    # -- commands ---------------------------------------------------------------------------------
    def record_command(self, c: Any) -> None:
        """A command of the uplink queue (:class:`ground.queue.QueuedCommand`) with every stage so far."""
        t_updated = max([c.t, *(s.t for s in c.stages)])
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO commands (id, target, cmd, args, spi, state, attempts, seq, t_queued, t_updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
                "attempts = excluded.attempts, seq = excluded.seq, t_updated = excluded.t_updated",
                (c.id, c.target, c.cmd, _json(c.args), c.spi, c.state, c.attempts, c.seq, c.t, t_updated))
            self.db.executemany("INSERT INTO command_stages (id, n, stage, t, detail) VALUES (?, ?, ?, ?, ?) "
                                "ON CONFLICT (id, n) DO NOTHING",
                                [(c.id, i, s.stage, s.t, s.detail) for i, s in enumerate(c.stages)])

    # -- CFDP transactions ------------------------------------------------------------------------
    def transfer_opened(self, key: tuple[int, int], name: str, file_size: int | None, t: float) -> None:
        self.db.execute(
            "INSERT INTO transfers (source_entity, seq, name, file_size, state, condition, held, held_bytes, eof, "
            "naks, nak_ranges, t_opened, t_updated) VALUES (?, ?, ?, ?, 'open', '', '[]', 0, 0, 0, '[]', ?, ?) "
            "ON CONFLICT (source_entity, seq) DO UPDATE SET name = excluded.name, file_size = excluded.file_size, "
            "state = 'open', condition = '', t_closed = NULL, t_updated = excluded.t_updated",
            (key[0], key[1], name, file_size, t, t))

    def transfer_progress(self, key: tuple[int, int], held: list[tuple[int, int]], eof: bool, t: float) -> None:
        """The byte ranges written and fsync'd so far (a checkpoint of the journal)."""
        self.db.execute("UPDATE transfers SET held = ?, held_bytes = ?, eof = ?, t_updated = ? "
                        "WHERE source_entity = ? AND seq = ?",
                        (_json([list(r) for r in held]), sum(b - a for a, b in held), int(eof), t, key[0], key[1]))

    def transfer_nak(self, key: tuple[int, int], ranges: list[tuple[int, int]], t: float) -> None:
        """The ground sent a NAK asking for ``ranges`` (a transaction not journalled yet gets a row)."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO transfers (source_entity, seq, name, file_size, state, condition, held, held_bytes, "
                "eof, naks, nak_ranges, t_opened, t_updated) VALUES (?, ?, '', NULL, 'open', '', '[]', 0, 0, 0, "
                "'[]', ?, ?) ON CONFLICT (source_entity, seq) DO NOTHING", (key[0], key[1], t, t))
            self.db.execute("UPDATE transfers SET naks = naks + 1, nak_ranges = ?, t_updated = ? "
                            "WHERE source_entity = ? AND seq = ?",
                            (_json([list(r) for r in ranges]), t, key[0], key[1]))

    def transfer_closed(self, key: tuple[int, int], t: float, state: str = "finished", condition: str = "") -> None:
        """The transaction ended at the ground (its Finished PDU left, or it was abandoned)."""
        self.db.execute("UPDATE transfers SET state = ?, condition = ?, t_closed = ?, t_updated = ? "
                        "WHERE source_entity = ? AND seq = ? AND state = 'open'",
                        (state, condition, t, t, key[0], key[1]))

    def transfer_outcome(self, name: str, delivered: bool, condition: str, t: float) -> None:
        """What became of the file of the latest transaction named ``name``: delivered, or failed and why."""
        rows = self.db.query("SELECT source_entity, seq FROM transfers WHERE name = ? ORDER BY t_opened DESC "
                             "LIMIT 1", (name,))
        if rows:
            self.db.execute("UPDATE transfers SET state = ?, condition = ?, t_closed = COALESCE(t_closed, ?), "
                            "t_updated = ? WHERE source_entity = ? AND seq = ?",
                            ("delivered" if delivered else "failed", condition, t, t, rows[0][0], rows[0][1]))

    def open_transfer_keys(self) -> set[tuple[int, int]]:
        return {(int(a), int(b)) for a, b in self.db.query(
            "SELECT source_entity, seq FROM transfers WHERE state = 'open'")}

    # -- contacts ---------------------------------------------------------------------------------
    def contact_opened(self, relay: str, t_open: float, pass_number: int, t_close_planned: float,
                       rate_bps: float) -> None:
        self.db.execute("INSERT INTO contacts (relay, t_open, pass_number, t_close_planned, rate_bps) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (relay, t_open) DO NOTHING",
                        (relay, t_open, pass_number, t_close_planned, rate_bps))

    def contact_closed(self, relay: str, t_open: float, t: float) -> None:
        self.db.execute("UPDATE contacts SET t_closed = ? WHERE relay = ? AND t_open = ? AND t_closed IS NULL",
                        (t, relay, t_open))

    def close_contacts(self, t: float) -> None:
        """Every contact still open in the archive is closed at ``t`` (the station starts, or stops)."""
        self.db.execute("UPDATE contacts SET t_closed = ? WHERE t_closed IS NULL", (t,))

    # -- queries (ground.archive.queries, ground.archive.missing) --------------------------------
    def parameter(self, source: str, channel: str, t0: float | None = None, t1: float | None = None) -> Result:
        return _queries.parameter(self.db, source, channel, t0, t1)

    def events(self, **kw: Any) -> Result:
        return _queries.events(self.db, **kw)

    def products(self, **kw: Any) -> Result:
        return _queries.products(self.db, **kw)

    def count_products(self) -> dict[str, int]:
        return _queries.count_products(self.db)

    def product(self, pid: str) -> dict[str, Any] | None:
        return _queries.product(self.db, pid)

    def commands(self, **kw: Any) -> Result:
        return _queries.commands(self.db, **kw)

    def transfers(self, **kw: Any) -> Result:
        return _queries.transfers(self.db, **kw)

    def contacts(self) -> Result:
        return _queries.contacts(self.db)

    def missing(self, **kw: Any) -> "_missing.Missing":
        return _missing.missing(self.db, **kw)

