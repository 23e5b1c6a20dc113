"""What a scenario run leaves for its reports: telemetry series, events, thumbnails, log tails.

The runner keeps every bus header it heard (a :class:`~pdh.scenario.expect.Recording`);
:func:`telemetry_series` turns its ``tlm.*`` messages into one numeric series per
(process, channel) and :func:`event_rows` its ``evt.*`` messages into rows. The
thumbnails are the ground's: the PNG + JSON sidecar pairs a ``ground.station`` writes
into ``OUT/<out_subdir>/``. The log tails are the last lines of ``OUT/logs/<process>.jsonl``
and ``.stderr``. Everything here is bounded (points per series, thumbnails and their bytes,
lines per tail) so a report of a night-long run stays a page a browser opens.

:func:`write_bench_reports` is the runner's one hook: after the run it writes the JUnit XML and
the HTML page beside ``scenario-report.json`` and returns their paths.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import structlog
import yaml

from pdh.scenario.expect import Record
from pdh.scenario.junit import write_junit
from pdh.scenario.page import write_page
from pdh.scenario.page_data import PageInputs, Series, Thumbnail

__all__ = ["Series", "Thumbnail", "telemetry_series", "event_rows", "find_thumbnails", "log_tail",
           "concerned_processes", "gather_log_tails", "write_bench_reports", "MAX_POINTS", "MAX_THUMBNAILS",
           "MAX_THUMBNAIL_BYTES", "MAX_THUMBNAILS_TOTAL", "TAIL_LINES", "JUNIT_FILE", "HTML_FILE"]

JUNIT_FILE = "scenario-junit.xml"
HTML_FILE = "scenario-report.html"
MAX_POINTS = 400  # per series, after min/max decimation
MAX_THUMBNAILS = 24
MAX_THUMBNAIL_BYTES = 200_000  # a larger PNG is scaled down before it is embedded
MAX_THUMBNAILS_TOTAL = 2_000_000  # all embedded thumbnails together, so the page stays light
MAX_EVENTS = 400
TAIL_LINES = 30
_TAIL_BYTES = 64 * 1024
_LINE_CHARS = 400
_FLATTEN_DEPTH = 2

log = structlog.get_logger("scenario.evidence")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _flatten(fields: dict[str, Any], prefix: str = "", depth: int = 0) -> Iterable[tuple[str, float]]:
    """Numeric leaves of a header's fields, nested maps as dotted paths (``links.relay_a.bytes``)."""
    for k, v in fields.items():
        path = f"{prefix}{k}"
        if _is_number(v):
            yield path, float(v)
        elif isinstance(v, dict) and depth < _FLATTEN_DEPTH:
            yield from _flatten(v, path + ".", depth + 1)


def _decimate(points: list[tuple[float, float]], limit: int) -> tuple[tuple[float, float], ...]:
    """At most ``limit`` points: per bucket its lowest and highest, in time order (peaks survive)."""
    if len(points) <= limit:
        return tuple(points)
    buckets = max(1, limit // 2)
    size = len(points) / buckets
    out: list[tuple[float, float]] = []
    for b in range(buckets):
        chunk = points[int(b * size):int((b + 1) * size)] or points[-1:]
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    if out[-1] != points[-1]:
        out[-1] = points[-1]
    return tuple(out)


def telemetry_series(records: Sequence[Record], t0: float, limit: int = MAX_POINTS) -> list[Series]:
    """Every numeric channel every process published on ``tlm.<process>``, in first-heard order.

    A channel of a kind other than ``health`` is named ``<kind>.<channel>`` so two kinds of one
    process never share a series."""
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in records:
        if not r.topic.startswith("tlm."):
            continue
        process = r.topic[4:] or r.src
        prefix = "" if r.kind in ("health", "") else f"{r.kind}."
        for path, value in _flatten(r.fields):
            found.setdefault((process, prefix + path), []).append((round(r.t - t0, 3), value))
    return [Series(p, c, _decimate(pts, limit)) for (p, c), pts in found.items()]


def event_rows(records: Sequence[Record], t0: float, limit: int = MAX_EVENTS) -> tuple[list[dict[str, Any]], int]:
    """The last ``limit`` events heard (time, process, name, severity, other fields) and how many there were."""
    rows = [{"t_s": round(r.t - t0, 3), "process": r.topic[4:] or r.src, "name": str(r.fields.get("name", "?")),
             "severity": str(r.fields.get("severity", "")),
             "fields": {k: v for k, v in r.fields.items() if k not in ("name", "severity")
                        and not isinstance(v, (bytes, bytearray))}}
            for r in records if r.topic.startswith("evt.")]
    return rows[-limit:], len(rows)


def topic_counts(records: Sequence[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.topic] = counts.get(r.topic, 0) + 1
    return dict(sorted(counts.items()))


# --- thumbnails -------------------------------------------------------------------------------------


def _ground_dirs(out: Path) -> list[Path]:
    """``OUT/<out_subdir>`` of every ground station in the run's effective config."""
    try:
        raw = yaml.safe_load((out / "scenario-config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    procs = raw.get("processes") if isinstance(raw, dict) else None
    if not isinstance(procs, dict):
        return []
    dirs = [out / str(p.get("out_subdir", "ground")) for p in procs.values()
            if isinstance(p, dict) and p.get("kind") == "ground.station"]
    return list(dict.fromkeys(dirs))


def _png_data_uri(png: Path, max_bytes: int) -> tuple[str, tuple[int, ...]] | None:
    """The PNG as a data: URI, scaled down (and made 8-bit) until it fits ``max_bytes``; None if unreadable."""
    import cv2  # the tools' dependency; imported here so a report without thumbnails never needs it
    import numpy as np

    data = png.read_bytes()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    shape = tuple(int(x) for x in img.shape)
    if len(data) > max_bytes:
        if img.dtype != np.uint8:
            img = (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else cv2.convertScaleAbs(img)
        while len(data) > max_bytes and min(img.shape[:2]) > 16:
            img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
            ok, enc = cv2.imencode(".png", img)
            if not ok:
                return None
            data = enc.tobytes()
        if len(data) > max_bytes:
            return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), shape


def _spread(items: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` items evenly spread over the list, first and last included (the whole run shows)."""
    if len(items) <= limit:
        return items
    if limit <= 1:
        return items[:limit]
    step = (len(items) - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]


def find_thumbnails(out: Path, limit: int = MAX_THUMBNAILS, max_bytes: int = MAX_THUMBNAIL_BYTES,
                    dirs: Sequence[Path] | None = None) -> tuple[list[Thumbnail], int]:
    """The thumbnails the ground wrote (sidecar ``kind: thumbnail`` beside its PNG, named by the sidecar's
    ``file`` when it has one), oldest first; at most ``limit`` of them (spread over the run) embedded, within
    ``max_bytes`` each and :data:`MAX_THUMBNAILS_TOTAL` in all; and how many there were."""
    found: list[tuple[float, Path, dict[str, Any]]] = []
    for d in (dirs if dirs is not None else _ground_dirs(out)):
        for side in d.glob("*.json") if d.is_dir() else ():
            try:
                meta = json.loads(side.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(meta, dict) or meta.get("kind") != "thumbnail":
                continue
            png = side.with_name(Path(str(meta.get("file") or side.with_suffix(".png").name)).name)  # its own dir
            if png.suffix == ".png" and png.is_file():
                found.append((png.stat().st_mtime, png, meta))
    found.sort(key=lambda x: (x[0], x[1].name))
    thumbs: list[Thumbnail] = []
    budget = MAX_THUMBNAILS_TOTAL
    for _, png, meta in _spread(found, limit):
        if budget <= 0:
            break
        got = _png_data_uri(png, min(max_bytes, budget))
        if got is not None:
            budget -= len(got[0])
            thumbs.append(Thumbnail(str(meta.get("id", png.stem)), str(meta.get("camera", "")), meta.get("counter"),
                                    got[0], got[1]))
    return thumbs, len(found)


# --- log tails ----------------------------------------------------------------------------------------


def _readable(line: str) -> str:
    """A structlog JSON line as ``time level event k=v ...``; any other line as it is."""
    try:
        d = json.loads(line)
    except ValueError:
        d = None
    if isinstance(d, dict) and "event" in d:
        head = " ".join(str(d.pop(k, "")) for k in ("timestamp", "level", "event"))
        line = head + "".join(f" {k}={json.dumps(v, default=str)}" for k, v in d.items())
    return line if len(line) <= _LINE_CHARS else line[:_LINE_CHARS] + "..."


def log_tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a log file, read from its end only (a log can be large)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    got = [ln for ln in text.splitlines() if ln.strip()]
    if size > _TAIL_BYTES and got:
        got = got[1:]  # the first line read is probably cut
    return [_readable(ln) for ln in got[-lines:]]


def concerned_processes(step: Any, what: str, processes: Iterable[str]) -> list[str]:
    """The processes a step is about: its action's ``process`` (or ``processes``/``target``), the process
    of an expectation's ``evt.``/``tlm.`` topic, and any process its description names."""
    known = list(processes)
    names: list[str] = []
    action = getattr(step, "action", None)
    for attr in ("process", "target", "processes"):
        v = getattr(action, attr, None)
        for n in ([v] if isinstance(v, str) else v if isinstance(v, (list, tuple)) else []):
            if n in known and n not in names:
                names.append(n)
    cond = getattr(action, "condition", None)
    topic = getattr(cond, "topic", "")
    if "." in topic and topic.split(".", 1)[1] in known and topic.split(".", 1)[1] not in names:
        names.append(topic.split(".", 1)[1])
    for n in known:
        if n not in names and re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", what):
            names.append(n)
    return names[:4]


def _tails(out: Path, names: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    logs = out / "logs"
    return {n: {f"{n}.jsonl": log_tail(logs / f"{n}.jsonl"), f"{n}.stderr": log_tail(logs / f"{n}.stderr", 15)}
            for n in names}


def gather_log_tails(report: dict[str, Any], out: Path, steps: Sequence[Any] = ()) -> dict[str, Any]:
    """Log tails for what failed: per failed step (by index) its concerned processes; per failed runner check
    the processes its detail names; and every process that exited during the run."""
    processes = list(report.get("processes", {}))
    by_index = {getattr(s, "index", i): s for i, s in enumerate(steps)}
    per_step: dict[int, dict[str, dict[str, list[str]]]] = {}
    for s in report["steps"]:
        if s["ok"] is False:
            names = concerned_processes(by_index.get(s["index"]), s["what"] + " " + s["detail"], processes)
            per_step[s["index"]] = _tails(out, names)
    per_check: dict[str, dict[str, dict[str, list[str]]]] = {}
    for c in report.get("checks", []):
        if not c["ok"]:
            per_check[c["name"]] = _tails(out, concerned_processes(None, c["detail"], processes))
    exited = [n for n, p in report.get("processes", {}).items() if p.get("exits")]
    return {"steps": per_step, "checks": per_check, "exited": _tails(out, exited)}


# --- the hook -----------------------------------------------------------------------------------------


def write_bench_reports(scenario: Any, out: Path, report: dict[str, Any], records: Sequence[Record],
                        t0: float) -> dict[str, str]:
    """Write ``OUT/scenario-junit.xml`` and ``OUT/scenario-report.html`` for a finished run; return their paths.

    Called by the runner once the processes are down. A report that cannot be written is logged and left out
    (the run's verdict and its JSON report never depend on it)."""
    out = Path(out)
    written: dict[str, str] = {}
    try:
        write_junit(out / JUNIT_FILE, [report], tails=gather_log_tails(report, out, getattr(scenario, "steps", ())))
        written["junit"] = str(out / JUNIT_FILE)
    except (OSError, ValueError) as exc:
        log.error("junit_not_written", out=str(out), reason=str(exc))
    try:
        write_page(out / HTML_FILE, page_inputs(scenario, out, report, records, t0))
        written["html"] = str(out / HTML_FILE)
    except (OSError, ValueError) as exc:
        log.error("html_not_written", out=str(out), reason=str(exc))
    return written


def page_inputs(scenario: Any, out: Path, report: dict[str, Any], records: Sequence[Record],
                t0: float) -> PageInputs:
    """Everything the HTML page shows, gathered from the run's recording and output directory."""
    events, n_events = event_rows(records, t0)
    thumbs, n_thumbs = find_thumbnails(out)
    return PageInputs(report=report, series=telemetry_series(records, t0), events=events, events_total=n_events,
                      topics=topic_counts(records), thumbnails=thumbs, thumbnails_total=n_thumbs,
                      tails=gather_log_tails(report, out, getattr(scenario, "steps", ())),
                      description=str(getattr(scenario, "description", "") or ""))
