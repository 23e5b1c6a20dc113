"""One lunar-pdh process: its context, and the entry point that starts it.

``python -m pdh.process CONFIG NAME --out DIR`` validates CONFIG, sets up
logging (JSON lines to ``DIR/logs/NAME.jsonl``), installs SIGTERM/SIGINT
handlers that set ``ctx.stop``, and calls the kind's entry with a
:class:`ProcessContext`. The entry returns when ``ctx.stop`` is set.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import zmq

from framework.config import Config, load_config
from framework.kinds import KINDS
from framework.logs import configure_logging
from framework.errors import ConfigError

__all__ = ["ProcessContext", "main", "resolve_entry"]


@dataclass
class ProcessContext:
    """Everything a process needs from outside: config, paths, logger, stop flag, clock."""

    name: str
    config: Config
    out_dir: Path
    log: Any
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    _zmq: zmq.Context | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """This process's own validated section of the config."""
        return self.config.processes[self.name]

    @property
    def zmq(self) -> zmq.Context:
        if self._zmq is None:
            self._zmq = zmq.Context()
        return self._zmq

    def endpoint(self, role: str) -> str:
        return self.config.endpoint(self.name, role)

    def has_endpoint(self, role: str) -> bool:
        """Whether the config gives this process the (optional) role."""
        return role in self.settings["endpoints"]

    def publisher(self) -> "Any":
        """A bus Publisher on this process's ``bus_pub`` endpoint, src = process name."""
        from framework.bus.client import Publisher

        return Publisher(self.zmq, self.endpoint("bus_pub"), self.name, self.config.bus["sndhwm"],
                         clock=self.clock)

    def optional_publisher(self) -> "Any":
        """:meth:`publisher` if the config gives this process ``bus_pub``, else a NullPublisher."""
        from framework.bus.client import NullPublisher

        return self.publisher() if self.has_endpoint("bus_pub") else NullPublisher()

    def subscriber(self, topics: list[str]) -> "Any":
        from framework.bus.client import Subscriber

        return Subscriber(self.zmq, self.endpoint("bus_sub"), topics, self.config.bus["rcvhwm"])


def resolve_entry(kind: str) -> Callable[[ProcessContext], None]:
    module, func = KINDS[kind].entry.split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pdh.process")
    ap.add_argument("config")
    ap.add_argument("name")
    ap.add_argument("--out", default="OUT")
    ap.add_argument("--console", action="store_true", help="log readable lines to stderr")
    args = ap.parse_args(argv)
    try:
        config = load_config(args.config).for_run(args.out)  # ipc://NAME: a socket of this run's ipc directory
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if args.name not in config.processes:
        print(f"config error: {args.config}: no process '{args.name}' in processes", file=sys.stderr)
        return 2
    out = Path(args.out)
    log = configure_logging(args.name, None if args.console else out / "logs", console=args.console)
    ctx = ProcessContext(name=args.name, config=config, out_dir=out, log=log)

    def on_signal(signum: int, _frame: Any) -> None:
        ctx.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    kind = config.processes[args.name]["kind"]
    log.info("process_start", kind=kind, pid=__import__("os").getpid())
    try:
        resolve_entry(kind)(ctx)
    except Exception:
        log.exception("process_crashed", kind=kind)
        return 1
    finally:
        if ctx._zmq is not None:
            ctx._zmq.destroy(linger=200)
    log.info("process_stop", kind=kind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
