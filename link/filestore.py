"""cfdp-py virtual filestores for both ends (fast reads on the lander, fsync'd writes on the ground), and the
names the transferred files carry.

cfdp-py's ``NativeFilestore`` opens the file for every segment. At ~1000
segments per 4.5 MB product that is the dominant cost, so these keep one
descriptor per file and use ``pread``/``pwrite``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from spacepackets.cfdp import ChecksumType, FilestoreResponseStatusCode

from cfdppy.filestore import NativeFilestore

__all__ = ["SourceFilestore", "IncomingFilestore", "fsync_dir", "transfer_name", "id_from_transfer_name",
           "PRODUCT_SUFFIX", "SEGMENT_SUFFIX"]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")

PRODUCT_SUFFIX = ".prod"
"""A transferred file that holds a product (:mod:`fsw.imaging.product`)."""
SEGMENT_SUFFIX = ".tlm"
"""A transferred file that holds a telemetry or event segment (:mod:`link.tlm_segments`)."""


def transfer_name(seq: int, item_id: str, suffix: str) -> str:
    """The destination file name a transaction's Metadata PDU carries: ``<seq, 8 hex digits>-<id><suffix>``.

    Unique per transaction (so a resend never overwrites a file being received); the ground reads
    the item's id (:func:`id_from_transfer_name`) and what it holds (the suffix) back from it."""
    return f"{seq:08x}-{item_id}{suffix}"


def id_from_transfer_name(name: str) -> str:
    """The item id in a received file name made by :func:`transfer_name`."""
    stem = name.rsplit(".", 1)[0] if name.endswith((PRODUCT_SUFFIX, SEGMENT_SUFFIX)) else name
    return stem.split("-", 1)[1] if "-" in stem else stem


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (new, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SourceFilestore(NativeFilestore):
    """Read side for the source entity: keeps the current file open and reads with ``pread``."""

    def __init__(self) -> None:
        super().__init__()
        self._path: Path | None = None
        self._fd: int | None = None

    def _open(self, file: Path) -> int:
        if self._path != file or self._fd is None:
            self.release()
            self._fd = os.open(file, os.O_RDONLY)
            self._path = file
        return self._fd

    def read_data(self, file: Path, offset: int | None, read_len: int | None = None) -> bytes:
        fd = self._open(file)
        if read_len is None:
            read_len = os.fstat(fd).st_size
        return os.pread(fd, read_len, offset or 0)

    def release(self, file: Path | None = None) -> None:
        """Close the cached descriptor (of ``file`` only, if given)."""
        if self._fd is not None and (file is None or file == self._path):
            os.close(self._fd)
            self._fd = None
            self._path = None


class IncomingFilestore(NativeFilestore):
    """Write side for the destination entity, confined to one directory.

    A destination file name from a Metadata PDU must be one plain name; anything
    else (a path, ``..``) raises PermissionError, which cfdp-py turns into a
    Filestore Rejection fault (CFDP 4.6.1.2.3). Writes go through one cached
    descriptor per file; :meth:`sync` fsyncs file and directory, :meth:`flush`
    only the file's data. Every write is noted in :attr:`writes` (real path,
    offset, length) for the engine's journal of what the file holds.
    """

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._fds: dict[Path, int] = {}
        self.writes: list[tuple[Path, int, int]] = []

    def resolve(self, file: Path) -> Path:
        """The real path of a destination file name; PermissionError if it is not a plain name."""
        p = Path(file)
        if p.parent == self.root and _SAFE_NAME.match(p.name):
            return p
        name = str(file)
        if not _SAFE_NAME.match(name):
            raise PermissionError(f"destination file name {name!r} is not a plain file name")
        return self.root / name

    def _fd(self, path: Path) -> int:
        fd = self._fds.get(path)
        if fd is None:
            fd = os.open(path, os.O_WRONLY)
            self._fds[path] = fd
        return fd

    def is_directory(self, path: Path) -> bool:
        return self.resolve(path).is_dir()

    def file_exists(self, path: Path) -> bool:
        return self.resolve(path).exists()

    def file_size(self, file: Path) -> int:
        return super().file_size(self.resolve(file))

    def filename_from_full_path(self, path: Path) -> str | None:
        return self.resolve(path).name

    def truncate_file(self, file: Path) -> None:
        real = self.resolve(file)
        self.close(real)
        super().truncate_file(real)

    def create_file(self, file: Path) -> FilestoreResponseStatusCode:
        return super().create_file(self.resolve(file))

    def delete_file(self, file: Path) -> FilestoreResponseStatusCode:
        real = self.resolve(file)
        self.close(real)
        return super().delete_file(real)

    def read_data(self, file: Path, offset: int | None, read_len: int | None = None) -> bytes:
        return super().read_data(self.resolve(file), offset, read_len)

    def write_data(self, file: Path, data: bytes, offset: int | None) -> None:
        real = self.resolve(file)
        if real not in self._fds and not real.exists():
            raise FileNotFoundError(real)
        os.pwrite(self._fd(real), data, offset or 0)
        self.writes.append((real, offset or 0, len(data)))

    def flush(self, file: Path) -> None:
        """Make what was written to ``file`` durable (its data; the name was made durable at creation)."""
        real = self.resolve(file)
        fd = self._fds.get(real)
        if fd is not None:
            os.fdatasync(fd)

    def keep(self, file: Path) -> None:
        """Open an existing partial file for a resumed transaction, creating it empty if it is gone."""
        real = self.resolve(file)
        if not real.exists():
            super().create_file(real)

    def calculate_checksum(self, checksum_type: ChecksumType, file_path: Path, size_to_verify: int,
                           segment_len: int = 65536) -> bytes:
        return super().calculate_checksum(checksum_type, self.resolve(file_path), size_to_verify,
                                          max(segment_len, 65536))

    def sync(self, file: Path) -> Path:
        """fsync a received file and its directory, close it; return its real path."""
        real = self.resolve(file)
        fd = self._fds.pop(real, None)
        if fd is None:
            fd = os.open(real, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(real.parent)
        return real

    def deliver(self, file: Path, name: str, data: bytes) -> Path:
        """Write ``data`` durably as the plain file ``name`` (beside ``file``, a coded file it was rebuilt
        from); return its real path. The coded file stays until :meth:`discard`."""
        real = self.resolve(Path(name))
        self.close(real)
        tmp = real.with_name(real.name + ".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, real)
        fsync_dir(real.parent)
        return real

    def discard(self, file: Path) -> None:
        """Remove a file (closed first); one already gone is fine."""
        real = self.resolve(file)
        self.close(real)
        real.unlink(missing_ok=True)

    def close(self, real: Path | None = None) -> None:
        """Close cached descriptors (one file, or all)."""
        paths = [real] if real is not None else list(self._fds)
        for p in paths:
            fd = self._fds.pop(p, None)
            if fd is not None:
                os.close(fd)
