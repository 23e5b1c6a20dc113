"""One lunar-pdh process: its context, and the entry point that starts it.

``python -m pdh.process CONFIG NAME --out DIR`` validates CONFIG, sets up
logging (JSON lines to ``DIR/logs/NAME.jsonl``), installs SIGTERM/SIGINT
handlers that set ``ctx.stop``, and calls the kind's entry with a
:class:`ProcessContext`. The entry returns when ``ctx.stop`` is set.

Command ports and their clients are made one way, :meth:`ProcessContext.command_server`
and :meth:`ProcessContext.command_client`: with the config's ``security.curve``
(the default) every port is a CURVE server with the run's service keypair and
an allow-list checked at the handshake and on every command, and every client
uses this process's own keypair (named by process name). The run's keys are
made at start if missing (:func:`framework.bus.auth.ensure_run_keys`).
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
from typing import TYPE_CHECKING, Any, Callable

import zmq

from framework.clock import StepClock, offset_path
from framework.config import Config, load_config
from framework.kinds import KINDS
from framework.logs import configure_logging
from framework.errors import ConfigError

if TYPE_CHECKING:
    from framework.bus.auth import AllowList, Authenticator
    from framework.bus.commands import CommandClient, CommandServer, CurveClientKeys

__all__ = ["ProcessContext", "main", "resolve_entry", "ensure_keys"]


def ensure_keys(config: Config, out_dir: str | Path) -> Path | None:
    """Make the run's missing keys (service, one per process, operator) when its ports use CURVE;
    return the key directory, or None when they do not."""
    if not config.security["curve"]:
        return None
    from framework.bus.auth import ensure_run_keys

    keys_dir = config.keys_dir(out_dir)
    ensure_run_keys(keys_dir, config.process_names())
    return keys_dir


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
    _auth: "Authenticator | None" = None
    _allow: "AllowList | None" = None
    _servers: int = 0

    @property
    def settings(self) -> dict[str, Any]:
        """This process's own validated section of the config."""
        return self.config.processes[self.name]

    @property
    def zmq(self) -> zmq.Context:
        if self._zmq is None:
            self._zmq = zmq.Context()
        return self._zmq

    @property
    def keys_dir(self) -> Path:
        """The run's key directory (``security.keys_dir``, relative to the output directory)."""
        return self.config.keys_dir(self.out_dir)

    def _keys(self) -> Path:
        keys_dir = ensure_keys(self.config, self.out_dir)
        assert keys_dir is not None
        return keys_dir

    def command_server(self, endpoint: str | None = None, role: str = "command", **kwargs: Any) -> "CommandServer":
        """This process's command port (``endpoint``, default the config's for ``role``); ``kwargs`` go to
        :class:`~framework.bus.commands.CommandServer` (on_event, reset_counters, interface, on_refused, ...).

        With ``security.curve``: a CURVE server with the run's service keys, the ZAP authenticator on this
        process's context (one for all its ports) refusing every key not in ``keys_dir/authorized`` at the
        handshake, and the same allow-list asked on every command (a revoked key is refused on its next
        command) and naming the client to ``with_client`` handlers; ``security.delegates`` may name the
        operator they act for. Without: a plain port (tests that say so)."""
        from framework.bus.auth import AllowList, Authenticator, AUTHORIZED_DIR, server_curve
        from framework.bus.commands import CommandServer

        address = endpoint if endpoint is not None else self.endpoint(role)
        if not self.config.security["curve"]:
            return CommandServer(self.zmq, address, **kwargs)
        keys_dir = self._keys()
        if self._allow is None:
            self._allow = AllowList(keys_dir / AUTHORIZED_DIR)
        if self._auth is None:
            self._auth = Authenticator(self.zmq, self._allow)
        kwargs.setdefault("delegates", self.config.security["delegates"])
        server = CommandServer(self.zmq, address, curve=server_curve(keys_dir), allow=self._allow,
                               on_close=self._server_closed, **kwargs)
        self._servers += 1
        return server

    def _server_closed(self) -> None:
        """The last command port closed: stop the authenticator (its thread holds a socket of the context)."""
        self._servers -= 1
        if self._servers <= 0:
            self.close_auth()

    def close_auth(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def command_client(self, endpoint: str, **kwargs: Any) -> "CommandClient":
        """A client of another process's command port, as this process: with ``security.curve`` its own
        keypair (``keys_dir/<process name>``) and the run's service key; ``kwargs`` go to
        :class:`~framework.bus.commands.CommandClient` (sndhwm, ...)."""
        from framework.bus.commands import CommandClient

        return CommandClient(self.zmq, endpoint, self.client_keys(), **kwargs)

    def client_keys(self) -> "CurveClientKeys | None":
        """This process's CURVE client keys for the run's command ports, or None without ``security.curve``
        (for a socket that is not a CommandClient but talks to a command port)."""
        from framework.bus.auth import client_curve

        return client_curve(self._keys(), self.name) if self.config.security["curve"] else None

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
    try:
        ensure_keys(config, out)  # a process started alone makes the run's missing keys itself
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    log = configure_logging(args.name, None if args.console else out / "logs", console=args.console)
    # wall time through a clock a bench can step (framework.clock); the monotonic clock never steps
    ctx = ProcessContext(name=args.name, config=config, out_dir=out, log=log,
                         clock=StepClock(offset_path(out, args.name)))

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
        ctx.close_auth()
        if ctx._zmq is not None:
            ctx._zmq.destroy(linger=200)
    log.info("process_stop", kind=kind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
