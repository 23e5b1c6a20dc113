"""Two-step commanding of hazardous mechanisms: ARM, then FIRE within a window. Pure: fed commands,
client identities and a clock; no I/O.

The rules (each refusal raises :class:`~framework.errors.CommandRejected` saying why):

- Every command needs an authenticated client: a non-empty identity, the name
  the command port found the client's CURVE key authorised under on this very
  command, or the operator a delegate (the ground's command ingest, the
  stored-command sequencer) acts for, as its security association names it.
- ``arm(m, c)``: refused if ``m`` is unknown, inhibited, busy deploying, a
  one-shot already fired, or armed by another client whose arm is still live.
  Re-arming by the same client restarts the window.
- ``fire(m, c)``: needs a live arm of ``m`` by the same ``c``, made at most
  ``window_s`` ago; the arm is consumed, so one arm allows one fire. A
  one-shot mechanism is marked fired and never accepts ARM or FIRE again.
- ``disarm``, ``inhibit`` (which also drops any arm) and ``enable`` are open
  to every authenticated client: making safe is never refused for ownership.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from framework.errors import CommandRejected

__all__ = ["ArmRecord", "ArmFireGuard"]


@dataclass(frozen=True)
class ArmRecord:
    client: str
    t_s: float


class ArmFireGuard:
    """Decides every ARM/FIRE/DISARM/INHIBIT/ENABLE; the driver acts only on what it accepts."""

    def __init__(self, one_shot: dict[str, bool], window_s: float = 10.0,
                 authorized: Callable[[str], bool] | None = None, fired: Iterable[str] = (),
                 inhibited: Iterable[str] = ()) -> None:
        self.window_s = window_s
        self._one_shot = dict(one_shot)
        self._authorized = authorized or (lambda client: True)
        self._arms: dict[str, ArmRecord] = {}
        self.fired: set[str] = set(fired)
        self.inhibited: set[str] = set(inhibited)
        self.busy: set[str] = set()

    # --- checks -----------------------------------------------------------------------------

    def check(self, mechanism: object, client: str) -> str:
        if not isinstance(client, str) or not client:
            raise CommandRejected("unauthenticated client: hazardous commands need a CURVE key on the allow-list")
        if not self._authorized(client):
            raise CommandRejected(f"client {client[:8]}... is not on the allow-list")
        if not isinstance(mechanism, str) or mechanism not in self._one_shot:
            raise CommandRejected(f"unknown mechanism {mechanism!r}; known: {sorted(self._one_shot)}")
        return mechanism

    def _live(self, mechanism: str, now_s: float) -> ArmRecord | None:
        rec = self._arms.get(mechanism)
        if rec is not None and not 0.0 <= now_s - rec.t_s <= self.window_s:
            del self._arms[mechanism]
            return None
        return rec

    def _check_ready(self, m: str, verb: str) -> None:
        if m in self.inhibited:
            raise CommandRejected(f"{verb} {m}: mechanism is inhibited")
        if self._one_shot[m] and m in self.fired:
            raise CommandRejected(f"{verb} {m}: one-shot mechanism already fired")
        if m in self.busy:
            raise CommandRejected(f"{verb} {m}: a deployment is in progress")

    # --- commands ---------------------------------------------------------------------------

    def arm(self, mechanism: object, client: str, now_s: float) -> None:
        m = self.check(mechanism, client)
        self._check_ready(m, "ARM")
        rec = self._live(m, now_s)
        if rec is not None and rec.client != client:
            raise CommandRejected(f"ARM {m}: already armed by another client")
        self._arms[m] = ArmRecord(client, now_s)

    def fire(self, mechanism: object, client: str, now_s: float) -> None:
        m = self.check(mechanism, client)
        self._check_ready(m, "FIRE")
        had = self._arms.get(m)
        rec = self._live(m, now_s)
        if rec is None:
            raise CommandRejected(f"FIRE {m}: arm expired (window {self.window_s:g} s)" if had
                                  else f"FIRE {m}: not armed")
        if rec.client != client:
            raise CommandRejected(f"FIRE {m}: armed by another client")
        del self._arms[m]
        if self._one_shot[m]:
            self.fired.add(m)

    def disarm(self, mechanism: object, client: str, now_s: float) -> bool:
        """Drop any arm; return whether there was a live one."""
        m = self.check(mechanism, client)
        rec = self._live(m, now_s)
        self._arms.pop(m, None)
        return rec is not None

    def inhibit(self, mechanism: object, client: str, now_s: float) -> None:
        m = self.check(mechanism, client)
        self.inhibited.add(m)
        self._arms.pop(m, None)

    def enable(self, mechanism: object, client: str, now_s: float) -> None:
        m = self.check(mechanism, client)
        self.inhibited.discard(m)

    # --- state ------------------------------------------------------------------------------

    def armed_by(self, mechanism: str, now_s: float) -> str | None:
        rec = self._live(mechanism, now_s)
        return rec.client if rec else None

    def status(self, mechanism: str, now_s: float) -> dict[str, object]:
        rec = self._live(mechanism, now_s)
        return {"armed": rec is not None,
                "arm_remaining_s": round(self.window_s - (now_s - rec.t_s), 3) if rec else 0.0,
                "inhibited": mechanism in self.inhibited, "fired": mechanism in self.fired,
                "busy": mechanism in self.busy, "one_shot": self._one_shot.get(mechanism, False)}
