"""The house keeps its shape: layers point one way, no import cycles, every component has the same rooms.

Imports are read with ``ast`` from the source, never by importing it, so a
violation is found even in a module no test imports. Which imports count:

* **Layers** (what may import what): every import in the file, wherever it
  sits: at module level, inside a function (a deferred import is still a
  dependency, it only fails later), and inside ``if TYPE_CHECKING:`` (a lower
  layer that names an upper layer's type depends on it as much as one that
  calls it).
* **Cycles**: only the imports that run when the module is imported: module
  level, including those nested in a module-level ``if``/``try``/``with``/class
  body, and those inside ``if TYPE_CHECKING:`` (they never run, but two modules
  that name each other's types are still knotted together: a handler module
  types its target with a small Protocol instead of importing the process that
  uses it), but not inside a function (it runs after every module has loaded). An import of
  ``a.b.c`` is an edge to ``a.b.c`` only, not to the packages ``a`` and
  ``a.b`` it also initialises: an ``__init__`` that re-exports its submodules
  would otherwise make every submodule that imports a sibling look cyclic,
  although Python loads them fine.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_COMPONENT_DEPS = frozenset({"framework", "link", "fsw", "drivers", "ground"})
LAYERS: dict[str, frozenset[str]] = {
    "framework": frozenset({"framework"}),
    "link": frozenset({"framework", "link"}),
    "fsw": _COMPONENT_DEPS,
    "drivers": _COMPONENT_DEPS,
    "ground": _COMPONENT_DEPS,
    "hil": _COMPONENT_DEPS | {"hil"},
    "pdh": _COMPONENT_DEPS | {"hil", "pdh"},
}
"""Each top-level package and the packages it may import (tools -> hil -> components -> link -> framework)."""

COMPONENTS: dict[str, str] = {
    "fsw/broker": "fsw.broker",
    "fsw/imaging": "fsw.imaging",
    "fsw/downlink": "fsw.downlink",
    "fsw/ingest": "fsw.ingest",
    "fsw/sequencer": "fsw.sequencer",
    "drivers/camera": "drivers.camera",
    "drivers/deploy": "drivers.deploy",
    "ground": "ground",
    "ground/console": "ground.console",
    "hil/camera": "hil.camera",
    "hil/deploy": "hil.deploy",
    "hil/relay": "hil.relay",
}
"""Every component folder and its package: each has the same four rooms."""

ROOMS = ("interface.py", "commands.py", "process.py")
IO_MODULES = frozenset({"zmq", "socket"})


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the most specific module named (or the dotted name, if not one of ours)
    line: int
    at_import_time: bool  # runs when the importing module is imported
    type_only: bool  # inside `if TYPE_CHECKING:`


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    """Every module of the layered packages by dotted name (a package by its own name)."""
    out: dict[str, Path] = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Collector(ast.NodeVisitor):
    """Every import of one module, with where it sits (function body, TYPE_CHECKING block)."""

    def __init__(self, module: str, is_package: bool, known: dict[str, Path]) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.known = known
        self.found: list[Import] = []
        self._in_function = 0
        self._type_only = 0

    def _add(self, target: str, node: ast.stmt) -> None:
        self.found.append(Import(self.module, target, node.lineno, self._in_function == 0, self._type_only > 0))

    def _absolute(self, node: ast.ImportFrom) -> str:
        if node.level == 0:
            return node.module or ""
        base = self.package.split(".")
        base = base[:len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._absolute(node)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.known else base, node)

    def _function(self, node: ast.AST) -> None:
        self._in_function += 1
        self.generic_visit(node)
        self._in_function -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self._type_only += 1
        for stmt in node.body:
            self.visit(stmt)
        self._type_only -= 1
        for stmt in node.orelse:
            self.visit(stmt)


def imports_of(module: str) -> list[Import]:
    path = modules()[module]
    collector = _Collector(module, path.name == "__init__.py", modules())
    collector.visit(ast.parse(path.read_text(), str(path)))
    return collector.found


@lru_cache(maxsize=1)
def all_imports() -> tuple[Import, ...]:
    return tuple(i for m in modules() for i in imports_of(m))


def _where(imp: Import) -> str:
    return f"{modules()[imp.module].relative_to(ROOT)}:{imp.line}"


# -- layers ---------------------------------------------------------------------------------------
def is_upward(imp: Import) -> bool:
    """An import of one of our packages that the importer's layer may not import (third-party ones pass)."""
    own, theirs = imp.module.split(".")[0], imp.target.split(".")[0]
    return theirs in LAYERS and theirs not in LAYERS[own]


@pytest.mark.parametrize(("module", "target", "upward"), [
    ("framework.config", "link.packets", True), ("link.radio", "fsw.downlink.store", True),
    ("fsw.downlink.process", "ground.ledger", False), ("drivers.camera.core", "hil.camera.device", True),
    ("ground.process", "pdh.topology", True), ("hil.camera.device", "drivers.links.envelope", False),
    ("pdh.demo", "hil.relay.pcap", False), ("framework.bus.client", "zmq", False),
])
def test_the_layer_rule_judges_each_pair_as_the_house_says(module: str, target: str, upward: bool) -> None:
    assert is_upward(Import(module, target, 1, True, False)) is upward


def test_imports_point_down_the_layers_only() -> None:
    upward = [f"{_where(imp)}: {imp.module} imports {imp.target} "
              f"({imp.module.split('.')[0]} may import {', '.join(sorted(LAYERS[imp.module.split('.')[0]]))})"
              for imp in all_imports() if is_upward(imp)]
    assert not upward, "upward imports (tools -> hil -> fsw/drivers/ground -> link -> framework):\n" + "\n".join(upward)


def test_nothing_below_the_tools_imports_hil_or_pdh() -> None:
    """The rule the layers imply, said on its own because it is the one most easily broken (HIL kinds
    and emulator helpers are tempting to reach for from a component)."""
    wrong = [f"{_where(i)}: {i.module} imports {i.target}" for i in all_imports()
             if i.module.split(".")[0] in ("framework", "link", "fsw", "drivers", "ground")
             and i.target.split(".")[0] in ("hil", "pdh")]
    assert not wrong, "\n".join(wrong)


# -- cycles ---------------------------------------------------------------------------------------
def import_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports when it is imported (see the module docstring)."""
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for imp in all_imports():
        if (imp.at_import_time or imp.type_only) and imp.target in graph and imp.target != imp.module:
            graph[imp.module].add(imp.target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module: each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _one_cycle(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """A concrete cycle through the component's first module, for the failure message."""
    members, start = set(comp), comp[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(graph[path[-1]] & members)
        if start in nxt and len(path) > 1:
            return path + [start]
        step = next((n for n in nxt if n not in seen), None)
        if step is None:
            return path + [nxt[0]]
        path.append(step)
        seen.add(step)


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert _one_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_no_module_level_import_cycles() -> None:
    graph = import_graph()
    cycles = [" -> ".join(_one_cycle(graph, comp)) + f"  (modules in the cycle: {', '.join(comp)})"
              for comp in strongly_connected(graph)]
    assert not cycles, "module-level import cycles:\n" + "\n".join(cycles)


def test_the_collector_sorts_imports_by_where_they_run(tmp_path: Path) -> None:
    source = ("from __future__ import annotations\nfrom typing import TYPE_CHECKING\nimport fsw.imaging\n"
              "from . import sibling\n"
              "if TYPE_CHECKING:\n    from hil.camera import device\nelse:\n    import link.mib\n"
              "def f():\n    import pdh.cli\n")
    tree = ast.parse(source)
    c = _Collector("fsw.imaging.x", False, {"fsw.imaging.sibling": tmp_path, "hil.camera.device": tmp_path})
    c.visit(tree)
    got = {i.target: (i.at_import_time, i.type_only) for i in c.found}
    assert got["fsw.imaging"] == (True, False)
    assert got["fsw.imaging.sibling"] == (True, False)
    assert got["hil.camera.device"] == (True, True)
    assert got["link.mib"] == (True, False)
    assert got["pdh.cli"] == (False, False)


# -- rooms ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("folder", sorted(COMPONENTS))
def test_every_component_has_its_interface_commands_and_process(folder: str) -> None:
    missing = [room for room in ROOMS if not (ROOT / folder / room).is_file()]
    assert not missing, f"{folder} lacks {missing} (every component: {', '.join(ROOMS)} and its I/O-free logic)"


def _top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


@pytest.mark.parametrize("folder", sorted(COMPONENTS))
def test_every_interface_declares_its_table_and_kind(folder: str) -> None:
    path = ROOT / folder / "interface.py"
    if not path.is_file():
        pytest.fail(f"{folder} has no interface.py")
    missing = {"INTERFACE", "KIND"} - _top_level_names(path)
    assert not missing, f"{folder}/interface.py does not declare {sorted(missing)}"


@pytest.mark.parametrize("folder", sorted(COMPONENTS))
def test_commands_are_registered_one_way_through_handlers(folder: str) -> None:
    """``commands.py`` gives ``handlers(component)``, which the process hands to ``register_table``."""
    path = ROOT / folder / "commands.py"
    if not path.is_file():
        pytest.fail(f"{folder} has no commands.py")
    assert "handlers" in _top_level_names(path), f"{folder}/commands.py does not define handlers()"


@pytest.mark.parametrize("folder", sorted(COMPONENTS))
def test_only_the_process_file_of_a_component_imports_zmq_or_socket(folder: str) -> None:
    package = COMPONENTS[folder]
    wrong = [f"{_where(i)}: {i.target}" for i in all_imports()
             if (i.module == package or i.module.startswith(package + "."))
             and i.module.split(".")[-1] != "process"
             and i.target.split(".")[0] in IO_MODULES]
    assert not wrong, f"{folder}: only process.py may import zmq or socket:\n" + "\n".join(wrong)


@pytest.mark.parametrize("folder", sorted(COMPONENTS))
def test_every_kind_starts_at_its_own_process_run(folder: str) -> None:
    package = COMPONENTS[folder]
    kind = importlib.import_module(f"{package}.interface").KIND
    assert kind.entry == f"{package}.process:run", f"{folder}: KIND.entry is {kind.entry!r}"
    assert "run" in _top_level_names(ROOT / folder / "process.py"), f"{folder}/process.py defines no run()"
