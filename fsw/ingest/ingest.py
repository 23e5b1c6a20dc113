"""The command ingest's logic, free of I/O: TC packets in, dispatches and verification stages out.

Fed one telecommand packet at a time (:meth:`Ingest.receive`), the replies of the target
command ports (:meth:`Ingest.reply`) and a clock (:meth:`Ingest.expire`), it does what
docs/uplink.md says, in that order, and nothing acts unless every step passed:

1. :meth:`link.sdls.Verifier.check`: parse, SPI, constant-time MAC, anti-replay window, and the
   new sequence number written durably (fsync). A failure here is a ``tc_rejected`` event and a
   counter, and no verification stage: an unauthenticated packet says nothing about any command,
   and a flood of them must not become a flood of telemetry.
2. ``received`` is published (the command is authenticated and can never be accepted again);
   the command is decoded against its target's table (:func:`link.tmtc.decode_command`) and its
   arguments checked (:meth:`framework.interface.Interface.validate_args`); the target must be
   a process of this lander with a command port. A failure: ``rejected`` with the reason.
3. The command goes to the target's port through the :class:`Dispatcher`, speaking for the
   security association's operator; the port's replies become ``accepted``/``rejected`` and
   ``completed``/``failed``; a port that does not answer in time makes it ``failed`` (timeout).

A retransmission (:class:`link.sdls.TcDuplicate`: a valid MAC on a sequence number already
received) re-reports the command's last known stage as ``duplicate`` and never dispatches.
The sockets, the clock and the bus belong to :mod:`fsw.ingest.process`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Hashable, Mapping, Protocol

from spacepackets.ccsds.spacepacket import CCSDS_HEADER_LEN

from framework.counters import saturating_add
from framework.errors import CommandRejected, NotSent, ProtocolError
from fsw.ingest.interface import FAIL_REASONS, REJECT_REASONS
from link.dictionary import Dictionary
from link.sdls import TcDuplicate, TcRejected, Verified
from link.tmtc import SECURITY_HEADER_LEN, STAGES, decode_command

__all__ = ["Ingest", "Dispatcher", "Stage", "STAGES", "MAX_REMEMBERED"]

FINAL = frozenset({"rejected", "completed", "failed"})
MAX_REMEMBERED = 1024
"""Outcomes kept for answering retransmissions; the oldest are forgotten first (a retransmission of a
forgotten one is still never acted on: its sequence number is at or below the SA's last)."""
_COMMAND_AT = CCSDS_HEADER_LEN + SECURITY_HEADER_LEN  # where a TC packet's command (its opcode) starts
_DETAIL_CHARS = 200  # a reason carried in a stage or an event, cut to what a TM packet holds


class Dispatcher(Protocol):
    """Sends a command to a target process's command port (the process's CommandClients)."""

    def send(self, process: str, cmd: str, args: dict[str, Any], operator: str) -> Hashable:
        """Queue the command without waiting; return a ticket its replies come back under
        (:meth:`Ingest.reply`). Raise :class:`framework.errors.NotSent` if the port takes nothing now."""
        ...


class Events(Protocol):
    """The ingest's :class:`framework.reporters.EventReporter` (or a test's stand-in)."""

    def limited(self, name: str, fields: dict[str, Any] | None = None, severity: str | None = None) -> bool: ...

    def emit(self, name: str, fields: dict[str, Any] | None = None, severity: str | None = None) -> Any: ...


@dataclass(frozen=True)
class Stage:
    """One verification stage of one command, as published on ``vrf.<ingest>`` (docs/uplink.md)."""

    spi: int
    tc_seq: int
    target_apid: int
    opcode: int
    stage: str
    reason: str = ""

    def fields(self) -> dict[str, Any]:
        return {"spi": self.spi, "tc_seq": self.tc_seq, "target_apid": self.target_apid, "opcode": self.opcode,
                "stage": self.stage, "reason": self.reason}


@dataclass
class _Pending:
    """A dispatched command awaiting its target's replies."""

    stage: Stage
    process: str
    cmd: str
    deadline: float
    accepted: bool = False


def _cut(text: str) -> str:
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


class Ingest:
    """Authenticates, decodes and dispatches telecommands; reports each one's stages.

    ``targets``: the processes of this lander a command may go to, each with whether it has a command
    port (a process not named here, a ground process say, is an unknown target). ``publish``: called
    with each :class:`Stage`. ``decode``: :func:`link.tmtc.decode_command` (a test may wrap it).
    """

    def __init__(self, verifier: Any, dictionary: Dictionary, targets: Mapping[str, bool], dispatcher: Dispatcher,
                 events: Events, publish: Callable[[Stage], None], monotonic: Callable[[], float],
                 reply_timeout_s: float = 5.0, completion_timeout_s: float = 900.0, max_pending: int = 64,
                 enables: Mapping[int, bool] | None = None,
                 save_enables: Callable[[dict[int, bool]], None] = lambda enables: None,
                 decode: Callable[[bytes, Any], tuple[Any, dict[str, Any]]] = decode_command) -> None:
        """``enables``: the SA_ENABLE/SA_DISABLE overrides in force (already applied to the verifier's
        associations); ``save_enables``: makes a changed set of them durable before it takes effect."""
        self.verifier = verifier
        self.dictionary = dictionary
        self.targets = dict(targets)
        self._dispatcher = dispatcher
        self._events = events
        self._publish = publish
        self._monotonic = monotonic
        self._reply_timeout_s = reply_timeout_s
        self._completion_timeout_s = completion_timeout_s
        self._max_pending = max_pending
        self._decode = decode
        self._enables = dict(enables or {})
        self._save_enables = save_enables
        self.pending: dict[Hashable, _Pending] = {}
        self._outcomes: OrderedDict[tuple[int, int], Stage] = OrderedDict()
        self.counts: dict[str, int] = {}
        self.reset()

    # -- packets in ---------------------------------------------------------------------------
    def receive(self, packet: bytes) -> Stage | None:
        """One TC packet from the uplink. Return the stage it reached here (``received`` when it was
        dispatched), or None when it was refused before authentication. Never raises for its bytes."""
        self._count("tc_received")
        try:
            verified = self.verifier.check(packet)
        except TcDuplicate as dup:
            return self._duplicate(dup, _opcode(bytes(packet[_COMMAND_AT:])))
        except TcRejected as exc:
            self._reject_unauthenticated(exc)
            return None
        self._count("tc_authenticated")
        return self._act(verified)

    def _reject_unauthenticated(self, exc: TcRejected) -> None:
        reason = exc.reason_code if exc.reason_code in REJECT_REASONS else "malformed"
        self._count("tc_rejected")
        self._count(f"rejected_{reason}")
        claimed = {} if exc.header is None else {"spi": exc.header.spi, "tc_seq": exc.header.seq,
                                                 "apid": exc.header.apid}  # what it claimed, not believed
        self._events.limited("tc_rejected", {"reason": reason, "detail": _cut(exc.message), **claimed})

    def _duplicate(self, dup: TcDuplicate, opcode: int) -> Stage:
        """A retransmission (its MAC checked: its opcode is the ground's): re-report what is known of
        it, act on nothing."""
        known = self._outcomes.get((dup.spi, dup.seq))
        last = known.stage if known is not None else dup.stage
        base = known or Stage(dup.spi, dup.seq, dup.apid or 0, opcode, last)
        stage = replace(base, stage="duplicate", reason=last)
        self._count("tc_duplicates")
        self._events.limited("tc_duplicate", {"spi": dup.spi, "tc_seq": dup.seq, "last_stage": last})
        self._publish(stage)
        return stage

    def _act(self, v: Verified) -> Stage:
        """An authenticated command: ``received``, then decoded and dispatched, or ``rejected``."""
        opcode = _opcode(v.body)
        received = Stage(v.spi, v.seq, v.apid, opcode, "received")
        self._stage(received)
        try:
            process, cmd, args = self._resolve(v)
        except _Refused as exc:
            return self._refuse(received, exc.reason, exc.detail)
        if len(self.pending) >= self._max_pending:
            return self._refuse(received, "busy", f"{len(self.pending)} commands await replies already")
        try:
            ticket = self._dispatcher.send(process, cmd, args, v.operator)
        except NotSent as exc:
            return self._fail(received, "not_sent", f"{process}: {exc}")
        self._count("tc_dispatched")
        self.pending[ticket] = _Pending(received, process, cmd, self._monotonic() + self._reply_timeout_s)
        return received

    def _resolve(self, v: Verified) -> tuple[str, str, dict[str, Any]]:
        """The target process, command name and checked arguments; :class:`_Refused` naming the fault."""
        try:
            process = self.dictionary.process_of(v.apid)
        except ProtocolError as exc:
            raise _Refused("unknown_target", str(exc)) from None
        if process not in self.targets:
            raise _Refused("unknown_target", f"{process} (APID {v.apid:#x}) is not a process of this lander")
        if not self.targets[process]:
            raise _Refused("no_command_port", f"{process} has no command port in the config")
        interface = self.dictionary.interface_of(v.apid)
        try:
            spec, raw = self._decode(v.body, interface)
        except ProtocolError as exc:
            raise _Refused("bad_command", f"{process}: {exc}") from None
        try:
            args = interface.validate_args(spec.name, raw)
        except CommandRejected as exc:
            raise _Refused("bad_args", f"{process}: {exc}") from None
        return process, spec.name, args

    # -- replies in ---------------------------------------------------------------------------
    def reply(self, ticket: Hashable, status: str, reason: str = "") -> Stage | None:
        """A target's reply to a dispatched command (``accepted``, ``rejected``, ``completed``,
        ``failed``); return the stage it made, or None for a reply to nothing pending (late, or twice)."""
        p = self.pending.get(ticket)
        if p is None:
            return None
        if status == "accepted" and not p.accepted:
            p.accepted = True
            p.deadline = self._monotonic() + self._completion_timeout_s
            self._count("tc_accepted")
            return self._stage(replace(p.stage, stage="accepted"))
        if status not in FINAL:
            return None
        del self.pending[ticket]
        if status == "rejected":
            self._count("tc_rejected")
            self._count("rejected_by_target")
        else:
            self._count(f"tc_{status}")
        return self._stage(replace(p.stage, stage=status, reason=_cut(reason)))

    def expire(self) -> list[Stage]:
        """Every dispatched command whose target has not answered in time ends ``failed`` (timeout);
        a reply that comes later is ignored. Call it from the loop; return the stages it made."""
        now = self._monotonic()
        late = [t for t, p in self.pending.items() if now >= p.deadline]
        out = []
        for ticket in late:
            p = self.pending.pop(ticket)
            waited = "completed or failed" if p.accepted else "accepted or rejected"
            out.append(self._fail(p.stage, "timeout", f"{p.process} did not answer {waited} in time"))
        return out

    def forget(self, ticket: Hashable) -> None:
        """Drop a pending command without a stage (its port went away with the process)."""
        self.pending.pop(ticket, None)

    # -- security associations ----------------------------------------------------------------
    @property
    def enables(self) -> dict[int, bool]:
        """The operators' SA_ENABLE/SA_DISABLE overrides in force, by SPI."""
        return dict(self._enables)

    def sa_status(self) -> list[dict[str, Any]]:
        """Every SA as SA_STATUS shows it: names and numbers, never key material."""
        return [{"spi": sa.spi, "algorithm": sa.algorithm, "key_id": sa.key_id, "operator": sa.operator,
                 "window": sa.window, "enabled": sa.enabled, "key_loaded": sa.key_id in self.verifier.keys,
                 "last_seq": self.verifier.store.last(sa.spi)}
                for sa in sorted(self.verifier.associations.values(), key=lambda a: a.spi)]

    def set_enabled(self, spi: int, enabled: bool) -> dict[str, Any]:
        """SA_ENABLE / SA_DISABLE: durable first, then in force. CommandRejected for an unknown SPI, an
        SA whose key is not loaded (enabling it would take commands nobody can check), or disabling the
        last enabled SA (no command could ever reach the lander again to undo it)."""
        sa = self.verifier.associations.get(spi)
        if sa is None:
            raise CommandRejected(f"no security association has SPI {spi}; known: {sorted(self.verifier.associations)}")
        if enabled and sa.key_id not in self.verifier.keys:
            raise CommandRejected(f"SA {spi}: its key '{sa.key_id}' is not loaded (pdh keys --sdls {sa.key_id}, "
                                  "then restart the ingest)")
        others = [a for a in self.verifier.associations.values() if a.spi != spi and a.enabled]
        if not enabled and sa.enabled and not others:
            raise CommandRejected(f"SA {spi} is the last enabled one: disabling it would refuse every command "
                                  "for good")
        self._save_enables({**self._enables, spi: enabled})  # an OSError here: failed, nothing changed
        self._enables[spi] = enabled
        self.verifier.associations[spi] = replace(sa, enabled=enabled)
        self._events.emit("sa_changed", {"spi": spi, "enabled": enabled})
        return next(s for s in self.sa_status() if s["spi"] == spi)

    def sa_counters(self) -> dict[str, Any]:
        """The SAs' health: last sequence numbers (by SPI, as text keys) and how many are enabled."""
        sas = self.verifier.associations.values()
        return {"sa_last_seq": {str(sa.spi): self.verifier.store.last(sa.spi) for sa in sas},
                "sa_enabled": sum(1 for sa in sas if sa.enabled)}

    # -- stages and counters ------------------------------------------------------------------
    def _refuse(self, received: Stage, reason: str, detail: str) -> Stage:
        self._count("tc_rejected")
        self._count(f"rejected_{reason}")
        self._events.limited("tc_rejected", {"reason": reason, "detail": _cut(detail), "spi": received.spi,
                                             "tc_seq": received.tc_seq})
        return self._stage(replace(received, stage="rejected", reason=_cut(f"{reason}: {detail}")))

    def _fail(self, received: Stage, reason: str, detail: str) -> Stage:
        self._count("tc_failed")
        self._count(f"failed_{reason}")
        self._events.limited("tc_failed", {"reason": reason, "detail": _cut(detail), "spi": received.spi,
                                           "tc_seq": received.tc_seq})
        return self._stage(replace(received, stage="failed", reason=_cut(f"{reason}: {detail}")))

    def _stage(self, stage: Stage) -> Stage:
        """Remember the command's latest stage (for retransmissions), tell the verifier, publish it."""
        key = (stage.spi, stage.tc_seq)
        self._outcomes[key] = stage
        self._outcomes.move_to_end(key)
        while len(self._outcomes) > MAX_REMEMBERED:
            self._outcomes.popitem(last=False)
        self.verifier.record_outcome(stage.spi, stage.tc_seq, stage.stage)
        self._publish(stage)
        return stage

    def _count(self, name: str) -> None:
        self.counts[name] = saturating_add(self.counts.get(name, 0), 1)

    def reset(self) -> None:
        """RESET_COUNTERS: every count back to zero (the SAs' sequence numbers are not counters)."""
        names = ("tc_received", "tc_authenticated", "tc_dispatched", "tc_accepted", "tc_rejected", "tc_completed",
                 "tc_failed", "tc_duplicates", "rejected_by_target",
                 *(f"rejected_{r}" for r in REJECT_REASONS), *(f"failed_{r}" for r in FAIL_REASONS))
        self.counts = dict.fromkeys(names, 0)

    def counters(self) -> dict[str, Any]:
        return {**self.counts, "tc_pending": len(self.pending), **self.sa_counters()}


class _Refused(Exception):
    """An authenticated command that cannot be dispatched: a reason code and what was wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _opcode(body: bytes) -> int:
    """The command's opcode, the first two bytes of the command (0 if there are not two: it is then
    rejected as bad_command, and its stages still name the command by SPI and sequence number)."""
    return int.from_bytes(body[:2], "big") if len(body) >= 2 else 0
