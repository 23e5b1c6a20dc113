"""The command interface: a ROUTER on each service, DEALER clients.

Wire (each side sends one msgpack map per message, after an empty delimiter):

- request: ``{"id": int, "cmd": str, "args": map}``, and optionally ``"operator": str`` (below)
- replies: first ``{"id", "status": "accepted"|"rejected", "reason"}`` at once,
  then (only if accepted) ``{"id", "status": "completed"|"failed", "reason", "result"}``.

Every service answers NOOP (with its version) and RESET_COUNTERS.

CURVE mode (every command port of a run, made by
:meth:`framework.process.ProcessContext.command_server`): the server has its
:class:`CurveServerKeys`, an authenticator on the same context and ``allow``,
the allow-list (:class:`framework.bus.auth.AllowList`). A client whose key is
not on it is refused at the handshake (nothing of it is read; each refusal is
reported, rate-limited, as ``command_rejected``), and the key of every command
is looked up again before anything acts, so a key revoked after the handshake
is refused on its next command. CURVE needs a transport with a handshake (tcp,
ipc): over inproc a CURVE port knows no client, so it refuses every command.

Identity: a handler registered with ``with_client=True`` receives who asked:
the name the client's key is authorised under. A request may carry
``"operator": NAME``: only a client in the server's ``delegates`` (the ground's
command ingest, the stored-command sequencer: they act for an operator named by
the security association) may send it, and then the handler receives ``NAME``;
from anyone else the request is rejected, naming why. On a port without CURVE
the identity is ``""`` (and an ``operator`` field is refused: nobody is known to
speak for anyone).

A handler may return a :class:`Deferred`: the server answers ``accepted``
at once, and the service later calls ``complete(result)`` or ``fail(reason)``.

No input can kill, hang or bloat either end: each socket has a MAXMSGSIZE
(:data:`MAX_REQUEST_BYTES`, :data:`MAX_REPLY_BYTES`); requests and replies are
decoded by :func:`decode_request` and :func:`decode_reply`, which raise typed
errors only; no send waits (a client's refused send raises
:class:`CommandNotSent` and is counted in ``unsent``; a reply the server cannot
hand over now is counted in ``replies_unsent``); :meth:`CommandServer.poll`
handles at most :attr:`~CommandServer.MAX_COMMANDS_PER_POLL` commands a call, and
its ``command_rejected`` events are rate-limited.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import msgpack
import zmq

from framework import __version__
from framework.counters import saturating_add
from framework.errors import BusError, CommandRejected, NotSent
from framework.interface import Interface

__all__ = ["CommandServer", "CommandClient", "CommandReply", "CommandRequest", "CommandNotSent", "Handler",
           "ClientHandler", "Deferred", "CurveServerKeys", "CurveClientKeys", "KeyCheck", "register_table", "BUILT_IN",
           "DEFAULT_DELEGATES",
           "decode_request", "decode_reply", "MAX_REQUEST_BYTES", "MAX_REPLY_BYTES", "REPLY_STATUSES"]

MAX_REQUEST_BYTES = 256 * 1024
"""The largest request a command port takes (its socket's MAXMSGSIZE): commands carry a few arguments."""
MAX_REPLY_BYTES = 16 * 1024 * 1024
"""The largest reply a client takes (a listing of the store, a status map)."""
REPLY_STATUSES = ("accepted", "rejected", "completed", "failed")
_SHOWN_CHARS = 200  # how much of a value from outside a rejection reason repeats

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
    id: int | None  # None: the server could not read the request's id
    status: str
    reason: str = ""
    result: Any = None


@dataclass(frozen=True)
class CommandRequest:
    id: int
    cmd: str
    args: dict[str, Any]
    operator: str | None = None  # the operator a delegate (ingest, sequencer) acts for


class KeyCheck(Protocol):
    """What a CURVE port asks of its allow-list (:class:`framework.bus.auth.AllowList`)."""

    def name_of(self, public_z85: str | bytes) -> str | None: ...

    def drain_refusals(self) -> list[dict[str, Any]]: ...


DEFAULT_DELEGATES = ("ingest", "sequencer")
"""Clients (by key name) whose requests may name the operator they act for."""
_OPERATOR_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class MalformedRequest(CommandRejected):
    """A request that is not ``{"id": int, "cmd": str, "args": map}``; ``id`` is its id if that much was readable."""

    def __init__(self, detail: str, cid: Any = None) -> None:
        super().__init__(detail)
        self.id = cid


class CommandNotSent(NotSent, zmq.Again):
    """The command port is not taking commands now (its queue is full, or nobody is there): the command
    was dropped, not waited for. Also a ``zmq.Again``, which callers caught before it had a type of its own."""

    def __init__(self, detail: str) -> None:
        Exception.__init__(self, detail)
        self.errno = zmq.EAGAIN
        self.strerror = detail


def _pack(d: dict[str, Any]) -> bytes:
    return msgpack.packb(d, use_bin_type=True)


def _shown(value: Any) -> str:
    """A value from outside, as a rejection reason may repeat it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}... ({len(text)} chars)"


def decode_request(data: bytes) -> CommandRequest:
    """One request body; raise MalformedRequest (a CommandRejected) naming what is wrong, nothing else."""
    try:
        req = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad bytes
        raise MalformedRequest(f"request is not msgpack: {type(exc).__name__}") from None
    if not isinstance(req, dict):
        raise MalformedRequest("request is not a map")
    cid = req.get("id")
    if not isinstance(cid, int) or isinstance(cid, bool):
        raise MalformedRequest(f"'id' must be an int, got {_shown(cid)}")
    name, args = req.get("cmd"), req.get("args", {})
    if not isinstance(name, str):
        raise MalformedRequest(f"'cmd' must be a string, got {_shown(name)}", cid)
    if not isinstance(args, dict):
        raise MalformedRequest(f"'args' must be a map, got {type(args).__name__}", cid)
    bad_keys = [k for k in args if not isinstance(k, str)]
    if bad_keys:
        raise MalformedRequest(f"argument names must be strings, got {_shown(bad_keys[0])}", cid)
    operator = req.get("operator")
    if operator is not None and (not isinstance(operator, str) or not _OPERATOR_RE.fullmatch(operator)):
        raise MalformedRequest(f"'operator' must be a name of up to 64 letters, digits, _.@-, got {_shown(operator)}",
                               cid)
    return CommandRequest(cid, name, args, operator)


def decode_reply(data: bytes) -> CommandReply:
    """One reply body; raise BusError naming what is wrong, nothing else."""
    try:
        body = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad bytes
        raise BusError(f"reply is not msgpack: {type(exc).__name__}") from None
    if not isinstance(body, dict):
        raise BusError("reply is not a map")
    cid, status, reason = body.get("id"), body.get("status"), body.get("reason", "")
    if cid is not None and (not isinstance(cid, int) or isinstance(cid, bool)):
        raise BusError(f"reply 'id' must be an int, got {_shown(cid)}")
    if status not in REPLY_STATUSES:
        raise BusError(f"reply 'status' must be one of {REPLY_STATUSES}, got {_shown(status)}")
    if not isinstance(reason, str):
        raise BusError(f"reply 'reason' must be a string, got {_shown(reason)}")
    return CommandReply(id=cid, status=status, reason=reason, result=body.get("result"))


class CommandServer:
    """Answers commands; call :meth:`poll` from the service's loop.

    A handler raises CommandRejected to refuse before acting; any other
    exception after acceptance is reported as ``failed``. ``on_event`` is
    called for every rejection so the service can publish it on the bus.
    ``interface``: the component's table (:mod:`framework.interface`); NOOP and
    RESET_COUNTERS, which every server answers, are then checked against it too.
    ``max_request_bytes``: the socket's MAXMSGSIZE. ``clock``: for the rate limit of
    ``command_rejected`` events (at most :attr:`REJECTION_EVENTS_PER_PERIOD` a second; the next one
    that goes out carries ``suppressed``, how many were not sent).
    """

    MAX_COMMANDS_PER_POLL = 64
    """Commands one :meth:`poll` handles at most, so a flood of them cannot hold the service's loop."""
    REJECTION_EVENTS_PER_PERIOD = 20
    _REJECTION_PERIOD_S = 1.0

    def __init__(self, ctx: zmq.Context, endpoint: str, on_event: Callable[[str, dict[str, Any]], None] | None = None,
                 reset_counters: Callable[[], None] | None = None, curve: CurveServerKeys | None = None,
                 interface: Interface | None = None, max_request_bytes: int = MAX_REQUEST_BYTES,
                 clock: Callable[[], float] = time.monotonic, allow: KeyCheck | None = None,
                 delegates: Iterable[str] = DEFAULT_DELEGATES,
                 on_refused: Callable[[dict[str, Any]], None] | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        """``allow``: on a CURVE port, the allow-list: every command's key is looked up in it as it is now
        (a key revoked after the handshake is rejected before any handler runs) and its name is the client's
        identity. ``delegates``: key names that may send ``operator``. ``on_refused``: told of each key the
        handshake refused (default: a rate-limited ``command_rejected`` event)."""
        self._allow = allow
        self.delegates = frozenset(delegates)
        self._on_refused = on_refused
        self._on_close = on_close
        self.handshakes_refused = 0
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, max_request_bytes)
        self._max_request_bytes = max_request_bytes
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a reply that cannot go now raises (counted), never waits
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
        self._clock = clock
        self._window_start = -float("inf")
        self._window_events = 0
        self._suppressed = 0
        self.accepted = 0
        self.rejected = 0
        self.replies_unsent = 0
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
        self.replies_unsent = 0
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
        """Hand a reply over without waiting; one the client cannot take now (gone, or not reading) is counted."""
        try:
            data = _pack(body)
        except (OverflowError, TypeError, ValueError) as exc:  # a handler's result msgpack cannot carry
            data = _pack({"id": body.get("id"), "status": "failed",
                          "reason": f"result cannot be encoded: {type(exc).__name__}: {exc}", "result": None})
        try:
            self.sock.send_multipart([ident, b"", data], flags=zmq.NOBLOCK)
        except zmq.ZMQError:  # EAGAIN: its queue is full; EHOSTUNREACH: it has gone
            self.replies_unsent = saturating_add(self.replies_unsent, 1)

    def _rejected(self, ident: bytes, fields: dict[str, Any]) -> None:
        """Answer ``rejected`` and report it: every rejection is counted and answered, its event rate-limited."""
        self.rejected = saturating_add(self.rejected, 1)
        self._reply(ident, {"id": fields["id"], "status": "rejected", "reason": fields["reason"]})
        self._report_rejection(fields)

    def _report_rejection(self, fields: dict[str, Any]) -> None:
        """``command_rejected``, at most :attr:`REJECTION_EVENTS_PER_PERIOD` a period (the next carries
        ``suppressed``)."""
        now = self._clock()
        if now - self._window_start >= self._REJECTION_PERIOD_S:
            self._window_start, self._window_events = now, 0
        if self._window_events >= self.REJECTION_EVENTS_PER_PERIOD:
            self._suppressed = saturating_add(self._suppressed, 1)
            return
        self._window_events += 1
        if self._suppressed:
            fields = {**fields, "suppressed": self._suppressed}
            self._suppressed = 0
        self._on_event("command_rejected", fields)

    def drain_refusals(self) -> int:
        """Report the keys the handshake refused since the last call (ZeroMQ retries a refused client every
        reconnect interval, so these are reported rate-limited); return how many."""
        if self._allow is None:
            return 0
        refusals = self._allow.drain_refusals()
        for refusal in refusals:
            self.handshakes_refused = saturating_add(self.handshakes_refused, 1)
            if self._on_refused is not None:
                self._on_refused(refusal)
            else:
                self._report_rejection({"id": None, "reason": "client key not authorised (CURVE handshake "
                                        "refused)", "client_key": refusal.get("client_key", "")})
        return len(refusals)

    def poll(self, timeout_ms: int = 0) -> int:
        """Handle the waiting commands, at most :attr:`MAX_COMMANDS_PER_POLL`; return how many (the
        handshakes refused meanwhile are reported first)."""
        self.drain_refusals()
        n = 0
        while n < self.MAX_COMMANDS_PER_POLL and self.sock.poll(timeout_ms if n == 0 else 0):
            raw = self.sock.recv_multipart(copy=False)
            n += 1
            self._handle(raw)
        return n

    def _handle(self, raw: Sequence[Any]) -> None:
        client = _user_id(raw[-1])
        ident = raw[0].bytes
        try:
            if len(raw) != 3 or raw[1].bytes != b"":
                raise MalformedRequest(f"malformed envelope: {len(raw)} parts")
            if len(raw[2]) > self._max_request_bytes:  # inproc has no MAXMSGSIZE: the same limit, here
                raise MalformedRequest(f"request of {len(raw[2])} bytes is over {self._max_request_bytes}")
            req = decode_request(raw[2].bytes)
            client = self._identity(client, req)
            handler = self._handlers.get(req.cmd)
            if handler is None:
                raise MalformedRequest(f"unknown command {_shown(req.cmd)}; known: {sorted(self._handlers)}", req.id)
        except MalformedRequest as exc:
            self._rejected(ident, {"id": exc.id, "reason": str(exc)})
            return
        cid, name = req.id, req.cmd
        try:
            result = handler(req.args, client) if name in self._with_client else handler(req.args)
        except CommandRejected as exc:
            fields = {"id": cid, "cmd": name, "reason": str(exc)}
            if name in self._with_client:
                fields["client"] = client
            self._rejected(ident, fields)
            return
        except Exception as exc:  # a failure after acceptance is reported, never fatal
            self.accepted = saturating_add(self.accepted, 1)
            self._reply(ident, {"id": cid, "status": "accepted", "reason": ""})
            self._reply(ident, {"id": cid, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
            self._on_event("command_failed", {"id": cid, "cmd": name, "reason": str(exc)})
            return
        self.accepted = saturating_add(self.accepted, 1)
        self._reply(ident, {"id": cid, "status": "accepted", "reason": ""})
        if isinstance(result, Deferred):
            result._bind(self, ident, cid, name)
            return
        self._reply(ident, {"id": cid, "status": "completed", "reason": "", "result": result})

    def _identity(self, key: str, req: CommandRequest) -> str:
        """Who asks: the name the client's key is authorised under now (a delegate's named operator), or
        ``""`` on a port without CURVE; MalformedRequest if the key is no longer authorised or the client
        names an operator it may not speak for."""
        if self._allow is None:
            if req.operator is not None:
                raise MalformedRequest("'operator' refused: this port has no CURVE keys, so no client is known "
                                       "to act for an operator", req.id)
            return key
        name = self._allow.name_of(key) if key else None
        if name is None:
            raise MalformedRequest("client key is not on the allow-list (revoked?)", req.id)
        if req.operator is None:
            return name
        if name not in self.delegates:
            raise MalformedRequest(f"'operator' refused: client '{name}' may not act for another (only "
                                   f"{sorted(self.delegates)} may)", req.id)
        return req.operator

    def close(self) -> None:
        self.sock.close()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()


class CommandClient:
    """Sends commands and collects the two replies; never waits to send.

    ``unsent``: commands refused because the port was not taking any (:class:`CommandNotSent`);
    ``malformed``: replies that were not replies (skipped).
    """

    MAX_SKIPPED_PER_RECV = 64
    """Replies one :meth:`recv` looks at most before it returns None (a flood of malformed ones cannot hold it)."""

    def __init__(self, ctx: zmq.Context, endpoint: str, curve: CurveClientKeys | None = None,
                 sndhwm: int = 1000, max_reply_bytes: int = MAX_REPLY_BYTES) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        self.sock.setsockopt(zmq.MAXMSGSIZE, max_reply_bytes)
        if curve is not None:
            self.sock.curve_publickey = curve.public
            self.sock.curve_secretkey = curve.secret
            self.sock.curve_serverkey = curve.server_public
        self.sock.connect(endpoint)
        self._ids = itertools.count(1)
        self.unsent = 0
        self.malformed = 0

    def send(self, cmd: str, args: dict[str, Any] | None = None, operator: str | None = None) -> int:
        """Queue one command; return its id. Raise CommandNotSent (counted in ``unsent``) if the port is not
        taking commands now: its queue is full, or (a CURVE server that refused our key) nobody is there.
        ``operator``: the operator this client acts for (only a port's delegates may say so)."""
        cid = next(self._ids)
        body: dict[str, Any] = {"id": cid, "cmd": cmd, "args": args or {}}
        if operator is not None:
            body["operator"] = operator
        try:
            self.sock.send_multipart([b"", _pack(body)], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.unsent = saturating_add(self.unsent, 1)
            raise CommandNotSent(f"{cmd} not sent: the command port is not taking commands now") from None
        return cid

    def recv(self, timeout_s: float) -> CommandReply | None:
        """The next well-formed reply, or None after ``timeout_s`` (malformed ones are counted and skipped)."""
        deadline = time.monotonic() + timeout_s
        for _ in range(self.MAX_SKIPPED_PER_RECV):
            if not self.sock.poll(max(0, int((deadline - time.monotonic()) * 1000))):
                return None
            frames = self.sock.recv_multipart()
            try:
                return decode_reply(frames[-1])
            except BusError:
                self.malformed = saturating_add(self.malformed, 1)
        return None

    def call(self, cmd: str, args: dict[str, Any] | None = None, timeout_s: float = 5.0,
             operator: str | None = None) -> list[CommandReply]:
        """Send and wait for the final reply (or the rejection); return every reply seen.

        A command the port did not take (with CURVE: a server that refused our key) has no replies.
        """
        try:
            cid = self.send(cmd, args, operator)
        except CommandNotSent:
            return []
        replies: list[CommandReply] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            r = self.recv(max(0.0, deadline - time.monotonic()))
            if r is None:
                continue
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
