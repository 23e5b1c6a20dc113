"""The link panel's facts: contact windows from the plan, and the CFDP transactions the ground journals. No sockets.

Windows come from the same contact plan the relay, the downlink and the ground use
(:mod:`link.contacts`): the one open now and the next ones within a horizon, in wall time.
Transactions come from the ground's ledger (``transfers``, :mod:`ground.ledger`), read-only:
each one's file, size, the bytes held at its last checkpoint and the ranges still missing
(:class:`link.resume.Segments`). The ledger is another process's database, so it is opened
read-only for each look and a database not there yet reads as no transactions.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from spacepackets.cfdp.pdu import EofPdu, MetadataPdu

from link.contacts import ContactPlan
from link.resume import Segments, SegmentsError, decode_segments

__all__ = ["windows", "transactions"]

_MAX_WINDOWS = 24
_MAX_TRANSACTIONS = 64
_MAX_RANGES = 32


def windows(plan: ContactPlan, now: float, horizon_s: float) -> dict[str, Any]:
    """The contact open now (or None) and the windows that open within ``horizon_s``, oldest first."""
    current = plan.contact(now)
    out: list[dict[str, Any]] = []
    t = now
    while len(out) < _MAX_WINDOWS:
        start = plan.next_open(t, horizon_s - (t - now))
        if start is None:
            break
        c = plan.contact(start)
        if c is None:  # a window shorter than the plan's resolution: step over it
            t = start + 1e-3
            continue
        out.append({"relay": c.relay, "pass": c.pass_number, "opens": max(c.opened_at, start), "closes": c.closes_at,
                    "rate_bps": c.rate_bps, "latency_ms": c.latency_ms})
        t = max(c.closes_at, t + 1e-3)
        if plan.always_open or t - now > horizon_s:
            break
    return {"now": now, "current": None if current is None else {
        "relay": current.relay, "pass": current.pass_number, "opened": current.opened_at,
        "closes": current.closes_at, "rate_bps": current.rate_bps, "latency_ms": current.latency_ms},
        "windows": out}


def transactions(ledger: Path) -> list[dict[str, Any]]:
    """The journalled transactions, open ones first, then the last closed ones (newest first)."""
    if not ledger.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        return []
    try:
        rows = db.execute("SELECT source, seq, name, metadata, segments, eof, open, t FROM transfers "
                          "ORDER BY open DESC, t DESC LIMIT ?", (_MAX_TRANSACTIONS,)).fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.close()
    return [_transaction(*r) for r in rows]


def _transaction(source: int, seq: int, name: str, metadata: bytes, segments: bytes | None, eof: bytes | None,
                 is_open: int, t: float) -> dict[str, Any]:
    size = _file_size(metadata, eof)
    try:
        held = decode_segments(bytes(segments)) if segments else Segments()
    except SegmentsError:
        held = Segments()
    missing = held.gaps(size) if size is not None else []
    return {"source": int(source), "seq": int(seq), "name": str(name), "open": bool(is_open), "t": float(t),
            "size": size, "held": held.total if is_open else size, "eof": eof is not None,
            "missing": [list(r) for r in missing[:_MAX_RANGES]] if is_open else [],
            "missing_ranges": len(missing) if is_open else 0}


def _file_size(metadata: bytes, eof: bytes | None) -> int | None:
    for raw, kind in ((eof, EofPdu), (metadata, MetadataPdu)):
        if raw:
            try:
                return int(kind.unpack(bytes(raw)).file_size)
            except Exception:  # noqa: BLE001  spacepackets raises several unrelated types for bad bytes
                continue
    return None
