"""The archive's queries: the same SQL on SQLite and PostgreSQL; each answers a :class:`Result`.

Time bounds are inclusive and optional (None: unbounded). Severity filters take a minimum level
(``warning`` gives warnings and errors), the order operators expect from an event log.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from ground.archive.db import Db
from ground.archive.records import Result

__all__ = ["parameter", "events", "products", "count_products", "product", "commands", "transfers", "contacts",
           "SEVERITIES"]

SEVERITIES = ("info", "warning", "error")


class _Where:
    """Conditions and their parameters, joined with AND."""

    def __init__(self) -> None:
        self.terms: list[str] = []
        self.params: list[Any] = []

    def add(self, term: str, *params: Any) -> None:
        self.terms.append(term)
        self.params.extend(params)

    def between(self, column: str, t0: float | None, t1: float | None) -> None:
        if t0 is not None:
            self.add(f"{column} >= ?", float(t0))
        if t1 is not None:
            self.add(f"{column} <= ?", float(t1))

    def one_of(self, column: str, values: Sequence[Any] | None) -> None:
        if values:
            self.add(f"{column} IN ({', '.join('?' * len(values))})", *values)

    def sql(self) -> str:
        return f" WHERE {' AND '.join(self.terms)}" if self.terms else ""


def _limit(limit: int | None) -> str:
    return f" LIMIT {int(limit)}" if limit is not None else ""


def parameter(db: Db, source: str, channel: str, t0: float | None = None, t1: float | None = None) -> Result:
    """One housekeeping channel of one process over a time range, oldest first."""
    w = _Where()
    w.add("source = ?", source)
    w.add("channel = ?", channel)
    w.between("t", t0, t1)
    rows = db.query(f"SELECT t, value_num, value_text FROM parameters{w.sql()} ORDER BY t", w.params)
    return Result(("t", "source", "channel", "value"),
                  [(float(t), source, channel, num if text is None else text) for t, num, text in rows])


def channels(db: Db) -> Result:
    """Every (source, channel) with values, and how many."""
    return Result(("source", "channel", "values"), db.query(
        "SELECT source, channel, COUNT(*) FROM parameters GROUP BY source, channel ORDER BY source, channel"))


def events(db: Db, *, min_severity: str | None = None, severities: Sequence[str] | None = None,
           sources: Sequence[str] | None = None, name: str | None = None, origin: str | None = None,
           t0: float | None = None, t1: float | None = None, limit: int | None = None,
           newest_first: bool = False) -> Result:
    """Events by severity (a minimum level, or a list) and source (process names), oldest first."""
    w = _Where()
    if min_severity is not None:
        if min_severity not in SEVERITIES:
            raise ValueError(f"severity {min_severity!r}: expected one of {', '.join(SEVERITIES)}")
        w.one_of("severity", SEVERITIES[SEVERITIES.index(min_severity):])
    w.one_of("severity", list(severities or ()))
    w.one_of("source", list(sources or ()))
    if name is not None:
        w.add("name = ?", name)
    if origin is not None:
        w.add("origin = ?", origin)
    w.between("t", t0, t1)
    order = "DESC" if newest_first else "ASC"
    rows = db.query(f"SELECT t, source, origin, severity, name, event_id, fields FROM events{w.sql()} "
                    f"ORDER BY t {order}, n {order}{_limit(limit)}", w.params)
    return Result(("t", "source", "origin", "severity", "name", "event_id", "fields"),
                  [(float(r[0]), r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows])


_PRODUCT_COLUMNS = ("id", "kind", "camera", "counter", "t_capture", "t_received", "grade", "codec", "crc32c", "bytes",
                    "width", "height", "bit_depth", "path", "label")


def products(db: Db, *, camera: str | None = None, kind: str | None = None, t0: float | None = None,
             t1: float | None = None, min_grade: float | None = None, max_grade: float | None = None,
             limit: int | None = None) -> Result:
    """Products by camera, capture time range and grade (the on-board score), in capture order."""
    w = _Where()
    if camera is not None:
        w.add("camera = ?", camera)
    if kind is not None:
        w.add("kind = ?", kind)
    w.between("t_capture", t0, t1)
    if min_grade is not None:
        w.add("grade >= ?", float(min_grade))
    if max_grade is not None:
        w.add("grade <= ?", float(max_grade))
    rows = db.query(f"SELECT {', '.join(_PRODUCT_COLUMNS)} FROM products{w.sql()} "
                    f"ORDER BY t_capture, camera, counter, kind{_limit(limit)}", w.params)
    return Result(_PRODUCT_COLUMNS, rows)


def count_products(db: Db) -> dict[str, int]:
    """How many products the ground holds, by kind (counted by the database: no product row is loaded)."""
    rows = db.query("SELECT kind, COUNT(*) FROM products GROUP BY kind ORDER BY kind")
    return {str(kind): int(n) for kind, n in rows}


def product(db: Db, pid: str) -> dict[str, Any] | None:
    """One product's row with its grades, or None."""
    rows = db.query(f"SELECT {', '.join(_PRODUCT_COLUMNS)}, grades FROM products WHERE id = ?", (pid,))
    if not rows:
        return None
    out = dict(zip((*_PRODUCT_COLUMNS, "grades"), rows[0]))
    out["grades"] = json.loads(out["grades"])
    return out


def commands(db: Db, *, state: str | None = None, limit: int | None = None) -> Result:
    """The command history, newest last, each with its stages ``[{stage, t, detail}]``."""
    w = _Where()
    if state is not None:
        w.add("state = ?", state)
    rows = db.query(f"SELECT id, target, cmd, args, spi, state, attempts, seq, t_queued, t_updated FROM commands"
                    f"{w.sql()} ORDER BY id{_limit(limit)}", w.params)
    stages: dict[int, list[dict[str, Any]]] = {int(r[0]): [] for r in rows}
    if stages:
        lo, hi = min(stages), max(stages)
        for cid, stage, t, detail in db.query("SELECT id, stage, t, detail FROM command_stages WHERE id >= ? "
                                              "AND id <= ? ORDER BY id, n", (lo, hi)):
            if int(cid) in stages:
                stages[int(cid)].append({"stage": stage, "t": float(t), "detail": detail})
    return Result(("id", "target", "cmd", "args", "spi", "state", "attempts", "seq", "t_queued", "t_updated",
                   "stages"),
                  [(*r[:3], json.loads(r[3]), *r[4:], stages[int(r[0])]) for r in rows])


def transfers(db: Db, *, state: str | None = None, closed: bool | None = None, limit: int | None = None,
              newest_first: bool = False) -> Result:
    """CFDP transactions as the ground saw them, oldest opened first (``newest_first``: newest first, so a
    ``limit`` keeps the latest). ``closed``: only those no longer open (True) or only the open ones (False)."""
    w = _Where()
    if state is not None:
        w.add("state = ?", state)
    if closed is not None:
        w.add("state <> 'open'" if closed else "state = 'open'")
    order = "DESC" if newest_first else "ASC"
    rows = db.query(f"SELECT source_entity, seq, name, file_size, state, condition, held, held_bytes, eof, naks, "
                    f"nak_ranges, t_opened, t_updated, t_closed FROM transfers{w.sql()} "
                    f"ORDER BY t_opened {order}, source_entity {order}, seq {order}{_limit(limit)}", w.params)
    return Result(("source_entity", "seq", "name", "file_size", "state", "condition", "held", "held_bytes", "eof",
                   "naks", "nak_ranges", "t_opened", "t_updated", "t_closed"),
                  [(*r[:6], json.loads(r[6]), r[7], bool(r[8]), r[9], json.loads(r[10]), *r[11:]) for r in rows])


def contacts(db: Db) -> Result:
    """Contact passes as they opened (and closed) at the ground, oldest first."""
    return Result(("relay", "pass_number", "t_open", "t_close_planned", "t_closed", "rate_bps"), db.query(
        "SELECT relay, pass_number, t_open, t_close_planned, t_closed, rate_bps FROM contacts ORDER BY t_open"))
