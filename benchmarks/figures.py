"""Figures and their tables: what every benchmark returns, printed and saved alike.

Every figure is a ratio against a baseline measured in the same run, with the
absolute numbers beside it. A :class:`Table` holds the columns (ratios first),
one row per thing measured, and a line naming the baseline; :func:`render`
prints it as plain aligned text and :meth:`Table.to_json` gives it to scripts.

A figure is only as good as the machine was quiet: :class:`LoadWatch` records
the load average when a benchmark starts and ends (the one place that does),
and a table measured while the 1-minute load was above half the CPU count
carries ``BUSY`` on every row and in its load line. :func:`spread` gives the
median and min-max of several rounds, as every timed figure is printed.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

__all__ = ["Column", "Table", "render", "ratio", "LoadWatch", "MachineLoad", "spread", "BUSY_PER_CPU",
           "stop_processes", "timed_rounds"]

T = TypeVar("T")

BUSY_PER_CPU = 0.5
"""A machine whose 1-minute load average exceeds this many runnable tasks per CPU is busy."""


@dataclass(frozen=True)
class MachineLoad:
    """The load average (1/5/15 min) at a benchmark's start and end, and the CPUs it had."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    cpus: int

    @property
    def busy(self) -> bool:
        """Figures taken while other work shared the CPUs (start or end above ``BUSY_PER_CPU`` per CPU)."""
        return max(self.start[0], self.end[0]) > BUSY_PER_CPU * self.cpus

    def note(self) -> str:
        text = ("machine load (1/5/15 min) at start " + " ".join(f"{x:.2f}" for x in self.start)
                + ", at end " + " ".join(f"{x:.2f}" for x in self.end) + f", {self.cpus} CPUs")
        return text + (": BUSY MACHINE, figures are not an idle run's" if self.busy else "")

    def to_json(self) -> dict[str, Any]:
        return {"start": list(self.start), "end": list(self.end), "cpus": self.cpus, "busy": self.busy}


class LoadWatch:
    """Started when a benchmark starts; :meth:`done` when it ends gives the :class:`MachineLoad`."""

    def __init__(self) -> None:
        self.start = os.getloadavg()
        self.cpus = os.cpu_count() or 1

    def done(self) -> MachineLoad:
        return MachineLoad(tuple(self.start), tuple(os.getloadavg()), self.cpus)  # type: ignore[arg-type]


def stop_processes(procs: list[subprocess.Popen], timeout_s: float = 10.0) -> None:
    """End a benchmark's child processes: terminate all, wait each up to ``timeout_s``, kill what is left.

    All are signalled before any is waited for, so they shut down side by side rather than one after another;
    a process that already ended (or ends meanwhile) is fine, so this can run in a ``finally`` without raising.
    """
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.terminate()
            except ProcessLookupError:
                pass  # ended between poll and terminate
    left: list[subprocess.Popen] = []
    for proc in procs:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            left.append(proc)
    for proc in left:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    for proc in left:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass  # unkillable (e.g. in uninterruptible I/O): nothing more a benchmark can do


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of several rounds' figures (``median``, ``min``, ``max``)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


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
    load: MachineLoad | None = None  # set by the benchmark (or by ``python -m benchmarks`` around it)

    @property
    def busy(self) -> bool:
        return self.load is not None and self.load.busy

    def to_json(self) -> dict[str, Any]:
        rows = [{k: _json_value(v) for k, v in row.items()} for row in self.rows]
        return {"name": self.name, "title": self.title, "baseline": self.baseline,
                "columns": [c.key for c in self.columns], "ratio_columns": [c.key for c in self.columns if c.is_ratio],
                "rows": rows, "notes": list(self.notes),
                "load": self.load.to_json() if self.load is not None else None}


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``, or None when either is missing or the baseline is zero."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def timed_rounds(fn: Callable[[], T], rounds: int) -> tuple[list[float], T]:
    """Run ``fn`` ``rounds`` times (at least once): every wall time in seconds (``time.perf_counter``), for
    :func:`spread`, and the last result."""
    times: list[float] = []
    result: Any = None
    for _ in range(max(1, rounds)):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


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

    mark = "  BUSY" if table.busy else ""  # on every figure's own line, so a quoted line keeps it
    out = [table.title, "=" * len(table.title), f"baseline: {table.baseline}", ""]
    out.append(line([c.heading for c in table.columns]))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) + mark for r in cells)
    if table.notes or table.load is not None:
        out.append("")
        out.extend(f"note: {n}" for n in table.notes)
        if table.load is not None:
            out.append(f"load: {table.load.note()}")
    return "\n".join(out)
