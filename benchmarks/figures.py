"""Figures and their tables: what every benchmark returns, printed and saved alike.

Every figure is a ratio against a baseline measured in the same run, with the
absolute numbers beside it. A :class:`Table` holds the columns (ratios first),
one row per thing measured, and a line naming the baseline; :func:`render`
prints it as plain aligned text and :meth:`Table.to_json` gives it to scripts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

__all__ = ["Column", "Table", "render", "best_of", "ratio"]

T = TypeVar("T")


@dataclass(frozen=True)
class Column:
    """One column: the row key it shows, its heading, a format spec, and whether it is a ratio."""

    key: str
    heading: str
    fmt: str = ""
    is_ratio: bool = False


@dataclass
class Table:
    """One benchmark's figures: a baseline line, columns and rows, and notes."""

    name: str
    title: str
    baseline: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        rows = [{k: _json_value(v) for k, v in row.items()} for row in self.rows]
        return {"name": self.name, "title": self.title, "baseline": self.baseline,
                "columns": [c.key for c in self.columns], "ratio_columns": [c.key for c in self.columns if c.is_ratio],
                "rows": rows, "notes": list(self.notes)}


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``, or None when either is missing or the baseline is zero."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def best_of(fn: Callable[[], T], repeats: int = 3, budget_s: float = 1.0) -> tuple[float, T]:
    """Run ``fn`` up to ``repeats`` times (at least once, fewer once ``budget_s`` is spent).

    Return the shortest wall time in seconds (``time.perf_counter``) and the last result.
    """
    best = math.inf
    spent = 0.0
    result: Any = None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        if spent >= budget_s:
            break
    return best, result


def _cell(col: Column, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return format(value, col.fmt or ".3g")
    return format(value, col.fmt) if col.fmt and not isinstance(value, str) else str(value)


def render(table: Table) -> str:
    """Plain-text table: title, baseline line, aligned columns (text left, numbers right), notes."""
    cells = [[_cell(c, row.get(c.key)) for c in table.columns] for row in table.rows]
    widths = [max([len(c.heading)] + [len(r[i]) for r in cells]) for i, c in enumerate(table.columns)]
    text_col = [all(isinstance(row.get(c.key), str) or row.get(c.key) is None for row in table.rows)
                for c in table.columns]

    def line(values: list[str]) -> str:
        parts = [v.ljust(w) if left else v.rjust(w) for v, w, left in zip(values, widths, text_col)]
        return "  ".join(parts).rstrip()

    out = [table.title, "=" * len(table.title), f"baseline: {table.baseline}", ""]
    out.append(line([c.heading for c in table.columns]))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in cells)
    if table.notes:
        out.append("")
        out.extend(f"note: {n}" for n in table.notes)
    return "\n".join(out)
