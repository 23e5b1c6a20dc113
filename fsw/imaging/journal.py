"""The imaging core's journal: an append-only file of small records, each durable once committed.

What the core must remember across a crash (:mod:`fsw.imaging.accounts`: the frames
it accepted and has not yet seen stored, which products the downlink has stored, the
reports that name frames) is written here as records and committed with one
``fsync`` per loop turn, however many records the turn made (a group commit). The
loop does not wait for the disk (:meth:`Journal.commit_soon`): one commit at a time
runs on a thread of the journal's own, and the records buffered meanwhile go
with the next one; a fsync costs milliseconds (more when the disk is shared), and
waiting for it on the loop took the loop's turn from the next frame, at small
frames the largest cost of the capture path after the codec (benchmarks.camera).

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
from concurrent.futures import Future, ThreadPoolExecutor
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
        self._committer: ThreadPoolExecutor | None = None  # started by the first commit_soon
        self._running: tuple[Future[None], list[bytes]] | None = None  # the commit under way and its records

    def load(self) -> list[dict[str, Any]]:
        """Every sound record in order; a torn or damaged tail is cut off (``torn_bytes``)."""
        self._settle(quiet=True)
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
        """Write and fsync every buffered record (nothing to do when none is), after the commit under way, if
        any. JournalError on failure: the records stay buffered and go with the next commit."""
        self._settle()
        if not self._buf:
            return
        try:
            self._write(self._buf)
        except OSError as exc:
            self._reopen_after_error()
            raise JournalError(f"cannot write the journal {self.path}: {exc}") from None
        self._buf.clear()

    def commit_soon(self) -> None:
        """Start a commit of the buffered records on the journal's thread and return at once; while one is under
        way, records stay buffered for the next (the loop calls this every turn). JournalError: the last
        commit failed; its records are buffered again, ahead of the newer ones, and go with the next."""
        if self._running is not None and not self._running[0].done():
            return
        self._settle()
        if not self._buf:
            return
        if self._committer is None:
            self._committer = ThreadPoolExecutor(1, thread_name_prefix="journal")
        batch, self._buf = self._buf, []
        self._running = (self._committer.submit(self._write, batch), batch)

    def _settle(self, quiet: bool = False) -> None:
        """Wait for the commit under way; if it failed, buffer its records again (first) and raise
        JournalError, or with ``quiet`` only cut the file back to its last sound record."""
        if self._running is None:
            return
        future, batch = self._running
        self._running = None
        exc = future.exception()
        if exc is None:
            return
        self._buf[:0] = batch
        self._reopen_after_error()
        if not quiet:
            raise JournalError(f"cannot write the journal {self.path}: {exc}") from None

    def _write(self, batch: list[bytes]) -> None:
        """Append ``batch`` and fsync (OSError as raised); on the loop's thread or the journal's, one at a time."""
        t0 = time.perf_counter()
        data = b"".join(batch)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)
        self.records += len(batch)
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
        self._settle(quiet=True)  # a failed commit's records are in the snapshot too
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
        """Wait for the commit under way (an error of it is dropped: its records stay buffered), then close."""
        self._settle(quiet=True)
        if self._committer is not None:
            self._committer.shutdown(wait=True)
            self._committer = None
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
