"""A scenario run as one self-contained HTML page: no scripts, no fonts, no links outside the file.

Sections (each a ``<section id=...>`` a test or a reader can find): ``summary``, ``checks``,
``timeline`` (a chart of the steps on the run's time axis, coloured by verdict, and the table of
each step's time, duration, verdict and detail), ``failures`` (per failed step the expectation,
what was seen instead and the last log lines of the processes concerned), ``telemetry`` (inline
SVG plots, drawn here, of every channel that changed; the fill, queue, bytes, angle and temperature
channels first; the rest folded; constant channels as a table), ``thumbnails`` (the ground's, as
``data:`` URIs), ``events`` and ``processes``. Pure apart from :func:`write_page`.
"""

from __future__ import annotations

import json
import os
import re
from html import escape
from pathlib import Path
from typing import Any, Sequence

from pdh.scenario.page_data import PageInputs, Series, Thumbnail

__all__ = ["PageInputs", "render_page", "write_page", "svg_plot", "svg_timeline", "featured", "render_index"]

FEATURED = re.compile(r"fill|queue|depth|backlog|bytes|angle|temp|used|free", re.I)
MAX_FEATURED = 24
MAX_OTHER = 160
_W, _H = 380, 150  # one plot
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 52, 10, 22, 22
_COLOURS = {True: "#2e7d32", False: "#c62828", None: "#9e9e9e"}

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1 .ok{color:#2e7d32} h1 .fail{color:#c62828}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:2px 6px;vertical-align:top;text-align:left}
tr.fail td{background:#fdecea} tr.skip td{color:#777}
.v-ok{color:#2e7d32;font-weight:bold} .v-fail{color:#c62828;font-weight:bold} .v-none{color:#777}
pre{background:#f6f6f6;padding:6px;overflow-x:auto;font-size:12px;max-height:30em}
.plots{display:flex;flex-wrap:wrap;gap:8px} svg.plot{border:1px solid #ddd;background:#fff}
.thumbs{display:flex;flex-wrap:wrap;gap:8px} figure{margin:0} figure img{max-width:256px;image-rendering:pixelated}
figcaption{font-size:12px;color:#555} .failure{border-left:4px solid #c62828;padding-left:8px;margin:1em 0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
"""


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _num(v: float) -> str:
    if abs(v) >= 1e6 or (0 < abs(v) < 1e-2):
        return f"{v:.3g}"
    return f"{v:.6g}" if v == int(v) else f"{v:.4g}"


def _verdict(ok: bool | None) -> str:
    return {True: '<span class="v-ok">ok</span>', False: '<span class="v-fail">FAIL</span>'}.get(
        ok, '<span class="v-none">not run</span>')  # type: ignore[arg-type]


# --- charts -------------------------------------------------------------------------------------------


def _span(report: dict[str, Any], series: Sequence[Series] = ()) -> tuple[float, float]:
    """The time axis every chart shares: from the earliest sample (or 0) to the last step or sample."""
    ts = [t for s in series for t, _ in s.points[:1]] + [0.0]
    te = [float(report.get("duration_s", 0.0))] + [s["finished_s"] for s in report["steps"]
                                                   if s.get("finished_s") is not None]
    te += [t for s in series for t, _ in s.points[-1:]]
    lo, hi = min(ts), max(te)
    return lo, hi if hi > lo else lo + 1.0


def svg_plot(s: Series, span: tuple[float, float], marks: Sequence[tuple[float, bool | None]] = ()) -> str:
    """One channel as a line (steps drawn as faint verticals, failed steps red) with its value range."""
    t_lo, t_hi = span
    vs = [v for _, v in s.points]
    v_lo, v_hi = min(vs), max(vs)
    if v_hi == v_lo:
        v_lo, v_hi = v_lo - 1.0, v_hi + 1.0
    pw, ph = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def x(t: float) -> float:
        return _PAD_L + (t - t_lo) / (t_hi - t_lo) * pw

    def y(v: float) -> float:
        return _PAD_T + (1.0 - (v - v_lo) / (v_hi - v_lo)) * ph

    parts = [f'<svg class="plot" width="{_W}" height="{_H}" '
             f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{_e(s.label)}">',
             f"<title>{_e(s.label)}: {len(s.points)} points, {_num(min(vs))} .. {_num(max(vs))}</title>",
             f'<text x="{_PAD_L}" y="14" font-size="12" font-weight="bold">{_e(s.label)}</text>',
             f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>']
    for t, ok in marks:
        if t_lo <= t <= t_hi:
            colour = "#c62828" if ok is False else "#bbb"
            parts.append(f'<line x1="{x(t):.1f}" y1="{_PAD_T}" x2="{x(t):.1f}" y2="{_PAD_T + ph}" stroke="{colour}" '
                         f'stroke-dasharray="2,3"/>')
    pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.points)
    if len(s.points) == 1:
        t, v = s.points[0]
        parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="#1565c0"/>')
    else:
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#1565c0" stroke-width="1.5"/>')
    for v, yy in ((v_hi, _PAD_T + 4), (v_lo, _PAD_T + ph)):
        parts.append(f'<text x="{_PAD_L - 4}" y="{yy:.0f}" font-size="10" text-anchor="end">{_e(_num(v))}</text>')
    for t, anchor in ((t_lo, "start"), (t_hi, "end")):
        parts.append(f'<text x="{x(t):.0f}" y="{_H - 6}" font-size="10" text-anchor="{anchor}">{t:.1f} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_timeline(report: dict[str, Any], span: tuple[float, float]) -> str:
    """Every step as a bar from its start to its end on the run's time axis, coloured by verdict."""
    steps = report["steps"]
    row, label_w, width = 16, 190, 1100
    height = _PAD_T + row * max(1, len(steps)) + _PAD_B
    t_lo, t_hi = span
    pw = width - label_w - _PAD_R

    def x(t: float) -> float:
        return label_w + (t - t_lo) / (t_hi - t_lo) * pw

    parts = [f'<svg id="timeline-chart" class="timeline" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="timeline">',
             "<title>the steps on the run's time axis</title>"]
    if t_lo < 0 <= t_hi:
        parts.append(f'<line x1="{x(0):.1f}" y1="{_PAD_T - 4}" x2="{x(0):.1f}" y2="{height - _PAD_B}" stroke="#999"/>')
    for i, s in enumerate(steps):
        yy = _PAD_T + i * row
        label = (f"{i + 1:>2}" if s["id"] == str(i + 1) else f"{i + 1:>2} {s['id']}")[:28]
        parts.append(f'<text x="4" y="{yy + 11}" font-size="11">{_e(label)}</text>')
        if s.get("started_s") is None:
            continue
        t0 = float(s["started_s"])
        t1 = float(s["finished_s"]) if s.get("finished_s") is not None else t_hi
        w = max(2.0, x(t1) - x(t0))
        parts.append(f'<rect x="{x(t0):.1f}" y="{yy + 2}" width="{w:.1f}" height="{row - 4}" '
                     f'fill="{_COLOURS[s["ok"]]}"><title>{_e(s["what"])}: {_e(s["detail"])}</title></rect>')
    for t, anchor in ((t_lo, "start"), (t_hi, "end")):
        parts.append(f'<text x="{x(t):.0f}" y="{height - 6}" font-size="10" text-anchor="{anchor}">{t:.1f} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def featured(series: Sequence[Series]) -> tuple[list[Series], list[Series], list[Series]]:
    """(channels shown first: fill, queue, bytes, angle, temperature...; the other changing ones; constants)."""
    moving = [s for s in series if not s.constant]
    first = [s for s in moving if FEATURED.search(s.channel)][:MAX_FEATURED]
    chosen = {id(s) for s in first}
    return first, [s for s in moving if id(s) not in chosen][:MAX_OTHER], [s for s in series if s.constant]


# --- sections -----------------------------------------------------------------------------------------


def _summary(p: PageInputs) -> str:
    r = p.report
    rows = [("file", r["file"]), ("output", r["out"]), ("started (UTC)", r.get("started_utc", "")),
            ("duration", f"{float(r.get('duration_s', 0)):.1f} s"),
            ("steps ok", f"{r['steps_ok']}/{len(r['steps'])}")]
    rows += [(k, v) for k, v in r.get("files", {}).items()]
    desc = f"<p>{_e(p.description)}</p>" if p.description else ""
    return ('<section id="summary">' + desc + "<table>" +
            "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table></section>")


def _checks(p: PageInputs) -> str:
    rows = "".join(f'<tr class="{"" if c["ok"] else "fail"}"><td>{_verdict(c["ok"])}</td><td>{_e(c["name"])}</td>'
                   f'<td>{_e(c.get("detail", ""))}</td></tr>' for c in p.report.get("checks", []))
    return f'<section id="checks"><h2>Runner checks</h2><table>{rows}</table></section>'


def _timeline(p: PageInputs, span: tuple[float, float]) -> str:
    head = "<tr><th>#</th><th>id</th><th>start</th><th>took</th><th>verdict</th><th>step</th><th>detail</th></tr>"
    rows = []
    for s in p.report["steps"]:
        start = "" if s.get("started_s") is None else f"{s['started_s']:.2f} s"
        took = ""
        if s.get("started_s") is not None and s.get("finished_s") is not None:
            took = f"{s['finished_s'] - s['started_s']:.2f} s"
        late = f" (late {s['late_s']:.2f} s)" if s.get("late_s", 0) >= 0.5 else ""
        cls = {True: "", False: "fail", None: "skip"}[s["ok"]]
        rows.append(f'<tr class="{cls}" id="step-{s["index"] + 1}"><td class="num">{s["index"] + 1}</td>'
                    f'<td>{_e(s["id"])}</td><td class="num">{start}{_e(late)}</td><td class="num">{took}</td>'
                    f'<td>{_verdict(s["ok"])}</td><td>{_e(s["what"])}</td><td>{_e(s["detail"])}</td></tr>')
    return ('<section id="timeline"><h2>Timeline</h2><p>Times are seconds from the start of the timeline '
            "(negative: heard while the processes started).</p>" + svg_timeline(p.report, span) +
            f'<table class="steps">{head}{"".join(rows)}</table></section>')


def _tails_html(tails: dict[str, dict[str, list[str]]]) -> str:
    out = []
    for files in tails.values():
        for name, lines in files.items():
            if lines:
                out.append(f"<h4>last lines of logs/{_e(name)}</h4><pre>{_e(chr(10).join(lines))}</pre>")
    return "".join(out)


def _failures(p: PageInputs) -> str:
    items = []
    step_tails = p.tails.get("steps", {})
    for s in p.report["steps"]:
        if s["ok"] is not False:
            continue
        seen = (f"<h4>seen</h4><pre>{_e(json.dumps(s['seen'], indent=1, default=str)[:6000])}</pre>"
                if s.get("seen") else "")
        tails = _tails_html(step_tails.get(s["index"], step_tails.get(str(s["index"]), {})))
        items.append(f'<div class="failure"><h3><a href="#step-{s["index"] + 1}">step {s["index"] + 1}</a> '
                     f'{_e(s["id"])}</h3><p><b>expected</b>: {_e(s["what"])}</p>'
                     f'<p><b>instead</b>: {_e(s["detail"])}</p>{seen}{tails or "<p>no log lines found</p>"}</div>')
    for c in p.report.get("checks", []):
        if not c["ok"]:
            items.append(f'<div class="failure"><h3>runner check {_e(c["name"])}</h3><p>{_e(c.get("detail", ""))}</p>'
                         f'{_tails_html(p.tails.get("checks", {}).get(c["name"], {}))}</div>')
    shown = any(c["name"] == "processes" and not c["ok"] for c in p.report.get("checks", []))
    exited = "" if shown else _tails_html(p.tails.get("exited", {}))  # else shown under the failed check
    if exited:
        items.append(f'<div class="failure"><h3>processes that exited</h3>{exited}</div>')
    body = "".join(items) or "<p>none: every step and check held.</p>"
    return f'<section id="failures"><h2>Failures</h2>{body}</section>'


def _telemetry(p: PageInputs, span: tuple[float, float]) -> str:
    first, other, constant = featured(p.series)
    marks = [(float(s["started_s"]), s["ok"]) for s in p.report["steps"] if s.get("started_s") is not None]
    if not p.series:
        return '<section id="telemetry"><h2>Telemetry</h2><p>no telemetry heard.</p></section>'
    html = ['<section id="telemetry"><h2>Telemetry</h2><p>Every numeric channel the processes published on '
            "<code>tlm.*</code>; dashed lines are step starts (red: a failed step).</p>"]
    if first:
        html.append('<div class="plots">' + "".join(svg_plot(s, span, marks) for s in first) + "</div>")
    if other:
        html.append(f"<details><summary>{len(other)} other changing channels</summary>"
                    '<div class="plots">' + "".join(svg_plot(s, span, marks) for s in other) + "</div></details>")
    if constant:
        rows = "".join(f"<tr><td>{_e(s.process)}</td><td>{_e(s.channel)}</td><td class=\"num\">"
                       f"{_e(_num(s.points[0][1]))}</td></tr>" for s in constant)
        html.append(f"<details><summary>{len(constant)} constant channels</summary><table>"
                    f"<tr><th>process</th><th>channel</th><th>value</th></tr>{rows}</table></details>")
    html.append("</section>")
    return "".join(html)


def _thumbnails(p: PageInputs) -> str:
    if not p.thumbnails:
        return '<section id="thumbnails"><h2>Thumbnails received</h2><p>none received at the ground.</p></section>'
    figs = "".join(f'<figure><img class="thumbnail" src="{t.data_uri}" alt="{_e(t.id)}" '
                   f'title="{_e(t.id)} {_e("x".join(map(str, t.shape)))}"><figcaption>{_e(t.id)}</figcaption></figure>'
                   for t in p.thumbnails)
    more = (f"<p>{len(p.thumbnails)} of {p.thumbnails_total} shown, spread over the run.</p>"
            if p.thumbnails_total > len(p.thumbnails) else "")
    return f'<section id="thumbnails"><h2>Thumbnails received</h2>{more}<div class="thumbs">{figs}</div></section>'


def _events(p: PageInputs) -> str:
    rows = "".join(f'<tr><td class="num">{e["t_s"]:.2f}</td><td>{_e(e["process"])}</td><td>{_e(e["name"])}</td>'
                   f'<td>{_e(e["severity"])}</td><td>{_e(json.dumps(e["fields"], default=str)[:300])}</td></tr>'
                   for e in p.events)
    note = (f"<p>the last {len(p.events)} of {p.events_total}.</p>" if p.events_total > len(p.events) else "")
    topics = "".join(f"<tr><td>{_e(t)}</td><td class=\"num\">{n}</td></tr>" for t, n in p.topics.items())
    return (f'<section id="events"><h2>Events</h2>{note}<details{" open" if p.events_total < 60 else ""}>'
            f"<summary>{p.events_total} events</summary><table><tr><th>t (s)</th><th>process</th><th>event</th>"
            f"<th>severity</th><th>fields</th></tr>{rows}</table></details>"
            f"<details><summary>messages heard per topic</summary><table>{topics}</table></details></section>")


def _processes(p: PageInputs) -> str:
    rows = "".join(f'<tr class="{"fail" if info.get("exits") else ""}"><td>{_e(n)}</td><td>{_e(info.get("kind", ""))}'
                   f'</td><td class="num">{info.get("starts", "")}</td><td>{_e(info.get("exits", []))}</td></tr>'
                   for n, info in p.report.get("processes", {}).items())
    return ('<section id="processes"><h2>Processes</h2><table><tr><th>process</th><th>kind</th><th>starts</th>'
            f"<th>exit codes</th></tr>{rows}</table></section>")


def render_page(p: PageInputs) -> str:
    r = p.report
    span = _span(r, p.series)
    verdict = '<span class="ok">PASSED</span>' if r["ok"] else '<span class="fail">FAILED</span>'
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>scenario {_e(r['scenario'])}: {'PASSED' if r['ok'] else 'FAILED'}</title>"
            f"<style>{_CSS}</style></head><body>"
            f"<h1>scenario {_e(r['scenario'])}: {verdict}</h1>"
            + _summary(p) + _checks(p) + _timeline(p, span) + _failures(p) + _telemetry(p, span)
            + _thumbnails(p) + _events(p) + _processes(p) + "</body></html>\n")


def render_index(rows: Sequence[dict[str, Any]], title: str = "scenario campaign") -> str:
    """A campaign's page: one row per scenario with its verdict and a link to its own page (relative)."""
    body = "".join(
        f'<tr class="{"" if r.get("ok") else "fail"}"><td>{_e(r["name"])}</td><td>{_verdict(r.get("ok"))}</td>'
        f'<td class="num">{_e(r.get("steps", ""))}</td><td class="num">{_e(r.get("duration", ""))}</td>'
        f'<td>{_e(r.get("note", ""))}</td><td>'
        + (f'<a href="{_e(r["html"])}">report</a>' if r.get("html") else "") + "</td></tr>" for r in rows)
    ok = all(r.get("ok") for r in rows)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}: {'PASSED' if ok else 'FAILED'}</title><style>{_CSS}</style></head><body>"
            f"<h1>{_e(title)}: {'<span class=ok>PASSED</span>' if ok else '<span class=fail>FAILED</span>'}</h1>"
            '<section id="scenarios"><table><tr><th>scenario</th><th>verdict</th><th>steps ok</th><th>time</th>'
            f"<th>note</th><th></th></tr>{body}</table></section></body></html>\n")


def write_page(path: Path, p: PageInputs | str) -> Path:
    """Write a page (atomically): a :class:`PageInputs` rendered, or ready HTML."""
    text = p if isinstance(p, str) else render_page(p)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
