"""What the archive holds, as plain values: a product's row, a query's result (with its CSV)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TextIO

__all__ = ["ProductRecord", "Result", "ranges_text"]


@dataclass(frozen=True)
class ProductRecord:
    """One product written at the ground. ``grade``: the on-board grades' ``score`` (None if it had none);
    ``path``: the PNG; ``label``: the PDS4 label of a full frame, else None."""

    id: str
    kind: str
    camera: str
    counter: int
    t_capture: float
    t_received: float
    grade: float | None
    codec: str
    crc32c: int
    bytes: int
    width: int | None
    height: int | None
    bit_depth: int | None
    path: str
    label: str | None = None
    grades: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_sidecar(cls, side: dict[str, Any], png: Path, t_received: float,
                     label: Path | None = None) -> "ProductRecord":
        """The row of a product from its JSON sidecar (:func:`ground.images.sidecar_of`)."""
        shape = list(side.get("shape") or [])
        grades = side.get("grades") or {}
        score = grades.get("score")
        return cls(str(side["id"]), str(side["kind"]), str(side["camera"]), int(side["counter"]),
                   float(side["t_capture"]), t_received, None if score is None else float(score), str(side["codec"]),
                   int(side["crc32c"]), int(side.get("product_bytes", 0)),
                   int(shape[1]) if len(shape) >= 2 else None, int(shape[0]) if shape else None,
                   side.get("bit_depth"), str(png), None if label is None else str(label), dict(grades))


@dataclass(frozen=True)
class Result:
    """A query's answer: column names and rows, in order. Every query returns one, so any of them
    exports to CSV the same way (:meth:`to_csv`)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def to_csv(self, out: TextIO) -> None:
        """RFC 4180 CSV with a header row; lists and maps as compact JSON, None as an empty field."""
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow(self.columns)
        for r in self.rows:
            w.writerow([_cell(v) for v in r])

    def csv(self) -> str:
        buf = io.StringIO()
        self.to_csv(buf)
        return buf.getvalue()


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, separators=(",", ":"), default=str)
    if isinstance(v, float):
        return repr(v)
    return v


def ranges_text(ranges: list[tuple[int, int]] | list[list[int]]) -> str:
    """Byte ranges ``[start, end)`` as operators read them: ``0-1023,4096-8191`` (inclusive ends)."""
    return ",".join(f"{a}-{b - 1}" for a, b in ranges)
