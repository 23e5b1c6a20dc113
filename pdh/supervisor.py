"""Start, watch and stop the processes of a config; restart any that dies.

The supervisor is the only code that starts processes. It runs each as
``python -m pdh.process CONFIG NAME --out OUT`` in its own process group,
restarts one that exits unexpectedly (with backoff), and stops them all with
SIGTERM, then SIGKILL after a grace period. Given a host, it starts only the
processes the config places on that host (``pdh run CONFIG --host NAME`` on
each machine); without one, every process on this machine (``pdh demo``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from framework.config import Config
from framework.process import ensure_keys
from pdh.keys import ensure_sdls_keys

__all__ = ["Supervisor", "Child"]

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


class Supervisor:
    def __init__(self, config: Config, config_path: Path, out_dir: Path,
                 on_report: Callable[[str, dict[str, Any]], None] | None = None,
                 restart_backoff_s: float = 1.0, host: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.out_dir = out_dir
        self.report = on_report or (lambda name, fields: None)
        self.backoff = restart_backoff_s
        self.host = host
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
        self.report("process_started", {"process": child.name, "pid": child.popen.pid, "start": child.starts})

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
                child.exits.append(p.returncode)
                child.popen = None
                child.next_start = now + min(self.backoff * 2 ** min(len(child.exits) - 1, 4), 15.0)
                self.report("process_died", {"process": child.name, "returncode": p.returncode,
                                             "restart_in_s": round(child.next_start - now, 1)})
            elif p is None and now >= child.next_start:
                self._spawn(child)

    def alive(self) -> dict[str, bool]:
        return {n: c.popen is not None and c.popen.poll() is None for n, c in self.children.items()}

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
