"""The ground's uplink: the operator's commands checked, queued, signed and sent through the relays. No sockets.

:meth:`Uplink.enqueue` (the UPLINK command) checks a command against its target's interface
table (the dictionary of the run's config) and the security association it will go under,
and queues it (:mod:`ground.queue`), or refuses it at once with the reason.
:meth:`Uplink.step` (each turn of the station's loop) sends, in queue order, while a contact
is open long enough for the command to reach the lander inside it (light time plus a guard).

One command is in flight at a time (stop and wait, the simplest COP-1): the next one is signed
only when the previous one is verified ``received`` or given up. On board, anti-replay takes a
sequence number only above the last one accepted, so a later command overtaking a lost one
would make the lost one's resend a replay; with one in flight that never happens. Signing
(:class:`Signers`) allocates the sequence number durably and the queue stores the signed bytes
before they first leave. Without ``received`` (or any later stage) within ``retry_s`` of
open-contact time (default twice the light time plus a margin), the same bytes go again, up to
``max_attempts``; then the command is ``not_delivered`` (an event; never silently dropped). A
resend cannot act twice: ingest answers a sequence number it has seen with ``duplicate``.

Verification packets (:meth:`Uplink.verified`, fed by :mod:`ground.telemetry`) are matched to
their command by SPI and sequence number; each stage is recorded with its time and published
as a ``command_stage`` event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from framework.errors import CommandRejected, ConfigError, PdhError, ProtocolError
from framework.interface import CommandSpec
from framework.reporters import EventReporter
from ground.queue import CommandQueue, QueuedCommand
from link.contacts import ContactClock, ContactPlan
from link.dictionary import Dictionary
from link.radio import Radio
from link.sdls import SequenceStore, SignedCommand, Signer, load_associations, load_key
from link.tmtc import TcEncodeError, TmPacket, encode_command

__all__ = ["Uplink", "UplinkSettings", "SignerSource", "Signers", "STAGE_SEVERITY"]

STAGE_SEVERITY = {"rejected": "warning", "failed": "error", "not_delivered": "error", "duplicate": "info"}
"""``command_stage`` events at these stages carry this severity instead of the table's (info)."""
_MAX_ARGS_JSON = 16 * 1024
_SEQ_COUNT_MODULO = 1 << 14


class SignerSource(Protocol):
    """What the uplink needs of the security associations: whether an SPI can sign now, and signing."""

    def check(self, spi: int) -> None:
        """Raise CommandRejected if commands cannot go under ``spi`` (unknown, disabled, no key)."""

    def sign(self, spi: int, apid: int, spec: CommandSpec, args: dict[str, Any], seq_count: int) -> SignedCommand:
        """The SPI's next sequence number, allocated durably, and the protected packet carrying it."""


class Signers:
    """The ground's security associations (``sa_file``) and keys (``<keys_dir>/sdls/``), read when asked,
    so a key made or an SA enabled after the station started is found; one durable sequence store
    (``store_path``) for every SPI."""

    def __init__(self, sa_file: Path, keys_dir: Path, store_path: Path) -> None:
        self.sa_file = sa_file
        self.keys_dir = keys_dir
        self.store_path = store_path
        self._store: SequenceStore | None = None

    def _signer(self, spi: int) -> Signer:
        try:
            sas = {sa.spi: sa for sa in load_associations(self.sa_file)}
            sa = sas.get(spi)
            if sa is None:
                raise CommandRejected(f"spi {spi}: no such security association in {self.sa_file} "
                                      f"(known: {sorted(sas)})")
            if not sa.enabled:
                raise CommandRejected(f"spi {spi}: the security association is disabled")
            if self._store is None:
                self._store = SequenceStore(self.store_path)
            return Signer(sa, load_key(self.keys_dir, sa.key_id), self._store)
        except (ConfigError, PdhError) as exc:
            if isinstance(exc, CommandRejected):
                raise
            raise CommandRejected(f"spi {spi}: {exc}") from None

    def check(self, spi: int) -> None:
        self._signer(spi)

    def sign(self, spi: int, apid: int, spec: CommandSpec, args: dict[str, Any], seq_count: int) -> SignedCommand:
        return self._signer(spi).sign(apid, spec, args, seq_count)


@dataclass(frozen=True)
class UplinkSettings:
    """The ground kind's ``uplink_*`` keys. ``retry_s`` 0: twice the longest light time plus ``retry_margin_s``."""

    spi: int = 1
    max_attempts: int = 5
    retry_s: float = 0.0
    retry_margin_s: float = 2.0
    guard_s: float = 0.5

    @classmethod
    def from_settings(cls, s: dict[str, Any]) -> "UplinkSettings":
        return cls(s["uplink_spi"], s["uplink_max_attempts"], s["uplink_retry_s"], s["uplink_retry_margin_s"],
                   s["uplink_guard_s"])


class Uplink:
    """The queue, the contact plan and the radio, fed a wall clock; reports through ``events``."""

    def __init__(self, queue: CommandQueue, dictionary: Dictionary, plan: ContactPlan, clock: Callable[[], float],
                 radio: Radio, events: EventReporter, signers: SignerSource, settings: UplinkSettings) -> None:
        self.queue = queue
        self.dictionary = dictionary
        self.plan = plan
        self.clock = clock
        self.radio = radio
        self.events = events
        self.signers = signers
        self.settings = settings
        self.open_clock = ContactClock(plan, clock)
        latency_s = max((r.latency_ms for r in plan.relays), default=0.0) / 1000.0
        self.retry_s = settings.retry_s or 2 * latency_s + settings.retry_margin_s
        self.sent_at: dict[int, float] = {}  # command id -> open-contact seconds at its last transmission
        self.c = {"uplink_enqueued": 0, "uplink_datagrams_sent": 0, "uplink_resent": 0, "uplink_not_delivered": 0,
                  "uplink_sign_errors": 0, "verifications_matched": 0, "verifications_unmatched": 0}

    # -- the operator's side -------------------------------------------------------------------
    def enqueue(self, target: str, cmd: str, args_json: str = "{}", spi: int | None = None) -> int:
        """Check and queue one command; its queue id. CommandRejected with the reason if it cannot go."""
        args = _parse_args(args_json)
        try:
            interface = self.dictionary.interface_of_process(target)
        except ProtocolError as exc:
            raise CommandRejected(f"target: {exc}") from None
        checked = interface.validate_args(cmd, args)
        try:
            encode_command(0, 0, 0, 0, interface.commands[cmd], checked)  # its size with the longest MAC
        except TcEncodeError as exc:
            raise CommandRejected(f"cannot be encoded: {exc}") from None
        spi = self.settings.spi if spi is None else spi
        self.signers.check(spi)
        cid = self.queue.enqueue(target, cmd, checked, spi)
        self.c["uplink_enqueued"] += 1
        self._report(self.queue.get(cid), "queued")
        return cid

    def listing(self, cid: int | None = None, include_done: bool = False) -> list[dict[str, Any]]:
        """QUEUE_LIST: one command, or the open ones (in flight, then waiting in order), with ``include_done``
        also the last finished ones."""
        found = [self.queue.get(cid)] if cid is not None else self.queue.listing(include_done)
        return [c.to_dict() for c in found]

    def move(self, cid: int, position: int) -> list[int]:
        return self.queue.move(cid, position)

    def cancel(self, cid: int) -> None:
        self.queue.cancel(cid)
        self._report(self.queue.get(cid), "cancelled")

    # -- sending -------------------------------------------------------------------------------
    def window_open(self, now: float) -> bool:
        """A contact is open now and still will be when a command sent now reaches the lander."""
        contact = self.plan.contact(now)
        return contact is not None and self.plan.is_open(now + contact.latency_ms / 1000.0 + self.settings.guard_s)

    def step(self) -> None:
        """Resend or give up on the command in flight, or sign and send the next one; at most one datagram."""
        now = self.clock()
        open_s = self.open_clock()
        flying = self.queue.in_flight()
        if flying:
            self._follow(flying[0], now, open_s)
            return
        waiting = self.queue.waiting()
        if waiting and self.window_open(now):
            self._first_send(waiting[0], open_s)

    def _follow(self, c: QueuedCommand, now: float, open_s: float) -> None:
        if c.state == "signed":  # signed, never recorded as sent (a full socket, or a crash in between)
            if self.window_open(now):
                self._transmit(c, open_s)
            return
        last = self.sent_at.setdefault(c.id, open_s)  # after a restart, its timer starts again now
        if open_s - last < self.retry_s:
            return
        if c.attempts >= self.settings.max_attempts:
            self.sent_at.pop(c.id, None)
            detail = f"no verification after {c.attempts} attempts ({self.retry_s:g} s of contact each)"
            self.queue.stage(c.id, "not_delivered", detail)
            self.c["uplink_not_delivered"] += 1
            self._report(self.queue.get(c.id), "not_delivered", detail)
            return
        if self.window_open(now):
            self.c["uplink_resent"] += 1
            self._transmit(c, open_s)

    def _first_send(self, c: QueuedCommand, open_s: float) -> None:
        try:
            spec = self.dictionary.interface_of_process(c.target).commands[c.cmd]
            signed = self.signers.sign(c.spi, self.dictionary.apid_of(c.target), spec, c.args,
                                       c.id % _SEQ_COUNT_MODULO)
        except (CommandRejected, PdhError, KeyError, OSError) as exc:
            # the key went away or the SA was disabled since it was queued: it stays queued, reported
            self.c["uplink_sign_errors"] += 1
            self.events.limited("uplink_unavailable", {"id": c.id, "spi": c.spi, "reason": str(exc)})
            return
        self.queue.signed(c.id, signed.seq, signed.packet)
        self._transmit(self.queue.get(c.id), open_s)

    def _transmit(self, c: QueuedCommand, open_s: float) -> None:
        assert c.packet is not None, "only a signed command is transmitted"
        if not self.radio.send(c.packet):
            return  # the socket is full: the same bytes go on a later turn
        attempt = self.queue.sent(c.id)
        self.sent_at[c.id] = open_s
        self.c["uplink_datagrams_sent"] += 1
        self._report(c, f"sent#{attempt}", "", attempt=attempt, seq=c.seq)

    # -- verification --------------------------------------------------------------------------
    def verified(self, p: TmPacket) -> None:
        """A verification packet from ingest: the stage of the command sent under its SPI and sequence number."""
        v = p.verification
        if v is None:
            return
        c = self.queue.by_seq(v.spi, v.tc_seq)
        if c is None:
            self.c["verifications_unmatched"] += 1
            self.events.limited("verification_unmatched", {"spi": v.spi, "tc_seq": v.tc_seq, "stage": v.stage,
                                                           "reason": v.reason})
            return
        self.c["verifications_matched"] += 1
        self.sent_at.pop(c.id, None)
        state = self.queue.stage(c.id, v.stage, v.reason)
        self._report(c, v.stage, v.reason, state=state, t_lander=p.t)

    # -- health --------------------------------------------------------------------------------
    def sample(self) -> dict[str, Any]:
        counts = self.queue.counts()
        return {**self.c, "uplink_waiting": counts.get("queued", 0),
                "uplink_in_flight": counts.get("signed", 0) + counts.get("sent", 0)}

    def reset_counters(self) -> None:
        for k in ("uplink_sign_errors", "verifications_unmatched"):
            self.c[k] = 0

    def _report(self, c: QueuedCommand, stage: str, detail: str = "", **extra: Any) -> None:
        fields = {"id": c.id, "target": c.target, "cmd": c.cmd, "stage": stage, "spi": c.spi}
        if detail:
            fields["reason"] = detail
        fields.update(extra)
        self.events.emit("command_stage", fields, STAGE_SEVERITY.get(stage))


def _parse_args(args_json: str) -> dict[str, Any]:
    """UPLINK's ``args_json``: a JSON object (numbers finite), or CommandRejected saying why not."""
    if len(args_json) > _MAX_ARGS_JSON:
        raise CommandRejected(f"args_json: {len(args_json)} characters, more than {_MAX_ARGS_JSON}")
    try:
        args = json.loads(args_json or "{}", parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise CommandRejected(f"args_json is not JSON: {exc}") from None
    if not isinstance(args, dict):
        raise CommandRejected(f"args_json must be a JSON object, got {type(args).__name__}")
    return args


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a command can carry")
