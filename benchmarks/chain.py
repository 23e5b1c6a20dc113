"""Whole chain, emulator to stored product: full frames stored per second.

Starts the real processes (broker, camera emulator, camera driver, imaging,
downlink) with the project's supervisor from a copy of ``configs/demo.yaml``
on free ports, with the relay and ground left out (the downlink's radio
endpoints stay in the config, nobody listens). It watches the bus and counts
``product_stored`` events (``evt.<downlink>``) for full-frame products
(known from their ``product.full`` messages): frames/s from the first such
event to the last. The baseline, in the same run, is the emulator's own frame
generation rate (``FrameSource.frame`` per second, one process).

If a process kind cannot be imported yet, or nothing is stored in time,
:func:`bench_chain` raises :class:`ChainUnavailable` with the reason.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
import zmq

from benchmarks.figures import Column, Table, best_of, ratio
from benchmarks.frames import frame_maker
from framework.config import free_loopback_ports, load_config
from pdh.topology import KINDS

__all__ = ["ChainUnavailable", "chain_config", "bench_chain"]

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "configs" / "demo.yaml"
LEFT_OUT_KINDS = ("hil.relay", "ground.station")
FIRST_STORE_TIMEOUT_S = 60.0


class ChainUnavailable(Exception):
    """The chain cannot be measured here yet; the message says why."""


def chain_config(size_px: int, frame_rate_hz: float) -> dict[str, Any]:
    """demo.yaml with free ports, relay and ground left out, and the camera at ``size_px`` and ``frame_rate_hz``."""
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["endpoints"] = free_loopback_ports(raw["endpoints"])
    raw["processes"] = {n: p for n, p in raw["processes"].items() if p["kind"] not in LEFT_OUT_KINDS}
    for p in raw["processes"].values():
        if p["kind"] == "hil.camera":
            p["profile"] = {**p.get("profile", {}), "width": size_px, "height": size_px}
            p["max_frame_rate_hz"] = 1000.0
        elif p["kind"] == "drivers.camera":
            p["frame_rate_hz"] = frame_rate_hz
    return raw


def _missing_entries(raw: dict[str, Any]) -> list[str]:
    missing = []
    for p in raw["processes"].values():
        module = KINDS[p["kind"]].entry.split(":")[0]
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(f"{p['kind']} ({module})")
    return missing


def _generation_rate(size_px: int, bit_depth: int, n_frames: int) -> tuple[float, str]:
    """FrameSource.frame calls per second, best of ``n_frames`` single calls."""
    make, source = frame_maker(size_px, size_px, bit_depth)
    counter = iter(range(1_000_000))
    best_s, _ = best_of(lambda: make(next(counter)), n_frames, budget_s=30.0)
    return 1.0 / best_s, source


def _watch(sup: Any, sub: Any, duration_s: float, first_store_timeout_s: float) -> tuple[list[float], int]:
    """Times of full-frame product_stored events in ``duration_s`` from the first stored product; products made.

    A product's kind comes from its ``product.<kind>`` message, else from the event's ``product_kind``.
    It is resolved at the end: the event and the product message come from different publishers.
    """
    kind_of: dict[str, str] = {}
    stored: list[tuple[float, Any, Any]] = []
    end = time.monotonic() + first_store_timeout_s
    while time.monotonic() < end:
        sup.watch()
        msg = sub.recv(timeout_ms=100)
        if msg is None:
            continue
        f = msg.header.fields
        if msg.topic.startswith("product.") and isinstance(f.get("id"), str):
            kind_of[f["id"]] = msg.topic.split(".", 1)[1]
        elif msg.topic.startswith("evt.") and f.get("name") == "product_stored":
            if not stored:
                end = time.monotonic() + duration_s
            stored.append((time.monotonic(), f.get("id"), f.get("product_kind", f.get("kind"))))
    full_t = [t for t, pid, kind in stored if kind_of.get(pid, kind) == "full"]
    return full_t, len(kind_of)


def _run_chain(raw: dict[str, Any], workdir: Path, duration_s: float,
               first_store_timeout_s: float) -> tuple[list[float], int, list[str]]:
    """Start every process of ``raw`` under the supervisor, watch the bus, stop them all."""
    from pdh.supervisor import Supervisor
    from framework.bus.client import Subscriber

    cfg_path = workdir / "chain.yaml"
    cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config = load_config(cfg_path).for_run(workdir / "out")
    broker = config.processes_of_kind("bus.broker")[0]
    zctx = zmq.Context()
    sub = Subscriber(zctx, config.endpoint(broker, "xpub"), ["evt.", "product.", "tlm."], rcvhwm=10000)
    sup = Supervisor(config, cfg_path, workdir / "out")
    sup.start()
    try:
        stored_t, made = _watch(sup, sub, duration_s, first_store_timeout_s)
    finally:
        sup.stop()
        sub.close()
        zctx.destroy(linger=0)
    died = [f"{c.name} exited {c.exits}" for c in sup.children.values() if c.exits]
    return stored_t, made, died


def _chain_table(size_px: int, bit_depth: int, frame_rate_hz: float, gen_fps: float, source: str,
                 stored_t: list[float], made: int, died: list[str]) -> Table:
    span_s = stored_t[-1] - stored_t[0]
    fps = (len(stored_t) - 1) / span_s
    mpix = size_px * size_px / 1e6
    columns = [Column("stage", "stage"), Column("vs_generation", "vs generation", ".3f", True),
               Column("frames_s", "frames/s", ".2f"), Column("mpix_s", "Mpix/s", ".1f")]
    rows = [{"stage": "frame generation (baseline)", "vs_generation": 1.0, "frames_s": gen_fps,
             "mpix_s": gen_fps * mpix},
            {"stage": "emulator -> stored full frame", "vs_generation": ratio(fps, gen_fps), "frames_s": fps,
             "mpix_s": fps * mpix}]
    notes = [f"{size_px}x{size_px} {bit_depth}-bit, driver asks {frame_rate_hz:g} frames/s; {len(stored_t)} full "
             f"frames stored in {span_s:.1f} s (first to last product_stored); {made} products made",
             f"baseline: {source}.frame, best of 3 calls, one process"]
    notes += [f"process died and was restarted: {d}" for d in died]
    baseline = f"emulator frame generation {gen_fps:.2f} frames/s ({source})"
    return Table("chain", "Whole chain: emulator to stored product", baseline, columns, rows, notes)


def bench_chain(size_px: int = 2048, duration_s: float = 30.0, frame_rate_hz: float = 20.0, bit_depth: int = 12,
                first_store_timeout_s: float = FIRST_STORE_TIMEOUT_S, out_dir: Path | None = None) -> Table:
    """Full frames stored per second through the real processes, against frame generation per second.

    The processes' logs go to a temporary directory, or to ``out_dir`` (kept) when given.
    """
    raw = chain_config(size_px, frame_rate_hz)
    missing = _missing_entries(raw)
    if missing:
        raise ChainUnavailable("process entry not importable: " + ", ".join(missing))
    gen_fps, source = _generation_rate(size_px, bit_depth, 3)
    if not source.startswith("hil.camera.frames"):
        raise ChainUnavailable(f"emulator frames not available: {source}")
    with tempfile.TemporaryDirectory(prefix="bench_chain_") as tmp:
        workdir = Path(out_dir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        stored_t, made, died = _run_chain(raw, workdir, duration_s, first_store_timeout_s)
    if len(stored_t) < 2:
        raise ChainUnavailable(f"{len(stored_t)} full frames stored within {first_store_timeout_s:g} s + "
                               f"{duration_s:g} s" + (f"; {', '.join(died)}" if died else ""))
    return _chain_table(size_px, bit_depth, frame_rate_hz, gen_fps, source, stored_t, made, died)
