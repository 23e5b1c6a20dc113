"""The mechanism controller's firmware, emulated: protocol messages in, replies out, physics stepped. No I/O.

:class:`DeviceCore` answers each command of the mechanism protocol
(:mod:`drivers.deploy.protocol`) with one reply, NAKs what arrived sound but
could not be decoded, and steps :class:`~hil.deploy.mechanism.Mechanism` at a
fixed rate up to the simulated time it is given. The process adapter
(:mod:`hil.deploy.process`) moves the bytes and keeps the clock; the tests feed
it byte transcripts.
"""

from __future__ import annotations

from drivers.deploy import protocol as p
from drivers.deploy.profile import MechanismProfile
from framework.errors import CommandRejected
from hil.deploy.mechanism import Mechanism

__all__ = ["DeviceCore", "MAX_STEPS_PER_TICK"]

MAX_STEPS_PER_TICK = 5000
"""Physics steps one :meth:`DeviceCore.advance_to` may take; beyond it the tick is an overrun (counted)."""


class DeviceCore:
    """The mechanism controller's firmware: answers protocol messages and steps the physics. No I/O."""

    def __init__(self, profile: MechanismProfile, seed: int, physics_hz: float) -> None:
        self.profile = profile
        self.seed = seed
        self.dt_s = 1.0 / physics_hz
        self.mech = Mechanism(profile, seed)
        self._seq = 0
        self.commands = 0
        self.naks = 0
        self.overruns = 0

    def reset_counters(self) -> None:
        self.commands = 0
        self.naks = 0
        self.overruns = 0

    def reset(self) -> None:
        old = self.mech
        self.mech = Mechanism(self.profile, self.seed)
        self.mech.faults, self.mech.t_s, self.mech.ambient_c = old.faults, old.t_s, old.ambient_c

    def advance_to(self, sim_t_s: float) -> int:
        """Step the physics at the fixed rate until simulated time reaches ``sim_t_s``; return steps."""
        n = 0
        while self.mech.t_s + self.dt_s <= sim_t_s:
            if n >= MAX_STEPS_PER_TICK:
                self.overruns += 1
                break
            self.mech.step(self.dt_s)
            n += 1
        return n

    def _next_seq(self) -> int:
        s = self._seq
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return s

    def handle(self, msg: p.Message) -> p.Message | None:
        """One reply per command; replies and samples sent to the device are ignored."""
        if not isinstance(msg, p.COMMAND_TYPES):
            return None
        self.commands += 1
        seq = self._next_seq()
        if isinstance(msg, p.StatusRequest):
            s = self.mech.sample()
            return p.Sample(ref_seq=msg.seq, t_s=s.t_s, state=s.state, circuit=s.circuit, released=s.released,
                            angle_valid=s.angle_valid, stowed_switch=s.stowed_switch,
                            deployed_switch=s.deployed_switch, angle_deg=s.angle_deg, current_a=s.current_a,
                            temp_c=s.temp_c, element_temp_c=s.element_temp_c, reason=s.reason, seq=seq)
        if isinstance(msg, p.Ping):
            return p.Ack(ref_seq=msg.seq, reason=f"{self.profile.type} {self.profile.name}", seq=seq)
        name = {p.Arm: "ARM", p.Disarm: "DISARM", p.Fire: "FIRE", p.Stop: "STOP"}[type(msg)]
        try:
            note = self.mech.command(name, getattr(msg, "circuit", ""))
        except CommandRejected as exc:
            self.naks += 1
            return p.Nak(ref_seq=msg.seq, code=p.Code.NOT_ALLOWED, reason=str(exc), seq=seq)
        return p.Ack(ref_seq=msg.seq, reason=note, seq=seq)

    def nak_for(self, error: p.WireError) -> p.Message | None:
        """A NAK for a message that arrived sound but could not be decoded."""
        if error.seq is None or isinstance(error, (p.CrcError, p.HeaderCrcError)):
            return None  # nothing trustworthy to answer
        self.naks += 1
        code = p.Code.UNKNOWN_TYPE if isinstance(error, p.UnknownMessageType) else p.Code.MALFORMED
        return p.Nak(ref_seq=error.seq, code=code, reason=str(error), seq=self._next_seq())
