"""ARM-then-FIRE safety, modelled: no command sequence from any mix of clients fires a mechanism
without a live arm by the same authenticated client."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from drivers.deploy.arming import ArmFireGuard
from framework.errors import CommandRejected

WINDOW_S = 10.0
MECHS = {"holddown": True, "boom": True, "array": False}
AUTHORIZED = {"alice", "bob"}
CLIENTS = ["alice", "bob", "", "mallory", "alice "]  # "" = unauthenticated; others not on the allow-list

clients = st.sampled_from(CLIENTS)
mechanisms = st.sampled_from([*MECHS, "unknown", ""])
times = st.floats(0.0, 15.0, allow_nan=False)


class ArmFireMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.guard = ArmFireGuard(MECHS, WINDOW_S, authorized=lambda c: c in AUTHORIZED)
        self.now = 0.0
        self.history: list[tuple[float, str, str, str]] = []  # accepted (t, verb, mechanism, client)
        self.fires: list[tuple[int, str, str]] = []  # (its place in history, mechanism, client)

    def _do(self, verb: str, m: str, c: str) -> bool:
        try:
            getattr(self.guard, verb.lower())(m, c, self.now)
        except CommandRejected as exc:
            assert str(exc), "every refusal says why"
            return False
        self.history.append((self.now, verb, m, c))
        return True

    @rule(dt=times)
    def wait(self, dt: float) -> None:
        self.now += dt

    @rule(m=mechanisms, c=clients)
    def arm(self, m: str, c: str) -> None:
        self._do("ARM", m, c)

    @rule(m=mechanisms, c=clients)
    def fire(self, m: str, c: str) -> None:
        expected = self._model_allows_fire(m, c)
        accepted = self._do("FIRE", m, c)
        assert accepted == expected, (m, c, self.history)
        if accepted:
            self.fires.append((len(self.history) - 1, m, c))

    @rule(m=mechanisms, c=clients)
    def disarm(self, m: str, c: str) -> None:
        self._do("DISARM", m, c)

    @rule(m=mechanisms, c=clients)
    def inhibit(self, m: str, c: str) -> None:
        self._do("INHIBIT", m, c)

    @rule(m=mechanisms, c=clients)
    def enable(self, m: str, c: str) -> None:
        self._do("ENABLE", m, c)

    def _model_allows_fire(self, m: str, c: str) -> bool:
        """The rules, restated from the history alone."""
        if c not in AUTHORIZED or m not in MECHS:
            return False
        if MECHS[m] and any(v == "FIRE" and hm == m for _, v, hm, _ in self.history):
            return False
        inhibited = False
        arm: tuple[float, str] | None = None
        for t, v, hm, hc in self.history:
            if hm != m:
                continue
            if v == "ARM":
                arm = (t, hc)
            elif v in ("FIRE", "DISARM", "INHIBIT"):
                arm = None
            if v == "INHIBIT":
                inhibited = True
            elif v == "ENABLE":
                inhibited = False
        return (not inhibited and arm is not None and arm[1] == c and 0.0 <= self.now - arm[0] <= WINDOW_S)

    @invariant()
    def every_fire_had_a_live_arm_by_the_same_authenticated_client(self) -> None:
        for at, m, c in self.fires:
            assert c in AUTHORIZED
            t_fire = self.history[at][0]
            # By order, not by time: commands may share a timestamp, and a later ARM must not count.
            before = [(t, v, hc) for t, v, hm, hc in self.history[:at] if hm == m]
            arms = [(t, hc) for t, v, hc in before if v == "ARM"]
            assert arms and arms[-1][1] == c and t_fire - arms[-1][0] <= WINDOW_S

    @invariant()
    def one_shots_fire_at_most_once(self) -> None:
        for m, one_shot in MECHS.items():
            if one_shot:
                assert sum(1 for _, fm, _ in self.fires if fm == m) <= 1


ArmFireMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestArmFire = ArmFireMachine.TestCase


@given(st.lists(st.tuples(st.sampled_from(["ARM", "FIRE", "DISARM", "INHIBIT", "ENABLE"]), mechanisms, times),
                max_size=30))
def test_client_without_a_known_key_never_fires_or_arms_anything(cmds) -> None:
    guard = ArmFireGuard(MECHS, WINDOW_S, authorized=lambda c: c in AUTHORIZED)
    now = 0.0
    for verb, m, dt in cmds:
        now += dt
        for c in ("", "mallory"):
            try:
                getattr(guard, verb.lower())(m, c, now)
            except CommandRejected:
                continue
            raise AssertionError(f"{verb} by unknown client {c!r} was accepted")
    assert not guard.fired


def test_arm_by_one_client_does_not_let_another_fire() -> None:
    import pytest

    guard = ArmFireGuard(MECHS, WINDOW_S, authorized=lambda c: c in AUTHORIZED)
    guard.arm("boom", "alice", 0.0)
    with pytest.raises(CommandRejected, match="another client"):
        guard.fire("boom", "bob", 1.0)
    with pytest.raises(CommandRejected, match="expired"):
        guard.fire("boom", "alice", 10.5)
    guard.arm("boom", "alice", 11.0)
    guard.fire("boom", "alice", 12.0)
    with pytest.raises(CommandRejected, match="already fired"):
        guard.arm("boom", "alice", 13.0)
