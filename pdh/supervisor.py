"""Start, watch and stop the processes of a config; restart any that dies.

The supervisor is the only code that starts processes. It runs each as
``python -m pdh.process CONFIG NAME --out OUT`` in its own process group,
restarts one that exits unexpectedly (with backoff), and stops them all with
SIGTERM, then SIGKILL after a grace period. Given a host, it starts only the
processes the config places on that host (``pdh run CONFIG --host NAME`` on
each machine); without one, every process on this machine (``pdh demo``).

A process that dies ``max_restarts`` times in a row without staying up
``stable_s`` is given up: reported (``process_gave_up``) with the last error its
log holds, so the operator reads why on screen instead of a restart loop. The
children's state is kept in ``OUT/supervisor.json`` (``pdh status`` and ``pdh cmd``
read it). :func:`stop_signals` turns SIGTERM and SIGHUP into the same stop as
Ctrl-C, so ``kill`` or ``timeout`` of a tool never leaves its children running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from framework.config import EVERY_HOST, Config
from framework.process import ensure_keys
from pdh.keys import ensure_sdls_keys

__all__ = ["Supervisor", "Child", "Interrupted", "stop_signals", "catch_stop_signals", "last_error", "read_state",
           "STATE_FILE"]

STATE_FILE = "supervisor.json"
"""The children's state, in the run's output directory (written on every change)."""
_ERROR_CHARS = 300
_LOG_TAIL_BYTES = 64 * 1024


class Interrupted(Exception):
    """A stop signal arrived (SIGINT, SIGTERM, SIGHUP): the tool stops its children and says which."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


def catch_stop_signals() -> Callable[[], None]:
    """From now on the first SIGINT, SIGTERM or SIGHUP raises :class:`Interrupted` in the main thread (so
    a ``finally`` stops the children); later ones are ignored, so a second Ctrl-C cannot cut the stop
    short. Returns the function that puts the previous handlers back."""
    raised: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if not raised:
            raised.append(signal.Signals(signum).name)
            raise Interrupted(raised[0])

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """:func:`catch_stop_signals` within the block."""
    restore = catch_stop_signals()
    try:
        yield
    finally:
        restore()


def _tail(path: Path) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
            return f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def last_error(out_dir: Path, name: str) -> str:
    """The last error a process left: its log's last error record (the exception's last line), else the
    last line it wrote to stderr (a config error, an import error), else ''."""
    for line in reversed(_tail(out_dir / "logs" / f"{name}.jsonl")):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "process_start":
            break  # only what the last start left
        if rec.get("level") in ("error", "critical"):
            exc = str(rec.get("exception") or "").strip().splitlines()
            return f"{rec.get('event')}: {exc[-1] if exc else ''}"[:_ERROR_CHARS]
    lines = [ln.strip() for ln in _tail(out_dir / "logs" / f"{name}.stderr") if ln.strip()]
    return lines[-1][:_ERROR_CHARS] if lines else ""


def read_state(out_dir: Path) -> dict[str, Any]:
    """The supervisor's last written state of a run ({} if none)."""
    try:
        got = json.loads((out_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return got if isinstance(got, dict) else {}

# Start order: the broker first so early telemetry is not lost, device emulators before drivers.
_KIND_ORDER = ["bus.broker", "ground.station", "hil.relay", "fsw.downlink", "fsw.imaging", "hil.camera", "drivers.camera"]


@dataclass
class Child:
    name: str
    kind: str
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)
    next_start: float = 0.0
    started_at: float = 0.0
    failures: int = 0  # deaths in a row, each before it stayed up stable_s
    gave_up: str | None = None  # the last error, once given up

    def state(self) -> str:
        if self.gave_up is not None:
            return "gave_up"
        if self.popen is not None and self.popen.poll() is None:
            return "running"
        return "restarting" if self.exits else "stopped"


class Supervisor:
    def __init__(self, config: Config, config_path: Path, out_dir: Path,
                 on_report: Callable[[str, dict[str, Any]], None] | None = None,
                 restart_backoff_s: float = 1.0, host: str | None = None, max_restarts: int = 5,
                 stable_s: float = 30.0) -> None:
        """``max_restarts``: deaths in a row (each within ``stable_s`` of its start) after which a process
        is given up."""
        self.config = config
        self.config_path = config_path
        self.out_dir = out_dir
        self.report = on_report or (lambda name, fields: None)
        self.backoff = restart_backoff_s
        self.host = host
        self.max_restarts = max_restarts
        self.stable_s = stable_s
        mine = config.process_names() if host is None else config.processes_on(host)  # unknown host: ConfigError
        names = sorted(mine, key=lambda n: (
            _KIND_ORDER.index(config.processes[n]["kind"]) if config.processes[n]["kind"] in _KIND_ORDER else 99))
        self.children = {n: Child(n, config.processes[n]["kind"]) for n in names}
        self.stopping = False

    def _spawn(self, child: Child) -> None:
        (self.out_dir / "logs").mkdir(parents=True, exist_ok=True)
        stderr = open(self.out_dir / "logs" / f"{child.name}.stderr", "ab")
        child.popen = subprocess.Popen(
            [sys.executable, "-m", "pdh.process", str(self.config_path), child.name, "--out", str(self.out_dir)],
            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, start_new_session=True,
        )
        stderr.close()
        child.starts += 1
        child.started_at = time.monotonic()
        self.report("process_started", {"process": child.name, "pid": child.popen.pid, "start": child.starts})
        self.write_state()

    def busy_ports(self) -> list[str]:
        """The addresses this supervisor's processes bind that are in use now (each named), checked
        before :meth:`start`."""
        return self.config.busy_ports(self.host or EVERY_HOST)

    def write_state(self) -> None:
        """``OUT/supervisor.json``: each child's pid, state, starts, last exit and last error."""
        state = {"pid": os.getpid(), "config": str(self.config_path), "host": self.host, "t": time.time(),
                 "processes": {n: {"kind": c.kind,
                                   "state": "stopped" if self.stopping and c.state() != "gave_up" else c.state(), "starts": c.starts,
                                   "pid": c.popen.pid if c.popen is not None else None,
                                   "last_exit": c.exits[-1] if c.exits else None, "gave_up": c.gave_up}
                               for n, c in self.children.items()}}
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.out_dir / f".{STATE_FILE}.tmp"
            tmp.write_text(json.dumps(state, indent=1) + "\n")
            os.replace(tmp, self.out_dir / STATE_FILE)
        except OSError:
            pass  # the state file is a convenience for the tools; the run goes on without it

    def start(self) -> None:
        """Make the run's missing keys (before any child, so all of them find one service key), then start
        every child."""
        keys_dir = ensure_keys(self.config, self.out_dir)
        if keys_dir is not None:
            self.report("keys_ready", {"keys_dir": str(keys_dir)})
        sdls_made = ensure_sdls_keys(self.config, self.config.keys_dir(self.out_dir))
        if sdls_made:
            self.report("sdls_keys_made", {"key_ids": sdls_made})
        for child in self.children.values():
            self._spawn(child)

    def watch(self) -> None:
        """Reap and restart dead children; call this often."""
        if self.stopping:
            return
        now = time.monotonic()
        for child in self.children.values():
            p = child.popen
            if p is not None and p.poll() is not None:
                self._died(child, p.returncode, now)
            elif p is None and child.gave_up is None and now >= child.next_start:
                self._spawn(child)

    def _died(self, child: Child, returncode: int, now: float) -> None:
        child.exits.append(returncode)
        child.popen = None
        child.failures = child.failures + 1 if now - child.started_at < self.stable_s else 1
        if child.failures > self.max_restarts:
            child.gave_up = last_error(self.out_dir, child.name) or f"exit status {returncode}"
            self.report("process_gave_up", {"process": child.name, "returncode": returncode,
                                            "restarts": child.starts - 1, "last_error": child.gave_up})
        else:
            child.next_start = now + min(self.backoff * 2 ** min(len(child.exits) - 1, 4), 15.0)
            self.report("process_died", {"process": child.name, "returncode": returncode,
                                         "restart_in_s": round(child.next_start - now, 1)})
        self.write_state()

    def given_up(self) -> dict[str, str]:
        """Processes given up, with the last error of each."""
        return {n: c.gave_up for n, c in self.children.items() if c.gave_up is not None}

    def alive(self) -> dict[str, bool]:
        return {n: c.popen is not None and c.popen.poll() is None for n, c in self.children.items()}

    def signal(self, name: str, signum: int) -> int:
        """Send ``signum`` to child ``name``'s process group (a scenario's process fault: SIGKILL, SIGSTOP,
        SIGCONT); return its pid. ProcessLookupError if it is not running. A killed child is reaped and
        restarted by :meth:`watch` as any death is."""
        p = self.children[name].popen
        if p is None or p.poll() is not None:
            raise ProcessLookupError(f"{name} is not running")
        os.killpg(p.pid, signum)
        self.report("process_signalled", {"process": name, "pid": p.pid, "signal": signal.Signals(signum).name})
        return p.pid

    def restart(self, name: str, grace_s: float = 8.0) -> None:
        """Stop child ``name`` as :meth:`stop` would (SIGTERM, SIGKILL after ``grace_s``) and start it again
        at once; a deliberate restart is not a death (``exits`` keeps only the unexpected ones)."""
        child = self.children[name]
        p = child.popen
        if p is not None and p.poll() is None:
            for signum in (signal.SIGCONT, signal.SIGTERM):  # a held (SIGSTOP) child takes SIGTERM once continued
                try:
                    os.killpg(p.pid, signum)
                except ProcessLookupError:
                    pass
            try:
                p.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        child.popen = None
        self._spawn(child)

    def stop(self, grace_s: float = 8.0) -> None:
        """SIGTERM every child (reverse start order), then SIGKILL what remains."""
        self.stopping = True
        live = [c for c in reversed(list(self.children.values())) if c.popen is not None and c.popen.poll() is None]
        for c in live:
            assert c.popen is not None
            try:
                os.killpg(c.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        for c in live:
            assert c.popen is not None
            try:
                c.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.report("process_killed", {"process": c.name})
                try:
                    os.killpg(c.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                c.popen.wait(timeout=5)
        self.write_state()
