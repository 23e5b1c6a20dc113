"""pdh status without a running system: the rows, where each value comes from, the ok verdict, the screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from framework.config import load_config
from pdh.cli_status import Live, build_status, channel_values, process_rows, render
from pdh.live import Event, Sample

DEMO = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"
NOW = 1_700_000_100.0


@pytest.fixture(scope="module")
def config() -> Any:
    return load_config(DEMO)


def supervisor(config: Any, **states: str) -> dict[str, Any]:
    return {"pid": 1, "processes": {n: {"kind": p["kind"], "state": states.get(n, "running"), "pid": 100 + i,
                                        "starts": 1, "gave_up": None}
                                    for i, (n, p) in enumerate(config.processes.items())}}


def alive_except(*dead: int) -> Any:
    return lambda pid: isinstance(pid, int) and pid not in dead


def test_a_process_the_supervisor_calls_running_whose_pid_is_gone_is_dead(config: Any) -> None:
    sup = supervisor(config)
    rows = process_rows(config, sup, Live(), NOW, alive_except(sup["processes"]["imaging"]["pid"]))
    states = {r["name"]: r["state"] for r in rows}
    assert states["imaging"] == "dead"
    assert {s for n, s in states.items() if n != "imaging"} == {"running"}


def test_health_comes_from_the_bus_before_tm_and_says_how_old(config: Any) -> None:
    live = Live()
    live.take(Sample(NOW - 3, "downlink", "tm", {"store_fill": 0.2}))
    live.take(Sample(NOW - 0.5, "downlink", "bus", {"store_fill": 0.3}))
    live.take(Sample(NOW - 1, "downlink", "bus", {"store_fill": 0.1}))  # older than the one kept
    (row,) = [r for r in process_rows(config, supervisor(config), live, NOW, alive_except()) if r["name"] == "downlink"]
    assert row["health"] == {"via": "bus", "age_s": 0.5}
    got = channel_values("downlink", ("store_fill", "queue_depth"), live, {}, NOW)
    assert got == {"via": "bus", "age_s": 0.5, "values": {"store_fill": 0.3, "queue_depth": None}}


def test_without_live_health_the_archive_last_values_are_shown_as_such() -> None:
    got = channel_values("downlink", ("store_fill", "queue_depth"), Live(), {"store_fill": (NOW - 30, 0.4)}, NOW)
    assert got == {"via": "archive", "age_s": 30.0, "values": {"store_fill": 0.4, "queue_depth": None}}
    assert channel_values("downlink", ("store_fill",), Live(), {}, NOW)["via"] is None


def test_status_is_ok_only_when_every_supervised_process_runs(config: Any) -> None:
    windows = {"now": NOW, "current": None, "windows": []}
    ok = build_status(config, Path("OUT"), supervisor(config), Live(), windows, {}, NOW, alive_except())
    assert ok["ok"]
    bad = build_status(config, Path("OUT"), supervisor(config, downlink="gave_up"), Live(), windows, {}, NOW,
                       alive_except())
    assert not bad["ok"]
    assert not build_status(config, Path("OUT"), {}, Live(), windows, {}, NOW, alive_except())["ok"]


def test_the_screen_shows_each_part_the_link_and_the_events_once(config: Any) -> None:
    window = {"relay": "relay_b", "pass": 7, "opens": NOW + 4, "closes": NOW + 12, "rate_bps": 2e7, "latency_ms": 1310}
    current = {"relay": "relay_a", "pass": 7, "opened": NOW - 2, "closes": NOW + 3, "rate_bps": 2.4e7,
               "latency_ms": 1290}
    live = Live()
    live.take(Sample(NOW - 0.2, "downlink", "bus", {"contact": "relay_a", "in_flight": "a,b", "bytes_in_flight": 2e6,
                                                    "send_rate_bps": 1.8e7, "store_fill": 0.125, "queue_depth": 4}))
    stored = Event(NOW - 1, "downlink", "product_stored", "info", "bus", {"id": "navcam-00000001-full"})
    live.take(stored)
    archive = {"events": [Event(NOW - 1 + 1e-5, "downlink", "product_stored", "info", "archive", {}),
                          Event(NOW - 5, "ground", "product_received", "info", "archive", {"id": "t"})],
               "passes": [{"relay": "relay_b", "pass_number": 6, "t_open": NOW - 20, "t_close_planned": NOW - 12,
                           "t_closed": NOW - 12, "rate_bps": 2e7}],
               "products": {"thumbnail": 3, "full": 1}}
    view = build_status(config, Path("OUT"), supervisor(config, relay="restarting"), live,
                        {"now": NOW, "current": current, "windows": [window]}, archive, NOW, alive_except())
    text = render(view)
    lines = text.splitlines()
    for section in ("PROCESSES", "LINK", "PASSES", "STORE", "EVENTS (last 2)"):
        assert section in lines
    assert "NOT EVERY PROCESS IS RUNNING" in lines[1]
    assert any(line.split()[:1] == ["relay"] and "restarting" in line for line in lines)
    assert "  contact   relay_a pass 7, closes in 3.0 s (24.0 Mbit/s, 1290 ms one way)" in lines
    assert any(line.startswith("  next      relay_b pass 7") and "(in 4.0 s)" in line for line in lines)
    assert any("2 in flight (2.0 MB), sending 18.0 Mbit/s  (bus, 0.2 s ago)" in line for line in lines)
    assert any("fill 12.5%" in line and "4 queued" in line for line in lines)
    assert any("4 products: 1 full, 3 thumbnail" in line for line in lines)
    assert sum("product_stored" in line for line in lines) == 1  # live and archived: the same event


def test_the_ground_products_are_counted_by_kind_from_the_archive(config: Any, tmp_path: Path) -> None:
    from ground.archive import Archive, ProductRecord
    from ground.station import archive_url
    from pdh.cli_status import _from_archive

    (ground,) = config.processes_of_kind("ground.station")
    with Archive(archive_url(config, ground), tmp_path) as archive:
        for pid, kind in (("nav-1-thumbnail", "thumbnail"), ("nav-1-full", "full"), ("nav-2-thumbnail", "thumbnail")):
            archive.record_product(ProductRecord(pid, kind, "nav", 1, 10.0, 110.0, None, "png", 7, 1000, 48, 32, 12,
                                                 f"/x/{pid}.png", None, {}))
    got = _from_archive(config, tmp_path, "downlink", NOW, 5)
    assert got["products"] == {"full": 1, "thumbnail": 2}
