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

__all__ = ["configure_logging", "get_logger"]

_files: list[TextIO] = []


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
        stream: TextIO = open(log_dir / f"{process}.jsonl", "a", buffering=1, encoding="utf-8")
        _files.append(stream)
        processors.append(structlog.processors.JSONRenderer())
    elif console:
        stream = sys.stderr
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    else:
        stream = sys.stderr
        processors.append(structlog.processors.JSONRenderer())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(process=process)
    return structlog.get_logger()


def get_logger(**bind: Any) -> Any:
    """A logger for a module; the process name is already bound."""
    return structlog.get_logger().bind(**bind)
