"""Rebuilding the store's index from the payload files, when ``index.sqlite`` is lost or corrupt. No sockets.

Every payload describes itself (:func:`fsw.downlink.payload.describe_payload`), so the rows that
matter survive the index: id, kind and so class, grade, priority, codec, size, CRC-32C, how to re-make
it. What only the index knew starts afresh: an operator's request (the item falls back to its own
class), the creation time (the file's modification time, so the age order holds), re-encoding
(tried again), the progress of open transactions (they start again, under new transaction
numbers). A file that describes nothing usable, or an older generation of a re-encoded item (a
crash between writing the new one and switching the row), is moved to ``aside/``, never deleted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from framework.errors import ProductError
from fsw.downlink.payload import FILE_RE, PayloadInfo, describe_payload

__all__ = ["Scan", "scan_payloads", "set_aside"]


@dataclass(frozen=True)
class Scan:
    """What the payload directory holds: one described item per id, and the files set aside."""

    items: list[tuple[PayloadInfo, float]] = field(default_factory=list)  # (item, file mtime)
    set_aside: list[str] = field(default_factory=list)


def set_aside(path: Path, aside_dir: Path, stamp: str) -> str:
    """Move ``path`` into ``aside_dir`` under a name that says when; return that name."""
    aside_dir.mkdir(parents=True, exist_ok=True)
    name = f"{stamp}-{path.name}"
    os.replace(path, aside_dir / name)
    return name


def scan_payloads(payload_dir: Path, aside_dir: Path, stamp: str) -> Scan:
    """Describe every payload file, newest generation first per id; set aside what cannot serve."""
    by_id: dict[str, list[tuple[int, Path]]] = {}
    out = Scan()
    for p in sorted(payload_dir.iterdir()):
        m = FILE_RE.match(p.name)
        if m is None or not p.is_file():
            out.set_aside.append(set_aside(p, aside_dir, stamp))
            continue
        by_id.setdefault(m.group(1), []).append((int(m.group(2)), p))
    for item_id, gens in sorted(by_id.items()):
        found = False
        for gen, p in sorted(gens, reverse=True):
            if not found:
                try:
                    info = describe_payload(p, item_id, gen)
                    out.items.append((info, p.stat().st_mtime))
                    found = True
                    continue
                except ProductError:
                    pass
            out.set_aside.append(set_aside(p, aside_dir, stamp))
    return out
