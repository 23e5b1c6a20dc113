"""Logging, configured in exactly one place.

Service mode (a process started by the supervisor or ``pdh run``): JSON lines,
one file per process under ``OUT/logs/<process>.jsonl``. In a terminal:
readable console lines on stderr. Every logger carries the process name.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging", "get_logger", "lines_dropped"]

_files: list[TextIO] = []


class _NeverFails:
    """A log stream whose writes cannot end the process: a line the disk refuses (full, or a file size
    limit) is dropped and counted, and logging goes on when space returns. A service must not die of
    its own logging while it is degrading gracefully on the same full disk.

    Text is collected until ``flush`` (structlog prints a line, then flushes) and written in one call
    to an unbuffered file, so a refused line leaves nothing behind to be written later."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._binary = "b" in getattr(stream, "mode", "")
        self._pending: list[str] = []
        self.dropped = 0

    def write(self, text: str) -> int:
        self._pending.append(text)
        return len(text)

    def flush(self) -> None:
        text = "".join(self._pending)
        self._pending.clear()
        if not text:
            return
        try:
            if self._binary:
                self._stream.write(text.encode("utf-8"))
            else:
                self._stream.write(text)
                self._stream.flush()
        except (OSError, ValueError):  # ENOSPC, EFBIG, EIO; ValueError: the stream was closed
            self.dropped = min(self.dropped + max(1, text.count("\n")), (1 << 63) - 1)


_guard: _NeverFails | None = None


def lines_dropped() -> int:
    """Log lines this process could not write (reported in its health as ``log_lines_dropped``)."""
    return 0 if _guard is None else _guard.dropped


def configure_logging(process: str, log_dir: Path | None = None, *, console: bool | None = None,
                      level: int = logging.INFO) -> structlog.stdlib.BoundLogger:
    """Configure structlog for this process and return a logger bound to its name.

    With ``log_dir`` set, JSON lines go to ``log_dir/<process>.jsonl``; with
    ``console`` (default: stderr is a terminal and no ``log_dir``), readable lines go to stderr.
    """
    if console is None:
        console = log_dir is None and sys.stderr.isatty()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        stream: Any = open(log_dir / f"{process}.jsonl", "ab", buffering=0)
        _files.append(stream)
        processors.append(structlog.processors.JSONRenderer())
    elif console:
        stream = sys.stderr
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    else:
        stream = sys.stderr
        processors.append(structlog.processors.JSONRenderer())
    global _guard
    _guard = _NeverFails(stream)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_guard),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(process=process)
    return structlog.get_logger()


def get_logger(**bind: Any) -> Any:
    """A logger for a module; the process name is already bound."""
    return structlog.get_logger().bind(**bind)
