"""``OUT/hil/manifest.jsonl``: the emulators' record of every frame put on the line.

Verdicts (the demo, scenarios, tests) count against this file, not against what
the chain produced: one JSON line per frame whose last byte left the emulator
(camera, counter, shape, CRC-32C of the pixels, capture time, and the fault
that spoilt it, if any). File I/O only: no socket.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["Manifest", "MANIFEST_SYNC_S"]

MANIFEST_SYNC_S = 0.2  # the manifest is fsynced at least this often while it has unsynced records


class Manifest:
    """``OUT/hil/manifest.jsonl``: one JSON line per frame sent; append-only, fsynced in batches.

    :meth:`append` writes the line at once (``os.write``: a crash of this
    process loses nothing); ``fsync`` runs when ``sync_s`` has passed since
    the last one, from :meth:`append` or :meth:`tick` (the emulator ticks
    every loop), and on :meth:`close`. So a crash of the machine loses at
    most the records of frames sent in the last ``sync_s`` seconds (plus one
    loop iteration); ``sync_s=0`` fsyncs every record.
    """

    def __init__(self, path: Path, sync_s: float = MANIFEST_SYNC_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sync_s = sync_s
        self._clock = clock
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.unsynced = 0
        self._synced_at = clock()

    def last_counter(self, camera: str) -> int | None:
        """The highest counter already recorded for ``camera``; unreadable lines are ignored."""
        last: int | None = None
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("camera") == camera and isinstance(rec.get("counter"), int):
                    last = rec["counter"] if last is None else max(last, rec["counter"])
        return last

    def append(self, record: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
        self.unsynced += 1
        self.tick()

    def tick(self) -> None:
        """fsync if records are waiting and ``sync_s`` has passed since the last fsync."""
        if self.unsynced and self._clock() - self._synced_at >= self.sync_s:
            self.sync()

    def sync(self) -> None:
        os.fsync(self._fd)
        self.unsynced = 0
        self._synced_at = self._clock()

    def close(self) -> None:
        if self.unsynced:
            self.sync()
        os.close(self._fd)
