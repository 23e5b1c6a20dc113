"""What accounting for every frame costs the capture path: ``python -m benchmarks.accounting [--quick]``.

The imaging core's books (:class:`~fsw.imaging.accounts.FrameAccounts` over a
:class:`~fsw.imaging.journal.Journal`) add, per frame: the identity check and sequence
fit, one journal record for the frame, one per product the downlink confirms, and
one write + fsync per loop turn. Measured here on the real filesystem (a directory
beside ``--dir``, default the current one), the worst case of one turn per frame:

- the bookkeeping alone, per frame (p50 and p99), and the fsync inside it;
- the capture path per frame (validate the frame message, grade, thumbnail, lossless
  encode and verify, pack each product) on one thread, without and with the books,
  in the same run, as a ratio: the baseline is the same path without accounting;
  several rounds, the median ratio and its spread, and the machine's load at start
  and end (a busy machine is marked).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.figures import Column, LoadWatch, Table, spread
from benchmarks.frames import frame_maker

__all__ = ["bench_accounting", "accounting_table", "main"]


def _settings() -> dict[str, Any]:
    import pdh.topology  # noqa: F401  (registers the kinds)
    from framework.config import validate_config

    raw = {"version": 1, "endpoints": {k: f"tcp://127.0.0.1:{i + 1}" for i, k in enumerate("abcd")},
           "processes": {"imaging": {"kind": "fsw.imaging", "cameras": ["bench"], "workers": 1, "queue_max": 4,
                                     "lossless_codec": "jpegxl", "lossless_params": {"effort": 1},
                                     "endpoints": {"bus_pub": "a", "bus_sub": "b", "products": "c", "command": "d"}}}}
    return validate_config(raw).processes["imaging"]


def _messages(size_px: int, n: int) -> list[Any]:
    from framework.bus.message import Header, Message
    from framework.crc import pixels_crc32c

    make, _ = frame_maker(size_px, size_px, 12)
    out = []
    for i in range(n):
        px = make(i)
        fields = dict(camera="bench", counter=i, shape=list(px.shape), dtype=px.dtype.name, bit_depth=12,
                      pattern="mono", exposure_us=1000, gain=1.0, temp_c=-20.0, t_capture=0.0,
                      crc32c=pixels_crc32c(px))
        out.append(Message("frame.bench", Header("drv", i, 0.0, "frame", fields), [px.tobytes()]))
    return out


def _books(journal_dir: Path) -> Any:
    from fsw.imaging.accounts import FrameAccounts
    from fsw.imaging.journal import Journal

    journal = Journal(journal_dir / "imaging.journal")
    journal.load()
    return FrameAccounts(["bench"], journal, time.monotonic), journal


def _keep(msg: Any) -> dict[str, Any]:
    from fsw.imaging.frame import FRAME_FIELDS

    return {k: msg.header.fields[k] for k in FRAME_FIELDS}


def _bookkeeping(messages: list[Any], journal_dir: Path, n: int) -> tuple[list[float], list[float]]:
    """Per frame: identity, sequence fit, the frame's record, two confirmations, one commit (fsync)."""
    from fsw.imaging.frame import frame_identity
    from fsw.imaging.product import product_id

    acc, journal = _books(journal_dir)
    total, fsync = [], []
    for i in range(n):
        msg = messages[i % len(messages)]
        t0 = time.perf_counter()
        camera, _ = frame_identity(msg, ["bench"])
        acc.arrived(camera, i)
        acc.accepted(camera, i, msg.header.src, _keep(msg))
        for kind in ("thumbnail", "full"):
            acc.stored(product_id(camera, i, kind))
        acc.commit()
        total.append((time.perf_counter() - t0) * 1e6)
        fsync.append(journal.last_commit_us)
    journal.close()
    return total, fsync


class _Capture:
    """The capture path on one thread: validate the message, grade, thumbnail, lossless encode and verify,
    pack each product; with the books (and one commit per frame) when ``journal_dir`` is given."""

    def __init__(self, journal_dir: Path | None) -> None:
        from fsw.imaging.processor import FrameProcessor

        self.books, self.journal = _books(journal_dir) if journal_dir is not None else (None, None)
        self.made: list[Any] = []
        self.proc = FrameProcessor(_settings(), self.made.append, lambda name, fields: None)
        self.commits: list[float] = []

    def frame(self, msg: Any, i: int) -> float:
        """ms for frame ``i``."""
        from fsw.imaging.frame import frame_from_message
        from fsw.imaging.product import encode_product

        t0 = time.perf_counter()
        frame = frame_from_message(msg, cameras=["bench"])
        if self.books is not None:
            self.books.arrived("bench", i)
            self.books.accepted("bench", i, msg.header.src, _keep(msg))
        self.proc.accept(frame)
        while self.proc.busy():
            self.proc.step()
            self.proc.wait(1.0)
        for p in self.made:
            encode_product(p)
            if self.books is not None:
                self.books.stored(p.id)  # as the downlink's product_stored would
        self.made.clear()
        if self.books is not None:
            self.books.commit()
            self.commits.append(self.journal.last_commit_us)
        return (time.perf_counter() - t0) * 1000

    def close(self) -> None:
        self.proc.close()
        if self.journal is not None:
            self.journal.close()


def _capture_round(plain: _Capture, booked: _Capture, messages: list[Any], first: int, n: int
                   ) -> tuple[list[float], list[float]]:
    """``n`` frames, each taken by both paths, which goes first alternating frame by frame: ms per frame."""
    base: list[float] = []
    books: list[float] = []
    for i in range(first, first + n):
        msg = messages[i % len(messages)]
        if i % 2:
            base.append(plain.frame(msg, i))
            books.append(booked.frame(msg, i))
        else:
            books.append(booked.frame(msg, i))
            base.append(plain.frame(msg, i))
    return base, books


def bench_accounting(size_px: int = 2048, n_frames: int = 60, n_books: int = 500, rounds: int = 3,
                     directory: Path | None = None) -> dict[str, Any]:
    """Bookkeeping alone (``n_books`` frames); then ``rounds`` rounds of ``n_frames // rounds`` frames (at least
    one), each frame taken by the capture path without and with the books, one after the other in alternating
    order (so load on the machine hits both alike). A round's figure is the ratio of its medians per frame; the
    result gives the median ratio over the rounds and their spread, and the load at start and end."""
    watch = LoadWatch()
    rounds = max(1, min(rounds, n_frames))
    per_round = max(1, n_frames // rounds)
    messages = _messages(size_px, 4)
    with tempfile.TemporaryDirectory(prefix="pdh-acct-", dir=directory) as tmp:
        total, fsync = _bookkeeping(messages, Path(tmp) / "books", n_books)
        plain, booked = _Capture(None), _Capture(Path(tmp) / "capture")
        for i in range(2):  # warm up the codecs and the change grade
            plain.frame(messages[i], i)
            booked.frame(messages[i], i)
        base: list[float] = []
        books: list[float] = []
        ratios: list[float] = []
        for r in range(rounds):
            b_r, w_r = _capture_round(plain, booked, messages, 2 + r * per_round, per_round)
            base += b_r
            books += w_r
            ratios.append(statistics.median(w_r) / statistics.median(b_r))
        plain.close()
        booked.close()
    b, w = statistics.median(base), statistics.median(books)
    cpu = [t - f for t, f in zip(total, fsync)]
    commits = booked.commits[2:]
    r = spread(ratios)
    return {
        "frame_px": f"{size_px}x{size_px} 12-bit mono", "frames_per_leg": per_round * rounds, "rounds": rounds,
        "books_cpu_us_p50": round(statistics.median(cpu), 1), "books_cpu_us_p99": round(_p99(cpu), 1),
        "fsync_alone_us_p50": round(statistics.median(fsync), 1), "fsync_alone_us_p99": round(_p99(fsync), 1),
        "commit_in_capture_us_p50": round(statistics.median(commits), 1),
        "commit_in_capture_us_max": round(max(commits), 1),
        "capture_ms_per_frame_p50": round(b, 3), "capture_with_books_ms_per_frame_p50": round(w, 3),
        "capture_ms_min": round(min(base), 3), "capture_ms_max": round(max(base), 3),
        "capture_with_books_ms_min": round(min(books), 3), "capture_with_books_ms_max": round(max(books), 3),
        "ratio_with_to_without": round(r["median"], 4), "ratio_min": round(r["min"], 4),
        "ratio_max": round(r["max"], 4),
        "books_share_of_capture": round((statistics.median(cpu) + statistics.median(commits)) / 1000 / b, 4),
        "load": watch.done(),
    }


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


def accounting_table(size_px: int = 2048, n_frames: int = 60, n_books: int = 500, rounds: int = 3) -> Any:
    """The same figures as a :class:`benchmarks.figures.Table`, for ``python -m benchmarks``."""
    r = bench_accounting(size_px=size_px, n_frames=n_frames, n_books=n_books, rounds=rounds)
    return Table(
        name="accounting", title=f"Accounting for every frame, {r['frame_px']} capture path",
        baseline=f"the same capture path without the books, alternating frame by frame in this run: median "
                 f"{r['capture_ms_per_frame_p50']:.2f} ms/frame",
        columns=[Column("leg", "leg"), Column("ratio", "vs without, median", ".3f", is_ratio=True),
                 Column("ratio_min", "min", ".3f"), Column("ratio_max", "max", ".3f"),
                 Column("ms", "ms/frame median", ".2f"), Column("ms_min", "min", ".2f"), Column("ms_max", "max", ".2f"),
                 Column("books_us", "books CPU us p50", ".0f"), Column("commit_us", "commit us p50", ".0f"),
                 Column("share", "books share", ".3f")],
        rows=[{"leg": "capture path with the books", "ratio": r["ratio_with_to_without"], "ratio_min": r["ratio_min"],
               "ratio_max": r["ratio_max"], "ms": r["capture_with_books_ms_per_frame_p50"],
               "ms_min": r["capture_with_books_ms_min"], "ms_max": r["capture_with_books_ms_max"],
               "books_us": r["books_cpu_us_p50"], "commit_us": r["commit_in_capture_us_p50"],
               "share": r["books_share_of_capture"]},
              {"leg": "capture path without (baseline)", "ratio": 1.0, "ms": r["capture_ms_per_frame_p50"],
               "ms_min": r["capture_ms_min"], "ms_max": r["capture_ms_max"]}],
        notes=[f"{r['rounds']} rounds, {r['frames_per_leg']} frames a leg in all; a round's ratio is its median "
               "ms/frame with the books over its median without; the ratio column gives the median of the rounds' "
               "ratios and their min-max; ms/frame: median and min-max over every frame",
               f"fsync alone p50 {r['fsync_alone_us_p50']} us, commit max {r['commit_in_capture_us_max']} us; worst "
               "case of one journal commit per frame (the core commits once per loop turn)"],
        load=r["load"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.accounting", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="512x512 frames, fewer of them")
    ap.add_argument("--dir", type=Path, default=Path.cwd(), help="where the journal is written (its filesystem)")
    a = ap.parse_args(argv)
    args = {"size_px": 512, "n_frames": 30, "n_books": 200} if a.quick else {}
    r = bench_accounting(directory=a.dir, **args)
    print("frame accounting (baseline: the same capture path without it, same run)")
    for k, v in r.items():
        print(f"  {k:34s} {v.note() if k == 'load' else v}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
