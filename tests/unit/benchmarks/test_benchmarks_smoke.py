"""Smoke tests: each benchmark runs at a toy size and returns well-formed figures. No timing assertions."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.__main__ import SIZES, main
from benchmarks.bus import LEGS as BUS_LEGS, bench_bus
from benchmarks.chain import ChainUnavailable, bench_chain, chain_config
from benchmarks.codecs import CAPTURE_LABEL, bench_codecs
from benchmarks.figures import Column, Table, render
from benchmarks.frames import standin_frame
from benchmarks.imaging import CAPTURE
from framework.config import validate_config


def _assert_well_formed(table: Table) -> None:
    assert table.rows and table.baseline
    assert table.columns[1].is_ratio, "ratios come first, right after the row label"
    for row in table.rows:
        for col in table.columns:
            value = row.get(col.key)
            if isinstance(value, float):
                assert math.isfinite(value) and value >= 0, (row, col.key)
                if col.is_ratio:
                    assert value > 0, (row, col.key)
    text = render(table)
    assert table.baseline in text
    json.dumps(table.to_json())


def test_codecs_at_toy_size_give_ratios_to_the_capture_codec_and_bit_exact_rows() -> None:
    table = bench_codecs(size_px=64, n_frames=1, rounds=2)
    _assert_well_formed(table)
    assert table.rows[0]["codec"].startswith(CAPTURE_LABEL) and table.rows[0]["size_vs_capture"] == 1.0
    assert table.rows[0]["enc_vs_capture"] == 1.0 and table.rows[0]["dec_vs_capture"] == 1.0
    assert table.load is not None
    labels = [r["codec"].split(" (")[0] for r in table.rows]
    assert {"jpegls", "jpegxl e1", "jpegxl e3", "jpegxl e7", "png", "aec", "zstd"} <= set(labels)
    for row in table.rows:
        assert row["bit_exact"] is True, row
        assert row["bits_per_px"] > 0 and 0 < row["enc_min"] <= row["enc_mpix_s"] <= row["enc_max"]
        assert 0 < row["dec_min"] <= row["dec_mpix_s"] <= row["dec_max"]


def test_the_codecs_baseline_is_the_codec_the_demo_captures_with() -> None:
    demo = yaml.safe_load((Path(__file__).resolve().parents[3] / "configs" / "demo.yaml").read_text())
    imaging = demo["processes"]["imaging"]
    assert (imaging["lossless_codec"], imaging["lossless_params"]) == (CAPTURE["codec"], CAPTURE["params"])


def test_standin_frame_is_12_bit_and_repeatable() -> None:
    a = standin_frame(64, 48, 12, seed=3, counter=1)
    assert a.shape == (48, 64) and a.dtype.name == "uint16" and int(a.max()) < 4096
    assert (a == standin_frame(64, 48, 12, seed=3, counter=1)).all()


@pytest.mark.integration
def test_bus_at_toy_size_delivers_every_message_on_both_paths() -> None:
    table = bench_bus(n_messages=5, message_bytes=64 << 10, rounds=1)
    _assert_well_formed(table)
    assert len(table.rows) == len(BUS_LEGS)  # raw and bus, on tcp and ipc
    for row in table.rows:
        assert row["received"] == row["sent"] > 0 and row["missing"] == 0
        assert row["msg_s"] > 0 and row["mb_s"] > 0 and row["vs_raw"] > 0


def test_chain_config_runs_the_navcam_to_the_ground_with_relay_and_re_encoder() -> None:
    raw = chain_config(size_px=64, frame_rate_hz=5.0)
    config = validate_config(raw, "<chain>")
    kinds = {p["kind"] for p in config.processes.values()}
    assert {"hil.relay", "ground.station", "fsw.downlink", "fsw.imaging"} <= kinds
    assert config.processes["downlink"]["reencode"]["enabled"] is True
    assert config.processes["navcam_driver"]["frame_rate_hz"] == 5.0
    assert config.processes["navcam_emulator"]["profile"]["width"] == 64
    tcp = [a for a in config.endpoints.values() if not a.startswith("ipc://")]
    assert len(set(tcp)) == len(tcp)


@pytest.mark.integration
def test_chain_at_toy_size_gives_a_table_or_says_why_not() -> None:
    try:
        table = bench_chain(size_px=64, duration_s=6.0, frame_rate_hz=5.0, rounds=2)
    except ChainUnavailable as exc:
        assert str(exc)
        return
    assert table.rows[0]["vs_capture"] == 1.0 and table.load is not None
    assert [r["stage"].split(":")[0] for r in table.rows] == ["capture path alone", "camera -> ground",
                                                              "camera -> stored on board (waiting for the link)"]
    for row in table.rows:  # a span with no frame at the ground is a measured 0, not a missing figure
        assert row["fps"] >= 0 and row["vs_capture"] is not None and row["vs_capture"] >= 0
    assert table.baseline in render(table)


def test_render_aligns_columns_and_shows_missing_figures_as_dash() -> None:
    table = Table("t", "Title", "base 1.0", [Column("name", "name"), Column("r", "ratio", ".2f", True)],
                  [{"name": "a", "r": 1.0}, {"name": "longer", "r": None}])
    lines = render(table).splitlines()
    header, rule = lines[4], lines[5]
    assert len(header) == len(rule)
    assert lines[-1].endswith("-")


def test_main_quick_codecs_writes_json(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setitem(SIZES["codecs"], "quick",
                        {"size_px": 32, "n_frames": 1, "rounds": 1})
    out = tmp_path / "figures.json"
    assert main(["--quick", "--only", "codecs", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["sections"]["codecs"]["available"] is True
    assert "Lossless codecs" in capsys.readouterr().out
