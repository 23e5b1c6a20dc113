"""The on-board product store: crash-safe files plus an SQLite index, bounded by a quota. No sockets.

Layout under the store root::

    payload/<id>~<gen>.prod  one file per stored item (gen counts re-encodings)
    tmp/                     payloads being written (cleaned on open)
    aside/                   what a damaged index left: the index itself, payload files that describe nothing
    transaction_seq          a high-water mark of CFDP transaction numbers, kept outside the index
    index.sqlite             WAL, synchronous=FULL: items(..., crc32c, remake), meta(key, value), transactions
                             (which product each CFDP transaction carried) and open_transactions (the sending
                             progress of each transaction in flight, so a restart resumes it)

:meth:`ProductStore.add` writes the payload to ``tmp/``, fsyncs it, renames
it into ``payload/``, fsyncs the directory, and only then inserts and commits
the row, with the CRC-32C of the bytes as they came: an item is *stored* once
its row exists, and by then its bytes are durable. :meth:`ProductStore.confirm`
deletes the row (commit) and then the file. :meth:`ProductStore.replace_payload`
writes the new bytes under the next generation's name, then switches the row
to it in one transaction, then removes the old file, so a crash at any point
leaves exactly one of the two. Reopening cleans what a crash can leave: temp
files, payload files no row names; rows whose payload is missing are dropped
and reported.

Faults never escape as anything but a StoreError: :class:`StoreUnavailable`
when the disk refuses (full, read-only, failing: nothing changed, try again
later) and :class:`IndexCorrupt` when SQLite finds the index damaged. Opening
does not raise for a refusing disk: the store is then not :attr:`ready`, every
method raises StoreUnavailable, and :meth:`ProductStore.heal` tries again. A
damaged index (SQLite says so, or ``quick_check`` finds damage), or a missing
one beside payload files, is moved to ``aside/`` and rebuilt from the payload
files' own metadata (:mod:`fsw.downlink.rebuild`); :attr:`ProductStore.rebuilt`
says what that did. Transaction numbers go on above the ``transaction_seq``
mark, so the ground never takes a new transaction for an old one.

Order and eviction follow :class:`~fsw.downlink.policy.Policy`.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from framework.errors import StoreError
from fsw.downlink.payload import FILE_RE, data_crc32c, payload_name
from fsw.downlink.policy import EVICTABLE, Policy, class_of
from fsw.downlink.rebuild import scan_payloads, set_aside
from link.filestore import fsync_dir

__all__ = ["StoredProduct", "Recovery", "Rebuilt", "ProductStore", "OpenTransaction", "StoreUnavailable",
           "IndexCorrupt"]

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, apid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS open_transactions (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, apid INTEGER NOT NULL,
                                              gen INTEGER NOT NULL, size INTEGER NOT NULL, suffix TEXT NOT NULL,
                                              progress INTEGER NOT NULL DEFAULT 0,
                                              eof_sent INTEGER NOT NULL DEFAULT 0);
"""
_ADDED_COLUMNS = (("crc32c", "INTEGER"), ("remake", "TEXT"))  # an index written before they existed gets them
_TRANSACTIONS_KEPT = 4096
_SEQ_BLOCK = 1024  # transaction numbers reserved above the last used one by each write of the mark
_COLS = "id, kind, cls, score, requested, size, created, codec, gen, state, crc32c"
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26

T = TypeVar("T")


class StoreUnavailable(StoreError):
    """The disk refused (full, read-only, failing): nothing was changed; the same call may work later."""


class IndexCorrupt(StoreError):
    """SQLite found the index damaged: reopening the store rebuilds it from the payload files."""


@dataclass(frozen=True)
class StoredProduct:
    id: str
    kind: str
    cls: str
    score: float
    requested: bool
    size: int
    created: float
    codec: str
    gen: int
    path: Path
    state: str = "stored"
    crc32c: int | None = None  # of the payload as stored; None for an item stored before the index kept it


@dataclass(frozen=True)
class OpenTransaction:
    """A CFDP transaction in flight when last recorded: what it carries and how far it had sent."""

    seq: int
    product_id: str
    apid: int
    gen: int
    size: int
    suffix: str
    progress: int
    eof_sent: bool


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


def _is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def _fault(what: str, exc: BaseException) -> StoreError:
    """The StoreError an OSError or SQLite error means."""
    if isinstance(exc, sqlite3.DatabaseError) and _is_corruption(exc):
        return IndexCorrupt(f"cannot {what}: the index is damaged: {exc}")
    return StoreUnavailable(f"cannot {what}: {type(exc).__name__}: {exc}")


def _faults(what: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Turn what the disk and SQLite raise inside a method into a StoreError."""
    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def method(self: "ProductStore", *args: Any, **kwargs: Any) -> T:
            try:
                return fn(self, *args, **kwargs)
            except (sqlite3.Error, OSError) as exc:
                raise _fault(what, exc) from None
        return method
    return wrap


def _write_durable(path: Path, data: bytes | memoryview) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data).cast("B")
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


class ProductStore:
    """Stored items, in the policy's order, within ``quota_bytes``.

    Items evicted to make room are appended to :attr:`evicted` (the caller
    reports and clears it).
    """

    def __init__(self, root: Path, clock: Callable[[], float] = time.time, policy: Policy | None = None,
                 quota_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.payload_dir = self.root / "payload"
        self.tmp_dir = self.root / "tmp"
        self.aside_dir = self.root / "aside"
        self._clock = clock
        self.policy = policy or Policy()
        self.quota_bytes = quota_bytes
        self.evicted: list[StoredProduct] = []
        self.recovery = Recovery()
        self.rebuilt: Rebuilt | None = None
        self.fault = ""  # why the store is not ready, if it is not
        self._db: sqlite3.Connection | None = None
        self._recovered = False
        self._seq_mark = 0
        try:
            self.heal()
        except StoreUnavailable:
            pass  # not ready: the owner sees it and calls heal() again later

    # -- opening, faults -----------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """The index is open and crash leftovers are cleaned."""
        return self._db is not None and self._recovered

    def heal(self) -> None:
        """Open the index (rebuilding a damaged one) and clean crash leftovers, whichever is not done
        yet. StoreUnavailable while the disk refuses."""
        try:
            if self._db is None:
                self._db = self._open()
            if not self._recovered:
                try:
                    self.recovery = self._recover()
                except (sqlite3.Error, OSError) as exc:
                    raise _fault("clean crash leftovers", exc) from None
                self._recovered = True
        except StoreUnavailable as exc:
            self.fault = str(exc)
            raise
        self.fault = ""

    def reopen(self) -> None:
        """After an IndexCorrupt: close and open again (which checks the index and rebuilds it)."""
        self.close()
        self._recovered = False
        self.heal()

    @_faults("write to the store")
    def probe(self) -> None:
        """Write, sync and remove a small file, and write the index: StoreUnavailable unless both work."""
        self.heal()
        path = self.tmp_dir / f"probe.{os.getpid()}.tmp"
        try:
            _write_durable(path, bytes(4096))
        finally:
            path.unlink(missing_ok=True)
        self.db.execute("INSERT INTO meta (key, value) VALUES ('probe', 1) "
                        "ON CONFLICT(key) DO UPDATE SET value = value + 1")

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable(f"the store index is not open: {self.fault or 'closed'}")
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _open(self) -> sqlite3.Connection:
        """The index, checked; a damaged or missing one rebuilt. StoreUnavailable if the disk refuses."""
        try:
            for d in (self.root, self.payload_dir, self.tmp_dir):
                d.mkdir(parents=True, exist_ok=True)
            self._seq_mark = self._read_seq_mark()
        except OSError as exc:
            raise _fault(f"open the store in {self.root}", exc) from None
        reason = ""
        db: sqlite3.Connection | None = None
        try:
            db = self._connect()
            reason = self._damage(db)
        except sqlite3.Error as exc:
            if not _is_corruption(exc):
                if db is not None:
                    db.close()
                raise _fault(f"open the store index in {self.root}", exc) from None
            reason = f"{type(exc).__name__}: {exc}"
        if not reason:
            assert db is not None
            return db
        if db is not None:
            db.close()
        return self._rebuild(reason)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.root / "index.sqlite", isolation_level=None)
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

    def _damage(self, db: sqlite3.Connection) -> str:
        """Why this index cannot be trusted ('' if it can): SQLite's quick_check, or no rows beside payload
        files in an index never marked complete (a lost index, or a rebuild that did not finish)."""
        problems = [r[0] for r in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            return "quick_check: " + "; ".join(map(str, problems[:4]))
        if db.execute("SELECT 1 FROM meta WHERE key = 'index_complete'").fetchone() is None:
            if db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0 and any(self.payload_dir.iterdir()):
                return "no index rows beside payload files"
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('index_complete', 1)")
        return ""

    def _rebuild(self, reason: str) -> sqlite3.Connection:
        """Set the damaged index aside and build a new one from the payload files in one transaction;
        if even that fails for anything but a refusing disk, set the whole store aside, start empty."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"
        try:
            moved = [set_aside(p, self.aside_dir, stamp) for p in
                     (self.root / f"index.sqlite{s}" for s in ("", "-wal", "-shm")) if p.exists()]
            fsync_dir(self.root)
            scan = scan_payloads(self.payload_dir, self.aside_dir, stamp)
            db = self._connect()
            try:
                self._insert_rebuilt(db, scan.items)
            except BaseException:
                db.close()
                raise
        except (OSError, sqlite3.OperationalError) as exc:
            if isinstance(exc, sqlite3.Error) and _is_corruption(exc):
                return self._start_afresh(reason, stamp, exc)
            raise _fault("rebuild the store index", exc) from None
        except Exception as exc:  # the rebuild itself failed: never a crash loop, start afresh
            return self._start_afresh(reason, stamp, exc)
        self.rebuilt = Rebuilt(reason, moved, len(scan.items), scan.set_aside)
        return db

    def _insert_rebuilt(self, db: sqlite3.Connection, items: list[tuple[Any, float]]) -> None:
        next_seq = self._seq_mark if self._seq_mark else int(time.time()) % (1 << 32)
        with db:
            db.execute("BEGIN IMMEDIATE")
            for seq, (info, mtime) in enumerate(sorted(items, key=lambda x: x[1]), start=1):
                db.execute(
                    "INSERT INTO items (id, kind, cls, score, requested, size, created, codec, gen, seq, crc32c, "
                    "remake) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)",
                    (info.id, info.kind, class_of(info.kind, False, info.priority), info.score, info.size, mtime,
                     info.codec, info.gen, seq, info.crc32c, json.dumps(info.remake) if info.remake else None))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('transaction_seq', ?)", (next_seq,))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('index_complete', 1)")

    def _start_afresh(self, reason: str, stamp: str, exc: BaseException) -> sqlite3.Connection:
        """Move the whole store aside (beside the root) and open an empty one in its place."""
        aside = self.root.with_name(f"{self.root.name}.aside-{stamp}")
        try:
            os.replace(self.root, aside)
            for d in (self.root, self.payload_dir, self.tmp_dir):
                d.mkdir(parents=True, exist_ok=True)
            db = self._connect()
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('transaction_seq', ?)",
                       (self._seq_mark or int(time.time()) % (1 << 32),))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('index_complete', 1)")
        except (OSError, sqlite3.Error) as err:
            raise _fault("start a fresh store", err) from None
        self.rebuilt = Rebuilt(f"{reason}; rebuild failed: {type(exc).__name__}: {exc}", [], 0, [], str(aside))
        return db

    # -- queries -------------------------------------------------------------------------------
    @_faults("read the index")
    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def __contains__(self, product_id: object) -> bool:
        return isinstance(product_id, str) and self.get(product_id) is not None

    @_faults("read the index")
    def total_bytes(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(size), 0) FROM items").fetchone()[0])

    @_faults("read the index")
    def get(self, product_id: str) -> StoredProduct | None:
        row = self.db.execute(f"SELECT {_COLS} FROM items WHERE id = ?", (product_id,)).fetchone()
        return self._product(row) if row else None

    def _ordered(self, now: float | None = None) -> Iterable[tuple]:
        """Rows in sending order (see :mod:`fsw.downlink.policy`)."""
        now = self._clock() if now is None else now
        ranks = " ".join(f"WHEN '{c}' THEN {self.policy.rank(c)}" for c in self.policy.priority)
        return self.db.execute(
            f"SELECT {_COLS} FROM items ORDER BY CASE cls {ranks} END ASC, "
            "CASE WHEN cls = 'rest' THEN -(score + ? * (? - created) / 3600.0) ELSE 0 END ASC, "
            "created ASC, seq ASC", (self.policy.age_weight_per_h, now))

    @_faults("read the index")
    def next(self, exclude: frozenset[str] | set[str] = frozenset(), now: float | None = None) -> StoredProduct | None:
        """The item to send next, skipping ``exclude``."""
        cur = self._ordered(now)
        for row in cur:
            if row[0] not in exclude:
                cur.close()
                return self._product(row)
        return None

    @_faults("read the index")
    def ids(self, now: float | None = None) -> list[str]:
        """Every stored id, in sending order."""
        return [r[0] for r in self._ordered(now)]

    @_faults("read the index")
    def items(self, now: float | None = None) -> list[StoredProduct]:
        """Every stored item, in sending order (what the start-up scrub checks, first to go first)."""
        return [self._product(r) for r in self._ordered(now)]

    @_faults("read the index")
    def depth_by_class(self) -> dict[str, int]:
        counts = dict(self.db.execute("SELECT cls, COUNT(*) FROM items GROUP BY cls"))
        return {c: int(counts.get(c, 0)) for c in self.policy.priority}

    @_faults("read the index")
    def oldest_created(self, kinds: tuple[str, ...] | None = None) -> float | None:
        """Creation time of the oldest unconfirmed item (of ``kinds``, if given)."""
        if kinds:
            marks = ",".join("?" * len(kinds))
            row = self.db.execute(f"SELECT MIN(created) FROM items WHERE kind IN ({marks})", kinds).fetchone()
        else:
            row = self.db.execute("SELECT MIN(created) FROM items").fetchone()
        return None if row[0] is None else float(row[0])

    @_faults("read the index")
    def reencode_candidates(self, kinds: tuple[str, ...], codec: str, limit: int = 4) -> list[StoredProduct]:
        """Items of ``kinds`` not yet tried, not in flight, not already in ``codec`` (a codec tag), newest
        first: the oldest are the likeliest to be sent before a re-encoding could finish."""
        marks = ",".join("?" * len(kinds))
        rows = self.db.execute(f"SELECT {_COLS} FROM items WHERE kind IN ({marks}) AND reencoded = 0 "
                               f"AND state = 'stored' AND codec != ? ORDER BY created DESC, seq DESC LIMIT ?",
                               (*kinds, codec, limit))
        return [self._product(r) for r in rows]

    @_faults("read the index")
    def reencode_backlog(self, kinds: tuple[str, ...], codec: str) -> int:
        marks = ",".join("?" * len(kinds))
        return int(self.db.execute(f"SELECT COUNT(*) FROM items WHERE kind IN ({marks}) AND reencoded = 0 "
                                   "AND codec != ?", (*kinds, codec)).fetchone()[0])

    @_faults("read the index")
    def remake_of(self, product_id: str) -> dict[str, Any] | None:
        """The MAKE_ROI arguments that make the item again (:func:`fsw.downlink.payload.remake_args`)."""
        row = self.db.execute("SELECT remake FROM items WHERE id = ?", (product_id,)).fetchone()
        if not row or not row[0]:
            return None
        try:
            args = json.loads(row[0])
        except ValueError:
            return None
        return args if isinstance(args, dict) else None

    def path_of(self, product_id: str, gen: int = 0) -> Path:
        self._check_id(product_id)
        return self.payload_dir / payload_name(product_id, gen)

    # -- changes -------------------------------------------------------------------------------
    def add(self, product_id: str, kind: str, data: bytes | memoryview, score: float = 0.0,
            requested: bool = False, codec: str = "", priority: str = "",
            remake: dict[str, Any] | None = None) -> StoredProduct:
        """Make an item durable, then index it with its CRC-32C, evicting by policy if over quota.

        Raises StoreError if it cannot be stored (bad id, duplicate, no room by policy), and its
        StoreUnavailable if the disk refuses (nothing is left behind; the same add may work later)."""
        self._check_id(product_id)
        if self.get(product_id) is not None:
            raise StoreError(f"product {product_id} is already stored")
        cls = class_of(kind, requested, priority)
        size = memoryview(data).nbytes
        crc = data_crc32c(data)
        victims = self._make_room(size, cls, float(score))
        final = self.path_of(product_id, 0)
        tmp = self.tmp_dir / f"{product_id}.{os.getpid()}.tmp"
        renamed = False
        try:
            _write_durable(tmp, data)
            os.replace(tmp, final)
            renamed = True
            fsync_dir(self.payload_dir)
            created = self._clock()
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                for v in victims:
                    self.db.execute("DELETE FROM items WHERE id = ?", (v.id,))
                self.db.execute(
                    "INSERT INTO items (id, kind, cls, score, requested, size, created, codec, seq, crc32c, remake) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM items), ?, ?)",
                    (product_id, kind, cls, float(score), int(bool(requested)), size, created, codec, crc,
                     json.dumps(remake) if remake else None))
        except (OSError, sqlite3.Error) as exc:
            for leftover in (tmp, final) if renamed else (tmp,):
                try:
                    leftover.unlink(missing_ok=True)
                except OSError:
                    pass  # removed at the next open
            raise _fault(f"store {product_id}", exc) from None
        for v in victims:
            v.path.unlink(missing_ok=True)
        self.evicted.extend(victims)
        return StoredProduct(product_id, kind, cls, float(score), bool(requested), size, created, codec, 0, final,
                             crc32c=crc)

    @_faults("read the index")
    def _make_room(self, size: int, cls: str, score: float) -> list[StoredProduct]:
        """Items to evict so ``size`` more bytes fit; StoreError if the policy cannot make room."""
        if self.quota_bytes is None:
            return []
        need = self.total_bytes() + size - self.quota_bytes
        if need <= 0:
            return []
        victims: list[StoredProduct] = []
        for ecls in EVICTABLE:
            order = "score ASC, created ASC, seq ASC" if ecls == "rest" else "created ASC, seq ASC"
            for row in self.db.execute(f"SELECT {_COLS} FROM items WHERE cls = ? AND state = 'stored' "
                                       f"ORDER BY {order}", (ecls,)):
                p = self._product(row)
                if ecls == cls == "rest" and p.score >= score:
                    break  # everything left is worth more than the newcomer
                victims.append(p)
                need -= p.size
                if need <= 0:
                    return victims
        raise StoreError(f"store full: {size} bytes of {cls} do not fit in {self.quota_bytes} "
                         f"and the eviction policy frees too little")

    def confirm(self, product_id: str) -> bool:
        """The ground has the item: forget it (row first, then file). False if unknown.

        A full disk can refuse even a delete (the WAL must grow): the payload then goes first, to free
        its space, and the row is deleted again (a row left without its payload is dropped and reported
        at the next open). StoreUnavailable if even that fails: the caller tries again later."""
        p = self.get(product_id)
        if p is None:
            return False
        try:
            self._forget(product_id)
        except sqlite3.Error as exc:
            if _is_corruption(exc):
                raise _fault(f"confirm {product_id}", exc) from None
            try:
                p.path.unlink(missing_ok=True)
                self._forget(product_id)
            except (sqlite3.Error, OSError) as again:
                raise _fault(f"confirm {product_id}", again) from None
        try:
            p.path.unlink(missing_ok=True)
            fsync_dir(self.payload_dir)
        except OSError:
            pass  # an orphan payload is removed at the next open
        return True

    drop = confirm  # an operator's DROP forgets an item the same durable way

    def _forget(self, product_id: str) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM items WHERE id = ?", (product_id,))
            self.db.execute("DELETE FROM open_transactions WHERE id = ?", (product_id,))

    @_faults("request a product")
    def request(self, product_id: str) -> StoredProduct:
        """Mark an item requested by an operator: it moves to the 'requested' class."""
        p = self.get(product_id)
        if p is None:
            raise StoreError(f"product {product_id} is not on board")
        cls = class_of(p.kind, True)
        self.db.execute("UPDATE items SET requested = 1, cls = ? WHERE id = ?", (cls, product_id))
        return self.get(product_id)  # type: ignore[return-value]

    @_faults("mark an item's state")
    def set_state(self, product_id: str, state: str) -> None:
        """Mark an item 'stored' or 'sending' (reopening resets it to 'stored')."""
        self.db.execute("UPDATE items SET state = ? WHERE id = ?", (state, product_id))

    @_faults("read the index")
    def states(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT id, state FROM items"))

    @_faults("mark an item re-encoded")
    def mark_reencoded(self, product_id: str) -> None:
        """Re-encoding was tried (won or not): do not try again."""
        self.db.execute("UPDATE items SET reencoded = 1 WHERE id = ?", (product_id,))

    @_faults("record a payload's CRC")
    def set_crc(self, product_id: str, gen: int, crc: int) -> None:
        """Record the CRC-32C of an item's payload (generation ``gen``): one stored before the index kept
        CRCs, or whose recorded CRC was the damaged part."""
        self.db.execute("UPDATE items SET crc32c = ? WHERE id = ? AND gen = ?", (crc, product_id, gen))

    def replace_payload(self, product_id: str, data: bytes, codec: str = "") -> bool:
        """Atomically swap an item's bytes. False if it is gone or went in flight meanwhile."""
        p = self.get(product_id)
        if p is None or p.state != "stored":
            return False
        new = self.path_of(product_id, p.gen + 1)
        tmp = self.tmp_dir / f"{product_id}.{os.getpid()}.re.tmp"
        try:
            _write_durable(tmp, data)
            os.replace(tmp, new)
            fsync_dir(self.payload_dir)
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                cur = self.db.execute("UPDATE items SET size = ?, gen = ?, codec = ?, reencoded = 1, crc32c = ? "
                                      "WHERE id = ? AND state = 'stored' AND gen = ?",
                                      (len(data), p.gen + 1, codec or p.codec, data_crc32c(data), product_id, p.gen))
                switched = cur.rowcount == 1
        except (OSError, sqlite3.Error) as exc:
            for leftover in (tmp, new):
                try:
                    leftover.unlink(missing_ok=True)
                except OSError:
                    pass  # removed at the next open
            raise _fault(f"replace {product_id}", exc) from None
        (p.path if switched else new).unlink(missing_ok=True)
        return switched

    # -- CFDP transactions ---------------------------------------------------------------------
    @_faults("read the index")
    def next_transaction_seq(self) -> int:
        """A persistent counter for CFDP transaction sequence numbers (unique across restarts)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'transaction_seq'").fetchone()
        return int(row[0]) if row else 0

    @_faults("reserve transaction numbers")
    def reserve_transaction_seqs(self, count: int) -> int:
        """Reserve ``count`` sequence numbers; return the first. Durable before returning."""
        first = self.next_transaction_seq()
        self._raise_seq_mark(first + count)
        self.db.execute("INSERT INTO meta (key, value) VALUES ('transaction_seq', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value", ((first + count) % (1 << 32),))
        return first

    @_faults("begin a transaction")
    def begin_transaction(self, product_id: str, apid: int, suffix: str = ".prod") -> int:
        """Reserve the next CFDP transaction number for ``product_id``, remember which product it
        carries (so a Finished PDU that arrives after a restart still confirms it) and record it open
        (so a restart resumes it). Durable on return."""
        self._raise_seq_mark(self.next_transaction_seq() + 1)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            seq = self.next_transaction_seq()
            self.db.execute("INSERT INTO meta (key, value) VALUES ('transaction_seq', ?) "
                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value", ((seq + 1) % (1 << 32),))
            self.db.execute("INSERT OR REPLACE INTO transactions (seq, id, apid) VALUES (?, ?, ?)",
                            (seq, product_id, apid))
            self.db.execute("DELETE FROM transactions WHERE seq < ?", (seq - _TRANSACTIONS_KEPT,))
            self.db.execute("INSERT OR REPLACE INTO open_transactions (seq, id, apid, gen, size, suffix) "
                            "SELECT ?, id, ?, gen, size, ? FROM items WHERE id = ?",
                            (seq, apid, suffix, product_id))
        return seq

    @_faults("record a transaction's progress")
    def transaction_progress(self, seq: int, progress: int, eof_sent: bool) -> None:
        """Record how far open transaction ``seq`` has sent its file data (bytes), and whether its EOF went."""
        self.db.execute("UPDATE open_transactions SET progress = MAX(progress, ?), eof_sent = MAX(eof_sent, ?) "
                        "WHERE seq = ?", (progress, int(eof_sent), seq))

    @_faults("close a transaction")
    def transaction_closed(self, seq: int) -> None:
        """Transaction ``seq`` ended (delivered, failed or abandoned): nothing to resume."""
        self.db.execute("DELETE FROM open_transactions WHERE seq = ?", (seq,))

    @_faults("read the index")
    def open_transactions(self) -> list[OpenTransaction]:
        """Transactions open at the last record whose item is still stored unchanged, oldest first."""
        rows = self.db.execute("SELECT o.seq, o.id, o.apid, o.gen, o.size, o.suffix, o.progress, o.eof_sent "
                               "FROM open_transactions o JOIN items i ON i.id = o.id AND i.gen = o.gen "
                               "AND i.size = o.size ORDER BY o.seq")
        return [OpenTransaction(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), r[5], int(r[6]), bool(r[7]))
                for r in rows]

    @_faults("read the index")
    def transaction(self, seq: int) -> tuple[str, int] | None:
        """(product id, APID) that transaction ``seq`` carried, if remembered."""
        row = self.db.execute("SELECT id, apid FROM transactions WHERE seq = ?", (seq,)).fetchone()
        return (row[0], int(row[1])) if row else None

    def _read_seq_mark(self) -> int:
        try:
            return int((self.root / "transaction_seq").read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except ValueError:
            return 0  # a damaged mark: the index's own counter still holds while the index does

    def _raise_seq_mark(self, upto: int) -> None:
        """Keep the mark above every number handed out, a block at a time (durable before use)."""
        if upto <= self._seq_mark:
            return
        mark = upto + _SEQ_BLOCK
        tmp = self.tmp_dir / "transaction_seq.tmp"
        _write_durable(tmp, str(mark).encode())
        os.replace(tmp, self.root / "transaction_seq")
        fsync_dir(self.root)
        self._seq_mark = mark

    # -- internals -----------------------------------------------------------------------------
    @staticmethod
    def _check_id(product_id: str) -> None:
        if not isinstance(product_id, str) or not _ID_RE.match(product_id):
            raise StoreError(f"product id {product_id!r} is not 1-128 of [A-Za-z0-9._-]")

    def _product(self, row: tuple) -> StoredProduct:
        pid, kind, cls, score, req, size, created, codec, gen, state, crc = row
        return StoredProduct(pid, kind, cls, float(score), bool(req), int(size), float(created), codec, int(gen),
                             self.path_of(pid, int(gen)), state, None if crc is None else int(crc))

    def _recover(self) -> Recovery:
        temps = sorted(p.name for p in self.tmp_dir.iterdir())
        for name in temps:
            (self.tmp_dir / name).unlink(missing_ok=True)
        db = self.db
        rows = {r[0]: (int(r[1]), int(r[2])) for r in db.execute("SELECT id, size, gen FROM items")}
        orphans, present = [], set()
        for p in self.payload_dir.iterdir():
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
            self.path_of(pid, rows[pid][1]).unlink(missing_ok=True)
        if db.execute("SELECT 1 FROM items WHERE state != 'stored' LIMIT 1").fetchone():
            db.execute("UPDATE items SET state = 'stored' WHERE state != 'stored'")
        db.execute("DELETE FROM open_transactions WHERE seq NOT IN (SELECT o.seq FROM open_transactions o "
                   "JOIN items i ON i.id = o.id AND i.gen = o.gen AND i.size = o.size)")
        if temps or orphans or missing:
            fsync_dir(self.payload_dir)
            fsync_dir(self.tmp_dir)
        return Recovery(temps, sorted(orphans), missing)
