"""The ground's command queue: what the operator asked the lander to do, and each command's fate. No I/O but SQLite.

One row per command, in its own SQLite file beside the ledger (WAL, ``synchronous=FULL``:
a command the operator was told is queued survives a crash of the ground, and so do its
sequence number and the exact bytes it went out as). Each command's stages (``queued``,
``sent#n``, ``received``, ``accepted``/``rejected``, ``completed``/``failed``, ``duplicate``,
``not_delivered``, ``cancelled``) are rows of their own, with the wall time they happened.

States, in the order a command moves through them (a later verification never moves a
command back; ``not_delivered`` is a verdict under doubt, so a late ``received`` still wins)::

    queued -> signed -> sent -> received -> accepted -> completed | failed
                                       \\-> rejected
    queued -> cancelled            sent -> not_delivered

``queued`` commands wait in ``position`` order and may be moved or cancelled. ``signed``:
its sequence number is allocated and its bytes stored, so it may already have left (a crash
between the send and its record): it can no longer be moved or cancelled, and any resend
repeats those bytes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from framework.errors import CommandRejected, StoreError

__all__ = ["Stage", "QueuedCommand", "CommandQueue", "STATES", "FINAL_STATES", "VERIFICATION_STATES"]

STATES = ("queued", "signed", "sent", "not_delivered", "received", "accepted", "rejected", "completed", "failed",
          "cancelled")
FINAL_STATES = frozenset({"rejected", "completed", "failed", "not_delivered", "cancelled"})
"""States a command leaves only for a later verification (``not_delivered``) or never."""
VERIFICATION_STATES = ("received", "accepted", "rejected", "completed", "failed")
_RANK = {"queued": 0, "signed": 1, "sent": 2, "not_delivered": 3, "received": 4, "accepted": 5,
         "rejected": 6, "completed": 6, "failed": 6, "cancelled": 7}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (id INTEGER PRIMARY KEY AUTOINCREMENT, position INTEGER NOT NULL,
                                     target TEXT NOT NULL, cmd TEXT NOT NULL, args TEXT NOT NULL,
                                     spi INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                                     seq INTEGER, packet BLOB, t REAL NOT NULL);
CREATE INDEX IF NOT EXISTS commands_by_seq ON commands (spi, seq);
CREATE INDEX IF NOT EXISTS commands_by_state ON commands (state, position);
CREATE TABLE IF NOT EXISTS command_stages (id INTEGER NOT NULL, stage TEXT NOT NULL, t REAL NOT NULL,
                                           detail TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS stages_by_id ON command_stages (id);
"""
_COLUMNS = "id, target, cmd, args, spi, state, attempts, seq, packet, t"
_LISTED_DONE = 200  # QUEUE_LIST with all=true shows the last this many finished commands


@dataclass(frozen=True)
class Stage:
    stage: str
    t: float
    detail: str = ""


@dataclass(frozen=True)
class QueuedCommand:
    """One command as the queue holds it. ``packet``: the signed bytes, once it has a sequence number."""

    id: int
    target: str
    cmd: str
    args: dict[str, Any]
    spi: int
    state: str
    attempts: int
    seq: int | None
    packet: bytes | None
    t: float
    stages: tuple[Stage, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """What QUEUE_LIST answers for it (msgpack-friendly; no packet bytes)."""
        return {"id": self.id, "target": self.target, "cmd": self.cmd, "args": self.args, "spi": self.spi,
                "state": self.state, "attempts": self.attempts, "seq": self.seq, "t": self.t,
                "stages": [{"stage": s.stage, "t": s.t, "detail": s.detail} for s in self.stages]}


class CommandQueue:
    """The queue in ``path``; ``clock``: wall seconds stamped on each stage."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the command queue {path}: {exc}") from None

    # -- the operator's side -------------------------------------------------------------------
    def enqueue(self, target: str, cmd: str, args: dict[str, Any], spi: int) -> int:
        """A new command at the end of the queue (stage ``queued``); its id. Durable on return."""
        t = self._clock()
        with self._transaction():
            row = self._db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM commands").fetchone()
            cur = self._db.execute("INSERT INTO commands (position, target, cmd, args, spi, state, t) "
                                   "VALUES (?, ?, ?, ?, ?, 'queued', ?)",
                                   (row[0], target, cmd, json.dumps(args, sort_keys=True), spi, t))
            cid = int(cur.lastrowid or 0)
            self._db.execute("INSERT INTO command_stages (id, stage, t) VALUES (?, 'queued', ?)", (cid, t))
        return cid

    def move(self, cid: int, position: int) -> list[int]:
        """Put a waiting command at ``position`` (0 = next to go; past the end = last) among the waiting
        ones; return the waiting ids in their new order. CommandRejected if it is not waiting."""
        with self._transaction():
            order = self._waiting_ids()
            if cid not in order:
                raise CommandRejected(self._not_waiting(cid, "moved"))
            order.remove(cid)
            order.insert(max(0, min(position, len(order))), cid)
            base = self._db.execute("SELECT COALESCE(MIN(position), 0) FROM commands WHERE state = 'queued'").fetchone()[0]
            self._db.executemany("UPDATE commands SET position = ? WHERE id = ?",
                                 ((base + i, c) for i, c in enumerate(order)))
        return order

    def cancel(self, cid: int) -> None:
        """Cancel a command that never went out (state ``queued``); CommandRejected otherwise."""
        with self._transaction():
            if cid not in self._waiting_ids():
                raise CommandRejected(self._not_waiting(cid, "cancelled"))
            self._set_state(cid, "cancelled", "cancelled", "")

    def _not_waiting(self, cid: int, what: str) -> str:
        row = self._db.execute("SELECT state FROM commands WHERE id = ?", (cid,)).fetchone()
        if row is None:
            return f"no command {cid} in the queue"
        return f"command {cid} is {row[0]}: only a command that has not been signed or sent can be {what}"

    # -- the sender's side ---------------------------------------------------------------------
    def waiting(self) -> list[QueuedCommand]:
        """Commands not yet signed, next to go first."""
        return self._select("WHERE state = 'queued' ORDER BY position, id")

    def in_flight(self) -> list[QueuedCommand]:
        """Commands signed and not yet verified received (nor given up on), oldest first."""
        return self._select("WHERE state IN ('signed', 'sent') ORDER BY position, id")

    def signed(self, cid: int, seq: int, packet: bytes) -> None:
        """The command's sequence number and bytes: durable before they are first sent."""
        with self._transaction():
            cur = self._db.execute("UPDATE commands SET state = 'signed', seq = ?, packet = ? "
                                   "WHERE id = ? AND state = 'queued'", (seq, packet, cid))
            if cur.rowcount != 1:
                raise StoreError(f"command {cid} is not queued: it cannot be signed")

    def sent(self, cid: int) -> int:
        """One more transmission of the command's bytes went out; return its attempt number."""
        with self._transaction():
            row = self._db.execute("SELECT attempts, state FROM commands WHERE id = ?", (cid,)).fetchone()
            if row is None:
                raise StoreError(f"no command {cid}")
            attempts = int(row[0]) + 1
            self._db.execute("UPDATE commands SET attempts = ? WHERE id = ?", (attempts, cid))
            self._stage_row(cid, f"sent#{attempts}", "")
            if _RANK[row[1]] < _RANK["sent"]:
                self._db.execute("UPDATE commands SET state = 'sent' WHERE id = ?", (cid,))
        return attempts

    def stage(self, cid: int, stage: str, detail: str = "") -> str:
        """Record a stage (``received``, ``duplicate``, ``not_delivered``, ...); return the command's state,
        moved forward if the stage says it got further (never back)."""
        with self._transaction():
            row = self._db.execute("SELECT state FROM commands WHERE id = ?", (cid,)).fetchone()
            if row is None:
                raise StoreError(f"no command {cid}")
            state = str(row[0])
            new = "received" if stage == "duplicate" else stage
            if new in _RANK and _RANK[new] > _RANK[state] and state != "cancelled":
                state = new
            self._set_state(cid, state, stage, detail)
        return state

    def by_seq(self, spi: int, seq: int) -> QueuedCommand | None:
        """The command that went out under SPI ``spi`` with sequence number ``seq``, if any."""
        found = self._select("WHERE spi = ? AND seq = ?", (spi, seq))
        return found[0] if found else None

    def get(self, cid: int) -> QueuedCommand:
        found = self._select("WHERE id = ?", (cid,))
        if not found:
            raise CommandRejected(f"no command {cid} in the queue")
        return found[0]

    def listing(self, include_done: bool = False) -> list[QueuedCommand]:
        """Open commands (in flight first, then waiting in order); with ``include_done`` also the last
        finished ones, oldest first, before them."""
        done = (list(reversed(self._select("WHERE state IN ('rejected', 'completed', 'failed', 'not_delivered', "
                                           "'cancelled') ORDER BY id DESC LIMIT ?", (_LISTED_DONE,))))
                if include_done else [])
        opened = self._select("WHERE state IN ('received', 'accepted') ORDER BY id")
        return done + opened + self.in_flight() + self.waiting()

    def counts(self) -> dict[str, int]:
        return {str(r[0]): int(r[1]) for r in self._db.execute("SELECT state, COUNT(*) FROM commands GROUP BY state")}

    def close(self) -> None:
        self._db.close()

    # -- inside --------------------------------------------------------------------------------
    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)

    def _waiting_ids(self) -> list[int]:
        return [int(r[0]) for r in self._db.execute("SELECT id FROM commands WHERE state = 'queued' "
                                                    "ORDER BY position, id")]

    def _set_state(self, cid: int, state: str, stage: str, detail: str) -> None:
        self._db.execute("UPDATE commands SET state = ? WHERE id = ?", (state, cid))
        self._stage_row(cid, stage, detail)

    def _stage_row(self, cid: int, stage: str, detail: str) -> None:
        self._db.execute("INSERT INTO command_stages (id, stage, t, detail) VALUES (?, ?, ?, ?)",
                         (cid, stage, self._clock(), detail))

    def _select(self, where: str, params: tuple[Any, ...] = ()) -> list[QueuedCommand]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM commands {where}", params).fetchall()
        if not rows:
            return []
        ids = [int(r[0]) for r in rows]
        stages: dict[int, list[Stage]] = {i: [] for i in ids}
        marks = ",".join("?" * len(ids))
        for cid, stage, t, detail in self._db.execute(
                f"SELECT id, stage, t, detail FROM command_stages WHERE id IN ({marks}) ORDER BY rowid", ids):
            stages[int(cid)].append(Stage(str(stage), float(t), str(detail)))
        return [QueuedCommand(int(r[0]), str(r[1]), str(r[2]), json.loads(r[3]), int(r[4]), str(r[5]), int(r[6]),
                              None if r[7] is None else int(r[7]), None if r[8] is None else bytes(r[8]), float(r[9]),
                              tuple(stages[int(r[0])])) for r in rows]


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception); a SQLite fault is a StoreError."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"command queue: {exc}") from None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        try:
            self._db.execute("ROLLBACK" if kind is not None else "COMMIT")
        except sqlite3.Error as err:
            if kind is None:
                raise StoreError(f"command queue: {err}") from None
        if kind is not None and issubclass(kind, sqlite3.Error):
            raise StoreError(f"command queue: {exc}") from None
