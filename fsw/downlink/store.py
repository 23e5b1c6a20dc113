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
damaged or lost index is set aside and rebuilt from the payload files
(:mod:`fsw.downlink.index`); :attr:`ProductStore.rebuilt` says what that did.
Transaction numbers go on above the ``transaction_seq`` mark, so the ground
never takes a new transaction for an old one, even after a rebuild.

An item kept as ``refused`` (the ground refused it and it does not decode on
board either) is not sent again unless an operator requests it, and is the
first to go when room is needed.

Order and eviction follow :class:`~fsw.downlink.policy.Policy`. What the downlink asks every turn
(:meth:`ProductStore.next`, :meth:`~ProductStore.add` with its evictions, :meth:`~ProductStore.confirm`,
the health figures, :meth:`~ProductStore.reencode_candidates`) costs O(log n) in the items stored: each
query walks an index made for it and stops at what it needs, and counts and bytes come from running
totals kept in the same transaction as the rows (:mod:`fsw.downlink.index`). Only what returns every
item (:meth:`~ProductStore.ids`, :meth:`~ProductStore.items`, :meth:`~ProductStore.states`) reads them all.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from framework.errors import StoreError
from fsw.downlink.index import (IndexCorrupt, Rebuilt, Recovery, StoreUnavailable, ensure_rest_order, fault, faults,
                                is_corruption, open_index, recover, rest_key, write_durable)
from fsw.downlink.payload import data_crc32c, payload_name
from fsw.downlink.policy import EVICTABLE, Policy, class_of
from link.filestore import fsync_dir

__all__ = ["StoredProduct", "Recovery", "Rebuilt", "ProductStore", "OpenTransaction", "StoreUnavailable",
           "IndexCorrupt", "StoreFull", "STORE_FULL_PREFIX"]

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TRANSACTIONS_KEPT = 4096
_SEQ_BLOCK = 1024  # transaction numbers reserved above the last used one by each write of the mark
_COLS = "id, kind, cls, score, requested, size, created, codec, gen, state, crc32c"
_NEAR_TIE = 2.0 ** -40  # relative: far above the rounding of either form of the 'rest' key, far below a real gap


def _eviction_pass(ecls: str) -> tuple[str, tuple[str, ...], str, str]:
    """(where, its arguments, order, class) of the items of evictable class ``ecls`` that may go, in the
    order they go: 'rest' lowest grade first, others oldest first. The ``state != 'refused'`` and
    ``cls != 'rest'`` terms name the partial index each walks (:mod:`fsw.downlink.index`)."""
    if ecls == "rest":
        return "cls = 'rest' AND state != 'refused' AND state = 'stored'", (), "score ASC, created ASC, seq ASC", ecls
    return ("cls = ? AND state != 'refused' AND cls != 'rest' AND state = 'stored'", (ecls,), "created ASC, seq ASC",
            ecls)


STORE_FULL_PREFIX = "store full: "
"""How a refusal by the quota reads (the text of :class:`StoreFull`, carried by the downlink's
``product_rejected`` event): the imaging core tells the policy's refusal from a fault by it."""


class StoreFull(StoreError):
    """The quota leaves no room for the item and the eviction policy frees too little (everything that
    may go is worth at least as much as the newcomer): a policy's answer, final for this item, not a fault.
    The text starts with :data:`STORE_FULL_PREFIX`."""


# What goes when room is needed, in this order: items kept as 'refused' (oldest first), then each evictable class.
_EVICTION_PASSES = (("state = 'refused'", (), "created ASC, seq ASC", ""), *map(_eviction_pass, EVICTABLE))


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
        self.refused_full = 0  # items refused by the quota (StoreFull) since the store was opened
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
        """Open the index (rebuilding a damaged one, :mod:`fsw.downlink.index`) and clean crash
        leftovers, whichever is not done yet. StoreUnavailable while the disk refuses."""
        try:
            if self._db is None:
                try:
                    for d in (self.root, self.payload_dir, self.tmp_dir):
                        d.mkdir(parents=True, exist_ok=True)
                    self._seq_mark = self._read_seq_mark()
                except OSError as exc:
                    raise fault(f"open the store in {self.root}", exc) from None
                self._db, self.rebuilt = open_index(self.root, self._seq_mark)
            if not self._recovered:
                try:
                    ensure_rest_order(self.db, self.policy.age_weight_per_h)
                except sqlite3.Error as exc:
                    raise fault("index the 'rest' class for this age weight", exc) from None
                try:
                    self.recovery = recover(self.db, self.payload_dir, self.tmp_dir)
                except (sqlite3.Error, OSError) as exc:
                    raise fault("clean crash leftovers", exc) from None
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

    @faults("write to the store")
    def probe(self) -> None:
        """Write, sync and remove a small file, and write the index: StoreUnavailable unless both work."""
        self.heal()
        path = self.tmp_dir / f"probe.{os.getpid()}.tmp"
        try:
            write_durable(path, bytes(4096))
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

    # -- queries -------------------------------------------------------------------------------
    @faults("read the index")
    def __len__(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(items), 0) FROM totals").fetchone()[0])

    def __contains__(self, product_id: object) -> bool:
        return isinstance(product_id, str) and self.get(product_id) is not None

    @faults("read the index")
    def total_bytes(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(bytes), 0) FROM totals").fetchone()[0])

    @faults("read the index")
    def get(self, product_id: str) -> StoredProduct | None:
        row = self.db.execute(f"SELECT {_COLS} FROM items WHERE id = ?", (product_id,)).fetchone()
        return self._product(row) if row else None

    def _ordered(self, now: float | None = None) -> Iterable[tuple]:
        """Every row in sending order (see :mod:`fsw.downlink.policy`): the order's definition, which
        :meth:`next` finds through the indexes without reading the rows it does not return."""
        now = self._clock() if now is None else now
        ranks = " ".join(f"WHEN '{c}' THEN {self.policy.rank(c)}" for c in self.policy.priority)
        return self.db.execute(
            f"SELECT {_COLS} FROM items ORDER BY CASE cls {ranks} END ASC, "
            "CASE WHEN cls = 'rest' THEN -(score + ? * (? - created) / 3600.0) ELSE 0 END ASC, "
            "created ASC, seq ASC", (self.policy.age_weight_per_h, now))

    @faults("read the index")
    def next(self, exclude: frozenset[str] | set[str] = frozenset(), now: float | None = None) -> StoredProduct | None:
        """The item to send next, skipping ``exclude`` and items kept as 'refused': the first of
        :meth:`ids` that is neither. The first class (in priority order) with such an item, through
        its index: O(log n) plus the excluded items it steps over."""
        now = self._clock() if now is None else now
        for cls in self.policy.priority:
            row = self._first_rest(exclude, now) if cls == "rest" else self._first_of(cls, exclude)
            if row is not None:
                return self._product(row)
        return None

    def _first_of(self, cls: str, exclude: frozenset[str] | set[str]) -> tuple | None:
        """The oldest sendable item of class ``cls`` (not 'rest') not in ``exclude``."""
        cur = self.db.execute(f"SELECT {_COLS} FROM items WHERE cls = ? AND state != 'refused' AND cls != 'rest' "
                              "ORDER BY created ASC, seq ASC", (cls,))
        try:
            return next((row for row in cur if row[0] not in exclude), None)
        finally:
            cur.close()

    def _first_rest(self, exclude: frozenset[str] | set[str], now: float) -> tuple | None:
        """The sendable 'rest' item not in ``exclude`` with the highest grade + weight x age.

        The index holds ``score - w * created / 3600`` (:func:`~fsw.downlink.index.rest_key`), which
        orders as ``score + w * (now - created) / 3600`` would in exact arithmetic; in floating point
        the two may round a near tie apart, so the rows within rounding of the first are ordered
        again by the latter, as :meth:`_ordered` does."""
        w = self.policy.age_weight_per_h
        cur = self.db.execute(f"SELECT {_COLS}, seq, {rest_key(w)} AS k FROM items "
                              f"WHERE cls = 'rest' AND state != 'refused' ORDER BY ({rest_key(w)}) DESC, "
                              "created ASC, seq ASC")
        close: list[tuple] = []
        floor = 0.0
        try:
            for row in cur:
                if row[0] in exclude:
                    continue
                if close and row[-1] < floor:
                    break
                if not close:
                    floor = row[-1] - _NEAR_TIE * (1.0 + abs(row[-1]) + abs(row[3])
                                                   + abs(w) * (abs(now) + 2 * abs(row[6])) / 3600.0)
                close.append(row)
        finally:
            cur.close()
        if not close:
            return None
        best = min(close, key=lambda r: (-(r[3] + w * (now - r[6]) / 3600.0), r[6], r[-2]))
        return best[:-2]

    @faults("read the index")
    def ids(self, now: float | None = None) -> list[str]:
        """Every stored id, in sending order."""
        return [r[0] for r in self._ordered(now)]

    @faults("read the index")
    def items(self, now: float | None = None) -> list[StoredProduct]:
        """Every stored item, in sending order (what the start-up scrub checks, first to go first)."""
        return [self._product(r) for r in self._ordered(now)]

    @faults("read the index")
    def depth_by_class(self) -> dict[str, int]:
        counts = dict(self.db.execute("SELECT cls, SUM(items) FROM totals GROUP BY cls"))
        return {c: int(counts.get(c, 0)) for c in self.policy.priority}

    @faults("read the index")
    def oldest_created(self, kinds: tuple[str, ...] | None = None) -> float | None:
        """Creation time of the oldest unconfirmed item (of ``kinds``, if given): the oldest of each
        kind's, each the first entry of its index."""
        if not kinds:
            kinds = tuple(r[0] for r in self.db.execute("SELECT DISTINCT kind FROM totals"))
        found = [row[0] for row in (self.db.execute("SELECT MIN(created) FROM items WHERE kind = ?", (k,)).fetchone()
                                    for k in dict.fromkeys(kinds)) if row[0] is not None]
        return float(min(found)) if found else None

    @faults("read the index")
    def reencode_candidates(self, kinds: tuple[str, ...], codec: str, limit: int = 4) -> list[StoredProduct]:
        """Items of ``kinds`` not yet tried, not in flight, not already in ``codec`` (a codec tag), newest
        first: the oldest are the likeliest to be sent before a re-encoding could finish.

        The newest ``limit`` of each (kind, codec) the totals name, each from its index, then merged."""
        rows: list[tuple] = []
        for kind, have in self._reencode_groups(kinds, codec):
            rows.extend(self.db.execute(f"SELECT {_COLS}, seq FROM items WHERE kind = ? AND codec = ? "
                                        "AND reencoded = 0 AND state = 'stored' ORDER BY created DESC, seq DESC "
                                        "LIMIT ?", (kind, have, limit)))
        rows.sort(key=lambda r: (r[6], r[-1]), reverse=True)
        return [self._product(r[:-1]) for r in rows[:max(0, limit)]]

    def _reencode_groups(self, kinds: tuple[str, ...], codec: str) -> list[tuple[str, str]]:
        marks = ",".join("?" * len(kinds))
        return [(r[0], r[1]) for r in self.db.execute(
            f"SELECT DISTINCT kind, codec FROM totals WHERE kind IN ({marks}) AND reencoded = 0 AND codec != ?",
            (*kinds, codec))]

    @faults("read the index")
    def reencode_backlog(self, kinds: tuple[str, ...], codec: str) -> int:
        marks = ",".join("?" * len(kinds))
        return int(self.db.execute(f"SELECT COALESCE(SUM(items), 0) FROM totals WHERE kind IN ({marks}) "
                                   "AND reencoded = 0 AND codec != ?", (*kinds, codec)).fetchone()[0])

    @faults("read the index")
    def reencode_untried(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` re-encoding has not tried yet: the re-encoder's walk in sending order asks about
        the items it met (at most a few dozen; each by its primary key)."""
        marks = ",".join("?" * len(ids))
        return {r[0] for r in self.db.execute(f"SELECT id FROM items WHERE id IN ({marks}) AND reencoded = 0",
                                              ids)} if ids else set()

    @faults("read the index")
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

        Raises StoreError if it cannot be stored (bad id, duplicate; :class:`StoreFull`: no room by the
        quota's policy), and its
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
            write_durable(tmp, data)
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
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, COALESCE((SELECT MAX(seq) FROM items), 0) + 1, ?, ?)",
                    (product_id, kind, cls, float(score), int(bool(requested)), size, created, codec, crc,
                     json.dumps(remake) if remake else None))
        except (OSError, sqlite3.Error) as exc:
            for leftover in (tmp, final) if renamed else (tmp,):
                try:
                    leftover.unlink(missing_ok=True)
                except OSError:
                    pass  # removed at the next open
            raise fault(f"store {product_id}", exc) from None
        for v in victims:
            v.path.unlink(missing_ok=True)
        self.evicted.extend(victims)
        return StoredProduct(product_id, kind, cls, float(score), bool(requested), size, created, codec, 0, final,
                             crc32c=crc)

    @faults("read the index")
    def _make_room(self, size: int, cls: str, score: float) -> list[StoredProduct]:
        """Items to evict so ``size`` more bytes fit; StoreError if the policy cannot make room.
        Items kept as 'refused' (the ground cannot take them as they are) go first, of any class."""
        if self.quota_bytes is None:
            return []
        need = self.total_bytes() + size - self.quota_bytes
        if need <= 0:
            return []
        victims: list[StoredProduct] = []
        for where, args, order, ecls in _EVICTION_PASSES:
            for row in self.db.execute(f"SELECT {_COLS} FROM items WHERE {where} ORDER BY {order}", args):
                p = self._product(row)
                if ecls == cls == "rest" and p.score >= score:
                    break  # everything left is worth more than the newcomer
                victims.append(p)
                need -= p.size
                if need <= 0:
                    return victims
        self.refused_full += 1
        raise StoreFull(f"{STORE_FULL_PREFIX}{size} bytes of {cls} do not fit in {self.quota_bytes} "
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
            if is_corruption(exc):
                raise fault(f"confirm {product_id}", exc) from None
            try:
                p.path.unlink(missing_ok=True)
                self._forget(product_id)
            except (sqlite3.Error, OSError) as again:
                raise fault(f"confirm {product_id}", again) from None
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

    @faults("request a product")
    def request(self, product_id: str) -> StoredProduct:
        """Mark an item requested by an operator: it moves to the 'requested' class (one kept as
        'refused' is sent again)."""
        p = self.get(product_id)
        if p is None:
            raise StoreError(f"product {product_id} is not on board")
        cls = class_of(p.kind, True)
        self.db.execute("UPDATE items SET requested = 1, cls = ?, state = CASE state WHEN 'refused' THEN 'stored' "
                        "ELSE state END WHERE id = ?", (cls, product_id))
        return self.get(product_id)  # type: ignore[return-value]

    @faults("mark an item's state")
    def set_state(self, product_id: str, state: str) -> None:
        """Mark an item 'stored', 'sending' (reopening resets it to 'stored') or 'refused' (kept, not
        sent again unless an operator requests it, evicted first)."""
        self.db.execute("UPDATE items SET state = ? WHERE id = ?", (state, product_id))

    @faults("read the index")
    def states(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT id, state FROM items"))

    @faults("mark an item re-encoded")
    def mark_reencoded(self, product_id: str) -> None:
        """Re-encoding was tried (won or not): do not try again."""
        self.db.execute("UPDATE items SET reencoded = 1 WHERE id = ?", (product_id,))

    @faults("record a payload's CRC")
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
            write_durable(tmp, data)
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
            raise fault(f"replace {product_id}", exc) from None
        (p.path if switched else new).unlink(missing_ok=True)
        return switched

    # -- CFDP transactions ---------------------------------------------------------------------
    @faults("read the index")
    def next_transaction_seq(self) -> int:
        """A persistent counter for CFDP transaction sequence numbers (unique across restarts)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'transaction_seq'").fetchone()
        return int(row[0]) if row else 0

    @faults("reserve transaction numbers")
    def reserve_transaction_seqs(self, count: int) -> int:
        """Reserve ``count`` sequence numbers; return the first. Durable before returning."""
        first = self.next_transaction_seq()
        self._raise_seq_mark(first + count)
        self.db.execute("INSERT INTO meta (key, value) VALUES ('transaction_seq', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value", ((first + count) % (1 << 32),))
        return first

    @faults("begin a transaction")
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

    @faults("record a transaction's progress")
    def transaction_progress(self, seq: int, progress: int, eof_sent: bool) -> None:
        """Record how far open transaction ``seq`` has sent its file data (bytes), and whether its EOF went."""
        self.db.execute("UPDATE open_transactions SET progress = MAX(progress, ?), eof_sent = MAX(eof_sent, ?) "
                        "WHERE seq = ?", (progress, int(eof_sent), seq))

    @faults("close a transaction")
    def transaction_closed(self, seq: int) -> None:
        """Transaction ``seq`` ended (delivered, failed or abandoned): nothing to resume."""
        self.db.execute("DELETE FROM open_transactions WHERE seq = ?", (seq,))

    @faults("read the index")
    def open_transactions(self) -> list[OpenTransaction]:
        """Transactions open at the last record whose item is still stored unchanged, oldest first."""
        rows = self.db.execute("SELECT o.seq, o.id, o.apid, o.gen, o.size, o.suffix, o.progress, o.eof_sent "
                               "FROM open_transactions o JOIN items i ON i.id = o.id AND i.gen = o.gen "
                               "AND i.size = o.size ORDER BY o.seq")
        return [OpenTransaction(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), r[5], int(r[6]), bool(r[7]))
                for r in rows]

    @faults("read the index")
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
        write_durable(tmp, str(mark).encode())
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
