"""The command interface: a ROUTER on each service, DEALER clients.

Wire (each side sends one msgpack map per message, after an empty delimiter):

- request: ``{"id": int, "cmd": str, "args": map}``
- replies: first ``{"id", "status": "accepted"|"rejected", "reason"}`` at once,
  then (only if accepted) ``{"id", "status": "completed"|"failed", "reason", "result"}``.

Every service answers NOOP (with its version) and RESET_COUNTERS.

Optional CURVE mode (hazardous command ports): give the server its
:class:`CurveServerKeys` and start an authenticator on the same context
(:mod:`framework.bus.auth`); give each client :class:`CurveClientKeys`. A handler
registered with ``with_client=True`` receives the client's identity, the
ZAP User-Id (its Z85 public key), or ``""`` on a port without CURVE.

A handler may return a :class:`Deferred`: the server answers ``accepted``
at once, and the service later calls ``complete(result)`` or ``fail(reason)``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import msgpack
import zmq

from framework import __version__
from framework.errors import CommandRejected
from framework.interface import Interface

__all__ = ["CommandServer", "CommandClient", "CommandReply", "Handler", "ClientHandler", "Deferred",
           "CurveServerKeys", "CurveClientKeys", "register_table", "BUILT_IN"]

Handler = Callable[[dict[str, Any]], Any]
ClientHandler = Callable[[dict[str, Any], str], Any]

BUILT_IN = ("NOOP", "RESET_COUNTERS")
"""Commands every server answers itself (checked against the component's table when it has one)."""


@dataclass(frozen=True)
class CurveServerKeys:
    """The command port's CURVE keypair (Z85) and the ZAP domain its authenticator serves."""

    public: bytes
    secret: bytes
    zap_domain: str = "pdh"


@dataclass(frozen=True)
class CurveClientKeys:
    """A client's CURVE keypair and the server's public key (all Z85)."""

    public: bytes
    secret: bytes
    server_public: bytes


class Deferred:
    """A command accepted now and finished later by the service."""

    def __init__(self) -> None:
        self._server: "CommandServer | None" = None
        self._ident = b""
        self.id: Any = None
        self.cmd = ""
        self.done = False

    def _bind(self, server: "CommandServer", ident: bytes, cid: Any, cmd: str) -> None:
        self._server, self._ident, self.id, self.cmd = server, ident, cid, cmd

    def complete(self, result: Any = None) -> None:
        self._finish({"id": self.id, "status": "completed", "reason": "", "result": result})

    def fail(self, reason: str, result: Any = None) -> None:
        self._finish({"id": self.id, "status": "failed", "reason": reason, "result": result})
        if self._server is not None:
            self._server._on_event("command_failed", {"id": self.id, "cmd": self.cmd, "reason": reason})

    def _finish(self, body: dict[str, Any]) -> None:
        if self.done or self._server is None:
            return
        self.done = True
        self._server._reply(self._ident, body)


def _user_id(frame: Any) -> str:
    """The ZAP User-Id of a received frame, or "" when the connection was not authenticated."""
    try:
        uid = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError):
        return ""
    return uid if isinstance(uid, str) else ""


@dataclass(frozen=True)
class CommandReply:
    id: int
    status: str
    reason: str = ""
    result: Any = None


def _pack(d: dict[str, Any]) -> bytes:
    return msgpack.packb(d, use_bin_type=True)


class CommandServer:
    """Answers commands; call :meth:`poll` from the service's loop.

    A handler raises CommandRejected to refuse before acting; any other
    exception after acceptance is reported as ``failed``. ``on_event`` is
    called for every rejection so the service can publish it on the bus.
    ``interface``: the component's table (:mod:`framework.interface`); NOOP and
    RESET_COUNTERS, which every server answers, are then checked against it too.
    """

    def __init__(self, ctx: zmq.Context, endpoint: str, on_event: Callable[[str, dict[str, Any]], None] | None = None,
                 reset_counters: Callable[[], None] | None = None, curve: CurveServerKeys | None = None,
                 interface: Interface | None = None) -> None:
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            self.sock.curve_server = True
            self.sock.curve_publickey = curve.public
            self.sock.curve_secretkey = curve.secret
            self.sock.zap_domain = curve.zap_domain.encode()
        self.sock.bind(endpoint)
        self._handlers: dict[str, Handler] = {}
        self._with_client: set[str] = set()
        self._on_event = on_event or (lambda name, fields: None)
        self._reset_counters = reset_counters
        self.accepted = 0
        self.rejected = 0
        noop: Handler = lambda args: {"version": __version__}  # noqa: E731
        if interface is not None:  # the component's table checks these two as well (no arguments)
            self.register("NOOP", interface.checked("NOOP", noop))
            self.register("RESET_COUNTERS", interface.checked("RESET_COUNTERS", self._reset))
        else:
            self.register("NOOP", noop)
            self.register("RESET_COUNTERS", self._reset)

    def _reset(self, args: dict[str, Any]) -> None:
        self.accepted = 0
        self.rejected = 0
        if self._reset_counters:
            self._reset_counters()

    def register(self, name: str, handler: Handler | ClientHandler, with_client: bool = False) -> None:
        """Add a command; ``with_client`` handlers are called as ``handler(args, client_id)``."""
        self._handlers[name] = handler
        if with_client:
            self._with_client.add(name)
        else:
            self._with_client.discard(name)

    def _reply(self, ident: bytes, body: dict[str, Any]) -> None:
        self.sock.send_multipart([ident, b"", _pack(body)])

    def poll(self, timeout_ms: int = 0) -> int:
        """Handle every waiting command; return how many."""
        n = 0
        while self.sock.poll(timeout_ms if n == 0 else 0):
            raw = self.sock.recv_multipart(copy=False)
            client = _user_id(raw[-1])
            frames = [f.bytes for f in raw]
            n += 1
            ident = frames[0]
            cid: Any = None
            try:
                if len(frames) != 3 or frames[1] != b"":
                    raise CommandRejected(f"malformed envelope: {len(frames)} parts")
                try:
                    req = msgpack.unpackb(frames[2], raw=False)
                except Exception as exc:
                    raise CommandRejected(f"request is not msgpack: {type(exc).__name__}") from None
                if not isinstance(req, dict):
                    raise CommandRejected("request is not a map")
                cid = req.get("id")
                name = req.get("cmd")
                args = req.get("args", {})
                if not isinstance(cid, int) or isinstance(cid, bool):
                    raise CommandRejected(f"'id' must be an int, got {cid!r}")
                if not isinstance(name, str):
                    raise CommandRejected(f"'cmd' must be a string, got {name!r}")
                if not isinstance(args, dict):
                    raise CommandRejected(f"'args' must be a map, got {type(args).__name__}")
                handler = self._handlers.get(name)
                if handler is None:
                    raise CommandRejected(f"unknown command '{name}'; known: {sorted(self._handlers)}")
            except CommandRejected as exc:
                self.rejected += 1
                self._reply(ident, {"id": cid, "status": "rejected", "reason": str(exc)})
                self._on_event("command_rejected", {"id": cid, "reason": str(exc)})
                continue
            try:
                result = handler(args, client) if name in self._with_client else handler(args)
            except CommandRejected as exc:
                self.rejected += 1
                self._reply(ident, {"id": cid, "status": "rejected", "reason": str(exc)})
                fields = {"id": cid, "cmd": name, "reason": str(exc)}
                if name in self._with_client:
                    fields["client"] = client
                self._on_event("command_rejected", fields)
                continue
            except Exception as exc:  # a failure after acceptance is reported, never fatal
                self.accepted += 1
                self._reply(ident, {"id": cid, "status": "accepted", "reason": ""})
                self._reply(ident, {"id": cid, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
                self._on_event("command_failed", {"id": cid, "cmd": name, "reason": str(exc)})
                continue
            self.accepted += 1
            self._reply(ident, {"id": cid, "status": "accepted", "reason": ""})
            if isinstance(result, Deferred):
                result._bind(self, ident, cid, name)
                continue
            self._reply(ident, {"id": cid, "status": "completed", "reason": "", "result": result})
        return n

    def close(self) -> None:
        self.sock.close()


class CommandClient:
    """Sends commands and collects the two replies."""

    def __init__(self, ctx: zmq.Context, endpoint: str, curve: CurveClientKeys | None = None) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            self.sock.curve_publickey = curve.public
            self.sock.curve_secretkey = curve.secret
            self.sock.curve_serverkey = curve.server_public
            # A refused key leaves no peer, and a DEALER send then blocks for ever: time it out.
            self.sock.setsockopt(zmq.SNDTIMEO, 1000)
        self.sock.connect(endpoint)
        self._ids = itertools.count(1)

    def send(self, cmd: str, args: dict[str, Any] | None = None) -> int:
        cid = next(self._ids)
        self.sock.send_multipart([b"", _pack({"id": cid, "cmd": cmd, "args": args or {}})])
        return cid

    def recv(self, timeout_s: float) -> CommandReply | None:
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        frames = self.sock.recv_multipart()
        body = msgpack.unpackb(frames[-1], raw=False)
        return CommandReply(id=body.get("id"), status=body.get("status"), reason=body.get("reason", ""),
                            result=body.get("result"))

    def call(self, cmd: str, args: dict[str, Any] | None = None, timeout_s: float = 5.0) -> list[CommandReply]:
        """Send and wait for the final reply (or the rejection); return every reply seen.

        With CURVE, a server that refused our key leaves nobody to send to: no replies.
        """
        try:
            cid = self.send(cmd, args)
        except zmq.Again:
            return []
        replies: list[CommandReply] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            r = self.recv(max(0.0, deadline - time.monotonic()))
            if r is None:
                break
            if r.id != cid:
                continue
            replies.append(r)
            if r.status in ("rejected", "completed", "failed"):
                break
        return replies

    def close(self) -> None:
        self.sock.close()


def register_table(server: CommandServer, interface: Interface, handlers: Mapping[str, Handler | ClientHandler],
                   with_client: Iterable[str] = ()) -> None:
    """The one way a component registers its commands: every command of its table but the built-in
    NOOP and RESET_COUNTERS gets the handler of the same name, behind the table's argument check.

    A table command without a handler, or a handler the table does not declare, is a programming
    error (ValueError at start-up, so no process runs with a command it cannot answer).
    ``with_client``: commands whose handler also takes the client's CURVE identity.
    """
    declared = set(interface.commands) - set(BUILT_IN)
    missing = sorted(declared - set(handlers))
    extra = sorted(set(handlers) - declared)
    if missing or extra:
        raise ValueError(f"{interface.component}: commands without a handler {missing}, "
                         f"handlers without a command in the table {extra}")
    clients = set(with_client)
    for name in sorted(declared):
        server.register(name, interface.checked(name, handlers[name]), with_client=name in clients)
