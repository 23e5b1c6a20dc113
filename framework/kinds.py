"""Process kinds as data, and the registry they are looked up in.

A kind names its entry point (``module:function`` taking a
:class:`~framework.process.ProcessContext`), the endpoint roles it needs (with
the scheme each must use) and its own config keys. Each component declares its
kind in its own ``interface.py`` (``KIND = KindSpec(...)``); the topology of the
tools layer (:mod:`pdh.topology`) registers them all, HIL kinds included, so the
framework names no component. :mod:`framework.config` validates a file against
the registry; the supervisor starts processes from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

__all__ = ["Field", "KindSpec", "KINDS", "REQUIRED", "register"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Field:
    """One config key: its type, default (or REQUIRED), and the range a process can start with.

    Every bound is checked by :mod:`framework.config` before any process starts, so a value the
    process would die of (NaN, an empty list it indexes, a file where it makes a directory) is a
    ConfigError naming the key instead of a crash loop with the reason only in a log."""

    type: type | tuple[type, ...]
    default: Any = REQUIRED
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    keys: dict[str, "Field"] | None = None
    endpoint_refs: str | None = None  # a mapping whose values name endpoints of this scheme
    doc: str = ""
    # When the key is left out: its value from the config's other processes, called as
    # derive(this process's name, every process's checked settings) after all are checked
    # (wiring one process from the others, as a topology does). None: the default applies.
    derive: Callable[[str, dict[str, dict[str, Any]]], Any] | None = None
    finite: bool = True  # a float is finite; False lets +-inf through (NaN never passes)
    min_len: int | None = None  # a list, mapping or string: at least this many items (characters)
    max_len: int | None = None
    item: "Field | None" = None  # a list: every element checked as this field
    unique: bool = False  # a list: no element twice
    pattern: str | None = None  # a string: matches this regular expression in full
    # "dir": a directory the process makes or uses (not a file; its nearest existing parent a writable
    # directory); "file": a file it writes (not a directory). Relative paths are relative to
    # ``relative_to``: "out" (the output directory, checked only when the caller knows it) or "cwd".
    path: str | None = None
    relative_to: str = "out"
    # Last: check(file, key, value) raises ConfigError for what the bounds above cannot say
    # (a contact plan's ordered windows, a schedule file's contents).
    check: Callable[[str, str, Any], None] | None = None


@dataclass(frozen=True)
class KindSpec:
    """One kind of process. ``endpoints`` maps each role to the schemes it accepts (``"tcp|ipc"``);
    a trailing ``?`` makes the role optional (``"tcp?"``: a command port the config may leave out).
    ``binds`` names the roles the process binds (listens on); it connects to every other role, so
    the config can check that a process binds only its own host's address and never connects to ``*``."""

    name: str
    entry: str
    endpoints: dict[str, str]
    keys: dict[str, Field] = field(default_factory=dict)
    doc: str = ""
    binds: tuple[str, ...] = ()
    # After every key is checked: check(config file, this process's checked settings) raises ConfigError
    # for what spans keys (a profile file plus its inline overrides); a key it names without the
    # ``processes.<name>.`` prefix gets it.
    check: Callable[[str, dict[str, Any]], None] | None = None
    # The component's interface table (framework.interface.Interface): the dictionary of the TM/TC link
    # (link.dictionary) finds every process's commands and channels through its kind.
    interface: Any = None


KINDS: dict[str, KindSpec] = {}
"""Every registered kind by name; filled by :func:`register` (the tools' topology does it once)."""


def register(*specs: KindSpec) -> None:
    """Add kinds to the registry. The same spec again is a no-op; another spec under a taken name
    is a programming error (ValueError), as is an entry that is not ``module:function``."""
    for spec in specs:
        if spec.entry.count(":") != 1:
            raise ValueError(f"kind {spec.name}: entry must be 'module:function', got {spec.entry!r}")
        have = KINDS.get(spec.name)
        if have is not None and have is not spec:
            raise ValueError(f"kind {spec.name} is registered twice, by {have.entry} and {spec.entry}")
        KINDS[spec.name] = spec
