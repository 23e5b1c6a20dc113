"""The sequencer's state file: one JSON document, replaced whole and durably on every change.

:meth:`StateFile.save` writes a temporary file, fsyncs it, renames it over the
state file and fsyncs the directory, so after a crash at any moment the file
holds either the state before the change or the state after it, never part of
one. :meth:`StateFile.load` reads it back; a file that does not parse is moved
aside (kept for a person to look at) and the caller starts with no sequences,
which can run nothing twice.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from link.filestore import fsync_dir

__all__ = ["StateFile", "MAX_STATE_BYTES"]

MAX_STATE_BYTES = 8 * 1024 * 1024
"""A state file larger than this is not read (the sequencer's bounds keep a real one far smaller)."""


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.last_write_us = 0.0

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none. ValueError if the file is there but unreadable."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return None
        if size > MAX_STATE_BYTES:
            raise ValueError(f"{self.path} is {size} bytes, over {MAX_STATE_BYTES}")
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError, RecursionError) as exc:
            raise ValueError(f"{self.path} does not parse: {type(exc).__name__}: {str(exc)[:200]}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{self.path} does not hold a map")
        return data

    def set_aside(self) -> Path:
        """Move an unreadable state file out of the way (``<name>.bad-<unix time>``); return where."""
        aside = self.path.with_name(f"{self.path.name}.bad-{int(time.time())}")
        os.replace(self.path, aside)
        fsync_dir(self.path.parent)
        return aside

    def save(self, state: dict[str, Any]) -> None:
        """Replace the state durably (see the module docstring); OSError if it could not be done, the
        previous state then still in place."""
        t0 = time.perf_counter()
        data = json.dumps(state, separators=(",", ":"), allow_nan=False).encode()
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)
        self.last_write_us = (time.perf_counter() - t0) * 1e6
