"""The ground's command queue against a model: order, moves, cancels, signing, stages, a reopen."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from framework.errors import CommandRejected
from ground.queue import CommandQueue


def test_a_queued_command_survives_a_reopen_with_its_stages(tmp_path: Path) -> None:
    clock = itertools.count(100).__next__
    q = CommandQueue(tmp_path / "q.sqlite", clock=lambda: float(clock()))
    a = q.enqueue("imaging", "NOOP", {}, 1)
    b = q.enqueue("downlink", "DROP", {"id": "x"}, 2)
    q.signed(a, 7, b"bytes-of-a")
    assert q.sent(a) == 1
    q.close()
    q = CommandQueue(tmp_path / "q.sqlite")
    (flying,) = q.in_flight()
    assert (flying.id, flying.seq, flying.packet, flying.attempts, flying.state) == (a, 7, b"bytes-of-a", 1, "sent")
    assert [s.stage for s in flying.stages] == ["queued", "sent#1"]
    assert [c.id for c in q.waiting()] == [b] and q.waiting()[0].args == {"id": "x"}
    assert q.by_seq(1, 7) is not None and q.by_seq(2, 7) is None


def test_stages_move_a_command_forward_only(tmp_path: Path) -> None:
    q = CommandQueue(tmp_path / "q.sqlite")
    a = q.enqueue("imaging", "NOOP", {}, 1)
    q.signed(a, 1, b"p")
    q.sent(a)
    assert q.stage(a, "not_delivered", "no received after 5 attempts") == "not_delivered"
    assert q.stage(a, "received") == "received", "a late verification outranks the verdict"
    assert q.stage(a, "completed") == "completed"
    assert q.stage(a, "duplicate", "completed") == "completed", "a duplicate never moves it back"
    assert [s.stage for s in q.get(a).stages] == ["queued", "sent#1", "not_delivered", "received", "completed",
                                                  "duplicate"]


def test_only_a_command_never_signed_can_be_cancelled_or_moved(tmp_path: Path) -> None:
    q = CommandQueue(tmp_path / "q.sqlite")
    a = q.enqueue("imaging", "NOOP", {}, 1)
    q.signed(a, 1, b"p")
    with pytest.raises(CommandRejected, match="signed"):
        q.cancel(a)
    with pytest.raises(CommandRejected, match="signed"):
        q.move(a, 0)
    with pytest.raises(CommandRejected, match="no command 99"):
        q.cancel(99)


class QueueModel(RuleBasedStateMachine):
    """The waiting commands are a list: enqueue appends, move reinserts, cancel removes, take pops the head."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.q = CommandQueue(Path(self.dir.name) / "q.sqlite")
        self.model: list[int] = []
        self.gone: dict[int, str] = {}
        self.seq = 0

    def teardown(self) -> None:
        self.q.close()
        self.dir.cleanup()

    @rule(process=st.sampled_from(["imaging", "downlink"]), cmd=st.sampled_from(["NOOP", "DROP"]))
    def enqueue(self, process: str, cmd: str) -> None:
        self.model.append(self.q.enqueue(process, cmd, {}, 1))

    @precondition(lambda self: self.model)
    @rule(data=st.data(), position=st.integers(-3, 40))
    def move(self, data: st.DataObject, position: int) -> None:
        cid = data.draw(st.sampled_from(self.model))
        assert self.q.move(cid, position) == self._moved(cid, position)

    def _moved(self, cid: int, position: int) -> list[int]:
        self.model.remove(cid)
        self.model.insert(max(0, min(position, len(self.model))), cid)
        return list(self.model)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.model))
        self.q.cancel(cid)
        self.model.remove(cid)
        self.gone[cid] = "cancelled"

    @precondition(lambda self: self.model)
    @rule()
    def take_the_head(self) -> None:
        head = self.q.waiting()[0].id
        assert head == self.model.pop(0)
        self.seq += 1
        self.q.signed(head, self.seq, b"x")
        self.gone[head] = "signed"

    @precondition(lambda self: self.gone)
    @rule(data=st.data())
    def a_gone_command_cannot_be_moved_or_cancelled(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(sorted(self.gone)))
        with pytest.raises(CommandRejected):
            self.q.cancel(cid)
        with pytest.raises(CommandRejected):
            self.q.move(cid, 0)

    @rule()
    def reopen(self) -> None:
        self.q.close()
        self.q = CommandQueue(Path(self.dir.name) / "q.sqlite")

    @invariant()
    def waiting_matches_the_model(self) -> None:
        assert [c.id for c in self.q.waiting()] == self.model
        states = {c.id: c.state for c in self.q.listing(include_done=True)}
        assert all(states[c] == s for c, s in self.gone.items())


QueueModel.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestQueueModel = QueueModel.TestCase
