"""The coded files of the downlink's coded transactions (:mod:`link.fec`), one per transaction, beside the store.

A coded transaction sends the coded file F of a stored product, not the product: F is written here when
the transaction starts (named by its transaction number), rebuilt identically from the product and the
coding its recorded suffix carries when a restart resumes it, and removed when the transaction ends.
Nothing here needs to survive a crash (F is made again from the product), so nothing is fsync'd; the
directory is emptied at start.
"""

from __future__ import annotations

import os
from pathlib import Path

from link.fec import Coding, FecError, encode, split_name

__all__ = ["Spool"]


class Spool:
    """A directory of coded files, ``<transaction, 8 hex digits>.coded``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for p in root.glob("*"):  # from before a restart: what resumes is made again
            p.unlink(missing_ok=True)

    def path(self, seq: int) -> Path:
        return self.root / f"{seq:08x}.coded"

    def write(self, seq: int, product: Path, coding: Coding) -> Path:
        """Code the product file for transaction ``seq``; FecError if it is not the coding's length,
        OSError if it cannot be read or written."""
        data = product.read_bytes()
        coded = encode(data, coding)
        path = self.path(seq)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(coded)
        os.replace(tmp, path)
        return path

    def rebuild(self, seq: int, product: Path, suffix: str) -> Path | None:
        """After a restart: the coded file of a transaction whose recorded suffix carries a coding
        (None if it carries none). FecError if the suffix is malformed or the product changed length."""
        _, coding = split_name("x" + suffix)
        if coding is None:
            return None
        return self.write(seq, product, coding)

    def remove(self, seq: int) -> None:
        try:
            self.path(seq).unlink(missing_ok=True)
        except OSError:  # a file that cannot go now goes at the next start
            pass

    @staticmethod
    def coding_of(suffix: str) -> Coding | None:
        try:
            return split_name("x" + suffix)[1]
        except FecError:
            return None
