"""``python -m benchmarks``: run the benchmarks, print their tables, optionally write JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import imagecodecs
import numpy as np
import zmq

from benchmarks.accounting import accounting_table
from benchmarks.bus import bench_bus
from benchmarks.camera import bench_camera
from benchmarks.chain import ChainUnavailable, bench_chain
from benchmarks.codecs import bench_codecs
from benchmarks.downlink import bench_downlink
from benchmarks.figures import LoadWatch, Table, render
from benchmarks.imaging import bench_imaging
from benchmarks.lander import bench_lander
from benchmarks.near_lossless import bench_near_lossless
from benchmarks.reencode import bench_reencode
from benchmarks.store import bench_store, bench_store_pass

__all__ = ["main", "SIZES"]

# Arguments of each benchmark at full size and with --quick.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "codecs": {"full": {"size_px": 2048, "n_frames": 2, "rounds": 3},
               "quick": {"size_px": 512, "n_frames": 2, "rounds": 3}},
    "bus": {"full": {"n_messages": 500, "rounds": 2},
            "quick": {"n_messages": 60, "rounds": 1}},
    "chain": {"full": {"size_px": 2048, "duration_s": 30.0, "rounds": 3},
              "quick": {"size_px": 512, "duration_s": 12.0, "rounds": 3}},
    "imaging": {"full": {"scale": 1.0, "n_frames": 40, "rounds": 3},
                "quick": {"scale": 0.25, "n_frames": 6, "rounds": 2}},
    "downlink": {"full": {"rate_bps": 8e6, "window_s": 12.0, "size_px": 1024, "latency_ms": 1290.0},
                 "quick": {"rate_bps": 2e6, "window_s": 4.0, "size_px": 256, "latency_ms": 200.0}},
    "reencode": {"full": {"size_px": 1024, "n_frames": 8, "rate_bps": 4e6, "outage_s": 40.0, "rounds": 3},
                 "quick": {"size_px": 512, "n_frames": 4, "rate_bps": 2e6, "outage_s": 20.0, "rounds": 2}},
    "camera": {"full": {"size_px": 2048, "duration_s": 10.0},
               "quick": {"size_px": 512, "duration_s": 3.0}},
    "accounting": {"full": {"size_px": 2048, "n_frames": 60, "n_books": 500, "rounds": 5},
                   "quick": {"size_px": 512, "n_frames": 21, "n_books": 100, "rounds": 3}},
    "near_lossless": {"full": {"size_px": 2048, "n_frames": 2, "rounds": 3},
                      "quick": {"size_px": 512, "n_frames": 1, "rounds": 2}},
    "store": {"full": {"sizes": (1_000, 10_000, 100_000, 1_000_000), "rounds": 5, "calls": 20},
              "quick": {"sizes": (1_000, 10_000), "rounds": 3, "calls": 10}},
    "lander": {"full": {"duration_s": 60.0, "drain_s": 20.0},
               "quick": {"duration_s": 12.0, "drain_s": 8.0, "quick_sizes": True}},
    "store_pass": {"full": {"rate_bps": 8e6, "window_s": 12.0, "size_px": 1024, "latency_ms": 1290.0,
                            "queued": 100_000, "rounds": 2},
                   "quick": {"rate_bps": 2e6, "window_s": 4.0, "size_px": 256, "latency_ms": 200.0,
                             "queued": 10_000, "rounds": 1}},
}
BENCHES: dict[str, Callable[..., Table | list[Table]]] = {"codecs": bench_codecs, "bus": bench_bus, "imaging": bench_imaging,
                                            "chain": bench_chain, "downlink": bench_downlink,
                                            "reencode": bench_reencode, "camera": bench_camera,
                                            "accounting": accounting_table, "near_lossless": bench_near_lossless,
                                            "store": bench_store, "store_pass": bench_store_pass,
                                            "lander": bench_lander}


def _machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "numpy": np.__version__,
            "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "imagecodecs": imagecodecs.__version__}


def _section(name: str, size: str) -> tuple[dict[str, Any], bool]:
    """Run one benchmark and print it; return its JSON record and whether it went wrong."""
    print(f"\n## {name} ({size} size)\n", flush=True)
    t0 = time.perf_counter()
    watch = LoadWatch()
    try:
        result = BENCHES[name](**SIZES[name][size])
    except ChainUnavailable as exc:
        print(f"{name}: not available ({exc})")
        return {"available": False, "reason": str(exc)}, False
    except Exception as exc:  # one broken benchmark must not hide the others' figures
        print(f"{name}: failed ({type(exc).__name__}: {exc})")
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"}, True
    tables = result if isinstance(result, list) else [result]  # a benchmark may print several tables
    load = watch.done()
    for table in tables:
        if table.load is None:  # the benchmark did not watch the load itself: its whole run is the span
            table.load = load
        print(render(table) + "\n")
    print(f"({name}: {time.perf_counter() - t0:.1f} s)", flush=True)
    if len(tables) == 1:
        return {"available": True, **tables[0].to_json()}, False
    return {"available": True, **tables[0].to_json(), "more_tables": [t.to_json() for t in tables[1:]]}, False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, a fast check that everything runs")
    ap.add_argument("--only", choices=sorted(BENCHES), action="append", help="run only this one (repeatable)")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write every figure to PATH as JSON")
    args = ap.parse_args(argv)
    size = "quick" if args.quick else "full"
    names = [n for n in BENCHES if not args.only or n in args.only]
    machine = _machine()
    print("lunar-pdh benchmarks: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    record: dict[str, Any] = {"size": size, "machine": machine, "started": time.time(), "sections": {}}
    failed = False
    for name in names:
        record["sections"][name], bad = _section(name, size)
        failed = failed or bad
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))
        print(f"\nfigures written to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
