"""The start-up scrub: every stored payload read back and its CRC-32C computed, a bounded slice per step. No sockets.

A size check at start-up passes a payload whose bytes rotted in place; the scrub reads each one back
and hands its CRC-32C to the caller, which compares it with the index's (the CRC of the bytes as
they were stored). Reads are :data:`~fsw.downlink.payload.CHUNK_BYTES` at a time, at most
``budget_bytes`` read and ``max_files`` opened per :meth:`Scrub.step`, so a store of many gigabytes or
of many small payloads is checked over many turns of the downlink's loop while it goes on receiving
and sending. Items go in sending order (what leaves first is checked first); the check before sending
covers whatever the scrub has not reached yet. An item confirmed or re-encoded meanwhile is the caller's to skip (its generation changed).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import BinaryIO

import crc32c

from fsw.downlink.payload import CHUNK_BYTES
from fsw.downlink.store import StoredProduct

__all__ = ["Checked", "Scrub"]


@dataclass(frozen=True)
class Checked:
    """One payload read to its end: the CRC-32C it has now (None: it could not be read, with why)."""

    item: StoredProduct
    found: int | None
    error: str = ""


class Scrub:
    """Reads the given items' payloads, ``budget_bytes`` per :meth:`step`."""

    def __init__(self, items: list[StoredProduct], chunk_bytes: int = CHUNK_BYTES) -> None:
        self._queue: deque[StoredProduct] = deque(items)
        self._chunk = chunk_bytes
        self._item: StoredProduct | None = None
        self._file: BinaryIO | None = None
        self._crc = 0
        self.total = len(items)
        self.checked = 0
        self.bytes = 0

    @property
    def pending(self) -> int:
        """Payloads not yet read to their end."""
        return len(self._queue) + (self._item is not None)

    @property
    def done(self) -> bool:
        return self.pending == 0

    def step(self, budget_bytes: int, max_files: int | None = None) -> list[Checked]:
        """Read up to about ``budget_bytes`` and open at most ``max_files`` payloads (None: no file bound),
        whichever comes first; return the payloads finished meanwhile. The file bound is what keeps a step
        short over many small payloads, where opening costs more than reading. A payload gone since
        (confirmed, re-encoded) is skipped."""
        out: list[Checked] = []
        opened = 0
        while budget_bytes > 0 and (self._item is not None or (self._queue and opened != max_files)):
            if self._item is None:
                item = self._queue.popleft()
                opened += 1
                try:
                    self._file = open(item.path, "rb", buffering=0)
                except FileNotFoundError:
                    self.checked += 1  # gone since the list was made: nothing to check
                    continue
                except OSError as exc:
                    self.checked += 1
                    out.append(Checked(item, None, f"{type(exc).__name__}: {exc}"))
                    continue
                self._item, self._crc = item, 0
            assert self._file is not None and self._item is not None
            try:
                block = self._file.read(min(self._chunk, budget_bytes))
            except OSError as exc:
                out.append(Checked(self._item, None, f"{type(exc).__name__}: {exc}"))
                self._finish()
                continue
            if not block:
                out.append(Checked(self._item, self._crc))
                self._finish()
                continue
            self._crc = crc32c.crc32c(block, self._crc)
            self.bytes += len(block)
            budget_bytes -= len(block)
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._item = None, None
        self._queue.clear()

    def _finish(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._item = None, None
        self.checked += 1
