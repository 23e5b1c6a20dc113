"""What is missing at the ground, worked out from the archive alone (the CLI and the console ask here).

Four answers, each a :class:`~ground.archive.records.Result` (so each exports to CSV):

- ``thumbnails_without_full``: frames (camera, counter) with a thumbnail at the ground and no full
  frame, each with why as far as the ground knows: ``evicted`` (the lander reported the full frame
  evicted), ``in_transfer`` (an open transaction carries it), else ``not_received``.
- ``open_transfers``: CFDP transactions still open, with the byte ranges not yet held (from the last
  checkpoint of the journal, against the file size of the Metadata PDU) and the NAKs sent for them.
- ``tm_gaps``: telemetry gaps per source: ``sequence`` gaps (CCSDS sequence counts skipped per APID,
  modulo 2^14, between consecutive packets in time order) and ``time`` gaps (housekeeping of a source
  silent for more than ``gap_factor`` times its usual period).
- ``evicted``: products the lander reported evicted from its store (its ``product_evicted`` events), and
  whether the ground had received them anyway.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ground.archive.db import Db
from ground.archive.records import Result, ranges_text
from link.filestore import id_from_transfer_name
from link.resume import Segments
from link.tmtc import TmType

__all__ = ["Missing", "missing", "SEQ_MODULO"]

SEQ_MODULO = 1 << 14
"""CCSDS packet sequence counts wrap at 2^14 (CCSDS 133.0-B-2 4.1.3.4.2)."""


@dataclass(frozen=True)
class Missing:
    thumbnails_without_full: Result
    open_transfers: Result
    tm_gaps: Result
    evicted: Result

    SECTIONS = ("thumbnails_without_full", "open_transfers", "tm_gaps", "evicted")

    def section(self, name: str) -> Result:
        if name not in self.SECTIONS:
            raise ValueError(f"section {name!r}: expected one of {', '.join(self.SECTIONS)}")
        return getattr(self, name)

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {s: self.section(s).dicts() for s in self.SECTIONS}


def missing(db: Db, *, gap_factor: float = 3.0, min_gap_s: float = 0.0) -> Missing:
    """Everything the ground lacks, as far as the archive knows. ``gap_factor``/``min_gap_s``: a time gap is
    longer than both ``gap_factor`` times the source's median housekeeping period and ``min_gap_s``."""
    ev = evicted(db)
    opened = open_transfers(db)
    return Missing(thumbnails_without_full(db, set(ev.column("id")), {id_from_transfer_name(n)
                                                                        for n in opened.column("name")}),
                   opened, tm_gaps(db, gap_factor, min_gap_s), ev)


def evicted(db: Db) -> Result:
    """Products the lander reported evicted, oldest report first (the latest report of each id)."""
    held = {r[0] for r in db.query("SELECT id FROM products")}
    seen: dict[str, tuple[Any, ...]] = {}
    for t, source, fields in db.query("SELECT t, source, fields FROM events WHERE name = 'product_evicted' "
                                      "AND origin = 'lander' ORDER BY t, n"):
        f = json.loads(fields)
        pid = str(f.get("id", ""))
        seen[pid] = (pid, f.get("product_kind", ""), f.get("class", ""), f.get("score"), f.get("bytes"),
                     f.get("reason", ""), float(t), source, pid in held)
    return Result(("id", "kind", "class", "score", "bytes", "reason", "t_reported", "source", "received"),
                  list(seen.values()))


def thumbnails_without_full(db: Db, evicted_ids: set[str] = frozenset(),
                            in_transfer: set[str] = frozenset()) -> Result:
    """Frames with a thumbnail at the ground and no full frame, in capture order, with the reason."""
    rows = db.query("SELECT t.camera, t.counter, t.id, t.t_capture, t.grade FROM products t WHERE t.kind = "
                    "'thumbnail' AND NOT EXISTS (SELECT 1 FROM products f WHERE f.camera = t.camera AND "
                    "f.counter = t.counter AND f.kind = 'full') ORDER BY t.t_capture, t.camera, t.counter")
    out = []
    for camera, counter, thumb, t_capture, grade in rows:
        full = f"{camera}-{int(counter):08d}-full"
        why = "evicted" if full in evicted_ids else "in_transfer" if full in in_transfer else "not_received"
        out.append((camera, int(counter), full, thumb, float(t_capture), grade, why))
    return Result(("camera", "counter", "full_id", "thumbnail_id", "t_capture", "grade", "status"), out)


def open_transfers(db: Db) -> Result:
    """Transactions still open: what they lack (``missing`` byte ranges ``[start, end)``), NAKs sent."""
    rows = db.query("SELECT source_entity, seq, name, file_size, held, held_bytes, eof, naks, nak_ranges, t_opened, "
                    "t_updated FROM transfers WHERE state = 'open' ORDER BY t_opened")
    out = []
    for src, seq, name, size, held, held_bytes, eof, naks, nak_ranges, t_opened, t_updated in rows:
        segs = Segments(tuple(r) for r in json.loads(held))
        gaps = segs.gaps(int(size)) if size is not None else []
        out.append((int(src), int(seq), name, id_from_transfer_name(name) if name else "", size, int(held_bytes),
                    gaps, ranges_text(gaps), sum(b - a for a, b in gaps) if size is not None else None,
                    bool(eof), int(naks), json.loads(nak_ranges), float(t_opened), float(t_updated)))
    return Result(("source_entity", "seq", "name", "id", "file_size", "held_bytes", "missing", "missing_text",
                   "missing_bytes", "eof_received", "naks", "last_nak_ranges", "t_opened", "t_updated"), out)


def tm_gaps(db: Db, gap_factor: float = 3.0, min_gap_s: float = 0.0) -> Result:
    """Sequence-count gaps per APID and time gaps in each source's housekeeping, by source then time."""
    out: list[tuple[Any, ...]] = []
    last: dict[int, tuple[int, float]] = {}
    for apid, seq, t, source in db.query("SELECT apid, seq_count, t, source FROM tm_packets ORDER BY apid, t, "
                                         "seq_count"):
        apid, seq, t = int(apid), int(seq), float(t)
        if apid in last:
            prev, t_prev = last[apid]
            skipped = (seq - prev - 1) % SEQ_MODULO
            if skipped:
                out.append((source, apid, "sequence", t_prev, t, t - t_prev, skipped, (prev + 1) % SEQ_MODULO,
                            (seq - 1) % SEQ_MODULO))
        last[apid] = (seq, t)
    times: dict[tuple[str, int], list[float]] = defaultdict(list)
    for source, apid, t in db.query("SELECT source, apid, t FROM tm_packets WHERE packet_type = ? ORDER BY source, "
                                    "apid, t", (int(TmType.HOUSEKEEPING),)):
        times[(source, int(apid))].append(float(t))
    for (source, apid), ts in times.items():
        steps = [b - a for a, b in zip(ts, ts[1:]) if b > a]
        if len(steps) < 2:
            continue
        period = statistics.median(steps)
        for a, b in zip(ts, ts[1:]):
            if b - a > max(gap_factor * period, min_gap_s):
                out.append((source, apid, "time", a, b, b - a, None, None, None))
    out.sort(key=lambda r: (r[0], r[3], r[2]))
    return Result(("source", "apid", "kind", "t_from", "t_to", "gap_s", "packets_missing", "first_missing_seq",
                   "last_missing_seq"), out)
