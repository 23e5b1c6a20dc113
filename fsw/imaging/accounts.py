"""Every frame accounted for: what the imaging core took, what the downlink stored, what was named lost.

A frame the camera sent intact ends in one of two ways: its products (thumbnail and full
frame, or what the policy keeps) are stored by the downlink, or an event names it (camera,
counter, why). :class:`FrameAccounts` keeps that promise across crashes of this process
and of the bus, with no sockets and no clock of its own (fed messages and ``now``):

- **Accepted frames** are journalled (:mod:`fsw.imaging.journal`) with the header fields
  of their message, which hold the shared-memory handle of their pixels. A frame stays
  *open* until each product it should have is stored (the downlink's ``product_stored``)
  or named. After a restart each open frame is taken again from the camera driver's ring
  when its slot still holds it, and otherwise named lost.
- **Counters per camera.** The highest counter accounted for is journalled too, so the
  frames that never reached this core (it or the broker was down, the bus dropped them)
  show as a gap at the next frame, or at the camera driver's ``last_counter`` telemetry when
  no frame follows, and are named (reason ``not_received``).
- **Reports.** Every event that names frames (``frames_lost``, ``frames_thumbnail_only``,
  ``product_failed``) is a *report*: journalled with a number, published, and published
  again (with backoff) until this core hears it back on the bus, so a report made while
  the broker was down still reaches the downlink's event recording, and through it the ground.

The journal records (msgpack maps, ``op`` says which)::

    frame   cam, n, src, f (header fields)[, stored: [ids], named: [kinds]]   a frame accepted
    stored  id                                                              the downlink stored a product
    report  no, name, fields, cam, ranges [[a, b]], kinds                   an event naming frames
    echoed  no                                                              that report came back on the bus
    last    cam, n                                                          a camera's counter set (a reset)
    next    no                                                              the next report number
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from fsw.imaging.product import product_id

__all__ = ["FrameAccounts", "OpenFrame", "FRAME_PRODUCTS", "ranges_of", "JournalLike"]

FRAME_PRODUCTS = frozenset({"thumbnail", "full"})
"""The products every frame should reach the ground as, unless the policy or an event says otherwise."""
_RECENT = 256  # counters per camera remembered to tell a duplicate from a counter reset
_NAMED_GAPS = 64  # gap ranges per camera remembered, so a frame arriving after it was named late is taken
_RETRY_MAX_S = 30.0


class JournalLike(Protocol):
    records: int

    def append(self, rec: dict[str, Any]) -> None: ...

    def commit(self) -> None: ...

    def rewrite(self, records: list[dict[str, Any]]) -> None: ...


def ranges_of(counters: Iterable[int]) -> list[list[int]]:
    """Counters as sorted, merged ``[first, last]`` ranges: ``[1, 2, 3, 7]`` -> ``[[1, 3], [7, 7]]``."""
    out: list[list[int]] = []
    for n in sorted(set(counters)):
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


@dataclass
class OpenFrame:
    """A frame taken and not yet accounted for: the products it should have, stored or named so far."""

    camera: str
    counter: int
    src: str
    fields: dict[str, Any]
    stored: set[str] = field(default_factory=set)
    named: set[str] = field(default_factory=set)

    def missing(self) -> set[str]:
        return set(FRAME_PRODUCTS) - self.stored - self.named

    def done(self) -> bool:
        return not self.missing()


@dataclass
class _Report:
    no: int
    name: str
    fields: dict[str, Any]
    due: float
    sent: int = 0


class FrameAccounts:
    """The accounts of one imaging core. ``journal``: where records go (:class:`~fsw.imaging.journal.Journal`);
    ``retry_s``: first wait before a report not heard back is published again (then doubling up to 30 s);
    ``tail_grace_s``: how long a camera driver may report a counter no frame has brought before the frames
    up to it are named; ``max_open`` and ``max_reports`` bound memory (beyond them the oldest is given up,
    named or counted)."""

    def __init__(self, cameras: Iterable[str], journal: JournalLike, monotonic: Callable[[], float],
                 retry_s: float = 2.0, tail_grace_s: float = 3.0, max_open: int = 4096,
                 max_reports: int = 1024) -> None:
        self.cameras = set(cameras)
        self.journal = journal
        self.monotonic = monotonic
        self.retry_s = retry_s
        self.tail_grace_s = tail_grace_s
        self.max_open = max_open
        self.max_reports = max_reports
        self.last: dict[str, int] = {}
        self.open: dict[tuple[str, int], OpenFrame] = {}
        self._ids: dict[str, tuple[str, int, str]] = {}  # product id of an open frame -> (camera, counter, kind)
        self.reports: dict[int, _Report] = {}
        self.next_no = 1
        self._recent: dict[str, collections.deque[int]] = {c: collections.deque(maxlen=_RECENT) for c in self.cameras}
        self._gaps: dict[str, collections.deque[tuple[int, int]]] = {
            c: collections.deque(maxlen=_NAMED_GAPS) for c in self.cameras}
        self._tail: dict[str, tuple[int, float]] = {}
        self.c = {"frames_lost": 0, "frames_late": 0, "frames_duplicate": 0, "counter_resets": 0,
                  "reports_made": 0, "reports_resent": 0, "reports_abandoned": 0, "frames_given_up": 0}

    # -- from the journal ----------------------------------------------------------------------
    def restore(self, records: list[dict[str, Any]]) -> list[OpenFrame]:
        """Rebuild the accounts from the journal's records (in order); return the frames still open,
        oldest first. A record that does not make sense is skipped (the journal is our own, CRC-checked)."""
        now = self.monotonic()
        for rec in records:
            try:
                self._apply(rec, now)
            except (KeyError, TypeError, ValueError):
                continue
        return list(self.open.values())

    def _apply(self, rec: dict[str, Any], now: float) -> None:
        op = rec.get("op")
        if op == "frame":
            f = self._open(str(rec["cam"]), int(rec["n"]), str(rec.get("src", "")), dict(rec["f"]))
            f.stored.update(str(k) for k in rec.get("stored", ()))
            f.named.update(str(k) for k in rec.get("named", ()))
            self._settle(f)
        elif op == "stored":
            self._mark_stored(str(rec["id"]))
        elif op == "report":
            no = int(rec["no"])
            self.reports[no] = _Report(no, str(rec["name"]), dict(rec["fields"]), now)
            self.next_no = max(self.next_no, no + 1)
            self._mark_named(str(rec["cam"]), [(int(a), int(b)) for a, b in rec["ranges"]], set(rec["kinds"]),
                             extend=bool(rec.get("gap")))
        elif op == "echoed":
            self.reports.pop(int(rec["no"]), None)
        elif op == "last":
            self.last[str(rec["cam"])] = int(rec["n"])
        elif op == "next":
            self.next_no = max(self.next_no, int(rec["no"]))

    def snapshot(self) -> list[dict[str, Any]]:
        """What the journal must hold now, as few records as possible (for :meth:`compact`)."""
        out: list[dict[str, Any]] = [{"op": "next", "no": self.next_no}]
        out += [{"op": "last", "cam": c, "n": n} for c, n in self.last.items()]
        out += [{"op": "frame", "cam": f.camera, "n": f.counter, "src": f.src, "f": f.fields,
                 "stored": sorted(f.stored), "named": sorted(f.named)} for f in self.open.values()]
        out += [self._report_record(r, [], set()) for r in self.reports.values()]
        return out

    def compact(self) -> None:
        """Rewrite the journal as a snapshot (JournalError from the journal if it cannot)."""
        self.journal.rewrite(self.snapshot())

    def compact_due(self, every: int = 4096) -> bool:
        return self.journal.records > every + len(self.open) + len(self.reports)

    def commit(self) -> None:
        """Make this turn's records durable (JournalError from the journal if it cannot)."""
        self.journal.commit()

    # -- frames ----------------------------------------------------------------------------------
    def arrived(self, camera: str, counter: int) -> str:
        """A frame message of a served camera with a valid counter, good or bad: how it fits the camera's
        sequence. ``new`` (frames skipped before it are named lost), ``late`` (it was named lost before
        it came), ``duplicate`` (taken already: drop it) or ``reset`` (the counter went back)."""
        recent = self._recent.setdefault(camera, collections.deque(maxlen=_RECENT))
        if counter in recent:
            self.c["frames_duplicate"] += 1
            return "duplicate"
        recent.append(counter)
        last = self.last.get(camera)
        if last is None or counter > last:
            first = 0 if last is None else last + 1
            if counter > first:
                self._gap(camera, first, counter - 1)
            self.last[camera] = counter
            self._tail.pop(camera, None)
            return "new"
        if any(a <= counter <= b for a, b in self._gaps.get(camera, ())):
            self.c["frames_late"] += 1
            return "late"
        self.c["counter_resets"] += 1
        self.last[camera] = counter
        self.journal.append({"op": "last", "cam": camera, "n": counter})
        return "reset"

    def accepted(self, camera: str, counter: int, src: str, fields: dict[str, Any]) -> None:
        """A frame passed validation and goes to processing: it is open until its products are accounted for."""
        if len(self.open) >= self.max_open:
            oldest = next(iter(self.open.values()))
            self.c["frames_given_up"] += 1
            self.lost(oldest.camera, [oldest.counter], "open_frames_full", oldest.missing())
            self._close(oldest)
        self._open(camera, counter, src, fields)
        self.journal.append({"op": "frame", "cam": camera, "n": counter, "src": src, "f": fields})

    def lacks(self, name: str, camera: str, counter: int, kinds: Iterable[str], fields: dict[str, Any]) -> None:
        """Frame ``counter`` will not have ``kinds``: event ``name`` with ``fields`` says so, as a report."""
        self.report(name, fields, camera, [(counter, counter)], set(kinds))

    def lost(self, camera: str, counters: Iterable[int], reason: str,
             kinds: Iterable[str] = FRAME_PRODUCTS, **extra: Any) -> None:
        """Name frames that will not reach the ground (``frames_lost``)."""
        rs = ranges_of(counters)
        if not rs:
            return
        self.c["frames_lost"] = min(self.c["frames_lost"] + sum(b - a + 1 for a, b in rs), 2**63 - 1)
        kinds = set(kinds) or set(FRAME_PRODUCTS)
        self.report("frames_lost", {"camera": camera, "ranges": rs, "reason": reason, "products": sorted(kinds),
                                    **extra}, camera, [(a, b) for a, b in rs], kinds)

    def _gap(self, camera: str, first: int, last: int) -> None:
        self._gaps.setdefault(camera, collections.deque(maxlen=_NAMED_GAPS)).append((first, last))
        self.c["frames_lost"] = min(self.c["frames_lost"] + last - first + 1, 2**63 - 1)
        self.report("frames_lost", {"camera": camera, "ranges": [[first, last]], "reason": "not_received",
                                    "products": sorted(FRAME_PRODUCTS)},
                    camera, [(first, last)], set(FRAME_PRODUCTS), gap=True)

    # -- the downlink ------------------------------------------------------------------------------
    def stored(self, pid: str) -> bool:
        """The downlink stored product ``pid``; True if it was a product of an open frame."""
        if pid not in self._ids:
            return False
        self.journal.append({"op": "stored", "id": pid})
        self._mark_stored(pid)
        return True

    def is_stored(self, pid: str) -> bool:
        """Whether ``pid`` belongs to an open frame and is already stored (a frame taken again after a
        restart sends only what is not)."""
        key = self._ids.get(pid)
        f = self.open.get(key[:2]) if key else None
        return f is not None and key is not None and key[2] in f.stored

    # -- reports -----------------------------------------------------------------------------------
    def report(self, name: str, fields: dict[str, Any], camera: str, ranges: list[tuple[int, int]],
               kinds: set[str], gap: bool = False) -> None:
        """Journal an event that names frames; it goes out at the next :meth:`due` and again until echoed."""
        if len(self.reports) >= self.max_reports:
            oldest = self.reports.pop(next(iter(self.reports)))
            self.c["reports_abandoned"] += 1
            self.journal.append({"op": "echoed", "no": oldest.no})
        no = self.next_no
        self.next_no += 1
        r = _Report(no, name, dict(fields), self.monotonic())
        self.reports[no] = r
        self.c["reports_made"] += 1
        self.journal.append(self._report_record(r, ranges, kinds, gap))
        self._mark_named(camera, ranges, kinds, extend=gap)

    @staticmethod
    def _report_record(r: _Report, ranges: list[tuple[int, int]], kinds: set[str],
                       gap: bool = False) -> dict[str, Any]:
        rec = {"op": "report", "no": r.no, "name": r.name, "fields": r.fields,
               "cam": str(r.fields.get("camera", "")), "ranges": [list(x) for x in ranges], "kinds": sorted(kinds)}
        if gap:
            rec["gap"] = True
        return rec

    def due(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """The reports to publish now (each with its ``report`` number), first time or again."""
        out = []
        for r in self.reports.values():
            if now < r.due:
                continue
            if r.sent:
                self.c["reports_resent"] += 1
            r.sent += 1
            r.due = now + min(self.retry_s * 2 ** min(r.sent - 1, 10), _RETRY_MAX_S)
            out.append((r.name, {**r.fields, "report": r.no}))
        return out

    def echoed(self, no: Any) -> None:
        """Report ``no`` came back on the bus: the broker carried it to every subscriber; it is done."""
        if isinstance(no, int) and not isinstance(no, bool) and self.reports.pop(no, None) is not None:
            self.journal.append({"op": "echoed", "no": no})

    # -- the camera driver's telemetry -------------------------------------------------------------
    def driver_counter(self, camera: str, counter: Any, now: float) -> None:
        """A camera driver's ``last_counter``: frames up to it were published; if none brings a counter that
        high within ``tail_grace_s``, :meth:`tick` names the rest as never received."""
        if camera not in self.cameras or isinstance(counter, bool) or not isinstance(counter, int):
            return
        if counter < 0 or counter > 2**64 - 1 or counter <= self.last.get(camera, -1):
            return
        seen = self._tail.get(camera)
        self._tail[camera] = (counter, seen[1] if seen else now)

    def tick(self, now: float) -> None:
        for camera, (counter, since) in list(self._tail.items()):
            last = self.last.get(camera)
            if last is not None and counter <= last:
                del self._tail[camera]
            elif now - since >= self.tail_grace_s:
                del self._tail[camera]
                self._gap(camera, 0 if last is None else last + 1, counter)
                self.last[camera] = counter

    # -- internals ---------------------------------------------------------------------------------
    def _open(self, camera: str, counter: int, src: str, fields: dict[str, Any]) -> OpenFrame:
        key = (camera, counter)
        f = self.open.get(key)
        if f is None:
            f = self.open[key] = OpenFrame(camera, counter, src, fields)
            for kind in FRAME_PRODUCTS:
                self._ids[product_id(camera, counter, kind)] = (camera, counter, kind)
        if counter > self.last.get(camera, -1):
            self.last[camera] = counter
        return f

    def _mark_stored(self, pid: str) -> None:
        key = self._ids.get(pid)
        f = self.open.get(key[:2]) if key else None
        if f is not None and key is not None:
            f.stored.add(key[2])
            self._settle(f)

    def _mark_named(self, camera: str, ranges: list[tuple[int, int]], kinds: set[str], extend: bool) -> None:
        for a, b in ranges:
            if extend and b > self.last.get(camera, -1):
                self.last[camera] = b
            for f in [f for f in self.open.values() if f.camera == camera and a <= f.counter <= b]:
                f.named |= kinds
                self._settle(f)

    def _settle(self, f: OpenFrame) -> None:
        if f.done():
            self._close(f)

    def _close(self, f: OpenFrame) -> None:
        self.open.pop((f.camera, f.counter), None)
        for kind in FRAME_PRODUCTS:
            self._ids.pop(product_id(f.camera, f.counter, kind), None)

    def sample(self) -> dict[str, Any]:
        return {**self.c, "frames_open": len(self.open), "reports_unechoed": len(self.reports)}
