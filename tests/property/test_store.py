"""A RuleBasedStateMachine model of the product store: add, next, confirm and reopen keep its invariants."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fsw.downlink.store import PRIORITY, ProductStore

IDS = st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=6)


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="store-model-"))
        self.t = 0.0
        self.store = ProductStore(self.dir, clock=self.clock)
        self.model: dict[str, tuple[str, bytes, float]] = {}

    def clock(self) -> float:
        self.t += 1.0
        return self.t

    @rule(pid=IDS, kind=st.sampled_from(["thumbnail", "full"]), data=st.binary(max_size=64))
    def add(self, pid: str, kind: str, data: bytes) -> None:
        if pid in self.model:
            return
        p = self.store.add(pid, kind, data)
        self.model[pid] = (kind, data, p.created)

    @rule()
    def next_is_highest_priority_then_oldest(self) -> None:
        got = self.store.next()
        if not self.model:
            assert got is None
            return
        want = min(self.model, key=lambda k: (-PRIORITY[self.model[k][0]], self.model[k][2]))
        assert got is not None and got.id == want

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.model)))
        assert self.store.confirm(pid)
        del self.model[pid]

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = ProductStore(self.dir, clock=self.clock)
        assert self.store.recovery.clean

    @invariant()
    def contents_match_the_model(self) -> None:
        assert sorted(self.store.ids()) == sorted(self.model)
        assert self.store.total_bytes() == sum(len(d) for _, d, _ in self.model.values())
        for pid, (kind, data, _) in self.model.items():
            assert self.store.get(pid).path.read_bytes() == data
        files = {p.name for p in (self.dir / "payload").iterdir()}
        assert files == {f"{pid}.prod" for pid in self.model}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


StoreModel.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
TestStoreModel = StoreModel.TestCase
