"""The on-board product store: crash-safe files plus an SQLite index, bounded by a quota. No sockets.

Layout under the store root::

    payload/<id>~<gen>.prod  one file per stored item (gen counts re-encodings)
    tmp/                     payloads being written (cleaned on open)
    index.sqlite             WAL, synchronous=FULL: items(...), meta(key, value), transactions (which
                             product each CFDP transaction carried) and open_transactions (the sending
                             progress of each transaction in flight, so a restart resumes it)

:meth:`ProductStore.add` writes the payload to ``tmp/``, fsyncs it, renames
it into ``payload/``, fsyncs the directory, and only then inserts and commits
the row: an item is *stored* once its row exists, and by then its bytes are
durable. :meth:`ProductStore.confirm` deletes the row (commit) and then the
file. :meth:`ProductStore.replace_payload` writes the new bytes under the next
generation's name, then switches the row to it in one transaction, then
removes the old file, so a crash at any point leaves exactly one of the two.
Reopening cleans what a crash can leave: temp files, payload files no row
names; rows whose payload is missing are dropped and reported.

Order and eviction follow :class:`~fsw.downlink.policy.Policy`.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from link.filestore import fsync_dir
from fsw.downlink.policy import EVICTABLE, Policy, class_of
from framework.errors import StoreError

__all__ = ["StoredProduct", "Recovery", "ProductStore", "OpenTransaction"]

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_FILE_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,127})~(\d+)\.prod$")
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
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, apid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS open_transactions (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, apid INTEGER NOT NULL,
                                              gen INTEGER NOT NULL, size INTEGER NOT NULL, suffix TEXT NOT NULL,
                                              progress INTEGER NOT NULL DEFAULT 0,
                                              eof_sent INTEGER NOT NULL DEFAULT 0);
"""
_TRANSACTIONS_KEPT = 4096
_COLS = "id, kind, cls, score, requested, size, created, codec, gen, state"


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
        self._clock = clock
        self.policy = policy or Policy()
        self.quota_bytes = quota_bytes
        self.evicted: list[StoredProduct] = []
        for d in (self.root, self.payload_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.root / "index.sqlite", isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store index in {self.root}: {exc}") from None
        self.recovery = self._recover()

    # -- queries -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def __contains__(self, product_id: object) -> bool:
        return isinstance(product_id, str) and self.get(product_id) is not None

    def total_bytes(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM items").fetchone()[0])

    def get(self, product_id: str) -> StoredProduct | None:
        row = self._db.execute(f"SELECT {_COLS} FROM items WHERE id = ?", (product_id,)).fetchone()
        return self._product(row) if row else None

    def _ordered(self, now: float | None = None) -> Iterable[tuple]:
        """Rows in sending order (see :mod:`fsw.downlink.policy`)."""
        now = self._clock() if now is None else now
        ranks = " ".join(f"WHEN '{c}' THEN {self.policy.rank(c)}" for c in self.policy.priority)
        return self._db.execute(
            f"SELECT {_COLS} FROM items ORDER BY CASE cls {ranks} END ASC, "
            "CASE WHEN cls = 'rest' THEN -(score + ? * (? - created) / 3600.0) ELSE 0 END ASC, "
            "created ASC, seq ASC", (self.policy.age_weight_per_h, now))

    def next(self, exclude: frozenset[str] | set[str] = frozenset(), now: float | None = None) -> StoredProduct | None:
        """The item to send next, skipping ``exclude``."""
        cur = self._ordered(now)
        for row in cur:
            if row[0] not in exclude:
                cur.close()
                return self._product(row)
        return None

    def ids(self, now: float | None = None) -> list[str]:
        """Every stored id, in sending order."""
        return [r[0] for r in self._ordered(now)]

    def depth_by_class(self) -> dict[str, int]:
        counts = dict(self._db.execute("SELECT cls, COUNT(*) FROM items GROUP BY cls"))
        return {c: int(counts.get(c, 0)) for c in self.policy.priority}

    def oldest_created(self, kinds: tuple[str, ...] | None = None) -> float | None:
        """Creation time of the oldest unconfirmed item (of ``kinds``, if given)."""
        if kinds:
            marks = ",".join("?" * len(kinds))
            row = self._db.execute(f"SELECT MIN(created) FROM items WHERE kind IN ({marks})", kinds).fetchone()
        else:
            row = self._db.execute("SELECT MIN(created) FROM items").fetchone()
        return None if row[0] is None else float(row[0])

    def reencode_candidates(self, kinds: tuple[str, ...], codec: str, limit: int = 4) -> list[StoredProduct]:
        """Items of ``kinds`` not yet tried, not in flight, not already in ``codec`` (a codec tag), newest
        first: the oldest are the likeliest to be sent before a re-encoding could finish."""
        marks = ",".join("?" * len(kinds))
        rows = self._db.execute(f"SELECT {_COLS} FROM items WHERE kind IN ({marks}) AND reencoded = 0 "
                                f"AND state = 'stored' AND codec != ? ORDER BY created DESC, seq DESC LIMIT ?",
                                (*kinds, codec, limit))
        return [self._product(r) for r in rows]

    def reencode_backlog(self, kinds: tuple[str, ...], codec: str) -> int:
        marks = ",".join("?" * len(kinds))
        return int(self._db.execute(f"SELECT COUNT(*) FROM items WHERE kind IN ({marks}) AND reencoded = 0 "
                                    "AND codec != ?", (*kinds, codec)).fetchone()[0])

    def path_of(self, product_id: str, gen: int = 0) -> Path:
        self._check_id(product_id)
        return self.payload_dir / f"{product_id}~{gen}.prod"

    # -- changes -------------------------------------------------------------------------------
    def add(self, product_id: str, kind: str, data: bytes | memoryview, score: float = 0.0,
            requested: bool = False, codec: str = "", priority: str = "") -> StoredProduct:
        """Make an item durable, then index it, evicting by policy if over quota.

        Raises StoreError if it cannot be stored (bad id, duplicate, no room, disk error)."""
        self._check_id(product_id)
        if self.get(product_id) is not None:
            raise StoreError(f"product {product_id} is already stored")
        cls = class_of(kind, requested, priority)
        size = memoryview(data).nbytes
        victims = self._make_room(size, cls, float(score))
        final = self.path_of(product_id, 0)
        tmp = self.tmp_dir / f"{product_id}.{os.getpid()}.tmp"
        try:
            self._write_durable(tmp, data)
            os.replace(tmp, final)
            fsync_dir(self.payload_dir)
            created = self._clock()
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                for v in victims:
                    self._db.execute("DELETE FROM items WHERE id = ?", (v.id,))
                self._db.execute(
                    "INSERT INTO items (id, kind, cls, score, requested, size, created, codec, seq) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM items))",
                    (product_id, kind, cls, float(score), int(bool(requested)), size, created, codec))
        except (OSError, sqlite3.Error) as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot store {product_id}: {type(exc).__name__}: {exc}") from None
        for v in victims:
            v.path.unlink(missing_ok=True)
        self.evicted.extend(victims)
        return StoredProduct(product_id, kind, cls, float(score), bool(requested), size, created, codec, 0, final)

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
            for row in self._db.execute(f"SELECT {_COLS} FROM items WHERE cls = ? AND state = 'stored' "
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
        """The ground has the item: forget it (row first, then file). False if unknown."""
        p = self.get(product_id)
        if p is None:
            return False
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM items WHERE id = ?", (product_id,))
                self._db.execute("DELETE FROM open_transactions WHERE id = ?", (product_id,))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot confirm {product_id}: {exc}") from None
        try:
            p.path.unlink(missing_ok=True)
            fsync_dir(self.payload_dir)
        except OSError:
            pass  # an orphan payload is removed at the next open
        return True

    drop = confirm  # an operator's DROP forgets an item the same durable way

    def request(self, product_id: str) -> StoredProduct:
        """Mark an item requested by an operator: it moves to the 'requested' class."""
        p = self.get(product_id)
        if p is None:
            raise StoreError(f"product {product_id} is not on board")
        cls = class_of(p.kind, True)
        self._db.execute("UPDATE items SET requested = 1, cls = ? WHERE id = ?", (cls, product_id))
        return self.get(product_id)  # type: ignore[return-value]

    def set_state(self, product_id: str, state: str) -> None:
        """Mark an item 'stored' or 'sending' (reopening resets it to 'stored')."""
        self._db.execute("UPDATE items SET state = ? WHERE id = ?", (state, product_id))

    def states(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT id, state FROM items"))

    def mark_reencoded(self, product_id: str) -> None:
        """Re-encoding was tried (won or not): do not try again."""
        self._db.execute("UPDATE items SET reencoded = 1 WHERE id = ?", (product_id,))

    def replace_payload(self, product_id: str, data: bytes, codec: str = "") -> bool:
        """Atomically swap an item's bytes. False if it is gone or went in flight meanwhile."""
        p = self.get(product_id)
        if p is None or p.state != "stored":
            return False
        new = self.path_of(product_id, p.gen + 1)
        tmp = self.tmp_dir / f"{product_id}.{os.getpid()}.re.tmp"
        try:
            self._write_durable(tmp, data)
            os.replace(tmp, new)
            fsync_dir(self.payload_dir)
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                cur = self._db.execute("UPDATE items SET size = ?, gen = ?, codec = ?, reencoded = 1 "
                                       "WHERE id = ? AND state = 'stored' AND gen = ?",
                                       (len(data), p.gen + 1, codec or p.codec, product_id, p.gen))
                switched = cur.rowcount == 1
        except (OSError, sqlite3.Error) as exc:
            tmp.unlink(missing_ok=True)
            new.unlink(missing_ok=True)
            raise StoreError(f"cannot replace {product_id}: {type(exc).__name__}: {exc}") from None
        (p.path if switched else new).unlink(missing_ok=True)
        return switched

    def next_transaction_seq(self) -> int:
        """A persistent counter for CFDP transaction sequence numbers (unique across restarts)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'transaction_seq'").fetchone()
        return int(row[0]) if row else 0

    def reserve_transaction_seqs(self, count: int) -> int:
        """Reserve ``count`` sequence numbers; return the first. Durable before returning."""
        first = self.next_transaction_seq()
        self._db.execute("INSERT INTO meta (key, value) VALUES ('transaction_seq', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", ((first + count) % (1 << 32),))
        return first

    def begin_transaction(self, product_id: str, apid: int, suffix: str = ".prod") -> int:
        """Reserve the next CFDP transaction number for ``product_id``, remember which product it
        carries (so a Finished PDU that arrives after a restart still confirms it) and record it open
        (so a restart resumes it). Durable on return."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            seq = self.next_transaction_seq()
            self._db.execute("INSERT INTO meta (key, value) VALUES ('transaction_seq', ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value", ((seq + 1) % (1 << 32),))
            self._db.execute("INSERT OR REPLACE INTO transactions (seq, id, apid) VALUES (?, ?, ?)",
                             (seq, product_id, apid))
            self._db.execute("DELETE FROM transactions WHERE seq < ?", (seq - _TRANSACTIONS_KEPT,))
            self._db.execute("INSERT OR REPLACE INTO open_transactions (seq, id, apid, gen, size, suffix) "
                             "SELECT ?, id, ?, gen, size, ? FROM items WHERE id = ?", (seq, apid, suffix, product_id))
        return seq

    def transaction_progress(self, seq: int, progress: int, eof_sent: bool) -> None:
        """Record how far open transaction ``seq`` has sent its file data (bytes), and whether its EOF went."""
        try:
            self._db.execute("UPDATE open_transactions SET progress = MAX(progress, ?), eof_sent = MAX(eof_sent, ?) "
                             "WHERE seq = ?", (progress, int(eof_sent), seq))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record the progress of transaction {seq}: {exc}") from None

    def transaction_closed(self, seq: int) -> None:
        """Transaction ``seq`` ended (delivered, failed or abandoned): nothing to resume."""
        self._db.execute("DELETE FROM open_transactions WHERE seq = ?", (seq,))

    def open_transactions(self) -> list[OpenTransaction]:
        """Transactions open at the last record whose item is still stored unchanged, oldest first."""
        rows = self._db.execute("SELECT o.seq, o.id, o.apid, o.gen, o.size, o.suffix, o.progress, o.eof_sent "
                                "FROM open_transactions o JOIN items i ON i.id = o.id AND i.gen = o.gen "
                                "AND i.size = o.size ORDER BY o.seq")
        return [OpenTransaction(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), r[5], int(r[6]), bool(r[7]))
                for r in rows]

    def transaction(self, seq: int) -> tuple[str, int] | None:
        """(product id, APID) that transaction ``seq`` carried, if remembered."""
        row = self._db.execute("SELECT id, apid FROM transactions WHERE seq = ?", (seq,)).fetchone()
        return (row[0], int(row[1])) if row else None

    def close(self) -> None:
        self._db.close()

    # -- internals -----------------------------------------------------------------------------
    @staticmethod
    def _check_id(product_id: str) -> None:
        if not isinstance(product_id, str) or not _ID_RE.match(product_id):
            raise StoreError(f"product id {product_id!r} is not 1-128 of [A-Za-z0-9._-]")

    def _product(self, row: tuple) -> StoredProduct:
        pid, kind, cls, score, req, size, created, codec, gen, state = row
        return StoredProduct(pid, kind, cls, float(score), bool(req), int(size), float(created), codec, int(gen),
                             self.path_of(pid, int(gen)), state)

    @staticmethod
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

    def _recover(self) -> Recovery:
        temps = sorted(p.name for p in self.tmp_dir.iterdir())
        for name in temps:
            (self.tmp_dir / name).unlink(missing_ok=True)
        rows = {r[0]: (int(r[1]), int(r[2])) for r in self._db.execute("SELECT id, size, gen FROM items")}
        orphans, present = [], set()
        for p in self.payload_dir.iterdir():
            m = _FILE_RE.match(p.name)
            if m and m.group(1) in rows and int(m.group(2)) == rows[m.group(1)][1] \
                    and p.stat().st_size == rows[m.group(1)][0]:
                present.add(m.group(1))
                continue
            if not (m and m.group(1) in rows and int(m.group(2)) == rows[m.group(1)][1]):
                orphans.append(p.name)
                p.unlink(missing_ok=True)
        missing = sorted(set(rows) - present)
        for pid in missing:
            self._db.execute("DELETE FROM items WHERE id = ?", (pid,))
            self.path_of(pid, rows[pid][1]).unlink(missing_ok=True)
        self._db.execute("UPDATE items SET state = 'stored' WHERE state != 'stored'")
        self._db.execute("DELETE FROM open_transactions WHERE seq NOT IN (SELECT o.seq FROM open_transactions o "
                         "JOIN items i ON i.id = o.id AND i.gen = o.gen AND i.size = o.size)")
        if temps or orphans or missing:
            fsync_dir(self.payload_dir)
            fsync_dir(self.tmp_dir)
        return Recovery(temps, sorted(orphans), missing)
