"""The HTML page of a scenario run, read back with html.parser: one file with its timeline, its telemetry
plots, the thumbnails received and, for a failure, the expectation, what was seen and the log tail; and
nothing it would fetch from elsewhere (no scripts, no stylesheets, no remote images)."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from pdh.scenario.evidence import (HTML_FILE, JUNIT_FILE, find_thumbnails, page_inputs, telemetry_series,
                                   write_bench_reports)
from pdh.scenario.expect import Record
from pdh.scenario.page import PageInputs, render_page
from tests.unit.pdh.scenario.test_report_junit import a_report, steps, write_logs

T0 = 1000.0


class Page(HTMLParser):
    """Sections by id, svg plots, the timeline chart, images and every attribute that could fetch something."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.plots: list[str] = []
        self.timeline = False
        self.images: list[dict[str, str]] = []
        self.fetching: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self._section = ""
        self._texts: dict[str, list[str]] = {}
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "section":
            self._section = a.get("id", "")
            self.sections.append(self._section)
        if tag == "svg" and "plot" in a.get("class", "").split():
            self.plots.append(a.get("aria-label", ""))
        if tag == "svg" and a.get("id") == "timeline-chart":
            self.timeline = True
        if tag == "img":
            self.images.append(a)
        for k in ("src", "href", "xlink:href", "data", "poster", "srcset", "action"):
            v = a.get(k)
            if v is not None and not (v.startswith("data:") or v.startswith("#")):
                self.fetching.append((tag, k, v))

    def handle_data(self, data: str) -> None:
        self._texts.setdefault(self._section, []).append(data)

    def text(self, section: str) -> str:
        return " ".join(self._texts.get(section, []))


def records() -> list[Record]:
    recs = []
    for i in range(40):
        t = T0 - 1.0 + i * 0.25
        recs.append(Record(t, "tlm.downlink", "downlink", "health",
                           {"store_fill_pct": 10.0 + i, "queue_depth": i % 5, "uptime_s": i * 0.25,
                            "link": {"relay_a": {"bytes_sent": 1000 * i}}, "version": 3, "ok": True}))
        recs.append(Record(t, "tlm.boom_driver", "boom_driver", "health", {"angle_deg": min(90.0, i * 4.0)}))
    recs.append(Record(T0 + 2.0, "evt.boom_driver", "boom_driver", "evt",
                       {"name": "deploy_verdict", "severity": "warning", "outcome": "partial"}))
    return recs


def thumbnail(dir_: Path, pid: str, size: int = 64, kind: str = "thumbnail") -> None:
    dir_.mkdir(parents=True, exist_ok=True)
    img = (np.arange(size * size, dtype=np.uint32).reshape(size, size) * 7919 % 251).astype(np.uint8)
    cv2.imwrite(str(dir_ / f"{pid}.png"), img)
    (dir_ / f"{pid}.json").write_text(json.dumps({"id": pid, "kind": kind, "camera": "navcam", "counter": 1}))


def run_out(tmp_path: Path) -> Path:
    """An output directory as a run leaves it: effective config naming a ground, its products, logs."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "scenario-config.yaml").write_text(yaml.safe_dump({"processes": {
        "ground": {"kind": "ground.station", "out_subdir": "gs"}, "boom_driver": {"kind": "drivers.deploy"},
        "console": {"kind": "ground.console", "out_subdir": "gs"}}}))  # not a station: its products are not twice
    thumbnail(out / "gs", "navcam-000001-thumb")
    thumbnail(out / "gs", "navcam-000002-thumb")
    thumbnail(out / "gs", "navcam-000001-full", kind="full")
    write_logs(out, "boom_driver", [json.dumps({"timestamp": "T9", "level": "warning", "event": "jam_detected",
                                                "angle_deg": 40.0})])
    return out


def test_page_has_timeline_plots_thumbnails_and_the_failure(tmp_path: Path) -> None:
    out = run_out(tmp_path)
    report = a_report()
    text = render_page(page_inputs(type("Sc", (), {"steps": steps(), "description": "a test run"})(),
                                   out, report, records(), T0))
    page = Page(text)
    for section in ("summary", "checks", "timeline", "failures", "telemetry", "thumbnails", "events", "processes"):
        assert section in page.sections
    assert page.timeline
    assert "downlink store_fill_pct" in page.plots and "boom_driver angle_deg" in page.plots
    assert "downlink link.relay_a.bytes_sent" in page.plots  # nested channels flattened
    assert "downlink version" not in page.plots  # constant: in the table, not a plot
    assert page.plots.index("downlink store_fill_pct") < page.plots.index("downlink uptime_s")  # featured first
    assert len(page.images) == 2 and all(i["src"].startswith("data:image/png;base64,") for i in page.images)
    assert {i["alt"] for i in page.images} == {"navcam-000001-thumb", "navcam-000002-thumb"}
    png = base64.b64decode(page.images[0]["src"].split(",", 1)[1])
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED).shape == (64, 64)
    failures = page.text("failures")
    assert "expect evt.boom_driver {name: 'deploy_verdict'}" in failures
    assert "last near miss at t=4.10 s: outcome='partial'" in failures
    assert "logs/boom_driver.jsonl" in failures and "jam_detected" in failures
    assert "deploy_verdict" in page.text("events")
    assert page.fetching == [] and "script" not in page.tags and "link" not in page.tags


def test_page_of_a_run_that_passed_with_nothing_heard() -> None:
    report = a_report()
    report["steps"] = [s for s in report["steps"] if s["ok"] is True]
    report["ok"] = True
    page = Page(render_page(PageInputs(report=report)))
    assert page.timeline and page.plots == [] and page.images == []
    assert "none: every step and check held" in page.text("failures")
    assert "no telemetry heard" in page.text("telemetry") and "none received" in page.text("thumbnails")


def test_series_bounded_with_peaks_and_last_point_kept() -> None:
    recs = [Record(T0 + i * 0.01, "tlm.p", "p", "health", {"x": 5.0 if i == 777 else float(i % 3)})
            for i in range(5000)]
    recs.append(Record(T0 + 60, "tlm.p", "p", "mech", {"x": 1}))
    series = {s.channel: s for s in telemetry_series(recs, T0, limit=100)}
    assert set(series) == {"x", "mech.x"}  # another kind of the same process is its own series
    x = series["x"]
    assert len(x.points) <= 100 and max(v for _, v in x.points) == 5.0
    assert x.points[-1] == (round(4999 * 0.01, 3), float(4999 % 3))
    assert [t for t, _ in x.points] == sorted(t for t, _ in x.points)


def test_thumbnails_bounded_in_number_and_bytes(tmp_path: Path) -> None:
    gs = tmp_path / "gs"
    for i in range(5):
        thumbnail(gs, f"t{i}", size=512)
    thumbs, total = find_thumbnails(tmp_path, limit=3, max_bytes=20_000, dirs=[gs])
    assert total == 5 and len(thumbs) == 3
    assert [t.id for t in thumbs] == ["t0", "t2", "t4"]  # spread over the run, first and last included
    for t in thumbs:
        png = base64.b64decode(t.data_uri.split(",", 1)[1])
        assert len(png) <= 20_000 and t.shape == (512, 512)


def test_thumbnail_png_named_by_its_sidecar(tmp_path: Path) -> None:
    gs = tmp_path / "gs"
    thumbnail(gs, "a")
    (gs / "a.png").rename(gs / "a-pixels.png")
    (gs / "a.json").write_text(json.dumps({"id": "a", "kind": "thumbnail", "file": "a-pixels.png",
                                           "file_format": "png"}))
    thumbs, total = find_thumbnails(tmp_path, dirs=[gs])
    assert total == 1 and thumbs[0].id == "a" and thumbs[0].shape == (64, 64)


def test_write_bench_reports_writes_both_beside_the_json(tmp_path: Path) -> None:
    out = run_out(tmp_path)
    files = write_bench_reports(None, out, a_report(), records(), T0)
    assert files == {"junit": str(out / JUNIT_FILE), "html": str(out / HTML_FILE)}
    assert Page((out / HTML_FILE).read_text()).timeline
    assert not list(out.glob("*.tmp"))


def test_failed_step_on_a_process_named_only_in_its_text_gets_that_log(tmp_path: Path) -> None:
    out = run_out(tmp_path)
    report: dict[str, Any] = a_report()
    text = render_page(page_inputs(None, out, report, [], T0))  # no steps given: names found in the text
    assert "jam_detected" in Page(text).text("failures")
