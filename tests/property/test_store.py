"""A RuleBasedStateMachine model of the store and its queue: add, request, confirm, drop, fly, re-encode,
crash and restart, evict. Every invariant of issue 7 holds after every step:

- the store holds exactly the model's items, byte for byte, each with the CRC-32C of its bytes in the
  index, and never more than its quota;
- the send order is the policy's (class, then grade and age for 'rest', else oldest first);
- nothing disappears except by confirm, drop or a reported eviction, and an eviction never takes an
  alert, a thumbnail, realtime telemetry, a requested product or one in flight (only an item kept as
  'refused' goes whatever its class);
- what the store answers from its indexes and running totals (issue 16) is what the model says: the
  next item to send (skipping what is in flight and what is refused), the count, bytes and depth by
  class, the oldest item, the re-encoding backlog and candidates; the totals table equals a count of
  the rows; and all of it still holds after a restart under another age weight.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import crc32c
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fsw.downlink.policy import EVICTABLE, Policy, class_of
from fsw.downlink.reencoder import REENCODE_KINDS
from fsw.downlink.store import ProductStore
from fsw.imaging.product import PRODUCT_KINDS
from framework.errors import StoreError

IDS = st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=5)
KINDS = st.sampled_from(["evt", "thumbnail", "tlm", "tlm_playback", "full", "roi", "preview"])
QUOTA = 600
NOW = 1e6
TARGET = "jpegxl"  # the re-encoder's codec tag in this model
WEIGHTS = st.sampled_from([50.0, 0.0, 0.1, 3600.0])


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="store-model-"))
        self.t = 0.0
        self.policy = Policy(age_weight_per_h=50.0)
        self.store = self.open()
        self.model: dict[str, dict] = {}
        self.seq = 0

    def clock(self) -> float:
        self.t += 1.0
        return self.t

    def open(self) -> ProductStore:
        return ProductStore(self.dir, clock=self.clock, policy=self.policy, quota_bytes=QUOTA)

    def take_evictions(self) -> None:
        for v in self.store.evicted:
            m = self.model.pop(v.id)
            assert m["refused"] or (m["cls"] in EVICTABLE and not m["flying"]), (v.id, m)
        self.store.evicted.clear()

    @rule(pid=IDS, kind=KINDS, size=st.integers(0, 200), score=st.floats(0, 1), requested=st.booleans())
    def add(self, pid: str, kind: str, size: int, score: float, requested: bool) -> None:
        data = (pid.encode() * 200)[:size]
        try:
            p = self.store.add(pid, kind, data, score=score, requested=requested, codec="jpegls")
        except StoreError:
            assert pid in self.model or sum(len(m["data"]) for m in self.model.values()) + size > QUOTA
            assert self.store.evicted == []
            return
        assert pid not in self.model
        self.take_evictions()
        self.seq += 1
        self.model[pid] = {"cls": class_of(kind, requested), "kind": kind, "data": data, "score": score,
                           "created": p.created, "seq": self.seq, "flying": False, "refused": False,
                           "codec": "jpegls", "reencoded": False}

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def request(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.model)))
        self.store.request(pid)
        m = self.model[pid]
        m["cls"] = class_of(m["kind"], True)
        m["refused"] = False

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), drop=st.booleans())
    def confirm_or_drop(self, data: st.DataObject, drop: bool) -> None:
        pid = data.draw(st.sampled_from(sorted(self.model)))
        assert (self.store.drop if drop else self.store.confirm)(pid)
        del self.model[pid]

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), flying=st.booleans())
    def fly(self, data: st.DataObject, flying: bool) -> None:
        pid = data.draw(st.sampled_from(sorted(self.model)))
        self.store.set_state(pid, "sending" if flying else "stored")
        self.model[pid].update(flying=flying, refused=False)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def refuse(self, data: st.DataObject) -> None:
        """The ground refused it and it does not decode on board: kept, not sent, evicted first."""
        pid = data.draw(st.sampled_from(sorted(self.model)))
        self.store.set_state(pid, "refused")
        self.model[pid].update(flying=False, refused=True)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def mark_reencoded(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.model)))
        self.store.mark_reencoded(pid)
        self.model[pid]["reencoded"] = True

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), size=st.integers(0, 100))
    def replace_payload(self, data: st.DataObject, size: int) -> None:
        pid = data.draw(st.sampled_from(sorted(self.model)))
        new = bytes([7]) * min(size, len(self.model[pid]["data"]))
        done = self.store.replace_payload(pid, new, TARGET)
        m = self.model[pid]
        assert done == (not m["flying"] and not m["refused"])
        if done:
            m.update(data=new, codec=TARGET, reencoded=True)

    @rule(leftovers=st.booleans(), weight=WEIGHTS)
    def crash_and_restart(self, leftovers: bool, weight: float) -> None:
        """A restart: in-flight marks are forgotten; crash leftovers (temp, orphan generation) are cleaned;
        the configured age weight may have changed (the 'rest' order's index is made again)."""
        self.store.close()
        self.policy = Policy(age_weight_per_h=weight)
        if leftovers:
            (self.dir / "tmp" / "x.123.tmp").write_bytes(b"half")
            (self.dir / "payload" / "ghost~3.prod").write_bytes(b"orphan")
        self.store = self.open()
        assert self.store.recovery.rows_without_payload == []
        assert bool(self.store.recovery.temp_files_removed) == leftovers
        for m in self.model.values():
            m["flying"] = False

    def expected_order(self) -> list[str]:
        def key(pid: str) -> tuple:
            m = self.model[pid]
            boost = -(m["score"] + self.policy.age_weight_per_h * (NOW - m["created"]) / 3600.0) \
                if m["cls"] == "rest" else 0.0
            return (self.policy.rank(m["cls"]), boost, m["created"], m["seq"])
        return sorted(self.model, key=key)

    @invariant()
    def contents_order_and_quota_match_the_model(self) -> None:
        assert self.store.ids(now=NOW) == self.expected_order()
        assert self.store.total_bytes() == sum(len(m["data"]) for m in self.model.values()) <= QUOTA
        for pid, m in self.model.items():
            item = self.store.get(pid)
            assert item.path.read_bytes() == m["data"]
            assert item.crc32c == crc32c.crc32c(m["data"])  # the index holds the CRC of what was stored
        files = {p.name for p in (self.dir / "payload").iterdir()}
        assert files == {self.store.get(pid).path.name for pid in self.model}

    def sendable(self) -> list[str]:
        return [pid for pid in self.expected_order() if not self.model[pid]["refused"]]

    @invariant()
    def next_is_the_first_sendable_item_not_excluded(self) -> None:
        order = self.sendable()
        flying = {pid for pid, m in self.model.items() if m["flying"]}
        assert getattr(self.store.next(now=NOW), "id", None) == (order[0] if order else None)
        rest = [pid for pid in order if pid not in flying]
        assert getattr(self.store.next(exclude=flying, now=NOW), "id", None) == (rest[0] if rest else None)
        skip = set(order[:2])
        rest = [pid for pid in order if pid not in skip]
        assert getattr(self.store.next(exclude=skip, now=NOW), "id", None) == (rest[0] if rest else None)

    @invariant()
    def counts_and_totals_match_the_model(self) -> None:
        ms = self.model.values()
        assert len(self.store) == len(self.model)
        assert self.store.depth_by_class() == {c: sum(m["cls"] == c for m in ms) for c in self.policy.priority}
        for kinds in (PRODUCT_KINDS, None):
            ages = [m["created"] for m in ms if kinds is None or m["kind"] in kinds]
            assert self.store.oldest_created(kinds) == (min(ages) if ages else None)
        backlog = [pid for pid, m in self.model.items()
                   if m["kind"] in REENCODE_KINDS and not m["reencoded"] and m["codec"] != TARGET]
        assert self.store.reencode_backlog(REENCODE_KINDS, TARGET) == len(backlog)
        waiting = [pid for pid in backlog if not self.model[pid]["flying"] and not self.model[pid]["refused"]]
        newest = sorted(waiting, key=lambda pid: (self.model[pid]["created"], self.model[pid]["seq"]), reverse=True)
        assert [p.id for p in self.store.reencode_candidates(REENCODE_KINDS, TARGET, 3)] == newest[:3]
        counted = self.store.db.execute("SELECT cls, kind, codec, reencoded, COUNT(*), SUM(size) FROM items "
                                        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4").fetchall()
        assert self.store.db.execute("SELECT cls, kind, codec, reencoded, items, bytes FROM totals "
                                     "ORDER BY 1, 2, 3, 4").fetchall() == counted

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


StoreModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestStoreModel = StoreModel.TestCase
