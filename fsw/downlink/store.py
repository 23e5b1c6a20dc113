"""The on-board product store: crash-safe files plus an SQLite index. No sockets.

Layout under the store root::

    payload/<id>.prod      one file per stored product
    tmp/                   payloads being written (cleaned on open)
    index.sqlite           WAL, synchronous=FULL: products(id, kind, priority, size, created, state, seq)
                           and meta(key, value) (the CFDP transaction counter)

:meth:`ProductStore.add` writes the payload to ``tmp/``, fsyncs it, renames
it into ``payload/``, fsyncs the directory, and only then inserts and commits
the row: a product is *stored* once its row exists, and by then its bytes
are durable. :meth:`ProductStore.confirm` deletes the row (commit) and then
the file. Reopening cleans what a crash can leave: temp files, payload files
without a row; rows whose payload is missing are dropped and reported.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fsw.downlink.filestore import fsync_dir
from fsw.errors import StoreError

__all__ = ["PRIORITY", "StoredProduct", "Recovery", "ProductStore"]

# Higher sends first (DESIGN: alerts, thumbnails, telemetry, full frames).
PRIORITY: dict[str, int] = {"alert": 400, "thumbnail": 300, "telemetry": 200, "full": 100}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SUFFIX = ".prod"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'stored',
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS products_order ON products (priority DESC, created ASC, seq ASC);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class StoredProduct:
    id: str
    kind: str
    priority: int
    size: int
    created: float
    path: Path


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
    """Stored products, ordered by priority then age."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.payload_dir = self.root / "payload"
        self.tmp_dir = self.root / "tmp"
        self._clock = clock
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
        return int(self._db.execute("SELECT COUNT(*) FROM products").fetchone()[0])

    def __contains__(self, product_id: object) -> bool:
        return self.get(product_id) is not None if isinstance(product_id, str) else False

    def total_bytes(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM products").fetchone()[0])

    def get(self, product_id: str) -> StoredProduct | None:
        row = self._db.execute("SELECT id, kind, priority, size, created FROM products WHERE id = ?",
                               (product_id,)).fetchone()
        return self._product(row) if row else None

    def next(self, exclude: frozenset[str] | set[str] = frozenset()) -> StoredProduct | None:
        """The product to send next: highest priority, then oldest; skipping ``exclude``."""
        cur = self._db.execute("SELECT id, kind, priority, size, created FROM products "
                               "ORDER BY priority DESC, created ASC, seq ASC")
        for row in cur:
            if row[0] not in exclude:
                cur.close()
                return self._product(row)
        return None

    def ids(self) -> list[str]:
        """Every stored id, in sending order."""
        return [r[0] for r in self._db.execute("SELECT id FROM products ORDER BY priority DESC, created ASC, seq ASC")]

    def path_of(self, product_id: str) -> Path:
        self._check_id(product_id)
        return self.payload_dir / f"{product_id}{_SUFFIX}"

    # -- changes -------------------------------------------------------------------------------
    def add(self, product_id: str, kind: str, data: bytes | memoryview, priority: int | None = None) -> StoredProduct:
        """Make a product durable, then index it. Raises StoreError if it cannot be stored."""
        self._check_id(product_id)
        if self.get(product_id) is not None:
            raise StoreError(f"product {product_id} is already stored")
        prio = PRIORITY.get(kind, PRIORITY["full"]) if priority is None else int(priority)
        final = self.path_of(product_id)
        tmp = self.tmp_dir / f"{product_id}{_SUFFIX}.{os.getpid()}.tmp"
        try:
            self._write_durable(tmp, data)
            os.replace(tmp, final)
            fsync_dir(self.payload_dir)
            created = self._clock()
            self._db.execute("INSERT INTO products (id, kind, priority, size, created, seq) VALUES "
                             "(?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM products))",
                             (product_id, kind, prio, len(data), created))
        except (OSError, sqlite3.Error) as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot store {product_id}: {type(exc).__name__}: {exc}") from None
        return StoredProduct(product_id, kind, prio, len(data), created, final)

    def confirm(self, product_id: str) -> bool:
        """The ground has the product: forget it (row first, then file). False if unknown."""
        try:
            cur = self._db.execute("DELETE FROM products WHERE id = ?", (product_id,))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot confirm {product_id}: {exc}") from None
        if cur.rowcount == 0:
            return False
        try:
            self.path_of(product_id).unlink(missing_ok=True)
            fsync_dir(self.payload_dir)
        except OSError:
            pass  # an orphan payload is removed at the next open
        return True

    def set_state(self, product_id: str, state: str) -> None:
        """Mark a product 'stored' or 'sending' (informative; reopening resets it to 'stored')."""
        self._db.execute("UPDATE products SET state = ? WHERE id = ?", (state, product_id))

    def states(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT id, state FROM products"))

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

    def close(self) -> None:
        self._db.close()

    # -- internals -----------------------------------------------------------------------------
    @staticmethod
    def _check_id(product_id: str) -> None:
        if not isinstance(product_id, str) or not _ID_RE.match(product_id):
            raise StoreError(f"product id {product_id!r} is not 1-128 of [A-Za-z0-9._-]")

    def _product(self, row: tuple) -> StoredProduct:
        return StoredProduct(row[0], row[1], int(row[2]), int(row[3]), float(row[4]), self.path_of(row[0]))

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
        rows = {r[0]: r[1] for r in self._db.execute("SELECT id, size FROM products")}
        files = {p.name[: -len(_SUFFIX)]: p for p in self.payload_dir.iterdir() if p.name.endswith(_SUFFIX)}
        orphans = sorted(set(files) - set(rows))
        for pid in orphans:
            files[pid].unlink(missing_ok=True)
        missing = sorted(pid for pid, size in rows.items()
                         if pid not in files or files[pid].stat().st_size != size)
        for pid in missing:
            self._db.execute("DELETE FROM products WHERE id = ?", (pid,))
            self.path_of(pid).unlink(missing_ok=True)
        self._db.execute("UPDATE products SET state = 'stored' WHERE state != 'stored'")
        if temps or orphans or missing:
            fsync_dir(self.payload_dir)
            fsync_dir(self.tmp_dir)
        return Recovery(temps, orphans, missing)
