"""What a crash must not forget about an open CFDP transaction: the parts of a file already held. No I/O.

CFDP (CCSDS 727.0-B-5 4.6.4) recovers lost file segments by NAK; cfdp-py 0.7
keeps that knowledge (the receiver's lost-segment list, the sender's
progress) only in memory. The ground therefore journals, per open
transaction, the byte ranges it has written (and fsync'd) as a
:class:`Segments` set; after a restart the destination handler is rebuilt
from it, so its NAKs ask only for what is missing. The lander journals its
sending progress. :func:`encode_segments` and :func:`decode_segments` are
the journal's codec; :class:`TransferJournal` is what the destination engine
needs of a journal (the ground's ledger implements it) and :class:`JournalRecord`
what a journal gives back to resume from. Both engines record their progress
on the same cadence (``CHECKPOINT_*``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Iterable, Protocol

import msgpack

from framework.errors import ProtocolError

__all__ = ["Segments", "SegmentsError", "encode_segments", "decode_segments", "JournalRecord", "TransferJournal",
           "NoJournal", "CHECKPOINT_BYTES", "CHECKPOINT_MIN_S", "CHECKPOINT_MAX_S"]

_VERSION = 1
_MAX_OFFSET = 1 << 63

CHECKPOINT_BYTES = 64 * 1024
"""A transaction's progress is recorded after this much new file data (sent, or written and fsync'd) ..."""
CHECKPOINT_MIN_S = 0.2
"""... but at most once per this period (each record costs an fsync or a committed row) ..."""
CHECKPOINT_MAX_S = 1.0
"""... and at the receiving end at least once per this period while data comes in."""


class SegmentsError(ProtocolError):
    """A journalled segment list does not decode."""


class Segments:
    """A set of byte ranges ``[start, end)``, kept sorted, disjoint and coalesced."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges:
            self.add(start, end - start)

    def add(self, offset: int, length: int) -> int:
        """Mark ``[offset, offset + length)`` held; return how many of those bytes were new."""
        if length <= 0:
            return 0
        start, end = offset, offset + length
        lo = bisect_left(self._ends, start)   # first range that ends at or after start
        hi = bisect_right(self._starts, end)  # ranges from lo to hi-1 touch [start, end)
        overlap = sum(max(0, min(end, self._ends[i]) - max(start, self._starts[i])) for i in range(lo, hi))
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]
        return length - overlap

    def holds(self, offset: int) -> bool:
        """Whether byte ``offset`` is in one of the ranges."""
        i = bisect_right(self._starts, offset) - 1
        return i >= 0 and offset < self._ends[i]

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends))

    @property
    def end(self) -> int:
        """One past the highest byte held (0 if none)."""
        return self._ends[-1] if self._ends else 0

    @property
    def total(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends))

    def gaps(self, upto: int | None = None) -> list[tuple[int, int]]:
        """The ranges missing in ``[0, upto)`` (``upto`` defaults to :attr:`end`)."""
        upto = self.end if upto is None else upto
        out: list[tuple[int, int]] = []
        at = 0
        for s, e in zip(self._starts, self._ends):
            if s >= upto:
                break
            if s > at:
                out.append((at, s))
            at = max(at, e)
        if at < upto:
            out.append((at, upto))
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Segments) and self.ranges == other.ranges

    def __repr__(self) -> str:
        return f"Segments({self.ranges})"


def encode_segments(segments: Segments) -> bytes:
    """The journal form: msgpack ``[version, [start, end, start, end, ...]]``."""
    flat = [x for r in segments.ranges for x in r]
    return msgpack.packb([_VERSION, flat], use_bin_type=True)


def decode_segments(data: bytes) -> Segments:
    """Inverse of :func:`encode_segments`; SegmentsError on anything else."""
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise SegmentsError(f"segment list is not msgpack: {type(exc).__name__}") from None
    if not (isinstance(body, list) and len(body) == 2 and body[0] == _VERSION and isinstance(body[1], list)):
        raise SegmentsError("segment list is not [1, [start, end, ...]]")
    flat = body[1]
    if len(flat) % 2 or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < _MAX_OFFSET
                                for x in flat):
        raise SegmentsError("segment list needs pairs of non-negative integer offsets")
    pairs = list(zip(flat[0::2], flat[1::2]))
    if any(e <= s for s, e in pairs) or any(pairs[i][1] >= pairs[i + 1][0] for i in range(len(pairs) - 1)):
        raise SegmentsError("segment ranges must be non-empty, sorted and apart")
    return Segments(pairs)


@dataclass(frozen=True)
class JournalRecord:
    """One journalled transaction, as the ground's ledger returns it and the destination engine's
    ``restore`` reads it: raw PDUs as cfdp-py/spacepackets packed them, the held ranges encoded
    (:func:`encode_segments`)."""

    source: int
    seq: int
    name: str
    metadata: bytes
    segments: bytes | None
    eof: bytes | None
    finished: bytes | None
    open: bool


class TransferJournal(Protocol):
    """Durable per-transaction state; each call is durable when it returns (the ground's ledger)."""

    def transfer_opened(self, key: tuple[int, int], name: str, metadata: bytes) -> None: ...

    def transfer_progress(self, key: tuple[int, int], segments: bytes, eof: bytes | None) -> None: ...

    def transfer_closed(self, key: tuple[int, int], finished: bytes | None) -> None: ...


class NoJournal:
    """A journal that keeps nothing (tests, or a ground that need not resume)."""

    def transfer_opened(self, key: tuple[int, int], name: str, metadata: bytes) -> None:
        pass

    def transfer_progress(self, key: tuple[int, int], segments: bytes, eof: bytes | None) -> None:
        pass

    def transfer_closed(self, key: tuple[int, int], finished: bytes | None) -> None:
        pass
