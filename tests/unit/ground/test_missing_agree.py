"""``pdh missing`` and the console agree on what is missing, and both are right.

What is missing is made on purpose, over the station's real CFDP and TM paths (made_missing.py, the
setup test_archive_missing.py shares): frame 2's full frame evicted on board (reported by a TM event),
frame 3's lost (never sent), frame 4's interrupted mid-transfer after the ground NAKed its gap, and two
housekeeping packets lost in a ten-second silence. The archive is found from a config's ground
station (``archive.url``: a SQLite path relative to the run's output directory, or a real PostgreSQL
server) by both the console (:meth:`ArchiveView.of_config`, what its process does) and ``pdh missing
--config --out``; the console is asked over HTTP (its /api/missing, and the gallery and link panel
through the same archive). Both answers are compared with each other and with the known truth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from framework.config import load_config
from fsw.downlink.interface import INTERFACE as DOWNLINK
from ground.console.app import Console, build_app
from ground.console.archive_view import ArchiveView
from ground.console.desk import CommandDesk
from ground.console.model import ConsoleModel, Feed
from ground.interface import INTERFACE as GROUND
from pdh.cli import main
from tests.unit.ground.made_missing import Truth, make_what_is_missing

ROOT = Path(__file__).resolve().parents[3]


def config_with_archive(tmp_path: Path, url: str) -> Path:
    """The demo config with its ground station's archive at ``url``."""
    raw = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    raw["processes"]["ground"]["archive"] = {"url": url}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def assert_right(missing: dict[str, Any], truth: Truth, who: str) -> None:
    """One answer (``pdh missing --json``'s or the console's) against the truth."""
    assert [(r["full_id"], r["status"]) for r in missing["thumbnails_without_full"]] == truth.frames, who
    (opened,) = missing["open_transfers"]
    lost = [list(r) for r in truth.lost]  # JSON has no tuples
    assert (opened["id"], opened["file_size"], opened["missing"]) == (truth.open_id, truth.open_size, lost), who
    assert opened["naks"] >= 1 and opened["eof_received"], who
    assert opened["missing_text"] == ",".join(f"{a}-{b - 1}" for a, b in truth.lost), who
    assert [(g["source"], g["kind"], g["t_from"], g["t_to"], g["packets_missing"])
            for g in missing["tm_gaps"]] == truth.gaps, who
    assert [(e["id"], e["received"]) for e in missing["evicted"]] == truth.evicted, who


def console_of(config: Any, out: Path) -> TestClient:
    """The console's HTTP side over the archive its process would find in ``config`` for a run in ``out``."""
    ground = config.processes["console"]["ground"]
    view = ArchiveView.of_config(config, ground, out)
    tables = {"downlink": DOWNLINK, "ground": GROUND}
    model = ConsoleModel(tables, {"downlink"}, Feed(), on_product=view.card)
    console = Console(model, CommandDesk({"downlink": DOWNLINK}, "downlink", None), view, _NoGround(),
                      lambda: {"current": None, "windows": []}, station=ground)
    return TestClient(build_app(console))


class _NoGround:
    async def call(self, cmd: str, args: dict[str, Any]) -> Any:
        pytest.fail("asking what is missing sends nothing to the ground")


def test_pdh_missing_and_the_console_agree_on_what_is_missing_and_both_are_right(
        tmp_path: Path, archive_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # SQLite: a path relative to the run's output directory, as a config would have it
    url = "sqlite:///ground/archive.sqlite" if archive_url.startswith("sqlite") else archive_url
    config_file = config_with_archive(tmp_path, url)
    out = tmp_path / "out"
    truth = make_what_is_missing(tmp_path, url)
    if url.startswith("sqlite"):
        assert (out / "ground" / "archive.sqlite").is_file(), "the station made the archive under the out dir"

    assert main(["missing", "--config", str(config_file), "--out", str(out), "--json"]) == 0
    from_cli = json.loads(capsys.readouterr().out)

    http = console_of(load_config(config_file), out)
    answer = http.get("/api/missing")
    assert answer.status_code == 200, answer.text
    from_console = answer.json()

    assert from_console == from_cli, "the console's Missing panel and pdh missing disagree"
    assert_right(from_cli, truth, "pdh missing")
    assert_right(from_console, truth, "console")

    # the console's other views of the same archive say the same
    shown = {c["id"]: c for c in http.get("/api/products").json()["products"]}
    assert sorted(shown) == sorted(truth.products)
    assert [c["id"] for c in http.get("/api/products?kind=full").json()["products"]] == ["navcam-00000001-full"]
    link = http.get("/api/link").json()
    (opened,) = [x for x in link["transactions"] if x["open"]]
    assert (opened["id"], opened["missing"]) == (truth.open_id, [list(r) for r in truth.lost])
    assert opened["naks"] >= 1
    assert link["archive"]["ok"]
    evicted = [e for e in http.get("/api/events?source=downlink").json()["events"] if e["name"] == "product_evicted"]
    assert [e["fields"]["id"] for e in evicted] == ["navcam-00000002-full"]
    assert [round(v) for _, v in http.get("/api/history?process=downlink&channel=products_stored").json()["points"]] \
        == [1, 2, 5, 6]
