"""The product store's index file: opening, checking, rebuilding it; cleaning crash leftovers; how faults read. No sockets.

``index.sqlite`` (WAL, synchronous=FULL) holds ``items`` (one row per stored item, with the CRC-32C of
its payload as stored and how it could be made again), ``meta`` (the transaction counter, and
``index_complete``: a rebuild finished, or the index was created whole), ``transactions`` and
``open_transactions`` (:mod:`fsw.downlink.store`).

Everything the downlink asks every turn must cost the same with a million items as with a thousand
(issue 16), so every such query has an index made for it, and the figures health reads (items and
bytes per class, kind, codec and re-encoded mark) are running ``totals`` that triggers keep in the
same transaction as the row change: no query per turn scans the items. The 'rest' class's order
(grade + weight x age) depends on the policy's weight, so that index is made by
:func:`ensure_rest_order` when the store opens with a policy (again if the weight changed).
:func:`recover` recounts the totals from the rows at every open and writes them only if they differ
(an index from before they existed gets them there).

:func:`open_index` trusts an index only after SQLite's ``quick_check`` and, for one never marked
complete, only if it has rows or there are no payload files (a lost index, or a rebuild cut short,
looks like an empty one). Anything else is *damage*: the index files are moved to ``aside/`` and a new
index is built in one transaction from the payload files' own metadata (:mod:`fsw.downlink.rebuild`).
If even that fails for anything but a refusing disk, the whole store is moved aside beside its root and
an empty one started: the downlink never loops on a store it cannot open.

Every fault reads as one of two StoreErrors: :class:`StoreUnavailable` (the disk refused: full,
read-only, failing; nothing changed, try again later) and :class:`IndexCorrupt` (SQLite says the index
is damaged).
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from framework.errors import StoreError
from fsw.downlink.payload import FILE_RE, PayloadInfo, payload_name
from fsw.downlink.policy import class_of
from fsw.downlink.rebuild import scan_payloads, set_aside
from link.filestore import fsync_dir

__all__ = ["StoreUnavailable", "IndexCorrupt", "Recovery", "Rebuilt", "open_index", "recover", "fault", "faults",
           "is_corruption", "write_durable", "rest_key", "ensure_rest_order", "recount_totals"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    cls TEXT NOT NULL,
    score REAL NOT NULL,
    requested INTEGER NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    codec TEXT NOT NULL,
    gen INTEGER NOT NULL DEFAULT 0,
    reencoded INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'stored',
    seq INTEGER NOT NULL,
    crc32c INTEGER,
    remake TEXT
);
CREATE INDEX IF NOT EXISTS items_seq ON items (seq);
CREATE INDEX IF NOT EXISTS items_kind_age ON items (kind, created);
CREATE INDEX IF NOT EXISTS items_class_age ON items (cls, created, seq) WHERE state != 'refused' AND cls != 'rest';
CREATE INDEX IF NOT EXISTS items_rest_grade ON items (score, created, seq) WHERE cls = 'rest' AND state != 'refused';
CREATE INDEX IF NOT EXISTS items_refused ON items (created, seq) WHERE state = 'refused';
CREATE INDEX IF NOT EXISTS items_to_reencode ON items (kind, codec, created, seq)
    WHERE reencoded = 0 AND state = 'stored';
CREATE TABLE IF NOT EXISTS totals (cls TEXT NOT NULL, kind TEXT NOT NULL, codec TEXT NOT NULL,
                                   reencoded INTEGER NOT NULL, items INTEGER NOT NULL, bytes INTEGER NOT NULL,
                                   PRIMARY KEY (cls, kind, codec, reencoded)) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS totals_insert AFTER INSERT ON items BEGIN
    INSERT INTO totals (cls, kind, codec, reencoded, items, bytes)
    VALUES (NEW.cls, NEW.kind, NEW.codec, NEW.reencoded, 1, NEW.size)
    ON CONFLICT DO UPDATE SET items = items + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS totals_delete AFTER DELETE ON items BEGIN
    UPDATE totals SET items = items - 1, bytes = bytes - OLD.size
    WHERE cls = OLD.cls AND kind = OLD.kind AND codec = OLD.codec AND reencoded = OLD.reencoded;
    DELETE FROM totals WHERE cls = OLD.cls AND kind = OLD.kind AND codec = OLD.codec AND reencoded = OLD.reencoded
                             AND items = 0;
END;
CREATE TRIGGER IF NOT EXISTS totals_update AFTER UPDATE OF cls, kind, codec, reencoded, size ON items BEGIN
    UPDATE totals SET items = items - 1, bytes = bytes - OLD.size
    WHERE cls = OLD.cls AND kind = OLD.kind AND codec = OLD.codec AND reencoded = OLD.reencoded;
    DELETE FROM totals WHERE cls = OLD.cls AND kind = OLD.kind AND codec = OLD.codec AND reencoded = OLD.reencoded
                             AND items = 0;
    INSERT INTO totals (cls, kind, codec, reencoded, items, bytes)
    VALUES (NEW.cls, NEW.kind, NEW.codec, NEW.reencoded, 1, NEW.size)
    ON CONFLICT DO UPDATE SET items = items + 1, bytes = bytes + excluded.bytes;
END;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, apid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS open_transactions (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, apid INTEGER NOT NULL,
                                              gen INTEGER NOT NULL, size INTEGER NOT NULL, suffix TEXT NOT NULL,
                                              progress INTEGER NOT NULL DEFAULT 0,
                                              eof_sent INTEGER NOT NULL DEFAULT 0);
"""
_ADDED_COLUMNS = (("crc32c", "INTEGER"), ("remake", "TEXT"))  # an index written before they existed gets them
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
INDEX_NAME = "index.sqlite"
_REST_ORDER = "items_rest_order"

T = TypeVar("T")


class StoreUnavailable(StoreError):
    """The disk refused (full, read-only, failing): nothing was changed; the same call may work later."""


class IndexCorrupt(StoreError):
    """SQLite found the index damaged: reopening the store rebuilds it from the payload files."""


@dataclass(frozen=True)
class Recovery:
    """What opening the store found and cleaned."""

    temp_files_removed: list[str] = field(default_factory=list)
    orphan_payloads_removed: list[str] = field(default_factory=list)
    rows_without_payload: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.temp_files_removed or self.orphan_payloads_removed or self.rows_without_payload)


@dataclass(frozen=True)
class Rebuilt:
    """What replaced a damaged index: why, where the old one went, how many rows came back from the
    payload files, which files were set aside; ``store_set_aside``: the whole store was moved there
    instead (the rebuild itself failed) and a fresh one started."""

    reason: str
    index_set_aside: list[str]
    rows: int
    files_set_aside: list[str]
    store_set_aside: str = ""


def is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def fault(what: str, exc: BaseException) -> StoreError:
    """The StoreError an OSError or SQLite error means."""
    if isinstance(exc, sqlite3.DatabaseError) and is_corruption(exc):
        return IndexCorrupt(f"cannot {what}: the index is damaged: {exc}")
    return StoreUnavailable(f"cannot {what}: {type(exc).__name__}: {exc}")


def faults(what: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Turn what the disk and SQLite raise inside a method into a StoreError."""
    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def method(self: Any, *args: Any, **kwargs: Any) -> T:
            try:
                return fn(self, *args, **kwargs)
            except (sqlite3.Error, OSError) as exc:
                raise fault(what, exc) from None
        return method
    return wrap


def write_durable(path: Path, data: bytes | memoryview) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data).cast("B")
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _connect(root: Path) -> sqlite3.Connection:
    db = sqlite3.connect(root / INDEX_NAME, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        have = {r[1] for r in db.execute("PRAGMA table_info(items)")}
        for name, decl in _ADDED_COLUMNS:
            if name not in have:
                db.execute(f"ALTER TABLE items ADD COLUMN {name} {decl}")
    except BaseException:
        db.close()
        raise
    return db


def _damage(db: sqlite3.Connection, payload_dir: Path) -> str:
    """Why this index cannot be trusted ('' if it can): SQLite's quick_check, or no rows beside payload
    files in an index never marked complete (a lost index, or a rebuild that did not finish)."""
    problems = [r[0] for r in db.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        return "quick_check: " + "; ".join(map(str, problems[:4]))
    if db.execute("SELECT 1 FROM meta WHERE key = 'index_complete'").fetchone() is None:
        if db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0 and any(payload_dir.iterdir()):
            return "no index rows beside payload files"
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('index_complete', 1)")
    return ""


def open_index(root: Path, seq_mark: int) -> tuple[sqlite3.Connection, Rebuilt | None]:
    """The index of the store at ``root`` (its ``payload/`` and ``tmp/`` exist), checked; a damaged or
    missing one rebuilt (``seq_mark``: where transaction numbers go on). StoreUnavailable if the disk
    refuses."""
    reason = ""
    db: sqlite3.Connection | None = None
    try:
        db = _connect(root)
        reason = _damage(db, root / "payload")
    except sqlite3.Error as exc:
        if db is not None:
            db.close()
        if not is_corruption(exc):
            raise fault(f"open the store index in {root}", exc) from None
        reason = f"{type(exc).__name__}: {exc}"
    if not reason:
        assert db is not None
        return db, None
    if db is not None:
        db.close()
    return _rebuild(root, reason, seq_mark)


def _first_seq(seq_mark: int) -> int:
    """Where transaction numbers go on after a rebuild: above the mark, or (no mark) the Unix time in
    seconds, above any counter that started at zero."""
    return seq_mark if seq_mark else int(time.time()) % (1 << 32)


def _rebuild(root: Path, reason: str, seq_mark: int) -> tuple[sqlite3.Connection, Rebuilt]:
    """Set the damaged index aside and build a new one from the payload files in one transaction;
    if even that fails for anything but a refusing disk, set the whole store aside, start empty."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"
    aside = root / "aside"
    try:
        moved = [set_aside(p, aside, stamp) for p in (root / f"{INDEX_NAME}{s}" for s in ("", "-wal", "-shm"))
                 if p.exists()]
        fsync_dir(root)
        scan = scan_payloads(root / "payload", aside, stamp)
        db = _connect(root)
        try:
            _insert_rebuilt(db, scan.items, _first_seq(seq_mark))
        except BaseException:
            db.close()
            raise
    except (OSError, sqlite3.OperationalError) as exc:
        if isinstance(exc, sqlite3.Error) and is_corruption(exc):
            return _start_afresh(root, reason, stamp, exc, seq_mark)
        raise fault("rebuild the store index", exc) from None
    except Exception as exc:  # the rebuild itself failed: never a crash loop, start afresh
        return _start_afresh(root, reason, stamp, exc, seq_mark)
    return db, Rebuilt(reason, moved, len(scan.items), scan.set_aside)


def _insert_rebuilt(db: sqlite3.Connection, items: list[tuple[PayloadInfo, float]], first_seq: int) -> None:
    """The rows, with no CRC: the file's bytes now may already be rotten, so its first check decodes
    it (:class:`~fsw.downlink.integrity.Integrity`) before its CRC is trusted."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        for seq, (info, mtime) in enumerate(sorted(items, key=lambda x: x[1]), start=1):
            db.execute(
                "INSERT INTO items (id, kind, cls, score, requested, size, created, codec, gen, seq, crc32c, "
                "remake) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, NULL, ?)",
                (info.id, info.kind, class_of(info.kind, False, info.priority), info.score, info.size, mtime,
                 info.codec, info.gen, seq, json.dumps(info.remake) if info.remake else None))
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('transaction_seq', ?)", (first_seq,))
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('index_complete', 1)")


def _start_afresh(root: Path, reason: str, stamp: str, exc: BaseException,
                  seq_mark: int) -> tuple[sqlite3.Connection, Rebuilt]:
    """Move the whole store aside (beside the root) and open an empty one in its place."""
    aside = root.with_name(f"{root.name}.aside-{stamp}")
    try:
        os.replace(root, aside)
        for d in (root, root / "payload", root / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        db = _connect(root)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('transaction_seq', ?)", (_first_seq(seq_mark),))
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('index_complete', 1)")
    except (OSError, sqlite3.Error) as err:
        raise fault("start a fresh store", err) from None
    return db, Rebuilt(f"{reason}; rebuild failed: {type(exc).__name__}: {exc}", [], 0, [], str(aside))


def rest_key(weight_per_h: float) -> str:
    """The SQL of a 'rest' item's sending key, highest first: grade + weight x age in hours is
    ``score + w * (now - created) / 3600``, the same order as ``score - w * created / 3600`` at any
    ``now``, which an index can hold (the text must be the index's, word for word, for SQLite to use it)."""
    w = float(weight_per_h)
    if not math.isfinite(w):
        raise ValueError(f"age weight {weight_per_h!r} is not a finite number")
    return f"score - {w!r} * created / 3600.0"


def ensure_rest_order(db: sqlite3.Connection, weight_per_h: float) -> None:
    """Index the 'rest' class in sending order for this age weight; made again (one transaction) if
    the index was made for another weight."""
    sql = (f"CREATE INDEX {_REST_ORDER} ON items (({rest_key(weight_per_h)}) DESC, created, seq) "
           "WHERE cls = 'rest' AND state != 'refused'")
    have = db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (_REST_ORDER,)).fetchone()
    if have and have[0] == sql:
        return
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute(f"DROP INDEX IF EXISTS {_REST_ORDER}")
        db.execute(sql)


_COUNTED = ("SELECT cls, kind, codec, reencoded, COUNT(*), SUM(size) FROM items "
            "GROUP BY cls, kind, codec, reencoded ORDER BY cls, kind, codec, reencoded")


def recount_totals(db: sqlite3.Connection) -> bool:
    """Count the rows into ``totals`` if they say otherwise (an index from before totals existed);
    True if they had to be written."""
    counted = [tuple(r) for r in db.execute(_COUNTED)]
    kept = [tuple(r) for r in db.execute("SELECT cls, kind, codec, reencoded, items, bytes FROM totals "
                                         "ORDER BY cls, kind, codec, reencoded")]
    if counted == kept:
        return False
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM totals")
        db.executemany("INSERT INTO totals (cls, kind, codec, reencoded, items, bytes) VALUES (?, ?, ?, ?, ?, ?)",
                       counted)
    return True


def recover(db: sqlite3.Connection, payload_dir: Path, tmp_dir: Path) -> Recovery:
    """Clean what a crash can leave: temp files, payload files no row names (or of another generation),
    rows whose payload is missing or of the wrong size; items left 'sending' are 'stored' again;
    open transactions whose item changed are forgotten; the running totals are checked against the rows.
    OSError or sqlite3.Error if the disk refuses."""
    temps = sorted(p.name for p in tmp_dir.iterdir())
    for name in temps:
        (tmp_dir / name).unlink(missing_ok=True)
    rows = {r[0]: (int(r[1]), int(r[2])) for r in db.execute("SELECT id, size, gen FROM items")}
    orphans, present = [], set()
    for p in payload_dir.iterdir():
        m = FILE_RE.match(p.name)
        if m and m.group(1) in rows and int(m.group(2)) == rows[m.group(1)][1] \
                and p.stat().st_size == rows[m.group(1)][0]:
            present.add(m.group(1))
            continue
        if not (m and m.group(1) in rows and int(m.group(2)) == rows[m.group(1)][1]):
            orphans.append(p.name)
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    missing = sorted(set(rows) - present)
    for pid in missing:
        db.execute("DELETE FROM items WHERE id = ?", (pid,))
        (payload_dir / payload_name(pid, rows[pid][1])).unlink(missing_ok=True)
    if db.execute("SELECT 1 FROM items WHERE state = 'sending' LIMIT 1").fetchone():
        db.execute("UPDATE items SET state = 'stored' WHERE state = 'sending'")
    db.execute("DELETE FROM open_transactions WHERE seq NOT IN (SELECT o.seq FROM open_transactions o "
               "JOIN items i ON i.id = o.id AND i.gen = o.gen AND i.size = o.size)")
    recount_totals(db)
    if temps or orphans or missing:
        fsync_dir(payload_dir)
        fsync_dir(tmp_dir)
    return Recovery(temps, sorted(orphans), missing)
