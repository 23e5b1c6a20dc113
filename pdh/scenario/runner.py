"""The scenario runner: processes up, timeline run, report written, processes down. The I/O adapter.

:func:`run_scenario` builds the effective config (the scenario's config with its
overrides, loopback ports made free, CURVE keys generated when needed) into
``OUT/scenario-config.yaml``, starts the processes with the
:class:`~pdh.supervisor.Supervisor`, listens to the bus, waits until every
process on the bus has published health, runs the :class:`~pdh.scenario.engine.Engine`,
prints the report, writes ``OUT/scenario-report.json`` and stops every process.
It returns 0 only if every step and check held. ``expect: {frames: accounted}`` steps are judged by
:func:`pdh.verify.judge_frames` on the run's output, with the frame-naming events heard on the bus;
``expect: {product: ...}`` by :func:`pdh.verify.verify_ground` against the camera emulators' manifest.

Process faults go through the :class:`~pdh.supervisor.Supervisor` (signals, restarts); a death the
timeline caused (KILL, TERM) is not held against the run. A full disk is the process's own file-size
limit (RLIMIT_FSIZE, set on the running process with ``prlimit``: only its writes fail, the real disk
is never filled); a ballast file is bounded (at most half the filesystem's free space) and removed
when the run ends. ``contact_epoch`` puts orbit time zero of every inline contact plan at a moment of
the timeline: the processes start ``startup_s`` before the timeline, whose t=0 waits for that moment.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import resource
import signal
import time
from pathlib import Path
from typing import Any, Callable

import yaml
import zmq

from framework.clock import MAX_OFFSET_S, offset_path
from framework.config import Config, free_loopback_ports, validate_config
from framework.logs import configure_logging
from pdh.supervisor import Supervisor
from framework.bus.auth import (OPERATOR_NAME, SERVICE_NAME, authorize, client_curve, generate_keypair, load_keypair,
                                load_public_key)
from framework.bus.client import Subscriber
from framework.bus.commands import CommandClient, CurveClientKeys
from framework.errors import ConfigError, PdhError
from pdh.scenario.engine import Engine, Reply
from pdh.scenario.expect import Record, Recording
from pdh.scenario.report import build_report, format_report
from pdh.scenario.evidence import write_bench_reports
from pdh.scenario.model import ExpectAction, Scenario
from pdh.scenario.spec import load_scenario
from pdh.verify import NAMING_EVENTS, FramesCheck, judge_frames, read_manifest, verify_ground
from fsw.imaging.product import product_id

__all__ = ["run_scenario", "effective_config", "free_loopback_ports", "BusIO", "Faults"]

_PUMP_S = 0.02
_BALLAST = ".scenario-ballast"  # the ballast file's name in a store directory
_BALLAST_SHARE = 0.5  # a ballast file takes at most this share of the filesystem's free space


def effective_config(sc: Scenario, out: Path, epoch_wall: float | None = None) -> tuple[dict[str, Any], Path | None]:
    """The config to run (a mapping) and the CURVE keys directory commands use; ``epoch_wall``: every
    inline contact plan's ``epoch_s`` (``contact_epoch``)."""
    raw = copy.deepcopy(sc.config)
    if epoch_wall is not None:
        for p in raw["processes"].values():
            if isinstance(p, dict) and "relays" in p:
                p["epoch_s"] = round(epoch_wall, 3)
    if sc.free_ports and isinstance(raw.get("endpoints"), dict):
        raw["endpoints"] = free_loopback_ports(raw["endpoints"])
    keys_dir = sc.keys_dir
    if sc.uses_curve() and keys_dir is None:
        keys_dir = out / "keys"
        generate_keypair(keys_dir, SERVICE_NAME)
        generate_keypair(keys_dir, sc.operator)
        authorize(keys_dir, keys_dir / f"{sc.operator}.key")
        for p in raw["processes"].values():
            if isinstance(p, dict) and p.get("kind") == "drivers.deploy":
                p["keys_dir"] = str(keys_dir.resolve())
    return raw, keys_dir


class BusIO:
    """Command clients per (process, role, keys), replies routed to tokens; the engine's ScenarioIO."""

    def __init__(self, zctx: zmq.Context, config: Config, operator: str, run_keys: Path | None = None) -> None:
        """``run_keys``: the run's key directory; a command without keys of its own uses the run's operator key
        there (every command port of a run takes CURVE clients only, unless its config says ``curve: false``)."""
        self.run_keys = run_keys if config.security["curve"] else None
        self.zctx = zctx
        self.config = config
        self.operator = operator
        self.clients: dict[tuple[str, str, str], CommandClient] = {}
        self.tokens: dict[int, tuple[tuple[str, str, str], int]] = {}
        self.inbox: dict[tuple[tuple[str, str, str], int], list[Reply]] = {}
        self._next = 0
        self.faults: Faults | None = None  # signals, restarts, disk faults (the runner sets it)

    def _client(self, process: str, role: str, keys_dir: Path | None) -> tuple[tuple[str, str, str], CommandClient]:
        key = (process, role, "" if keys_dir is None else str(keys_dir))
        if key not in self.clients:
            curve = None
            if keys_dir is not None:
                me = load_keypair(keys_dir / f"{self.operator}.key_secret")
                curve = CurveClientKeys(me.public, me.secret, load_public_key(keys_dir / f"{SERVICE_NAME}.key"))
            elif self.run_keys is not None:
                curve = client_curve(self.run_keys, OPERATOR_NAME)
            self.clients[key] = CommandClient(self.zctx, self.config.reach(process, role), curve)
        return key, self.clients[key]

    def request(self, process: str, role: str, cmd: str, args: dict[str, Any], keys_dir: Path | None) -> int:
        key, client = self._client(process, role, keys_dir)
        self._next += 1
        try:
            cid = client.send(cmd, args)
        except zmq.Again:  # a CURVE server that refused our key leaves nobody to send to
            cid = -self._next
        self.tokens[self._next] = (key, cid)
        self.inbox[(key, cid)] = []
        return self._next

    def pump(self) -> None:
        for key, client in self.clients.items():
            while True:
                r = client.recv(0)
                if r is None:
                    break
                box = self.inbox.get((key, r.id))
                if box is not None:
                    box.append(Reply(r.status, r.reason or "", r.result))

    def replies(self, token: int) -> list[Reply]:
        self.pump()
        box = self.inbox[self.tokens[token]]
        got = list(box)
        box.clear()
        return got

    def close(self) -> None:
        for c in self.clients.values():
            c.close()

    def act(self, process: str, what: str, params: dict[str, Any]) -> tuple[bool, str]:
        if self.faults is None:
            return False, "no supervisor to act through"
        return self.faults.act(process, what, params)


class Faults:
    """Process and disk faults on the supervisor's children; undone (continued, ballast removed) by :meth:`undo`."""

    def __init__(self, sup: Supervisor, out: Path, log: Any) -> None:
        self.sup = sup
        self.out = out
        self.log = log
        self.expected_exits: dict[str, int] = {}  # deaths the timeline caused
        self.held: set[str] = set()
        self.ballast: list[Path] = []

    def act(self, process: str, what: str, params: dict[str, Any]) -> tuple[bool, str]:
        try:
            done = {"signal": self._signal, "restart": self._restart, "clock": self._clock, "disk": self._disk,
                    "datagram": self._datagram}[what](process, params)
        except (OSError, KeyError, ValueError) as exc:  # not running, a limit refused, no space for ballast
            self.log.warning("fault_failed", process=process, what=what, params=params, error=str(exc))
            return False, f"{what} {process}: {exc}"
        self.log.info("fault_done", process=process, what=what, params=params, detail=done)
        return True, done

    def _signal(self, process: str, params: dict[str, Any]) -> str:
        name = params["signal"]
        pid = self.sup.signal(process, getattr(signal, f"SIG{name}"))
        if name in ("KILL", "TERM"):
            self.expected_exits[process] = self.expected_exits.get(process, 0) + 1
            self.held.discard(process)
        elif name == "STOP":
            self.held.add(process)
        elif name == "CONT":
            self.held.discard(process)
        return f"SIG{name} sent to {process} (pid {pid})"

    def _restart(self, process: str, params: dict[str, Any]) -> str:
        self.sup.restart(process)
        self.held.discard(process)
        p = self.sup.children[process].popen
        return f"{process} restarted (pid {p.pid if p else '?'}, start {self.sup.children[process].starts})"

    def _clock(self, process: str, params: dict[str, Any]) -> str:
        """Step the wall clock of one process (or "all" the supervisor's children) by ``step_s``: the offset in
        the run's OUT/clock/<process>.offset_s grows by it (written whole: temp file, then rename)."""
        names = list(self.sup.children) if process == "all" else [process]
        if process != "all" and process not in self.sup.children:
            raise KeyError(f"{process} is not a process of this run")
        shown = []
        for name in names:
            path = offset_path(self.out, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                old = float(path.read_text().strip())
            except (OSError, ValueError):
                old = 0.0
            new = old + float(params["step_s"])
            if abs(new) > MAX_OFFSET_S:
                raise ValueError(f"{name}: a clock offset of {new:g} s is beyond {MAX_OFFSET_S:g} s")
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(f"{new!r}\n")
            os.replace(tmp, path)
            shown.append(f"{name} {new:+g} s")
        return "wall clock offset now: " + ", ".join(shown)

    def _pid(self, process: str) -> int:
        p = self.sup.children[process].popen
        if p is None or p.poll() is not None:
            raise ProcessLookupError(f"{process} is not running")
        return p.pid

    def _disk(self, process: str, params: dict[str, Any]) -> str:
        if "ballast_bytes" in params:
            return self._ballast(process, int(params["ballast_bytes"]))
        pid = self._pid(process)
        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        if params.get("lift"):
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
            return f"{process} (pid {pid}): file-size limit lifted"
        limit = int(params["limit_bytes"])
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit if hard == resource.RLIM_INFINITY else min(limit, hard),
                                                      hard))
        return f"{process} (pid {pid}): writes past {limit} bytes in any file fail (RLIMIT_FSIZE)"

    def _ballast(self, process: str, size: int) -> str:
        store = Path(str(self.sup.config.processes[process]["store_dir"]))
        store = store if store.is_absolute() else self.out / store
        path = store / _BALLAST
        if size == 0:
            path.unlink(missing_ok=True)
            return f"ballast removed from {store}"
        st = os.statvfs(store)
        free = st.f_bavail * st.f_frsize + (path.stat().st_size if path.exists() else 0)
        if size > _BALLAST_SHARE * free:
            raise ValueError(f"{size} bytes of ballast would take more than half of the {free} bytes free in "
                             f"{store}; refused (the real disk is never filled)")
        with open(path, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, size)  # blocks really taken, not a sparse file
        self.ballast.append(path)
        return f"ballast of {size} bytes in {store} ({free - size} bytes left free)"

    def _datagram(self, process: str, params: dict[str, Any]) -> str:
        """A forged or replayed uplink datagram (pdh.scenario.forge) to the relay's ground side, from the runner's
        own socket (the relay hears any transmitter in its beam)."""
        import socket

        from framework.config import find_config
        from link.dictionary import Dictionary
        from link.radio import udp_address
        from link.sdls import load_associations
        from pdh.scenario.forge import forge, last_uplink

        config = self.sup.config
        dest = udp_address(config.reach(process, "ground_in"))
        pcap = self.out / str(config.processes[process].get("pcap", "link/relay.pcap"))
        ingests = config.processes_of_kind("fsw.ingest")
        sa_file = str(config.processes[ingests[0]].get("sa_file", "configs/sa.yaml")) if ingests else "configs/sa.yaml"
        algorithm = next((sa.algorithm for sa in load_associations(find_config(sa_file)) if sa.spi == params["spi"]),
                         "aes-gcm")
        lander_port = udp_address(config.reach(process, "lander"))[1]
        dictionary = Dictionary.from_config(config)
        data = forge(params["forge"], captured=last_uplink(pcap, lander_port, dictionary), dictionary=dictionary,
                     target=params["target"], cmd=params["cmd"], args=params["args"], spi=params["spi"],
                     algorithm=algorithm)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(params["count"]):
                s.sendto(data, dest)
        return f"{params['forge']} datagram of {len(data)} bytes sent {params['count']}x to {process} {dest[0]}:{dest[1]}"

    def undo(self) -> None:
        """Continue held processes (a stopped one takes no SIGTERM) and remove ballast files."""
        for process in sorted(self.held):
            try:
                self.sup.signal(process, signal.SIGCONT)
            except (OSError, KeyError):
                pass
        self.held.clear()
        for path in self.ballast:
            path.unlink(missing_ok=True)


def _bus_sub(config: Config) -> list[str] | None:
    """Every broker's XPUB (the lander's and the ground's), so expectations see both ends."""
    return [config.reach(name, "xpub") for name in config.processes_of_kind("bus.broker")] or None


def _topics(sc: Scenario) -> list[str]:
    topics = ["evt.", "tlm."]
    for s in sc.steps:
        if isinstance(s.action, ExpectAction):
            t = s.action.condition.topic
            if not any(t.startswith(x) for x in topics):
                topics.append(t)
    return topics


class _Listener:
    """The runner's ear on the bus: every message's header, stamped with the runner's clock."""

    def __init__(self, sub: Subscriber | None, recording: Recording, clock: Callable[[], float]) -> None:
        self.sub = sub
        self.rec = recording
        self.clock = clock

    def pump(self, for_s: float) -> None:
        if self.sub is None:
            time.sleep(for_s)
            return
        end = time.monotonic() + for_s
        while True:
            m = self.sub.recv(timeout_ms=max(0, int((end - time.monotonic()) * 1000)))
            if m is None:
                return
            h = m.header
            self.rec.add(Record(self.clock(), m.topic, h.src, h.kind, dict(h.fields)))
            if time.monotonic() >= end:
                return


def _frames_judge(out: Path, config: Config, rec: Recording) -> Callable[[], FramesCheck]:
    """The frames verdict on the run's output, counting the naming events heard on any bus as well."""
    def judge() -> FramesCheck:
        heard = [(r.src, r.fields) for topic, recs in list(rec.by_topic.items()) if topic.startswith("evt.")
                 for r in recs if r.fields.get("name") in NAMING_EVENTS]
        return judge_frames(out, config, heard)

    return judge


def _ready_names(config: Config, started: list[str]) -> list[str]:
    return [n for n in started if "bus_pub" in config.processes[n]["endpoints"]
            or config.processes[n]["kind"] == "bus.broker"]


def _wait_ready(sc: Scenario, listener: _Listener, sup: Supervisor, names: list[str]) -> dict[str, Any]:
    if listener.sub is None or not names:
        return {"name": "ready", "ok": True, "detail": "no bus to watch", "show": False}
    end = time.monotonic() + sc.ready_timeout_s
    waiting = set(names)
    while waiting and time.monotonic() < end:
        listener.pump(0.1)
        sup.watch()
        waiting -= {n for n in waiting if listener.rec.by_topic.get(f"tlm.{n}")}
    if waiting:
        return {"name": "ready", "ok": False,
                "detail": f"no health from {sorted(waiting)} within {sc.ready_timeout_s:g} s (see OUT/logs)"}
    return {"name": "ready", "ok": True, "detail": f"{len(names)} processes publishing health", "show": False}


def _process_checks(sc: Scenario, sup: Supervisor, expected: dict[str, int] | None = None,
                    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Processes that died (and were restarted) beyond the deaths the timeline caused (``expected``)."""
    expected = expected or {}
    info = {n: {"kind": c.kind, "starts": c.starts, "exits": list(c.exits)} for n, c in sup.children.items()}
    died = {n: c.exits for n, c in sup.children.items() if len(c.exits) > expected.get(n, 0)}
    if not died:
        return [], info
    detail = ", ".join(f"{n} exited {codes}" for n, codes in died.items())
    return [{"name": "processes", "ok": sc.allow_restarts, "detail": detail + " (restarted by the supervisor)"}], info


def _prepare(sc: Scenario, out: Path, epoch_wall: float | None = None) -> tuple[Config, Path, Path | None]:
    """Write the effective config into OUT and validate it; return it, its path and the keys directory."""
    if out.exists() and any(out.iterdir()):
        raise ConfigError(str(out), "--out", "a new or empty output directory (a scenario starts afresh)",
                          "not empty")
    out.mkdir(parents=True, exist_ok=True)
    raw, keys_dir = effective_config(sc, out, epoch_wall)
    cfg_path = out / "scenario-config.yaml"
    cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    checked = validate_config(raw, f"{sc.file} (config {sc.config_path or 'inline'})")
    config = Config(file=str(cfg_path), endpoints=checked.endpoints, bus=checked.bus, processes=checked.processes,
                    raw=checked.raw)
    return config.for_run(out), cfg_path, keys_dir


def _start_timeline(sc: Scenario, engine: Engine, listener: _Listener, sup: Supervisor, t0_wall: float | None,
                    log: Any) -> None:
    """Start the timeline now, or (``contact_epoch``) at wall time ``t0_wall``: its t=0, so that orbit time
    zero falls at t=contact_epoch.at_s; a late start keeps the alignment and marks the first steps late."""
    if t0_wall is None:
        engine.start()
    else:
        while time.time() < t0_wall:
            listener.pump(min(_PUMP_S * 5, max(0.0, t0_wall - time.time())))
            sup.watch()
        engine.t0 = engine.clock() - (time.time() - t0_wall)
    log.info("timeline_start", steps=len(sc.steps), t0_wall=t0_wall)


def _play(sc: Scenario, engine: Engine, listener: _Listener, io: BusIO, sup: Supervisor,
          log: Any, t0_wall: float | None = None) -> list[dict[str, Any]]:
    """Start the processes, wait until they are ready, run the timeline; return the runner's checks."""
    checks: list[dict[str, Any]] = []
    try:
        sup.start()
        ready = _wait_ready(sc, listener, sup, _ready_names(sup.config, list(sup.children)))
        checks.append(ready)
        if ready["ok"]:
            _start_timeline(sc, engine, listener, sup, t0_wall, log)
            while not engine.tick():
                listener.pump(_PUMP_S)
                io.pump()
                sup.watch()
    except PdhError as exc:
        checks.append({"name": "runner", "ok": False, "detail": f"{type(exc).__name__}: {exc}"})
    finally:
        if io.faults is not None:
            io.faults.undo()
        sup.stop()
    return checks


def _product_judge(out: Path, config: Config) -> Callable[[str, int | None, str], tuple[bool, str]]:
    """Is a frame's product at the ground (a full frame bit-exact to the camera emulators' manifest)?"""
    grounds = [out / config.processes[g]["out_subdir"] for g in config.processes_of_kind("ground.station")]

    def judge(camera: str, counter: int | None, kind: str) -> tuple[bool, str]:
        manifest = read_manifest(out / "hil" / "manifest.jsonl")
        frames = sorted(n for (cam, n), rec in manifest.items() if cam == camera and not rec.get("fault"))
        wanted = frames if counter is None else [counter]
        if counter is not None and (camera, counter) not in manifest:
            return False, f"frame {counter} of {camera} is not in the manifest ({len(frames)} frames of {camera})"
        for n in wanted:
            pid = product_id(camera, n, kind)
            for g in grounds:
                if kind == "full":
                    check = verify_ground(g, manifest, [(pid, camera, n)])
                    if check.ok:
                        return True, f"{pid} at {g.name}, bit-exact to the manifest"
                    if check.mismatched:
                        return False, f"{pid} at {g.name} differs from the camera's frame (CRC-32C)"
                elif (g / f"{pid}.png").exists():
                    return True, f"{pid} at {g.name}"
        which = f"frame {counter}" if counter is not None else f"any of {len(frames)} frames"
        return False, f"no {kind} product of {camera} ({which}) at the ground"

    return judge


def run_scenario(path: str | Path, out: str | Path, clock: Callable[[], float] = time.monotonic,
                 emit: Callable[[str], None] = print) -> int:
    """Run one scenario file; print its report; return 0 only if every expectation held."""
    sc = load_scenario(path)
    out = Path(out)
    t0_wall = None if sc.contact_epoch_s is None else time.time() + sc.startup_s
    config, cfg_path, keys_dir = _prepare(sc, out, None if t0_wall is None else t0_wall + sc.contact_epoch_s)
    log = configure_logging("scenario", out / "logs")
    started_utc = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    sup = Supervisor(config, cfg_path, out, on_report=lambda n, f: log.info(n, **f))
    if sc.start is not None:
        sup.children = {n: c for n, c in sup.children.items() if n in sc.start}
    zctx = zmq.Context()
    rec = Recording()
    bus = _bus_sub(config)
    listener = _Listener(None if bus is None else Subscriber(zctx, bus, _topics(sc), 10_000), rec, clock)
    io = BusIO(zctx, config, sc.operator, run_keys=config.keys_dir(out))
    io.faults = Faults(sup, out, log)
    engine = Engine(sc, io, rec, clock, keys_dir, frames=_frames_judge(out, config, rec),
                    product=_product_judge(out, config))
    t_begin = clock()
    emit(f"scenario {sc.name}: starting {len(sup.children)} processes into {out}")
    try:
        checks = _play(sc, engine, listener, io, sup, log, t0_wall)
    finally:
        io.close()
        if listener.sub is not None:
            listener.sub.close()
        zctx.destroy(linger=0)
    proc_checks, proc_info = _process_checks(sc, sup, io.faults.expected_exits)
    report = build_report(sc.name, sc.file, str(out), engine.results, checks + proc_checks, started_utc,
                          clock() - t_begin, proc_info)
    # the bench's reports (JUnit XML, HTML page) from what was heard; their paths go into the JSON report
    report["files"] = write_bench_reports(sc, out, report, rec.records, t_begin if engine.t0 is None else engine.t0)
    _write_json(out / "scenario-report.json", report)
    for line in format_report(report):
        emit(line)
    log.info("scenario_done", ok=report["ok"], steps_ok=report["steps_ok"])
    return 0 if report["ok"] else 1


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
