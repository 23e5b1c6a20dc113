// lunar-pdh console: plain JavaScript, no libraries, nothing fetched from elsewhere.
// State comes from /api/state, then live updates from /api/stream (server-sent events).
"use strict";

const S = { products: {}, frames: {}, telemetry: {}, channels: {}, history: {}, events: [], commands: {},
            catalog: [], requested: {}, viewer: null, charted: "ground/receive_rate_bps", tlmChosen: false,
            cursor: 0, source: null, missing: null, filter: null };
const SEV = { info: 0, warning: 1, error: 2 };
const MAX_EVENTS = 500;
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
};
const fmtT = (t) => new Date(t * 1000).toISOString().substring(11, 23);
const fmtV = (v) => typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(5)) : JSON.stringify(v);

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" },
                                            body: JSON.stringify(body) };
  const r = await fetch(path, opts);
  let data = {};
  try { data = await r.json(); } catch (e) { data = { error: `HTTP ${r.status}` }; }
  return { ok: r.ok, status: r.status, data };
}

// -- start and follow -------------------------------------------------------------------------
async function load() {
  const { data } = await api("/api/state");
  S.cursor = data.cursor;
  S.catalog = data.catalog;
  S.channels = data.channels || {};
  S.history = {};
  for (const [k, pts] of Object.entries(data.history)) S.history[k] = pts;
  S.telemetry = data.telemetry;
  S.events = data.events.slice(-MAX_EVENTS);
  S.products = {}; S.frames = {}; S.filter = null;
  $("gallery").textContent = "";
  for (const card of data.products) addProduct(card);
  for (const e of S.events) addSource(e.process);
  S.commands = {};
  for (const c of data.commands) S.commands[c.id] = c;
  buildCommandForms(data.hazardous_enabled);
  renderTelemetry(); renderEvents(); renderCommands(); renderLink(data.link); renderBadges();
  follow();
  loadMissing();
}

function follow() {
  if (S.source) S.source.close();
  const src = new EventSource(`/api/stream?cursor=${S.cursor}`);
  S.source = src;
  src.onopen = () => { $("conn").textContent = "live"; $("conn").className = "badge ok"; };
  src.onerror = () => { $("conn").textContent = "reconnecting"; $("conn").className = "badge warn"; };
  src.addEventListener("reload", () => { src.close(); load(); });
  src.onmessage = (m) => apply(JSON.parse(m.data));
}

function apply(u) {
  if (u.type === "tlm") {
    const have = S.telemetry[u.process] || (S.telemetry[u.process] = {});
    for (const [ch, e] of Object.entries(u.values)) {
      have[ch] = e;
      if (typeof e.v === "number") {
        const key = `${u.process}/${ch}`;
        const pts = S.history[key] || (S.history[key] = []);
        pts.push([e.t, e.v]);
        if (pts.length > 2000) pts.splice(0, pts.length - 2000);
      }
    }
    scheduleTelemetry(u.process);
    if (u.process === "downlink" || u.process === "ground") renderBadges();
  } else if (u.type === "evt") {
    S.events.push(u);
    if (S.events.length > MAX_EVENTS) S.events.splice(0, S.events.length - MAX_EVENTS);
    addSource(u.process);
    addEventRow(u, true);
  } else if (u.type === "product") {
    addProduct(u.card);
  } else if (u.type === "command") {
    S.commands[u.command.id] = u.command;
    renderCommand(u.command);
  }
}

// -- gallery ----------------------------------------------------------------------------------
function frameKey(card) { return `${card.camera}-${card.counter}`; }

const SHOWN_GRADES = ["score", "mean_dn", "saturated_frac", "sharpness_laplacian_var"];
function gradeText(card) {
  const g = card.grades || (typeof card.grade === "number" ? { score: card.grade } : {});
  const keys = SHOWN_GRADES.filter((k) => k in g);
  return keys.length ? keys.map((k) => `${k.split("_")[0]} ${fmtV(g[k])}`).join(" · ") : "no grades";
}
function gradeTitle(card) {
  return Object.entries(card.grades || {}).map(([k, v]) => `${k} = ${fmtV(v)}`).join("\n");
}

// The gallery's filter (camera, capture time, grade): the archive answers /api/products with it, and a
// product landing while it is set is shown only if it matches.
function cardMatches(card) {
  const f = S.filter;
  if (!f) return true;
  if (f.camera && card.camera !== f.camera) return false;
  if (f.since !== null && card.t_capture < f.since) return false;
  if (f.until !== null && card.t_capture > f.until) return false;
  if (f.min_grade !== null && !(typeof card.grade === "number" && card.grade >= f.min_grade)) return false;
  return true;
}
function addCamera(camera) {
  const sel = $("f-camera");
  if (![...sel.options].some((o) => o.value === camera)) sel.append(el("option", { value: camera, text: camera }));
}
function timeValue(id) { const v = $(id).value; return v ? new Date(v).getTime() / 1000 : null; }

async function filterGallery(clear) {
  if (clear) for (const id of ["f-camera", "f-min-grade", "f-since", "f-until"]) $(id).value = "";
  const g = $("f-min-grade").value.trim();
  const f = { camera: $("f-camera").value, since: timeValue("f-since"), until: timeValue("f-until"),
              min_grade: g === "" ? null : Number(g) };
  const q = new URLSearchParams();
  if (f.camera) q.set("camera", f.camera);
  if (f.since !== null) q.set("since", f.since);
  if (f.until !== null) q.set("until", f.until);
  if (f.min_grade !== null) q.set("min_grade", f.min_grade);
  const r = await api(`/api/products?${q}`);
  if (!r.ok) { $("f-result").textContent = `not filtered: ${r.data.error}`; return; }
  S.filter = [...q.keys()].length ? f : null;
  S.frames = {};
  $("gallery").textContent = "";
  for (const card of r.data.products) addProduct(card);
  $("f-result").textContent = S.filter ? `${r.data.products.length} products match` : "";
}
$("gallery-filter").addEventListener("submit", (e) => { e.preventDefault(); filterGallery(false); });
$("f-clear").addEventListener("click", () => filterGallery(true));

function addProduct(card) {
  S.products[card.id] = card;
  addCamera(card.camera);
  if (!cardMatches(card)) return;
  const key = frameKey(card);
  const frame = S.frames[key] || (S.frames[key] = { camera: card.camera, counter: card.counter });
  frame[card.kind] = card;
  let node = document.querySelector(`#gallery .thumb[data-frame="${CSS.escape(key)}"]`);
  if (!node) {
    node = el("div", { class: "thumb", "data-frame": key, "data-camera": card.camera, "data-counter": card.counter });
    node.addEventListener("click", () => clickFrame(key));
    $("gallery").prepend(node);
  }
  // the thumbnail if the frame has one; else the product's 8-bit preview (12/16-bit data stretched on the server:
  // a browser would draw a 16-bit PNG by its high byte, nearly black)
  const shown = frame.thumbnail || frame.full || card;
  node.textContent = "";
  node.append(el("img", { src: shown.preview || shown.image, alt: shown.id, loading: "lazy" }),
              el("div", { class: "cap", text: `${card.camera} #${card.counter} ${frame.thumbnail ? "thumbnail" : shown.kind}` }),
              el("div", { class: "grade", text: gradeText(frame.thumbnail || shown), title: gradeTitle(frame.thumbnail || shown) }));
  if (frame.thumbnail) node.dataset.thumbnail = frame.thumbnail.id;
  if (frame.full) {
    node.classList.add("has-full");
    node.dataset.full = frame.full.id;
    node.append(el("div", { class: "full-link", text: "full frame ▸ open" }));
    if (S.requested[key] && !S.requested[key].opened) { S.requested[key].opened = true; openViewer(frame.full); }
  } else if (S.requested[key]) {
    node.classList.add("requested");
    node.append(el("div", { class: "cap req", text: `requested (command ${S.requested[key].id})` }));
  }
  for (const kind of ["roi", "lossy", "preview"]) {
    if (frame[kind]) node.append(el("div", { class: "cap", text: `+ ${kind}` }));
  }
}

async function clickFrame(key) {
  const frame = S.frames[key];
  if (frame.full) { openViewer(frame.full); return; }
  const r = await api("/api/request", { camera: frame.camera, counter: frame.counter });
  if (!r.ok) { alert(`request refused: ${r.data.error}`); return; }
  S.requested[key] = { id: r.data.id, opened: false };
  addProduct(frame.thumbnail || Object.values(frame).find((v) => v && v.id));
}

// -- full-frame viewer ------------------------------------------------------------------------
async function openViewer(card) {
  $("viewer-title").textContent = `${card.id} (${card.bit_depth}-bit, CRC-32C ${card.crc32c})`;
  const r = await fetch(`/api/products/${encodeURIComponent(card.id)}/pixels`);
  if (!r.ok) { $("viewer-title").textContent = `${card.id}: no pixels`; return; }
  const buf = await r.arrayBuffer();
  const w = +r.headers.get("X-Width"), h = +r.headers.get("X-Height");
  const bpp = +r.headers.get("X-Bytes-Per-Pixel"), depth = +r.headers.get("X-Bit-Depth");
  const px = bpp === 2 ? new Uint16Array(buf) : new Uint8Array(buf);
  S.viewer = { card, w, h, px, depth };
  const max = (1 << depth) - 1;
  for (const id of ["stretch-low", "stretch-high"]) $(id).max = String(max);
  autoStretch();
  $("viewer-panel").dataset.open = card.id;
  $("viewer-crc").textContent = `${buf.byteLength} bytes received`;
}

function autoStretch() {
  const v = S.viewer; if (!v) return;
  const max = (1 << v.depth) - 1, hist = new Uint32Array(max + 1);
  for (let i = 0; i < v.px.length; i++) hist[Math.min(v.px[i], max)]++;
  const lo = v.px.length * 0.005, hi = v.px.length * 0.995;
  let acc = 0, low = 0, high = max;
  for (let i = 0; i <= max; i++) { acc += hist[i]; if (acc <= lo) low = i; if (acc < hi) high = i + 1; }
  $("stretch-low").value = String(low); $("stretch-high").value = String(Math.max(high, low + 1));
  drawViewer();
}

function drawViewer() {
  const v = S.viewer; if (!v) return;
  const canvas = $("viewer"); canvas.width = v.w; canvas.height = v.h;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(v.w, v.h);
  const lo = +$("stretch-low").value, hi = Math.max(+$("stretch-high").value, lo + 1), k = 255 / (hi - lo);
  for (let i = 0, j = 0; i < v.px.length; i++, j += 4) {
    const g = Math.max(0, Math.min(255, (v.px[i] - lo) * k));
    img.data[j] = img.data[j + 1] = img.data[j + 2] = g; img.data[j + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  canvas.style.width = v.w > 1000 ? "100%" : `${v.w}px`;
}

function canvasXY(ev) {
  const c = $("viewer"), r = c.getBoundingClientRect();
  return [Math.floor((ev.clientX - r.left) * c.width / r.width), Math.floor((ev.clientY - r.top) * c.height / r.height)];
}

let drag = null;
$("viewer").addEventListener("mousemove", (ev) => {
  const v = S.viewer; if (!v) return;
  const [x, y] = canvasXY(ev);
  if (x < 0 || y < 0 || x >= v.w || y >= v.h) return;
  $("pixel-value").textContent = `x ${x} y ${y} value ${v.px[y * v.w + x]} DN`;
});
$("viewer").addEventListener("mousedown", (ev) => { if (ev.shiftKey && S.viewer) drag = canvasXY(ev); });
$("viewer").addEventListener("mouseup", async (ev) => {
  if (!drag || !S.viewer) return;
  const [x1, y1] = canvasXY(ev), [x0, y0] = drag; drag = null;
  const region = [Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0) + 1, Math.abs(y1 - y0) + 1];
  const c = S.viewer.card;
  const r = await api("/api/request", { camera: c.camera, counter: c.counter, region });
  $("viewer-crc").textContent = r.ok ? `region ${region.join(",")} requested (command ${r.data.id})` : `refused: ${r.data.error}`;
});
$("stretch-low").addEventListener("input", drawViewer);
$("stretch-high").addEventListener("input", drawViewer);
$("stretch-auto").addEventListener("click", autoStretch);

// -- telemetry --------------------------------------------------------------------------------
let tlmPending = false;
function scheduleTelemetry(process) {
  const shown = $("tlm-process").value, charted = (S.charted || "").split("/")[0];
  const known = [...$("tlm-process").options].some((o) => o.value === process);
  if (known && shown && process !== shown && process !== charted) return;
  if (tlmPending) return;
  tlmPending = true;
  requestAnimationFrame(() => { tlmPending = false; renderTelemetry(); });
}

function renderTelemetry() {
  const sel = $("tlm-process"), current = sel.value;
  const names = Object.keys(S.telemetry).sort();
  if (sel.options.length !== names.length) {
    sel.textContent = "";
    for (const n of names) sel.append(el("option", { value: n, text: n }));
    const preferred = names.includes("downlink") ? "downlink" : names.includes("ground") ? "ground" : names[0] || "";
    sel.value = S.tlmChosen && names.includes(current) ? current : preferred;
  }
  const p = sel.value, body = $("tlm").tBodies[0];
  body.textContent = "";
  const specs = S.channels[p] || {};
  for (const [ch, e] of Object.entries(S.telemetry[p] || {}).sort()) {
    const spec = specs[ch] || {};
    const lim = [spec.low, spec.high].some((x) => x !== null && x !== undefined)
      ? `${spec.low ?? "–"} … ${spec.high ?? "–"}` : "";
    const tr = el("tr", { class: e.limit ? `limit-${e.limit}` : "", "data-channel": ch },
                  el("td", { text: ch }), el("td", { class: "v", text: fmtV(e.v) }),
                  el("td", { text: spec.unit || "" }), el("td", { text: lim }));
    if (S.charted === `${p}/${ch}`) tr.classList.add("charted");
    tr.addEventListener("click", () => chartChannel(p, ch));
    body.append(tr);
  }
  drawChart();
}
$("tlm-process").addEventListener("change", () => { S.tlmChosen = true; renderTelemetry(); });

// A chart starts from the channel's history (the lander's from the archive, the ground's own from the console's
// memory); live samples are appended as they come.
async function chartChannel(p, ch) {
  const key = `${p}/${ch}`;
  S.charted = key; renderTelemetry();
  const r = await api(`/api/history?${new URLSearchParams({ process: p, channel: ch })}`);
  if (!r.ok || S.charted !== key) return;
  const live = (S.history[key] || []).filter(([t]) => !r.data.points.length || t > r.data.points[r.data.points.length - 1][0]);
  S.history[key] = r.data.points.concat(live);
  drawChart();
}

function drawChart() {
  const c = $("chart"), ctx = c.getContext("2d");
  c.width = c.clientWidth || 560;
  ctx.fillStyle = "#0b0d0f"; ctx.fillRect(0, 0, c.width, c.height);
  const key = S.charted, pts = key ? (S.history[key] || []) : [];
  $("chart-title").textContent = key ? `${key} (${pts.length} samples)` : "click a channel to chart it";
  if (pts.length < 2) return;
  const [p, ch] = key.split("/"), spec = (S.channels[p] || {})[ch] || {};
  let t0 = pts[0][0], t1 = pts[pts.length - 1][0], lo = Infinity, hi = -Infinity;
  for (const [, v] of pts) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  for (const l of [spec.low, spec.high]) if (typeof l === "number") { lo = Math.min(lo, l); hi = Math.max(hi, l); }
  if (hi === lo) { hi += 1; lo -= 1; }
  if (t1 === t0) t1 = t0 + 1;
  const X = (t) => 40 + (t - t0) / (t1 - t0) * (c.width - 50), Y = (v) => c.height - 15 - (v - lo) / (hi - lo) * (c.height - 25);
  ctx.strokeStyle = "#d64545"; ctx.setLineDash([4, 3]);
  for (const l of [spec.low, spec.high]) if (typeof l === "number") { ctx.beginPath(); ctx.moveTo(40, Y(l)); ctx.lineTo(c.width - 10, Y(l)); ctx.stroke(); }
  ctx.setLineDash([]); ctx.strokeStyle = "#4a90d9"; ctx.beginPath();
  pts.forEach(([t, v], i) => (i ? ctx.lineTo(X(t), Y(v)) : ctx.moveTo(X(t), Y(v))));
  ctx.stroke();
  ctx.fillStyle = "#8a949e"; ctx.font = "10px sans-serif";
  ctx.fillText(fmtV(hi), 2, 12); ctx.fillText(fmtV(lo), 2, c.height - 15);
  ctx.fillText(fmtT(t0), 40, c.height - 2); ctx.fillText(fmtT(t1), c.width - 80, c.height - 2);
}

// -- events -----------------------------------------------------------------------------------
function eventVisible(e) {
  const src = $("event-source").value;
  return (SEV[e.severity] ?? 1) >= SEV[$("event-severity").value] && (!src || e.process === src);
}
function addSource(process) {
  const sel = $("event-source");
  if (process && ![...sel.options].some((o) => o.value === process)) sel.append(el("option", { value: process, text: process }));
}
// A filter asks the archive again (the page keeps only the newest events; the archive has them all).
async function reloadEvents() {
  const q = new URLSearchParams({ min_severity: $("event-severity").value });
  if ($("event-source").value) q.set("source", $("event-source").value);
  const r = await api(`/api/events?${q}`);
  if (r.ok) S.events = r.data.events;
  renderEvents();
}
function addEventRow(e, newest) {
  if (!eventVisible(e)) return;
  const fields = Object.entries(e.fields || {}).map(([k, v]) => `${k}=${fmtV(v)}`).join(" ");
  const li = el("li", { class: `sev-${e.severity}`, "data-severity": e.severity,
                        text: `${fmtT(e.t)} ${e.severity.padEnd(7)} ${e.origin === "lander" ? "lander:" : ""}${e.process} ${e.name} ${fields}` });
  const list = $("events");
  if (newest) list.prepend(li); else list.append(li);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}
function renderEvents() {
  $("events").textContent = "";
  for (let i = S.events.length - 1; i >= 0; i--) addEventRow(S.events[i], false);
}
$("event-severity").addEventListener("change", reloadEvents);
$("event-source").addEventListener("change", reloadEvents);

// -- commands ---------------------------------------------------------------------------------
function argInput(a, prefix) {
  let input;
  if (a.type === "bool") input = el("input", { type: "checkbox" });
  else if (a.choices && a.choices.length) {
    input = el("select");
    if (!a.required) input.append(el("option", { value: "", text: "(none)" }));
    for (const c of a.choices) input.append(el("option", { value: JSON.stringify(c), text: String(c) }));
  } else if (a.type === "int" || a.type === "float") {
    input = el("input", { type: "number", step: a.type === "int" ? "1" : "any" });
    if (a.min !== null) input.min = a.min; if (a.max !== null) input.max = a.max;
  } else input = el("input", { type: "text", placeholder: a.type === "list" ? "JSON list, e.g. [0, 0, 64, 64]" : "" });
  input.name = a.name; input.id = `${prefix}-${a.name}`; input.dataset.type = a.type;
  const range = [a.min, a.max].some((x) => x !== null) ? ` [${a.min ?? "–"}, ${a.max ?? "–"}]` : "";
  return el("label", { text: `${a.name} (${a.type}${range}${a.unit ? " " + a.unit : ""}${a.required ? "" : ", optional"}) ` }, input);
}

// The page's check of one argument (the desk and the ground check again): [value, error] or [undefined] if absent.
function argValue(a, input) {
  const raw = input.type === "checkbox" ? input.checked : input.value.trim();
  if (a.type === "bool") return [raw];
  if (raw === "") return a.required ? [undefined, `${a.name} is required`] : [undefined];
  let v = raw;
  if (a.choices && a.choices.length) return [JSON.parse(raw)];
  if (a.type === "int" || a.type === "float") {
    v = Number(raw);
    if (!Number.isFinite(v)) return [undefined, `${a.name} must be a number`];
    if (a.type === "int" && !Number.isInteger(v)) return [undefined, `${a.name} must be an integer`];
    if (a.min !== null && v < a.min) return [undefined, `${a.name}=${v} is below ${a.min}`];
    if (a.max !== null && v > a.max) return [undefined, `${a.name}=${v} is above ${a.max}`];
  } else if (a.type === "list") {
    try { v = JSON.parse(raw); } catch (e) { return [undefined, `${a.name} must be a JSON list`]; }
    if (!Array.isArray(v)) return [undefined, `${a.name} must be a list`];
  }
  return [v];
}

function collectArgs(spec, form) {
  const args = {}, errors = [];
  for (const a of spec.args) {
    const input = form.querySelector(`[name="${a.name}"]`);
    const [v, err] = argValue(a, input);
    input.classList.toggle("invalid", !!err);
    if (err) errors.push(err); else if (v !== undefined) args[a.name] = v;
  }
  return [args, errors];
}

function specOf(target, cmd) {
  const p = S.catalog.find((x) => x.process === target);
  return p && p.commands.find((c) => c.name === cmd);
}

function fillSelect(sel, values) {
  const cur = sel.value; sel.textContent = "";
  for (const v of values) sel.append(el("option", { value: v, text: v }));
  if (values.includes(cur)) sel.value = cur;
}

function buildCommandForms(hazardousEnabled) {
  fillSelect($("cmd-target"), S.catalog.map((p) => p.process));
  const hz = S.catalog.filter((p) => p.commands.some((c) => c.hazardous)).map((p) => p.process);
  fillSelect($("hz-target"), hz);
  onTarget(); onHzTarget();
  $("hz-result").textContent = hz.length ? (hazardousEnabled ? "" : "no operator key configured: hazardous commands are refused")
                                         : "no hazardous commands in this config";
}
function onTarget() {
  const p = S.catalog.find((x) => x.process === $("cmd-target").value);
  fillSelect($("cmd-name"), p ? p.commands.filter((c) => !c.hazardous).map((c) => c.name) : []);
  onCommand();
}
function onCommand() {
  const spec = specOf($("cmd-target").value, $("cmd-name").value);
  const form = $("cmd-args"); form.textContent = "";
  $("cmd-doc").textContent = spec ? spec.doc : "";
  if (spec) for (const a of spec.args) form.append(argInput(a, "arg"));
}
function onHzTarget() {
  const p = S.catalog.find((x) => x.process === $("hz-target").value);
  fillSelect($("hz-cmd"), p ? p.commands.filter((c) => c.hazardous).map((c) => c.name) : []);
  onHzCommand();
}
function onHzCommand() {
  const spec = specOf($("hz-target").value, $("hz-cmd").value);
  const form = $("hz-args"); form.textContent = "";
  if (spec) for (const a of spec.args) form.append(argInput(a, "hz"));
}
$("cmd-target").addEventListener("change", onTarget);
$("cmd-name").addEventListener("change", onCommand);
$("hz-target").addEventListener("change", onHzTarget);
$("hz-cmd").addEventListener("change", onHzCommand);
$("cmd-args").addEventListener("submit", (e) => e.preventDefault());
$("hz-args").addEventListener("submit", (e) => e.preventDefault());

$("cmd-send").addEventListener("click", async () => {
  const target = $("cmd-target").value, cmd = $("cmd-name").value, spec = specOf(target, cmd);
  if (!spec) return;
  const [args, errors] = collectArgs(spec, $("cmd-args"));
  const out = $("cmd-result");
  if (errors.length) { out.className = "error"; out.textContent = `not sent: ${errors.join("; ")}`; return; }
  const r = await api("/api/command", { target, cmd, args });
  out.className = r.ok ? "okmsg" : "error";
  out.textContent = r.ok ? `queued as command ${r.data.id}` : `refused: ${r.data.error}`;
});

$("hz-send").addEventListener("click", async () => {
  const target = $("hz-target").value, cmd = $("hz-cmd").value, spec = specOf(target, cmd), out = $("hz-result");
  if (!spec) return;
  const [args, errors] = collectArgs(spec, $("hz-args"));
  if (errors.length) { out.className = "error"; out.textContent = `refused: ${errors.join("; ")}`; return; }
  const word = typeof args.mechanism === "string" && args.mechanism ? args.mechanism : cmd;
  const confirm = $("hz-confirm").value.trim();
  if (confirm !== word) {
    out.className = "error"; out.dataset.refused = "confirmation";
    out.textContent = `refused: ${cmd} is hazardous: type '${word}' to confirm it`;
    return;
  }
  const r = await api("/api/command", { target, cmd, args, confirm, key: $("hz-key").value });
  out.className = r.ok ? "okmsg" : "error"; out.dataset.refused = r.ok ? "" : "server";
  out.textContent = r.ok ? `queued as command ${r.data.id}` : `refused: ${r.data.error}`;
  $("hz-confirm").value = "";
});

function renderCommand(c) {
  let li = document.querySelector(`#commands li[data-id="${c.id}"]`);
  if (!li) { li = el("li", { "data-id": c.id }); $("commands").prepend(li); }
  li.dataset.state = c.state;
  li.textContent = "";
  li.append(el("span", { text: `#${c.id} ${c.hazardous ? "⚠ " : ""}${c.target} ${c.cmd} ${JSON.stringify(c.args)} ` }));
  for (const s of c.stages) {
    li.append(el("span", { class: `stage st-${s.stage.split("#")[0]}`, "data-stage": s.stage,
                           title: `${fmtT(s.t)} ${s.detail || ""}`, text: s.stage }));
  }
}
function renderCommands() {
  $("commands").textContent = "";
  for (const c of Object.values(S.commands).sort((a, b) => a.id - b.id)) renderCommand(c);
}

// -- link and badges --------------------------------------------------------------------------
function renderLink(link) {
  if (!link) return;
  const cur = link.current;
  $("link-current").textContent = cur
    ? `in contact through ${cur.relay} (pass ${cur.pass}), closes ${fmtT(cur.closes)}, ${(cur.rate_bps / 1e6).toFixed(1)} Mbit/s, light time ${cur.latency_ms} ms`
    : "no contact now";
  $("pass").textContent = cur ? `pass: ${cur.relay} #${cur.pass}` : "no contact";
  $("pass").className = cur ? "badge ok" : "badge warn";
  const wb = $("windows").tBodies[0]; wb.textContent = "";
  for (const w of link.windows) {
    wb.append(el("tr", {}, el("td", { text: w.relay }), el("td", { text: w.pass }), el("td", { text: fmtT(w.opens) }),
                 el("td", { text: fmtT(w.closes) }), el("td", { text: `${(w.rate_bps / 1e6).toFixed(1)} Mbit/s` }),
                 el("td", { text: `${w.latency_ms} ms` })));
  }
  const tb = $("transactions").tBodies[0]; tb.textContent = "";
  for (const x of link.transactions) {
    const frac = x.size ? Math.min(1, (x.held || 0) / x.size) : 0;
    const bar = el("span", { class: "bar" }, el("span", { style: `width:${(frac * 100).toFixed(1)}%` }));
    const missing = x.open ? (rangesText(x.missing) || "none at last checkpoint") : x.state;
    tb.append(el("tr", { class: x.open ? "open" : "closed" }, el("td", { text: `${x.source}/${x.seq}${x.open ? " open" : ""}` }),
                 el("td", { text: x.name }), el("td", {}, bar, ` ${x.held ?? "?"} / ${x.size ?? "?"} B`),
                 el("td", { text: missing }),
                 el("td", { text: x.naks ? `${x.naks} (last asked ${rangesText(x.last_nak_ranges) || "–"})` : "0" })));
  }
  const a = link.archive;
  if (a) {
    $("archive").textContent = a.ok ? "archive: ok" : "archive: unreadable";
    $("archive").title = a.ok ? a.url : `${a.url}: ${a.error}`;
    $("archive").className = `badge ${a.ok ? "ok" : "bad"}`;
  }
}

// Byte ranges [start, end) as pdh missing writes them: 0-1023,4096-8191 (inclusive ends).
const rangesText = (ranges) => (ranges || []).map(([a, b]) => `${a}-${b - 1}`).join(",");

// -- missing: exactly /api/missing, the archive's answer (the same as pdh missing --json) ---------
const MISSING_ROWS = {
  thumbnails_without_full: (r) => [r.camera, r.counter, r.full_id, r.status, r.grade === null ? "–" : fmtV(r.grade)],
  open_transfers: (r) => [`${r.source_entity}/${r.seq}`, r.id, r.file_size ?? "?", r.held_bytes,
                          r.missing_text || "none at last checkpoint", r.naks, r.eof_received ? "yes" : "no"],
  tm_gaps: (r) => [r.source, r.apid, r.kind, fmtT(r.t_from), fmtT(r.t_to), `${r.gap_s.toFixed(1)} s`, r.packets_missing ?? "–"],
  evicted: (r) => [r.id, r.kind, r.class, r.bytes ?? "?", r.reason, r.received ? "yes" : "no"],
};
const MISSING_KEY = { thumbnails_without_full: "full_id", open_transfers: "id", tm_gaps: "source", evicted: "id" };

function renderMissing(m) {
  const counts = {};
  for (const [section, row] of Object.entries(MISSING_ROWS)) {
    const rows = m[section] || [], body = $(`m-${section}`).tBodies[0];
    counts[section] = rows.length;
    $(`n-${section}`).textContent = `(${rows.length})`;
    body.textContent = "";
    for (const r of rows) {
      body.append(el("tr", { "data-key": String(r[MISSING_KEY[section]]) }, ...row(r).map((v) => el("td", { text: String(v) }))));
    }
  }
  $("missing-panel").dataset.counts = JSON.stringify(counts);
  const b = $("missing-badge");
  b.textContent = `missing: ${counts.thumbnails_without_full} full frames, ${counts.open_transfers} open transfers, ${counts.tm_gaps} TM gaps`;
  b.className = `badge ${counts.thumbnails_without_full + counts.open_transfers + counts.tm_gaps ? "warn" : "ok"}`;
}
async function loadMissing() {
  const r = await api("/api/missing");
  if (!r.ok) { $("missing-badge").textContent = "missing: ?"; $("missing-badge").title = r.data.error; return; }
  S.missing = r.data;
  renderMissing(r.data);
}
$("missing-refresh").addEventListener("click", loadMissing);

function renderBadges() {
  const d = S.telemetry.downlink || {};
  if (d.store_fill) {
    $("store").textContent = `store: ${(100 * d.store_fill.v).toFixed(1)} %${d.store_bytes ? ` (${(d.store_bytes.v / 1e6).toFixed(1)} MB)` : ""}`;
    $("store").className = `badge ${d.store_fill.limit === "high" ? "bad" : "ok"}`;
  }
  if (d.bytes_in_flight) $("inflight").textContent = `in flight: ${(d.bytes_in_flight.v / 1e3).toFixed(0)} kB`;
}

setInterval(async () => { const r = await api("/api/link"); if (r.ok) renderLink(r.data); }, 2000);
setInterval(loadMissing, 5000);
load();
