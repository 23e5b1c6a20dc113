"""The imaging core, per stage and whole, on the nav camera and the colour camera profiles.

Per-stage milliseconds (validate, grade, thumbnail, lossless, lossy) run the
project's own functions on one thread. Every figure is the median and min-max of
several rounds, with the machine's load at start and end. Whole-core frames/s runs the real
:class:`~fsw.imaging.processor.FrameProcessor` in a child process pinned to 1
and then 2 cores (``os.sched_setaffinity``) with as many lossless workers.
Baselines in the same run: the best stock lossless codec (JPEG XL effort 7)
measured alone for bits/pixel, and the capture codec measured alone for the
overhead (everything the core does besides encoding and verifying).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time
from typing import Any

import cv2
import numpy as np

from benchmarks.figures import Column, LoadWatch, Table, ratio, spread, timed_rounds
from benchmarks.frames import frame_maker

__all__ = ["bench_imaging", "PROFILES"]

PROFILES = {
    "navcam 2048x2048 12-bit mono": {"width": 2048, "height": 2048, "bit_depth": 12, "pattern": "mono"},
    "context 1920x1080 8-bit RGGB": {"width": 1920, "height": 1080, "bit_depth": 8, "pattern": "RGGB"},
}
CAPTURE = {"codec": "jpegxl", "params": {"effort": 1}}
BEST = {"codec": "jpegxl", "params": {"effort": 7}}


def _frames(profile: dict[str, Any], n: int, scale: float) -> list[np.ndarray]:
    w, h = max(64, int(profile["width"] * scale)) & ~1, max(64, int(profile["height"] * scale)) & ~1
    make, _ = frame_maker(w, h, 12)
    out = []
    for i in range(n):
        px = make(i)
        if profile["pattern"] != "mono":
            # A colour scene from the mono one: warm regolith tint, then an RGGB mosaic at 8 bits.
            mono = (px >> 4).astype(np.float32)
            bgr = np.stack([mono * 0.85, mono * 0.95, mono * 1.05], axis=-1)
            mosaic = np.empty(mono.shape, np.float32)
            mosaic[0::2, 0::2] = bgr[0::2, 0::2, 2]
            mosaic[0::2, 1::2] = bgr[0::2, 1::2, 1]
            mosaic[1::2, 0::2] = bgr[1::2, 0::2, 1]
            mosaic[1::2, 1::2] = bgr[1::2, 1::2, 0]
            px = np.clip(np.round(mosaic), 0, 255).astype(np.uint8)
        elif profile["bit_depth"] != 12:
            px = (px >> (12 - profile["bit_depth"])).astype(px.dtype)
        out.append(px)
    return out


def _frame(px: np.ndarray, profile: dict[str, Any], counter: int) -> Any:
    from fsw.imaging.frame import Frame
    from framework.crc import pixels_crc32c

    return Frame("bench", counter, px, profile["bit_depth"], profile["pattern"], 1000, 1.0, -20.0, time.time(),
                 pixels_crc32c(px))


def _message(px: np.ndarray, profile: dict[str, Any], counter: int) -> Any:
    """A frame as the driver publishes it (pixels inline)."""
    from framework.bus.message import Header, Message
    from framework.crc import pixels_crc32c

    fields = dict(camera="bench", counter=counter, shape=list(px.shape), dtype=px.dtype.name,
                  bit_depth=profile["bit_depth"], pattern=profile["pattern"], exposure_us=1000, gain=1.0,
                  temp_c=-20.0, t_capture=0.0, crc32c=pixels_crc32c(px))
    return Message("frame.bench", Header("b", counter, 0.0, "frame", fields), [px.tobytes()])


def _stages(frames: list[np.ndarray], profile: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """Each stage's milliseconds, once per round (after one untimed call that warms it)."""
    from fsw.imaging.codecs import decode_pixels, encode_pixels
    from fsw.imaging.frame import frame_from_message
    from fsw.imaging.grades import frame_blocks, grade_frame, grade_frame_and_blocks
    from fsw.imaging.pipeline import make_lossless, make_lossy, make_thumbnail

    px = frames[-1]
    prev = frames[0]
    f = _frame(px, profile, 1)
    msg = _message(px, profile, 1)
    prev = frame_blocks(prev, profile["pattern"])
    g, blocks = grade_frame_and_blocks(px, profile["bit_depth"], profile["pattern"], prev)
    lossless_bytes = len(make_lossless(f, CAPTURE["codec"], g, CAPTURE["params"]).payload)
    params = {"bit_depth": profile["bit_depth"], **CAPTURE["params"]}
    payload = encode_pixels(CAPTURE["codec"], px, params)
    stages: dict[str, Any] = {
        "validate": lambda: frame_from_message(msg),
        "grade": lambda: grade_frame(px, profile["bit_depth"], profile["pattern"], prev),
        "thumbnail": lambda: make_thumbnail(f, 256, g, blocks),
        "lossless (encode+verify)": lambda: make_lossless(f, CAPTURE["codec"], g, CAPTURE["params"]),
        "capture codec alone": lambda: encode_pixels(CAPTURE["codec"], px, params),
    }
    for threads in (1, 2):  # the verify decode; the core gives it the cores no other encoding is using
        stages[f"verify decode, {threads} thread{'s' if threads > 1 else ''}"] = (
            lambda t=threads: decode_pixels(CAPTURE["codec"], payload, px.shape, px.dtype.name, params | {"threads": t}))
    stages["lossy (budget = lossless/8)"] = lambda: make_lossy(f, lossless_bytes // 8, g)
    ms: dict[str, list[float]] = {}
    for name, fn in stages.items():
        fn()  # warm-up
        ms[name] = [t * 1000 for t in timed_rounds(fn, rounds)[0]]
    return ms


def _messages(profile: dict[str, Any], scale: float) -> list[Any]:
    """Four frames as the driver publishes them: the whole core starts from these."""
    return [_message(px, profile, i) for i, px in enumerate(_frames(profile, 4, scale))]


def _core_child(profile: dict[str, Any], scale: float, n_frames: int, cores: int, q: Any, mode: str) -> None:
    """Child process pinned to ``cores`` CPUs. ``mode`` "core": validate every frame message and push it
    through a FrameProcessor; "codec": only encode and decode the same frames with the capture codec, in
    the same order, on the same cores (the baseline the overhead is measured against)."""
    try:
        os.sched_setaffinity(0, set(range(cores)))
    except (AttributeError, OSError):
        pass
    cv2.setNumThreads(cores)
    import pdh.topology  # noqa: F401 - registers the process kinds the config names
    from framework.config import validate_config
    from fsw.imaging.codecs import decode_pixels, encode_pixels
    from fsw.imaging.frame import frame_from_message
    from fsw.imaging.processor import FrameProcessor

    messages = _messages(profile, scale)
    if mode == "codec":
        frames = [frame_from_message(m).pixels for m in messages]
        params = {"bit_depth": profile["bit_depth"], **CAPTURE["params"]}
        for px in frames:  # warm up
            decode_pixels(CAPTURE["codec"], encode_pixels(CAPTURE["codec"], px, params), px.shape, px.dtype.name,
                          params)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n_frames):
            px = frames[i % len(frames)]
            payload = encode_pixels(CAPTURE["codec"], px, params)
            decode_pixels(CAPTURE["codec"], payload, px.shape, px.dtype.name, params)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        q.put({"fps": n_frames / wall, "wall_s": wall, "cpu_ms_per_frame": 1000 * cpu / n_frames})
        return
    raw = {"version": 1, "endpoints": {"a": "tcp://127.0.0.1:1", "b": "tcp://127.0.0.1:2", "c": "tcp://127.0.0.1:3",
                                       "d": "tcp://127.0.0.1:4"},
           "processes": {"imaging": {"kind": "fsw.imaging", "cameras": ["bench"], "workers": cores,
                                     "queue_max": n_frames + 1, "lossless_codec": CAPTURE["codec"],
                                     "lossless_params": CAPTURE["params"],
                                     "endpoints": {"bus_pub": "a", "bus_sub": "b", "products": "c", "command": "d"}}}}
    settings = validate_config(raw).processes["imaging"]
    # Keep each product's kind and sizes only: the real core hands products on and lets them go, and
    # holding 40 payloads here would make every later allocation fault in fresh pages.
    products: list[tuple[str, int, int]] = []
    proc = FrameProcessor(settings, lambda p: products.append((p.kind, len(p.payload), int(np.prod(p.shape)))),
                          lambda n, f: None)
    for m in messages:  # warm up the pool, the codecs and the change grade
        proc.accept(frame_from_message(m))
    while proc.busy():
        proc.step()
        proc.wait(1.0)
    products.clear()
    t0 = time.perf_counter()
    c0 = time.process_time()
    for i in range(n_frames):
        proc.accept(frame_from_message(messages[i % len(messages)]))
    while proc.busy():
        proc.step()
        proc.wait(1.0)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    proc.close()
    full = [(size, px) for kind, size, px in products if kind == "full"]
    bpp = 8 * sum(size for size, _ in full) / sum(px for _, px in full)
    q.put({"fps": n_frames / wall, "wall_s": wall, "cpu_ms_per_frame": 1000 * cpu / n_frames, "full": len(full),
           "bpp": bpp})


def _whole_core(profile: dict[str, Any], scale: float, n_frames: int, cores: int, mode: str = "core") -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_core_child, args=(profile, scale, n_frames, cores, q, mode))
    p.start()
    try:
        return q.get(timeout=600)
    finally:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()


def _row(profile: str, what: str, values: list[float], unit: str, base: float | None) -> dict[str, Any]:
    sp = spread(values)
    return {"profile": profile, "what": what, "vs_base": ratio(sp["median"], base), "value": sp["median"],
            "min": sp["min"], "max": sp["max"], "unit": unit, "baseline": base}


def _whole_core_rounds(profile: dict[str, Any], scale: float, n_frames: int, rounds: int
                       ) -> dict[str, list[dict[str, Any]]]:
    """Codec alone on 1 core, whole core on 1 and on 2 cores, in turn, ``rounds`` times (a slow moment of the
    machine lands on all three alike)."""
    runs: dict[str, list[dict[str, Any]]] = {"alone": [], "1": [], "2": []}
    for _ in range(max(1, rounds)):
        runs["alone"].append(_whole_core(profile, scale, n_frames, 1, mode="codec"))
        runs["1"].append(_whole_core(profile, scale, n_frames, 1))
        runs["2"].append(_whole_core(profile, scale, n_frames, 2))
    return runs


def bench_imaging(scale: float = 1.0, n_frames: int = 20, rounds: int = 3) -> Table:
    from fsw.imaging.codecs import encode_pixels

    watch = LoadWatch()
    cols = [
        Column("profile", "profile"), Column("what", "figure"),
        Column("vs_base", "vs baseline", ".3f", is_ratio=True), Column("value", "median", ".2f"),
        Column("min", "min", ".2f"), Column("max", "max", ".2f"),
        Column("unit", "unit"), Column("baseline", "baseline value", ".2f"),
    ]
    t = Table("imaging", "Imaging core: stages, whole core on 1 and 2 cores, lossless bits/pixel",
              f"best stock lossless ({BEST['codec']} effort {BEST['params']['effort']}) and the capture codec "
              f"({CAPTURE['codec']} effort {CAPTURE['params']['effort']}), each measured alone in this run", cols)
    for name, profile in PROFILES.items():
        frames = _frames(profile, 3, scale)
        px = frames[-1]
        bits = profile["bit_depth"]
        ms = _stages(frames, profile, rounds)
        best_times, best_payload = timed_rounds(
            lambda: encode_pixels(BEST["codec"], px, {"bit_depth": bits, **BEST["params"]}), rounds)
        best_bpp = len(best_payload) * 8 / px.size
        codec_ms = statistics.median(ms["lossless (encode+verify)"])
        for stage, v in ms.items():
            t.rows.append(_row(name, f"stage: {stage}", v, "ms", codec_ms))
        runs = _whole_core_rounds(profile, scale, n_frames, rounds)
        alone_fps = [r["fps"] for r in runs["alone"]]
        alone = statistics.median(alone_fps)
        alone_ms, alone_cpu_ms = 1000 / alone, statistics.median([r["cpu_ms_per_frame"] for r in runs["alone"]])
        t.rows.append(_row(name, "capture codec alone (encode+decode), 1 core", alone_fps, "frames/s", alone))
        for cores in (1, 2):
            core = runs[str(cores)]
            fps = [r["fps"] for r in core]
            t.rows.append(_row(name, f"whole core, {cores} core(s)", fps, "frames/s", alone))
            if cores == 1:
                # overheads per round, against the median codec-alone figures
                frame_over = [max(0.0, 1000 / f - alone_ms) / (1000 / f) for f in fps]
                cpu_over = [max(0.0, r["cpu_ms_per_frame"] - alone_cpu_ms) / r["cpu_ms_per_frame"] for r in core]
                row = _row(name, "overhead (not the codec) of frame time, 1 core", [100 * o for o in frame_over],
                           "%", None)
                row.update(vs_base=statistics.median(frame_over), baseline=1000 / statistics.median(fps))
                t.rows.append(row)
                row = _row(name, "overhead (not the codec) of CPU time per frame", [100 * o for o in cpu_over],
                           "%", None)
                row.update(vs_base=statistics.median(cpu_over),
                           baseline=statistics.median([r["cpu_ms_per_frame"] for r in core]))
                t.rows.append(row)
                t.rows.append(_row(name, "capture-path lossless bits/pixel", [r["bpp"] for r in core], "bits/px",
                                   best_bpp))
        row = _row(name, "best stock codec encode time alone", [s * 1000 for s in best_times], "ms", codec_ms)
        t.rows.append(row)
    t.notes += [
        f"frames: 3 per profile at scale {scale}; colour frames are an RGGB mosaic of the lunar scene at 8 bits",
        f"every figure: median and min-max of {rounds} rounds; stages: one call a round after one untimed call, "
        "one thread",
        "whole core: a child pinned with sched_setaffinity validates each frame message (frame_from_message: "
        "CRC-32C, bit depth) and hands it to a FrameProcessor (grades, change, auto-exposure, thumbnail, "
        f"lossless encode, verify decode, compare, product), workers = cores, {n_frames} frames (4 cycled) "
        "queued at once; frames/s = frames / wall time to the last product",
        "capture codec alone: a child pinned to 1 core encodes and decodes the same frames in the same order "
        "with the capture codec and nothing else; 'whole core vs baseline' = whole-core frames/s over that; "
        "codec alone, whole core on 1 and on 2 cores run in turn each round",
        "overhead = 1 - codec-alone time / whole-core time per frame, on 1 core, per round against the median "
        "codec-alone figure: everything the core does besides the codec itself (target: under 20%)",
        "the nav camera needs 10 frames/s (42 Mpix/s); the context camera 10 frames/s",
    ]
    t.load = watch.done()
    return t
