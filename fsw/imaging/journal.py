"""The imaging core's journal: an append-only file of small records, each durable once committed.

What the core must remember across a crash (:mod:`fsw.imaging.accounts`: the frames
it accepted and has not yet seen stored, which products the downlink has stored, the
reports that name frames) is written here as records and committed with one
``fsync`` per loop turn, however many records the turn made (a group commit).

A record on disk is ``u32 length, u32 CRC-32C of the body, body`` (little-endian),
the body a msgpack map. :meth:`Journal.load` reads records up to the first one that
is short or fails its CRC (a write torn by a crash) and cuts the file there, so the
next append follows the last sound record. :meth:`Journal.rewrite` replaces the
whole file with a snapshot (write a temporary file, fsync, rename, fsync the
directory), which keeps it from growing: a crash during it leaves the old file.

File I/O only: no socket. Every OS error is a :class:`JournalError` the caller
reports; the journal never ends the process.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import Any

import crc32c
import msgpack

from framework.errors import PdhError

__all__ = ["Journal", "JournalError", "MAX_RECORD_BYTES"]

_HEAD = struct.Struct("<II")
MAX_RECORD_BYTES = 1 << 20
"""A record longer than this is taken for damage, not data (the longest real one is a few kB)."""


class JournalError(PdhError):
    """The journal could not be read, written or synced (disk full, I/O error)."""


def _pack(rec: dict[str, Any]) -> bytes:
    try:
        body = msgpack.packb(rec, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:  # a value msgpack cannot carry: a caller's bug
        raise JournalError(f"record cannot be packed: {type(exc).__name__}: {exc}") from None
    if len(body) > MAX_RECORD_BYTES:
        raise JournalError(f"record of {len(body)} bytes is over {MAX_RECORD_BYTES}")
    return _HEAD.pack(len(body), crc32c.crc32c(body)) + body


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """One journal file; ``append`` buffers, ``commit`` writes and fsyncs what was buffered."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._buf: list[bytes] = []
        self._fd: int | None = None
        self.records = 0  # records in the file (sound ones read at load, plus those committed since)
        self.commits = 0
        self.last_commit_us = 0.0  # how long the last commit took (write + fsync)
        self.torn_bytes = 0  # bytes cut off the end at load: a torn or damaged tail

    def load(self) -> list[dict[str, Any]]:
        """Every sound record in order; a torn or damaged tail is cut off (``torn_bytes``)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data = self.path.read_bytes() if self.path.exists() else b""
        except OSError as exc:
            raise JournalError(f"cannot read the journal {self.path}: {exc}") from None
        out: list[dict[str, Any]] = []
        at = 0
        while at + _HEAD.size <= len(data):
            n, crc = _HEAD.unpack_from(data, at)
            body = data[at + _HEAD.size: at + _HEAD.size + n]
            if n > MAX_RECORD_BYTES or len(body) != n or crc32c.crc32c(body) != crc:
                break
            try:
                rec = msgpack.unpackb(body, raw=False, strict_map_key=True)
            except Exception:  # msgpack raises several unrelated types on bad bytes; the CRC held, so rare
                break
            if not isinstance(rec, dict):
                break
            out.append(rec)
            at += _HEAD.size + n
        self.torn_bytes = len(data) - at
        if self.torn_bytes:
            try:
                os.truncate(self.path, at)
            except OSError as exc:
                raise JournalError(f"cannot cut the torn tail of {self.path}: {exc}") from None
        self.records = len(out)
        return out

    def append(self, rec: dict[str, Any]) -> None:
        """Buffer one record; it is durable after the next :meth:`commit`. JournalError if it cannot be packed."""
        self._buf.append(_pack(rec))

    @property
    def pending(self) -> int:
        return len(self._buf)

    def commit(self) -> None:
        """Write and fsync every buffered record (nothing to do when none is). JournalError on failure:
        the records stay buffered and go with the next commit."""
        if not self._buf:
            return
        t0 = time.perf_counter()
        data = b"".join(self._buf)
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as exc:
            self._reopen_after_error()
            raise JournalError(f"cannot write the journal {self.path}: {exc}") from None
        self.records += len(self._buf)
        self._buf.clear()
        self.commits += 1
        self.last_commit_us = (time.perf_counter() - t0) * 1e6

    def _reopen_after_error(self) -> None:
        """After a failed write the file may end in part of a record: cut it at the last sound one."""
        self.close()
        try:
            self.load()
        except JournalError:
            pass

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the file with ``records`` (a snapshot), atomically; buffered records are dropped (the
        snapshot includes what they said). JournalError on failure: the old file stays."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = b"".join(_pack(r) for r in records)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            raise JournalError(f"cannot rewrite the journal {self.path}: {exc}") from None
        self.close()
        self._buf.clear()
        self.records = len(records)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
