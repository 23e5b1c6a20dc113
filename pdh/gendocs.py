"""The docs generated from the code: which file holds what, and how to rewrite or check them.

Two kinds of generated doc:

* whole files (``docs/interfaces.md``, ``docs/processes.md``), written from the
  interface tables and process kinds the topology registers;
* generated sections inside hand-written docs, between
  ``<!-- BEGIN GENERATED name ... -->`` and ``<!-- END GENERATED name -->``
  (the APID table of ``docs/downlink.md`` comes from :data:`link.packets.APIDS`).

``pdh interfaces --write`` rewrites them; ``tests/unit/pdh/test_interfaces_doc.py``
fails when one is stale, so a table changed in code cannot leave its doc behind.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from pdh.interfaces import apids_markdown, id_bases_markdown, interfaces_markdown, kinds_markdown
from pdh.topology import ALL_KINDS, INTERFACES

__all__ = ["DOCS_DIR", "REGENERATE", "GeneratedDocError", "interfaces_doc", "processes_doc", "expected_docs",
           "stale_docs", "write_docs"]

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"
"""The source tree's docs (an installed wheel has none: pass another directory)."""

REGENERATE = "pdh interfaces --write"
_NOTE = (f"<!-- Generated from the code by `{REGENERATE}`; do not edit by hand "
         "(tests/unit/pdh/test_interfaces_doc.py fails when it is stale). -->")


class GeneratedDocError(RuntimeError):
    """A doc that should hold a generated section is missing, or its markers are."""


def interfaces_doc() -> str:
    """``docs/interfaces.md``: the id ranges, then every component's commands, events and telemetry."""
    return "\n".join([
        "# Interfaces", "", _NOTE, "",
        "Every component's commands, events and telemetry channels, from its `interface.py` (format:",
        "`framework/interface.py`). Event and channel ids are the component's base (`framework/ids.py`) plus",
        "the number its table gives; opcodes are as the table writes them. Every component answers `NOOP`",
        "and `RESET_COUNTERS`. `pdh interfaces [COMPONENT]` prints the same for a terminal.", "",
        "## Id ranges", "",
        id_bases_markdown(INTERFACES),
        interfaces_markdown(INTERFACES),
    ])


def processes_doc() -> str:
    """``docs/processes.md``: every process kind's endpoint roles and config keys."""
    return "\n".join([
        "# Process kinds", "", _NOTE, "",
        "A config's `processes:` entry names a `kind`; its `endpoints:` map these roles to the config's named",
        "endpoints (schemes as listed), and its other keys are these (each component's `KIND` in its",
        "`interface.py`, registered by `pdh/topology.py`). `pdh interfaces --kinds [KIND]` prints the same.", "",
        kinds_markdown(ALL_KINDS),
    ])


_WHOLE: dict[str, Callable[[], str]] = {"interfaces.md": interfaces_doc, "processes.md": processes_doc}
_SECTIONS: dict[str, dict[str, Callable[[], str]]] = {"downlink.md": {"apids": apids_markdown}}


def _section_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- BEGIN GENERATED {name}\b[^>]*-->\n)(.*?)(<!-- END GENERATED {name} -->)", re.S)


def _with_sections(path: Path, sections: dict[str, Callable[[], str]]) -> str:
    if not path.exists():
        raise GeneratedDocError(f"{path}: missing (it holds the generated section(s) {sorted(sections)})")
    text = path.read_text()
    for name, render in sections.items():
        pattern = _section_re(name)
        if len(pattern.findall(text)) != 1:
            raise GeneratedDocError(f"{path}: expected one '<!-- BEGIN GENERATED {name} -->' ... "
                                    f"'<!-- END GENERATED {name} -->' pair")
        body = render()
        text = pattern.sub(lambda m: m.group(1) + body + m.group(3), text)
    return text


def expected_docs(docs_dir: Path = DOCS_DIR) -> dict[Path, str]:
    """Every generated doc under ``docs_dir`` as it should read now (sectioned docs keep their prose)."""
    out = {docs_dir / name: render() for name, render in _WHOLE.items()}
    for name, sections in _SECTIONS.items():
        out[docs_dir / name] = _with_sections(docs_dir / name, sections)
    return out


def stale_docs(docs_dir: Path = DOCS_DIR) -> list[Path]:
    """The generated docs whose file differs from what the code gives now."""
    return [p for p, text in expected_docs(docs_dir).items() if not p.exists() or p.read_text() != text]


def write_docs(docs_dir: Path = DOCS_DIR) -> list[Path]:
    """Rewrite the stale generated docs; return which changed."""
    changed = []
    for path, text in expected_docs(docs_dir).items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed
