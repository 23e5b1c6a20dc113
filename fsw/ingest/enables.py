"""Which security associations the operators enabled or disabled by command, kept across restarts.

The SA file (``configs/sa.yaml``) says how each SA starts; SA_ENABLE and SA_DISABLE change
that on board, and the change must outlive a restart: an SA disabled because its key leaked
must not come back with the process. One small JSON file, written whole and durably
(temporary file, fsync, rename, fsync of the directory), holds the overrides by SPI.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from framework.errors import PdhError
from link.filestore import fsync_dir

__all__ = ["EnableStore", "EnableStoreDamaged"]

_FORMAT = "pdh-ingest-sa-enables/1"


class EnableStoreDamaged(PdhError):
    """The overrides file exists but cannot be read as one."""


class EnableStore:
    """``{spi: enabled}`` overrides of the SA file, durable on every change."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[int, bool]:
        """The overrides ({} when none were ever made); EnableStoreDamaged for a file that is not one."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise EnableStoreDamaged(f"{self.path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise EnableStoreDamaged(f"{self.path}: not JSON") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("enabled"), dict):
            raise EnableStoreDamaged(f"{self.path}: not a {_FORMAT} file")
        out: dict[int, bool] = {}
        for spi, enabled in data["enabled"].items():
            if not (isinstance(spi, str) and spi.isdigit() and 1 <= int(spi) <= 0xFFFF) or not isinstance(enabled, bool):
                raise EnableStoreDamaged(f"{self.path}: entry {spi!r}: {enabled!r} is not an SPI and a bool")
            out[int(spi)] = enabled
        return out

    def save(self, enabled: dict[int, bool]) -> None:
        """Replace the overrides, durably, before returning (an OSError leaves the old file whole)."""
        text = json.dumps({"format": _FORMAT, "enabled": {str(k): v for k, v in sorted(enabled.items())}},
                          separators=(",", ":"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode("utf-8") + b"\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        fsync_dir(self.path.parent)
