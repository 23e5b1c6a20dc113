"""Housekeeping and event recording on board (as cFS DS does): batches, segments, an archive. No sockets.

The TM packets made of the lander's bus housekeeping (``tlm.*``), events (``evt.*``) and command
verification (``vrf.*``) (:mod:`fsw.downlink.tm`) are batched into *segments* (the format both
ends share, :mod:`link.tlm_segments`: a plain concatenation of TM packets), one file per period,
packets in time order. A housekeeping segment closed while a contact is open is the reliable copy
of what also went out realtime (``tlm``); one closed outside a contact was recorded
(``tlm_playback``) and plays back, oldest first, at the next contact. Events and verification go
in their own segments (``evt``, the alert class), flushed quickly.

Every housekeeping segment is also kept in an on-board archive (one file per segment, the same
bytes, fsync'd, oldest deleted beyond ``archive_bytes``), so the ground can ask for any time range
again (:meth:`TelemetryRecorder.playback`, which picks packets by their secondary-header time).
The archive is a second copy: when the disk refuses it (full, failing), the segment still goes to
the store, the failure is counted (``archive_errors``) and its reason left in
:attr:`TelemetryRecorder.archive_error` for the owner to report; recording goes on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from framework.counters import saturating_add
from framework.errors import ProtocolError
from link.filestore import fsync_dir
from link.tlm_segments import SEGMENT_ID_PREFIX, decode_segment, encode_segment, packet_time

__all__ = ["Segment", "TelemetryRecorder"]


@dataclass(frozen=True)
class Segment:
    """A closed segment: its store id, kind, time span, TM packets (time order) and bytes
    (:mod:`link.tlm_segments`)."""

    id: str
    kind: str
    t0: float
    t1: float
    packets: list[bytes]
    data: bytes

    @property
    def records(self) -> list[bytes]:
        """The packets (what TLM_PLAYBACK's reply counts as records)."""
        return self.packets


class TelemetryRecorder:
    def __init__(self, archive_dir: Path, archive_bytes: int, segment_s: float, alert_flush_s: float) -> None:
        self.archive_dir = Path(archive_dir)
        try:
            self.archive_dir.mkdir(parents=True, exist_ok=True)
            for p in self.archive_dir.glob("*.tmp"):
                p.unlink(missing_ok=True)
        except OSError:
            pass  # a disk that refuses now: the first archive write tries again and reports
        self.archive_bytes = archive_bytes
        self.segment_s = segment_s
        self.alert_flush_s = alert_flush_s
        self._hk: list[tuple[float, bytes]] = []
        self._evt: list[tuple[float, bytes]] = []
        self._hk_since: float | None = None
        self._evt_since: float | None = None
        self._n = 0
        self.c = {"records": 0, "segments": 0, "archived_bytes": self._archive_size(), "archive_evicted": 0,
                  "archive_errors": 0}
        self.archive_error = ""  # why the last archive write failed, until the owner reports it

    def add(self, packet: bytes, alert: bool, now: float) -> None:
        """One TM packet; ``alert``: an event or verification packet (an ``evt`` segment, soon)."""
        rec = (packet_time(packet), packet)
        self.c["records"] = saturating_add(self.c["records"], 1)
        if alert:
            self._evt.append(rec)
            self._evt_since = now if self._evt_since is None else self._evt_since
        else:
            self._hk.append(rec)
            self._hk_since = now if self._hk_since is None else self._hk_since

    def due(self, now: float, in_contact: bool, force: bool = False) -> list[Segment]:
        """Segments to store now; housekeeping ones are archived first."""
        out = []
        if self._evt and (force or self._evt_since is None or now - self._evt_since >= self.alert_flush_s):
            out.append(self._segment("evt", self._evt))
            self._evt, self._evt_since = [], None
        if self._hk and (force or self._hk_since is None or now - self._hk_since >= self.segment_s):
            seg = self._segment("tlm" if in_contact else "tlm_playback", self._hk)
            self._hk, self._hk_since = [], None
            self._archive(seg)
            out.append(seg)
        return out

    def playback(self, t_start: float, t_end: float) -> Segment | None:
        """A recorded segment with every archived housekeeping packet of [t_start, t_end] (by its
        secondary-header time), time order."""
        recs: list[tuple[float, bytes]] = []
        for p in sorted(self.archive_dir.glob("*.seg")):
            a, b = (int(x) / 1000.0 for x in p.stem.split("_")[:2])
            if b < t_start or a > t_end:
                continue
            try:
                packets = decode_segment(p.read_bytes())
            except (OSError, ProtocolError):
                continue  # a damaged archive file is skipped; the rest still plays back
            recs.extend((t, pk) for t, pk in ((packet_time(pk), pk) for pk in packets) if t_start <= t <= t_end)
        if not recs:
            return None
        recs.sort(key=lambda r: r[0])
        return self._segment("tlm_playback", recs)

    # -- internals -----------------------------------------------------------------------------
    def _segment(self, kind: str, records: list[tuple[float, bytes]]) -> Segment:
        self._n += 1
        records = sorted(records, key=lambda r: r[0])
        t0, t1 = records[0][0], records[-1][0]
        sid = f"{SEGMENT_ID_PREFIX[kind]}-{int(t0 * 1000)}-{os.getpid()}-{self._n}"
        self.c["segments"] = saturating_add(self.c["segments"], 1)
        packets = [pk for _, pk in records]
        return Segment(sid, kind, t0, t1, packets, encode_segment(packets))

    def _archive(self, seg: Segment) -> None:
        name = f"{int(seg.t0 * 1000):015d}_{int(seg.t1 * 1000):015d}_{seg.id}.seg"
        tmp = self.archive_dir / (name + ".tmp")
        try:
            self.archive_dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(seg.data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.archive_dir / name)
            fsync_dir(self.archive_dir)
        except OSError as exc:
            self.c["archive_errors"] += 1
            self.archive_error = f"cannot archive {name}: {type(exc).__name__}: {exc}"
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass  # removed at the next start
            return
        self.c["archived_bytes"] += len(seg.data)
        self._trim()

    def _trim(self) -> None:
        """Delete the oldest archived segments beyond ``archive_bytes`` (always keep the newest)."""
        while self.c["archived_bytes"] > self.archive_bytes:
            files = sorted(self.archive_dir.glob("*.seg"))
            if len(files) <= 1:
                break
            try:
                size = files[0].stat().st_size
                files[0].unlink()
            except FileNotFoundError:
                self.c["archived_bytes"] = self._archive_size()
                continue
            except OSError:
                return  # tried again after the next segment
            self.c["archived_bytes"] -= size
            self.c["archive_evicted"] += 1

    def _archive_size(self) -> int:
        total = 0
        for p in self.archive_dir.glob("*.seg"):
            try:
                total += p.stat().st_size
            except OSError:
                pass  # gone meanwhile
        return total
