"""The whole lander at once: every camera streaming at its rate through the real processes, on this machine's cores.

The navcam (10 frames/s), the context camera (10 frames/s) and the monitoring
camera (its profile's 0.5 frames/s, on its serial line) stream together for
``duration_s``, each from a ``hil.camera`` emulator with its profile from
``configs/cameras/``, through its ``drivers.camera`` driver (frames in a
shared-memory ring), one ``fsw.imaging`` core serving the three, and
``fsw.downlink`` (store, re-encoder, CFDP sender) to the ``hil.relay`` and the
``ground.station`` on ``configs/demo.yaml``'s contact plan: the processes the
project's supervisor starts for a run, from a config built here on free ports.
The command ports keep CURVE on (the run's operator key starts and stops the
streams), as in a real run.

Every frame the emulators put on the line (their manifest) is judged by
:func:`pdh.verify.judge_frames` and the products the downlink stored on board:

- **at the ground**: full frame bit-exact and thumbnail at the ground station;
- **on board**: its full product in the store at the end, waiting for the link (the
  demo's relays carry 20-24 Mbit/s, far less than three cameras make: not a loss);
- **thumbnail only**: the policy kept only the thumbnail and said so, by reason: the
  capture path's ``frames_thumbnail_only`` (``queue_full``: the imaging queue was full;
  ``rule``: the grade rule; ``falling_behind``: the frame's ring slot was due to be
  rewritten before its full product could be done; ``store_full``: the store refused
  the full product by its quota), or the store's ``product_evicted`` of its full
  product (``evicted``: a better one needed the room);
- **lost**: anything else, named by an event (``frames_lost`` ...) or not at all.

Per camera the headline is frames kept per second (at the ground or on board at the
end, full product) against the camera's configured rate, in the same run, and the
frames lost (goal 0); beside it, frames captured (the full product made and handed to
the store, whatever the store did with it then) per second against the rate, which
tells the capture path's bound from the store's quota. Several rounds: median and
min-max. Per process
(each child the supervisor started, and the processes those spawned, such as the
re-encoder): CPU over the streaming time from ``/proc/<pid>/stat`` (a share of one
core, and of the machine), and peak memory (``VmHWM`` of ``/proc/<pid>/status``).
Where the cores cannot keep up, the table names the bound: the lander process
with the highest CPU, and the queues that filled (the imaging core's frame queue
against ``queue_max``, products waiting for the downlink).

The emulators cycle a few rendered frames each (``frame_cache``): a real camera's
sensor costs the lander no CPU, so the emulators' sensor model is kept out; the
emulators, the relay and the ground still share the cores and are listed apart
("harness").
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from benchmarks.figures import Column, LoadWatch, Table, ratio

__all__ = ["CAMERAS", "lander_config", "bench_lander", "ProcStat", "read_proc", "classify_frames", "LanderRun",
           "run_lander", "process_tree"]

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "configs" / "demo.yaml"
CAMERAS: dict[str, float] = {"navcam": 10.0, "context": 10.0, "monitor": 0.5}
"""Each camera of the lander and the rate it streams at (Hz); the monitor's is its serial line's limit."""
QUICK_SIZES: dict[str, tuple[int, int]] = {"navcam": (512, 512), "context": (480, 270)}
FRAME_CACHE = 8
FULL_ROUNDS = 3
SHM_SLOTS = int(yaml.safe_load(DEMO_CONFIG.read_text())["processes"]["navcam_driver"].get("shm_slots", 8))
"""Each driver's ring, as configs/demo.yaml's navcam driver has it (the driver's default when it says nothing)."""
READY_TIMEOUT_S = 90.0
LANDER_KINDS = ("bus.broker", "drivers.camera", "fsw.imaging", "fsw.downlink")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the config ------------------------------------------------------------------------------------------------
def _camera_processes(camera: str, rate_hz: float, size: tuple[int, int] | None, seed: int,
                      shm_slots: int = SHM_SLOTS) -> dict[str, Any]:
    profile: dict[str, Any] = {} if size is None else {"width": size[0], "height": size[1]}
    emulator: dict[str, Any] = {
        "kind": "hil.camera", "host": "lander", "camera": camera, "seed": seed, "profile_file": camera,
        "profile": profile, "frame_cache": FRAME_CACHE, "max_frame_rate_hz": rate_hz,
        "endpoints": {"link": f"{camera}_link", "control": f"{camera}_ctl"}}
    driver: dict[str, Any] = {
        "kind": "drivers.camera", "host": "lander", "camera": camera, "profile_file": camera,
        "profile": dict(profile, max_frame_rate_hz=rate_hz), "frame_rate_hz": rate_hz, "stream_on_start": False,
        "frame_transport": "shm", "shm_slots": shm_slots, "endpoints": {"link": f"{camera}_link", "bus_pub": "bus_pub",
                                                 "command": f"{camera}_cmd"}}
    return {f"{camera}_emulator": emulator, f"{camera}_driver": driver}


def lander_config(cameras: dict[str, float] | None = None, sizes: dict[str, tuple[int, int]] | None = None,
                  workers: int = 2, shm_slots: int = SHM_SLOTS) -> dict[str, Any]:
    """demo.yaml's lander, relay and ground on free ports, with a camera, emulator and driver per entry of
    ``cameras`` (name -> rate Hz; the profile ``configs/cameras/<name>.yaml``) at its profile's size or
    ``sizes[name]`` (width, height); one imaging core for all. The demo's sequencer, command ingest and
    console are left out (they idle in a run without commands)."""
    cameras = dict(CAMERAS if cameras is None else cameras)
    sizes = sizes or {}
    demo = yaml.safe_load(DEMO_CONFIG.read_text())
    keep = ("broker", "downlink", "relay", "ground_broker", "ground")
    processes: dict[str, Any] = {n: demo["processes"][n] for n in keep}
    processes["downlink"] = dict(processes["downlink"])
    processes["downlink"]["endpoints"] = {k: v for k, v in processes["downlink"]["endpoints"].items()
                                          if k != "uplink"}  # no command ingest here
    endpoints = {k: v for k, v in demo["endpoints"].items()
                 if not k.startswith(("navcam", "ingest", "sequencer", "uplink", "console"))}
    for i, (camera, rate) in enumerate(cameras.items()):
        processes.update(_camera_processes(camera, rate, sizes.get(camera), 2026 + i, shm_slots))
        endpoints.update({f"{camera}_link": "tcp://127.0.0.1:0", f"{camera}_ctl": "tcp://127.0.0.1:0",
                          f"{camera}_cmd": f"ipc://{camera}_cmd"})
    processes["imaging"] = dict(demo["processes"]["imaging"], cameras=list(cameras), workers=workers)
    from framework.config import free_loopback_ports

    return {"version": 1, "hosts": demo["hosts"], "endpoints": free_loopback_ports(endpoints), "bus": demo["bus"],
            "security": demo["security"], "processes": processes}


# -- /proc --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcStat:
    """One process's CPU seconds so far (its own; and its reaped children's) and its peak resident memory."""

    pid: int
    ppid: int
    cpu_s: float
    children_cpu_s: float
    hwm_kb: int


def read_proc(pid: int) -> ProcStat | None:
    """``/proc/<pid>/stat`` (utime, stime, cutime, cstime) and ``VmHWM`` of ``/proc/<pid>/status``; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is fields[0]
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return ProcStat(pid, ppid, (utime + stime) / _CLK_TCK, (cutime + cstime) / _CLK_TCK, hwm)


def process_tree(roots: dict[str, int]) -> dict[int, str]:
    """pid -> name for each root (name -> pid) and every live descendant (named ``<root>/<comm> <pid>``)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    out = {pid: name for name, pid in roots.items()}
    grown = True
    while grown:
        grown = False
        for pid, ppid in parent.items():
            if pid not in out and ppid in out:
                out[pid] = f"{out[ppid].split('/')[0]}/{_what(pid)} {pid}"
                grown = True
    return out


def _what(pid: int) -> str:
    """A spawned process by what it runs: Python's multiprocessing resource tracker, or a worker (the
    downlink's one is its re-encoder); else its command name."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    if "resource_tracker" in cmdline:
        return "resource_tracker"
    if "spawn_main" in cmdline or "forkserver" in cmdline:
        return "worker"
    return Path(cmdline.split(" ", 1)[0]).name or "?"


class CpuWatch:
    """CPU seconds of every process of a run between :meth:`begin` and :meth:`end`, sampled as it goes (a
    child that appears later, such as a re-encoder worker, is counted from when it was first seen; one that
    ends is counted up to its last sample) and the peak memory each reached."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, ProcStat] = {}
        self.names: dict[int, str] = {}
        self.t0 = self.t1 = 0.0

    def sample(self, roots: dict[str, int]) -> None:
        for pid, name in process_tree(roots).items():
            st = read_proc(pid)
            if st is None:
                continue
            self.names.setdefault(pid, name)
            self.first.setdefault(pid, st.cpu_s)
            self.last[pid] = st

    def begin(self, roots: dict[str, int]) -> None:
        self.first.clear()
        self.last.clear()
        self.t0 = time.monotonic()
        self.sample(roots)

    def end(self, roots: dict[str, int]) -> None:
        self.sample(roots)
        self.t1 = time.monotonic()

    def figures(self) -> list[dict[str, Any]]:
        """Per process: name, cpu_s over the span, cores (cpu_s / wall seconds), peak MB."""
        span = max(1e-9, self.t1 - self.t0)
        rows = []
        for pid, st in self.last.items():
            cpu = st.cpu_s - self.first[pid]
            rows.append({"process": self.names[pid], "pid": pid, "cpu_s": cpu, "cores": cpu / span,
                         "peak_mb": st.hwm_kb / 1024})
        return sorted(rows, key=lambda r: -r["cores"])


# -- the verdict per frame ----------------------------------------------------------------------------------------
def _empty() -> dict[str, Any]:
    return {"sent": 0, "at_ground": 0, "on_board": 0, "thumbnail_only": 0, "lost": 0, "captured": 0,
            "why_lost": {}, "thumbnail_by": {}}


def classify_frames(manifest: Iterable[tuple[str, int]], at_ground: set[str], thumbnail_only: set[str],
                    stored: set[str], named: dict[str, list[str]], evicted: set[str] | None = None,
                    thumbnail_reasons: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Per camera: frames sent, at the ground, on board (full product stored and still there, not yet
    down), thumbnail only (the policy, said by an event; per reason in ``thumbnail_by``), lost (none of
    these, with the reasons events gave; 'unnamed' if none), and captured (the full product made and
    handed to the store: at the ground, on board, evicted, or refused by the store's quota).

    ``at_ground``, ``thumbnail_only``, ``named`` and ``thumbnail_reasons`` (frame -> the policy's reason)
    hold frame names ``camera/counter`` (:func:`pdh.verify.frame_name`); ``stored`` and ``evicted`` (full
    products the store evicted by its quota's order) hold product ids."""
    from fsw.imaging.product import product_id
    from pdh.verify import frame_name

    evicted = evicted or set()
    reasons = thumbnail_reasons or {}
    out: dict[str, dict[str, Any]] = {}
    for camera, counter in manifest:
        c = out.setdefault(camera, _empty())
        c["sent"] += 1
        name = frame_name(camera, counter)
        full = product_id(camera, counter, "full")
        why = reasons.get(name, "") or ("evicted" if full in evicted else "policy" if name in thumbnail_only else "")
        c["captured"] += name in at_ground or full in stored or why in ("store_full", "evicted")
        if name in at_ground:
            c["at_ground"] += 1
        elif why:
            c["thumbnail_only"] += 1
            c["thumbnail_by"][why] = c["thumbnail_by"].get(why, 0) + 1
        elif full in stored:
            c["on_board"] += 1
        else:
            c["lost"] += 1
            for why in named.get(name) or ["unnamed"]:
                c["why_lost"][why] = c["why_lost"].get(why, 0) + 1
    return out


# -- the run ------------------------------------------------------------------------------------------------------
@dataclass
class LanderRun:
    """What one run of the lander left: the per-camera verdict, the per-process figures, the queues."""

    stream_s: float
    rates: dict[str, float]
    frames: dict[str, dict[str, Any]]
    processes: list[dict[str, Any]]
    kinds: dict[str, str]
    peaks: dict[str, float] = field(default_factory=dict)
    thumbnail_reasons: dict[str, int] = field(default_factory=dict)
    ground_fps: dict[str, float] = field(default_factory=dict)
    died: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    arrivals: dict[str, float] = field(default_factory=dict)  # product id -> seconds after the streams started
    stored_at: dict[str, float] = field(default_factory=dict)  # product id -> when the downlink stored it
    ground: dict[str, int] = field(default_factory=lambda: {"full": 0, "thumbnail": 0, "bytes_sent": 0})
    shm_slots: int = SHM_SLOTS


class _Times:
    """When each product was stored on board and reached the ground, from the bus, in seconds after ``t0``."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.arrivals: dict[str, float] = {}
        self.stored_at: dict[str, float] = {}

    def feed(self, state: Any, msg: Any) -> None:
        now = time.monotonic()
        state.feed(msg, now, self.t0)
        f = msg.header.fields
        if msg.topic.startswith("evt.") and isinstance(f.get("id"), str):
            if f.get("name") == "product_received" and f.get("ok"):
                self.arrivals.setdefault(f["id"], now - self.t0)
            elif f.get("name") == "product_stored":
                self.stored_at.setdefault(f["id"], now - self.t0)


def _wait_ready(sup: Any, buses: Any, state: Any, names: list[str], timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    t0 = time.monotonic()
    while time.monotonic() < end:
        for msg in buses.drain(timeout_ms=100):
            state.feed(msg, time.monotonic(), t0)
        sup.watch()
        if all(n in state.tlm for n in names):
            return
    missing = [n for n in names if n not in state.tlm]
    raise RuntimeError(f"no health from {', '.join(missing)} within {timeout_s:g} s" +
                       (f"; given up: {sup.given_up()}" if sup.given_up() else ""))


LINK_WAIT_S = 15.0
"""How long a command to a driver is tried again while the driver says its camera link is not up yet (a
driver reports health before its emulator has connected; a stream started then is refused)."""


def _command_drivers(zctx: Any, config: Any, out: Path, drivers: dict[str, str], command: str,
                     args: dict[str, dict[str, Any]], notes: list[str]) -> None:
    from framework.bus.auth import operator_client

    for camera, drv in drivers.items():
        client = operator_client(zctx, config, out, drv)
        end = time.monotonic() + LINK_WAIT_S
        try:
            while True:
                replies = client.call(command, args.get(camera, {}), timeout_s=5.0)
                down = bool(replies) and replies[-1].status != "completed" and "link is down" in replies[-1].reason
                if not down or time.monotonic() >= end:
                    break
                time.sleep(0.2)
        finally:
            client.close()
        final = replies[-1].status if replies else "no reply"
        if final != "completed":
            notes.append(f"{command} to {drv}: {final} {replies[-1].reason if replies else ''}")


def _peaks(state: Any, config: Any, peaks: dict[str, float]) -> None:
    """The highest queue depths seen so far: the imaging core's frames waiting and products not taken by
    the downlink, the downlink's store queue."""
    for core in config.processes_of_kind("fsw.imaging"):
        t = state.tlm.get(core, {})
        for key in ("queue_depth", "products_pending", "products_unacked", "encoding"):
            peaks[f"{core}.{key}"] = max(peaks.get(f"{core}.{key}", 0), float(t.get(key, 0) or 0))
    for dl in config.processes_of_kind("fsw.downlink"):
        t = state.tlm.get(dl, {})
        for key in ("queue_depth", "reencode_backlog", "store_fill"):
            peaks[f"{dl}.{key}"] = max(peaks.get(f"{dl}.{key}", 0), float(t.get(key, 0) or 0))


def run_lander(raw: dict[str, Any], duration_s: float, drain_s: float, out: Path,
               sample_s: float = 1.0) -> LanderRun:
    """Start every process of ``raw`` under the supervisor, stream every camera for ``duration_s``, stop
    the streams, let the lander drain for up to ``drain_s``, stop everything, and judge every frame."""
    import zmq

    from framework.config import load_config
    from fsw.imaging.product import product_id  # noqa: F401 - fails early if the imaging package is broken
    from pdh.monitor import BusWatch, RunState
    from pdh.supervisor import Supervisor
    from pdh.verify import judge_frames, read_manifest

    cfg_path = out / "lander.yaml"
    cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config = load_config(cfg_path).for_run(out)
    drivers = {config.processes[d]["camera"]: d for d in config.processes_of_kind("drivers.camera")}
    rates = {cam: float(config.processes[d]["frame_rate_hz"]) for cam, d in drivers.items()}
    notes: list[str] = []
    sup = Supervisor(config, cfg_path, out, on_report=lambda n, f: notes.append(f"{n} {f}")
                     if n in ("process_died", "process_gave_up") else None)
    zctx = zmq.Context()
    buses = BusWatch(zctx, config, ["tlm.", "evt.", "product."])
    state = RunState()
    cpu = CpuWatch()
    peaks: dict[str, float] = {}
    try:
        sup.start()
        watched = [n for n in config.process_names() if config.processes[n]["kind"] in
                   ("drivers.camera", "fsw.imaging", "fsw.downlink", "ground.station")]
        _wait_ready(sup, buses, state, watched, READY_TIMEOUT_S)
        roots = {n: c.popen.pid for n, c in sup.children.items() if c.popen is not None}
        _command_drivers(zctx, config, out, drivers, "STREAM_START",
                         {cam: {"rate_hz": r} for cam, r in rates.items()}, notes)
        times = _Times()
        t0 = times.t0
        cpu.begin(roots)
        next_sample = t0 + sample_s
        while time.monotonic() < t0 + duration_s:
            for msg in buses.drain(timeout_ms=50):
                times.feed(state, msg)
            sup.watch()
            _peaks(state, config, peaks)
            if time.monotonic() >= next_sample:
                roots = {n: c.popen.pid for n, c in sup.children.items() if c.popen is not None}
                cpu.sample(roots)
                next_sample += sample_s
        roots = {n: c.popen.pid for n, c in sup.children.items() if c.popen is not None}
        cpu.end(roots)
        stream_s = time.monotonic() - t0
        _command_drivers(zctx, config, out, drivers, "STREAM_STOP", {}, notes)
        _drain(sup, buses, state, config, peaks, times, drain_s)
        cpu.sample({n: c.popen.pid for n, c in sup.children.items() if c.popen is not None})  # peak memory
    finally:
        sup.stop()
        buses.close()
        zctx.destroy(linger=0)
    run = _judge(out, config, state, cpu, peaks, rates, stream_s, sup, notes, judge_frames, read_manifest)
    run.arrivals, run.stored_at = times.arrivals, times.stored_at
    return run


def _drain(sup: Any, buses: Any, state: Any, config: Any, peaks: dict[str, float], times: _Times,
           drain_s: float) -> None:
    """Until every product made is stored on board (and the imaging core idle), or ``drain_s``."""
    end = time.monotonic() + drain_s
    cores = config.processes_of_kind("fsw.imaging")
    settle = time.monotonic() + 2.0
    while time.monotonic() < end:
        for msg in buses.drain(timeout_ms=100):
            times.feed(state, msg)
        sup.watch()
        _peaks(state, config, peaks)
        idle = all(int(state.tlm.get(c, {}).get(k, 0) or 0) == 0 for c in cores
                   for k in ("queue_depth", "encoding", "products_pending", "products_unacked"))
        if time.monotonic() > settle and idle and set(state.made) <= state.stored:
            return


def _judge(out: Path, config: Any, state: Any, cpu: CpuWatch, peaks: dict[str, float], rates: dict[str, float],
           stream_s: float, sup: Any, notes: list[str], judge_frames: Any, read_manifest: Any) -> LanderRun:
    from pdh.verify import Naming, frame_name

    manifest = read_manifest(out / "hil" / "manifest.jsonl")
    check = judge_frames(out, config, state.naming)
    thumbnailed = _thumbnailed(state)
    evicted = {str(f["id"]) for _src, f in state.naming
               if f.get("name") == "product_evicted" and str(f.get("id", "")).endswith("-full")}
    thumb_reasons: dict[str, int] = {}
    for reason in thumbnailed.values():
        thumb_reasons[reason] = thumb_reasons.get(reason, 0) + 1
    if evicted:
        thumb_reasons["evicted"] = len(evicted)
    naming = Naming()
    src_camera = {n: str(config.processes[n].get("camera")) for n in config.processes_of_kind("drivers.camera")}
    for src, f in state.naming:
        naming.add(src, f, src_camera)
    named = {frame_name(cam, n): naming.lookup(cam, n)[1] for cam, n in manifest}
    frames = classify_frames(manifest, set(check.at_ground), set(check.thumbnail_only) | set(thumbnailed),
                             state.stored, named, evicted, thumbnailed)
    for cam in rates:
        frames.setdefault(cam, _empty())
    kinds = {n: c.kind for n, c in sup.children.items()}
    died = [f"{c.name} exited {c.exits}" for c in sup.children.values() if c.exits]
    ground = {"full": sum(p.endswith("-full") for p in state.received_ok),
              "thumbnail": sum(p.endswith("-thumbnail") for p in state.received_ok),
              "bytes_sent": state.sum_tlm("bytes_sent", config.processes_of_kind("fsw.downlink"))}
    return LanderRun(stream_s, rates, frames, cpu.figures(), kinds, peaks, thumb_reasons, died=died, notes=notes,
                     ground=ground)


def _thumbnailed(state: Any) -> dict[str, str]:
    """Frames a ``frames_thumbnail_only`` event named (heard on the bus), whether or not the thumbnail is
    down yet, and the reason it gave: the policy's choice, not a loss. A report heard again (resent until
    echoed) counts once."""
    from pdh.verify import frame_name

    out: dict[str, str] = {}
    for _src, f in state.naming:
        if f.get("name") == "frames_thumbnail_only" and isinstance(f.get("camera"), str):
            for n in f.get("counters") or []:
                if isinstance(n, int):
                    out.setdefault(frame_name(f["camera"], n), str(f.get("reason", "?")))
    return out


# -- the tables ---------------------------------------------------------------------------------------------------
def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _camera_rows(runs: list[LanderRun]) -> list[dict[str, Any]]:
    """Per camera, over the rounds: the medians, and the headline's min and max."""
    rows = []
    for cam, rate in runs[0].rates.items():
        per = [(r.frames.get(cam, _empty()), r.stream_s) for r in runs]
        kept = [ratio((c["at_ground"] + c["on_board"]) / t, rate) or 0.0 for c, t in per]
        captured = [ratio(c.get("captured", 0) / t, rate) or 0.0 for c, t in per]
        by: dict[str, list[int]] = {}
        for c, _ in per:
            for why in c.get("thumbnail_by", {}):
                by.setdefault(why, [])
        for c, _ in per:
            for why in by:
                by[why].append(c.get("thumbnail_by", {}).get(why, 0))
        lost = [c["lost"] for c, _ in per]
        rows.append({"camera": cam, "vs_rate": _median(kept), "vs_rate_min": min(kept), "vs_rate_max": max(kept),
                     "captured": _median(captured), "rate_hz": rate,
                     "sent_fps": _median([c["sent"] / t for c, t in per]),
                     "kept_fps": _median([(c["at_ground"] + c["on_board"]) / t for c, t in per]),
                     "sent": _median([c["sent"] for c, _ in per]),
                     "at_ground": _median([c["at_ground"] for c, _ in per]),
                     "on_board": _median([c["on_board"] for c, _ in per]),
                     "thumbnail_only": _median([c["thumbnail_only"] for c, _ in per]),
                     "thumbnail_by": ", ".join(f"{k} {_median(v):g}" for k, v in sorted(by.items())) or "-",
                     "lost": _median(lost), "lost_max": max(lost)})
    return rows


def _role(name: str, kinds: dict[str, str]) -> str:
    root = name.split("/")[0]
    kind = kinds.get(root, "?")
    if name != root:
        return f"{kind} (spawned)"
    return kind


def _bound(run: LanderRun, cores: int) -> str:
    """Which lander process bounds the capture path, which queue filled, and what the policy did."""
    lander = [p for p in run.processes if run.kinds.get(p["process"].split("/")[0]) in LANDER_KINDS]
    total = sum(p["cores"] for p in run.processes)
    top = lander[0] if lander else None
    queues = ", ".join(f"{k} {v:g}" for k, v in sorted(run.peaks.items()) if v)
    met = all(c["lost"] == 0 and c["thumbnail_only"] == 0 and c["sent"] >= 0.99 * r * run.stream_s
              for c, r in ((run.frames[cam], r) for cam, r in run.rates.items()))
    lead = "no bound (every camera at its rate, nothing lost): busiest" if met else "bound:"
    text = (f"{lead} {top['process']} at {top['cores']:.2f} of a core, the most of any lander process; "
            if top else f"{lead} no lander process measured; ")
    text += (f"all processes together {total:.2f} of {cores} cores"
             + (" (the machine's cores are the bound)" if total >= 0.9 * cores else ""))
    text += f"; peak queues: {queues or 'none'}"
    why = run.thumbnail_reasons
    if any(k.endswith(".store_fill") and v >= 0.99 for k, v in run.peaks.items()) or why.get("store_full") \
            or why.get("evicted"):
        text += ("; the downlink's store filled its quota: the store's policy bounds the frames kept (full "
                 "products refused, store_full, or evicted for better ones; their thumbnails kept)")
    if why.get("falling_behind") or why.get("queue_full"):
        text += "; the imaging core fell behind the cameras (falling_behind, queue_full: thumbnails kept)"
    if why:
        text += "; thumbnail only by " + ", ".join(f"{k} x{v}" for k, v in why.items())
    return text


def _process_rows(runs: list[LanderRun], cores: int) -> list[dict[str, Any]]:
    """Per process over the rounds: median cores and CPU seconds, the highest peak memory. A spawned
    process is matched across rounds by its parent and what it runs (its pid differs)."""
    rows: dict[str, dict[str, Any]] = {}
    for run in runs:
        for p in run.processes:
            name = p["process"].rsplit(" ", 1)[0] if "/" in p["process"] else p["process"]
            row = rows.setdefault(name, {"process": name, "cores_all": [], "cpu_all": [], "peak_mb": 0.0,
                                         "role": _role(p["process"], run.kinds)})
            row["cores_all"].append(p["cores"])
            row["cpu_all"].append(p["cpu_s"])
            row["peak_mb"] = max(row["peak_mb"], p["peak_mb"])
    out = []
    for row in rows.values():
        c = _median(row.pop("cores_all"))
        out.append(dict(row, cores=c, cpu_s=_median(row.pop("cpu_all")), share=(c / cores) or None))
    return sorted(out, key=lambda r: -r["cores"])


def _tables(runs: LanderRun | list[LanderRun], sizes: dict[str, str], duration_s: float, load: Any) -> list[Table]:
    runs = [runs] if isinstance(runs, LanderRun) else list(runs)
    cores = os.cpu_count() or 1
    # the round whose kept figure is the median (the notes tell its bound and losses)
    mid = sorted(runs, key=lambda r: sum(c["at_ground"] + c["on_board"] for c in r.frames.values()))[len(runs) // 2]
    rounds = f"{len(runs)} round{'s' if len(runs) > 1 else ''}"
    cams = Table(
        name="lander",
        title=f"The whole lander at once: {', '.join(mid.rates)} streaming for {mid.stream_s:.0f} s on {cores} cores"
              f" ({rounds}: medians, headline min-max)",
        baseline="each camera's configured rate (" + ", ".join(f"{c} {r:g} Hz" for c, r in mid.rates.items())
                 + "); goal: x rate 1.00 with nothing lost",
        columns=[Column("camera", "camera"), Column("vs_rate", "x rate (kept)", ".3f", True),
                 Column("vs_rate_min", "min", ".3f"), Column("vs_rate_max", "max", ".3f"),
                 Column("lost", "lost", "g"), Column("lost_max", "lost max", "g"),
                 Column("captured", "x rate (captured)", ".3f", True),
                 Column("rate_hz", "rate Hz", ".1f"), Column("sent_fps", "sent/s", ".2f"),
                 Column("kept_fps", "kept/s", ".2f"), Column("sent", "sent", "g"),
                 Column("at_ground", "at ground", "g"), Column("on_board", "on board", "g"),
                 Column("thumbnail_only", "thumbnail only", "g"), Column("thumbnail_by", "thumbnail only by")],
        rows=_camera_rows(runs), load=load)
    cams.notes.append("frames: " + "; ".join(f"{c} {s}" for c, s in sizes.items())
                      + f"; emulators cycle {FRAME_CACHE} rendered frames each (frame_cache); driver rings of "
                      f"{mid.shm_slots} slots (shm_slots)")
    cams.notes.append("sent: frames in the emulators' manifest; kept: full frame bit-exact at the ground (pdh.verify) "
                      "or its full product still stored on board at the end, waiting for the link; captured: the "
                      "full product made and handed to the store (kept, evicted, or refused by its quota); "
                      "thumbnail only: the policy, by reason (imaging's frames_thumbnail_only: queue_full, rule, "
                      "falling_behind, store_full; the store's product_evicted: evicted), counted apart from lost; "
                      "lost: anything else (goal 0)")
    cams.notes.append(_bound(mid, cores))
    used = sum(p["cores"] for p in mid.processes)
    if load is not None and getattr(load, "busy", False) and used < 0.9 * cores:
        cams.notes.append(f"the run's processes used {used:.2f} of {cores} cores while the machine's load average "
                          f"was {max(load.start[0], load.end[0]):.1f}: other work took the rest, so the imaging "
                          "core's share, not its code, set how far it kept up")
    cams.notes.append(f"at the ground by the end ({mid.stream_s:.0f} s of streaming and the drain): "
                      f"{mid.ground['full']} full frames and {mid.ground['thumbnail']} thumbnails of these cameras; "
                      f"the downlink sent {mid.ground['bytes_sent'] / 1e6:.1f} MB on configs/demo.yaml's contact "
                      "plan (frames beyond the link's share wait on board)")
    for i, run in enumerate(runs):
        for cam, c in run.frames.items():
            if c["why_lost"]:
                cams.notes.append(f"round {i + 1} {cam} lost: "
                                  + "; ".join(f"{w} x{n}" for w, n in list(c["why_lost"].items())[:4]))
        cams.notes.extend(f"round {i + 1} process died and was restarted: {d}" for d in run.died)
        cams.notes.extend(run.notes[:5])
    procs = Table(
        name="lander_processes",
        title=f"The whole lander at once: CPU and peak memory per process while the cameras streamed ({rounds})",
        baseline=f"the machine's {cores} cores over the {mid.stream_s:.0f} s of streaming",
        columns=[Column("process", "process"), Column("share", f"x {cores} cores", ".3f", True),
                 Column("cores", "cores", ".2f"), Column("cpu_s", "CPU s", ".1f"),
                 Column("peak_mb", "peak MB", ".0f"), Column("role", "kind")],
        rows=_process_rows(runs, cores),
        notes=["CPU: utime+stime from /proc/<pid>/stat over the streaming time (median of the rounds); a process "
               "spawned meanwhile (the re-encoder) from when it was first seen (sampled each second); peak MB: "
               "VmHWM (the highest of the rounds)",
               "lander: " + ", ".join(LANDER_KINDS) + "; the rest (emulators, relay, ground) is the test harness "
               "sharing the cores"],
        load=load)
    return [cams, procs]


def bench_lander(duration_s: float = 60.0, drain_s: float = 20.0, quick_sizes: bool = False,
                 cameras: dict[str, float] | None = None, sizes: dict[str, tuple[int, int]] | None = None,
                 out_dir: Path | None = None, rounds: int | None = None, shm_slots: int = SHM_SLOTS,
                 imaging: dict[str, Any] | None = None) -> list[Table]:
    """Run the lander ``rounds`` times with every camera streaming for ``duration_s``; per camera and per
    process tables (medians over the rounds, the headline's min and max).

    ``quick_sizes``: the navcam and context camera at :data:`QUICK_SIZES` (the monitor is small already);
    ``sizes`` (camera -> (width, height)) overrides both. ``rounds``: by default :data:`FULL_ROUNDS` at the
    cameras' own sizes, one at smaller ones (a quick check). ``shm_slots``: each driver's ring; ``imaging``:
    settings of the imaging core over demo.yaml's (to measure a setting against another). Each round's
    output goes to a temporary directory, or under ``out_dir`` (kept) when given."""
    watch = LoadWatch()
    if rounds is None:
        rounds = FULL_ROUNDS if sizes is None and not quick_sizes else 1
    sizes = sizes if sizes is not None else QUICK_SIZES if quick_sizes else {}
    described = {}
    runs: list[LanderRun] = []
    for i in range(max(1, rounds)):
        raw = lander_config(cameras, sizes, shm_slots=shm_slots)  # free ports afresh each round
        raw["processes"]["imaging"].update(imaging or {})
        for cam in raw["processes"]["imaging"]["cameras"]:
            emu = raw["processes"][f"{cam}_emulator"]
            prof = yaml.safe_load((REPO / "configs" / "cameras" / f"{cam}.yaml").read_text())
            w, h = emu["profile"].get("width", prof["width"]), emu["profile"].get("height", prof["height"])
            binning = prof.get("binning", 1)
            described[cam] = (f"{w // binning}x{h // binning} {prof['bit_depth']}-bit {prof['pattern']}"
                              f"{' (binned)' if binning > 1 else ''}, {prof['interface']}")
        with tempfile.TemporaryDirectory(prefix="bench_lander_", dir="/tmp") as tmp:
            out = Path(out_dir) / f"round{i + 1}" if out_dir else Path(tmp)
            out.mkdir(parents=True, exist_ok=True)
            run = run_lander(raw, duration_s, drain_s, out)
        run.shm_slots = shm_slots
        runs.append(run)
    return _tables(runs, described, duration_s, watch.done())
