"""The generated docs say what the code says: interface tables, process kinds, APIDs (``pdh interfaces``)."""

from __future__ import annotations

import ast
import difflib
import importlib
import shutil
from pathlib import Path

import pytest

from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from link.packets import APIDS
from pdh import gendocs
from pdh.cli import main
from pdh.gendocs import DOCS_DIR, REGENERATE, GeneratedDocError, expected_docs, stale_docs, write_docs
from pdh.interfaces import interfaces_markdown, interfaces_text
from pdh.topology import ALL_KINDS, INTERFACES

ROOT = Path(__file__).resolve().parents[3]
COMPONENT_ROOTS = ("fsw", "drivers", "ground", "hil")


def _diff(path: Path, want: str) -> str:
    have = path.read_text().splitlines() if path.exists() else []
    lines = difflib.unified_diff(have, want.splitlines(), str(path), "generated", lineterm="", n=1)
    return "\n".join(list(lines)[:40])


def test_generated_docs_match_the_tables_in_the_code() -> None:
    stale = {p: t for p, t in expected_docs(DOCS_DIR).items() if not p.exists() or p.read_text() != t}
    if stale:
        pytest.fail(f"generated docs are stale: {sorted(str(p.relative_to(ROOT)) for p in stale)}; "
                    f"run `{REGENERATE}` and commit them\n" + "\n".join(_diff(p, t) for p, t in stale.items()))


def _declares(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(node, (ast.Assign, ast.AnnAssign))
               and any(isinstance(t, ast.Name) and t.id == name
                       for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))
               for node in tree.body)


def _interface_modules() -> list[str]:
    paths = [p for root in COMPONENT_ROOTS for p in sorted((ROOT / root).rglob("interface.py"))]
    return [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in paths]


@pytest.mark.parametrize("module", _interface_modules())
def test_every_declared_table_and_kind_is_listed_by_the_topology(module: str) -> None:
    path = ROOT / (module.replace(".", "/") + ".py")
    mod = importlib.import_module(module)
    if _declares(path, "INTERFACE"):
        assert any(t is mod.INTERFACE for t in INTERFACES), f"{module}.INTERFACE is missing from pdh.topology.INTERFACES"
    if _declares(path, "KIND"):
        assert any(k is mod.KIND for k in ALL_KINDS), f"{module}.KIND is missing from pdh.topology.ALL_KINDS"


def test_the_apid_section_of_the_downlink_doc_holds_every_apid_the_code_sends() -> None:
    section = (DOCS_DIR / "downlink.md").read_text().split("<!-- BEGIN GENERATED apids")[1].split("<!-- END")[0]
    for kind, apid in APIDS.items():
        assert f"| `{kind}` | 0x{apid:04X} | {apid} |" in section


def _docs_copy(tmp_path: Path) -> Path:
    """The source tree's docs, brought up to date (so a test here does not depend on the other one)."""
    docs = tmp_path / "docs"
    shutil.copytree(DOCS_DIR, docs)
    write_docs(docs)
    return docs


def test_a_changed_apid_makes_the_doc_stale_and_write_brings_it_back(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _docs_copy(tmp_path)
    monkeypatch.setattr("pdh.interfaces.APIDS", {"thumbnail": 0x101})
    assert stale_docs(docs) == [docs / "downlink.md"]
    before = (docs / "downlink.md").read_text()
    assert write_docs(docs) == [docs / "downlink.md"]
    after = (docs / "downlink.md").read_text()
    assert "| `thumbnail` | 0x0101 | 257 |" in after and "| `full` |" not in after
    # only the section changed: the prose around it is kept
    assert before.split("<!-- BEGIN GENERATED")[0] == after.split("<!-- BEGIN GENERATED")[0]
    assert stale_docs(docs) == []


def test_a_doc_without_its_markers_is_an_error_that_names_them(tmp_path: Path) -> None:
    docs = _docs_copy(tmp_path)
    (docs / "downlink.md").write_text("# Downlink\n\nno table here\n")
    with pytest.raises(GeneratedDocError, match="BEGIN GENERATED apids"):
        expected_docs(docs)
    assert main(["interfaces", "--check", "--docs", str(docs)]) == 2


def test_check_exits_1_naming_the_stale_file_and_write_fixes_it(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs_copy(tmp_path)
    (docs / "interfaces.md").write_text("# Interfaces\n\nold\n")
    assert main(["interfaces", "--check", "--docs", str(docs)]) == 1
    out = capsys.readouterr()
    assert f"stale {docs / 'interfaces.md'}" in out.out and REGENERATE in out.err
    assert main(["interfaces", "--write", "--docs", str(docs)]) == 0
    assert main(["interfaces", "--check", "--docs", str(docs)]) == 0
    assert (docs / "interfaces.md").read_text() == gendocs.interfaces_doc()


def test_pdh_interfaces_prints_one_components_commands_events_and_telemetry(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["interfaces", "imaging"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("imaging  ids 0x0200..0x02FF  (fsw/imaging/interface.py)")
    assert "0x0210  MAKE_LOSSY" in out and "budget_bytes  int, 1000..67108864, bytes" in out
    assert "0x0201  frame_rejected" in out and "frames_in" in out
    assert "downlink" not in out.split("\n")[0]


def test_pdh_interfaces_md_without_a_component_is_the_generated_doc(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["interfaces", "--format", "md"]) == 0
    assert capsys.readouterr().out == gendocs.interfaces_doc()
    assert main(["interfaces", "--kinds", "--format", "md"]) == 0
    assert capsys.readouterr().out == gendocs.processes_doc()


def test_pdh_interfaces_kinds_prints_endpoint_roles_and_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["interfaces", "--kinds", "fsw.imaging"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fsw.imaging  (fsw.imaging.process:run)")
    assert "thumbnail_px" in out and "autoexposure.target_frac" in out and "products" in out


@pytest.mark.parametrize("argv", [["interfaces", "no_such"], ["interfaces", "--kinds", "no_such"]])
def test_an_unknown_component_exits_2_listing_the_known_ones(argv: list[str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "no_such" in capsys.readouterr().err


def _table() -> Interface:
    return Interface.build(
        "test", id_base=0x4200,
        commands=(CommandSpec(0x10, "FIRE", (Arg("circuit", str, choices=("a", "b")),
                                             Arg("n", int, 1, 2**64 - 1, required=False),
                                             Arg("t", float, min=0.5, unit="s")), hazardous=True,
                              doc="fire | release"),),
        events=(EventSpec(1, "fired", "warning", "one\nline"),),
        telemetry=(ChannelSpec(1, "errors", "count", int, high=0),),
    )


def test_markdown_escapes_pipes_and_newlines_and_shows_ranges_hazard_and_limits() -> None:
    md = interfaces_markdown([_table()])
    assert ('| 0x0010 | `FIRE` | `circuit` str, one of "a", "b"<br>`n` int, 1..2^64-1, optional<br>'
            '`t` float, >= 0.5, s | yes | fire \\| release |') in md
    assert "| 0x4201 | `fired` | warning | one line |" in md
    assert "| 0x4201 | `errors` | count | int | <= 0 |  |" in md


def test_text_marks_a_hazardous_command() -> None:
    text = interfaces_text([_table()])
    words = [line.split() for line in text.splitlines()]
    assert ["0x0010", "FIRE", "(hazardous)", "fire", "|", "release"] in words
    assert ["0x4201", "errors", "count", "int", "<=", "0"] in words


def test_every_id_base_has_its_table_in_the_topology() -> None:
    from framework.ids import ID_BASES

    assert sorted(t.component for t in INTERFACES) == sorted(ID_BASES)
