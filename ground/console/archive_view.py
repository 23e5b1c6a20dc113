"""The ground's archive as the console reads it: products, events, parameters, commands, transfers, and
what is missing, all through :class:`ground.archive.Archive` (the same calls ``pdh missing`` and
``pdh products`` make, so the page and the command line agree by construction). No sockets.

The archive is the ground station's: found at its ``archive.url`` (:func:`ground.station.archive_url`;
a relative SQLite path is under the run's output directory, or a PostgreSQL server), opened
read-only on first use, since the console may start before the station has made it, and opened
again after a failure (a PostgreSQL server restarted). Each call holds one lock: the process's loop
(product lookups, the command listing) and the HTTP server's worker threads share one connection.
A call that cannot reach the archive raises :class:`ArchiveUnavailable` naming it (never its password).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from framework.errors import PdhError
from ground.archive import Archive, redact
from ground.station import archive_url

__all__ = ["ArchiveView", "ArchiveUnavailable", "card_of", "MISSING_DEFAULTS"]

T = TypeVar("T")

MISSING_DEFAULTS = {"gap_factor": 3.0, "min_gap_s": 0.0}
"""The questions ``pdh missing`` asks by default (its ``--gap-factor``/``--min-gap``): the panel asks the same."""
_CLOSED_SHOWN = 32
_MISSING_FRESH_S = 1.0


class ArchiveUnavailable(RuntimeError):
    """The archive could not be opened or read (not made yet, its server down): the reason."""


def card_of(row: dict[str, Any]) -> dict[str, Any]:
    """A gallery card from an archive product row (:meth:`Archive.product` / :meth:`Archive.products`)."""
    pid = row["id"]
    return {"id": pid, "kind": row["kind"], "camera": row["camera"], "counter": int(row["counter"]),
            "t_capture": row["t_capture"], "t_received": row.get("t_received"), "grade": row.get("grade"),
            "grades": row.get("grades") or {}, "codec": row["codec"], "crc32c": row["crc32c"],
            "bytes": row["bytes"], "width": row["width"], "height": row["height"], "bit_depth": row["bit_depth"],
            "label": bool(row.get("label")), "image": f"/api/products/{pid}/image",
            "preview": f"/api/products/{pid}/preview"}


class ArchiveView:
    """``url``/``base_dir``: where the station's archive is; ``opener``: how to open it (tests may wrap it)."""

    def __init__(self, url: str, base_dir: Path,
                 opener: Callable[[str, Path], Archive] = lambda u, d: Archive(u, d, readonly=True),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.base_dir = base_dir
        self.opener = opener
        self.clock = clock
        self._archive: Archive | None = None
        self._lock = threading.Lock()
        self._grades: dict[str, dict[str, Any]] = {}  # products never change their grades: asked once each
        self._missing: tuple[float, dict[str, Any]] | None = None
        self.error = ""
        self.c = {"archive_queries": 0, "archive_errors": 0}

    @classmethod
    def of_config(cls, config: Any, ground: str, out_dir: Path) -> "ArchiveView":
        """The archive of ground station ``ground`` in ``config``, for a run whose output directory is
        ``out_dir``: found as the station finds it (and as ``pdh missing --config --out`` does)."""
        return cls(archive_url(config, ground), out_dir)

    @property
    def name(self) -> str:
        return redact(self.url)

    def call(self, fn: Callable[[Archive], T]) -> T:
        """``fn(archive)`` under the lock, opening the archive first if need be; ArchiveUnavailable if that
        or the query fails (the connection is dropped and opened again next time)."""
        with self._lock:
            try:
                if self._archive is None:
                    self._archive = self.opener(self.url, self.base_dir)
                out = fn(self._archive)
            except PdhError as exc:
                self.c["archive_errors"] += 1
                self.error = str(exc)
                if self._archive is not None:
                    self._archive.close()
                    self._archive = None
                raise ArchiveUnavailable(f"the archive {self.name}: {exc}") from None
            self.c["archive_queries"] += 1
            self.error = ""
            return out

    def status(self) -> dict[str, Any]:
        """For the page's badge: where the archive is and whether the last look at it worked."""
        return {"url": self.name, "ok": not self.error, "error": self.error}

    def close(self) -> None:
        with self._lock:
            if self._archive is not None:
                self._archive.close()
                self._archive = None

    # -- products ---------------------------------------------------------------------------------
    def card(self, pid: str) -> dict[str, Any] | None:
        """The gallery card of product ``pid``, or None if the archive has no such product."""
        row = self.call(lambda a: a.product(pid))
        if row is None:
            return None
        self._grades[pid] = row.get("grades") or {}
        return card_of(row)

    def cards(self, **query: Any) -> list[dict[str, Any]]:
        """Products by camera, kind, capture time and grade (:meth:`Archive.products`), as cards with grades."""
        rows = self.call(lambda a: a.products(**query).dicts())
        for r in rows:
            if r["id"] not in self._grades:
                found = self.call(lambda a, pid=r["id"]: a.product(pid))
                self._grades[r["id"]] = (found or {}).get("grades") or {}
            r["grades"] = self._grades[r["id"]]
        return [card_of(r) for r in rows]

    def product_ids(self) -> set[str]:
        return self.call(lambda a: a.product_ids())

    def image_path(self, pid: str) -> Path | None:
        """The PNG the ground wrote for ``pid`` (as the archive recorded it), if it is there."""
        row = self.call(lambda a: a.product(pid))
        if row is None:
            return None
        path = Path(row["path"])
        return path if path.is_file() else None

    # -- what is missing, transfers ---------------------------------------------------------------
    def missing(self) -> dict[str, Any]:
        """Exactly :meth:`Archive.missing` with ``pdh missing``'s defaults, as ``pdh missing --json`` prints it
        (each section a list of rows). Kept for a second so the link and missing panels share one look."""
        now = self.clock()
        if self._missing is not None and now - self._missing[0] < _MISSING_FRESH_S:
            return self._missing[1]
        got = self.call(lambda a: a.missing(**MISSING_DEFAULTS).to_dict())
        self._missing = (now, got)
        return got

    def transactions(self) -> list[dict[str, Any]]:
        """The link panel's CFDP transactions: the open ones as :meth:`missing` has them (missing ranges,
        NAKs sent and the ranges the last asked for), then the last closed ones, newest first."""
        opened = self.missing()["open_transfers"]
        closed = self.call(lambda a: a.transfers(closed=True, newest_first=True, limit=_CLOSED_SHOWN).dicts())
        out = [{"source": t["source_entity"], "seq": t["seq"], "name": t["name"], "id": t["id"], "open": True,
                "state": "open", "size": t["file_size"], "held": t["held_bytes"], "eof": t["eof_received"],
                "missing": [list(r) for r in t["missing"]], "missing_bytes": t["missing_bytes"], "naks": t["naks"],
                "last_nak_ranges": [list(r) for r in t["last_nak_ranges"]], "t": t["t_updated"]} for t in opened]
        out += [{"source": t["source_entity"], "seq": t["seq"], "name": t["name"], "open": False,
                 "state": t["state"], "condition": t["condition"], "size": t["file_size"],
                 "held": t["file_size"] if t["state"] in ("delivered", "finished") else t["held_bytes"],
                 "eof": t["eof"], "missing": [], "missing_bytes": 0, "naks": t["naks"],
                 "last_nak_ranges": t["nak_ranges"], "t": t["t_closed"] or t["t_updated"]}
                for t in closed]
        return out

    # -- events, parameters, commands -------------------------------------------------------------
    def events(self, *, min_severity: str | None = None, source: str | None = None,
               limit: int = 500) -> list[dict[str, Any]]:
        """The newest events (lander and ground), oldest first, as the page's event log shows them."""
        rows = self.call(lambda a: a.events(min_severity=min_severity, sources=[source] if source else None,
                                            limit=limit, newest_first=True).dicts())
        return [{"t": r["t"], "process": r["source"], "origin": r["origin"], "name": r["name"],
                 "severity": r["severity"], "id": r["event_id"], "fields": r["fields"]} for r in reversed(rows)]

    def history(self, process: str, channel: str, t0: float | None = None, t1: float | None = None,
                limit: int | None = None) -> list[tuple[float, float]]:
        """One channel's numeric values over a time range (:meth:`Archive.parameter`), the last ``limit``."""
        rows = self.call(lambda a: a.parameter(process, channel, t0, t1).rows)
        points = [(float(t), float(v)) for t, _s, _c, v in rows
                  if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return points[-limit:] if limit else points

    def commands(self) -> list[dict[str, Any]]:
        """Every command of the ground's queue with its verification stages, as the archive recorded them."""
        return self.call(lambda a: a.commands().dicts())
