"""The ingest's core with a fake dispatcher: only authentic, fresh, well-formed commands act, once.

Packets are made the ground's way (:class:`link.sdls.Signer`, its own sequence store) and
checked by a real :class:`link.sdls.Verifier` with a real durable store; the dispatcher and
the event reporter are stand-ins that record what they are asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.errors import CommandRejected, NotSent
from framework.interface import Arg, CommandSpec, Interface
from fsw.ingest.enables import EnableStore, EnableStoreDamaged
from fsw.ingest.ingest import Ingest, Stage
from fsw.ingest.interface import INTERFACE as INGEST_TABLE
from link.dictionary import Dictionary
from link.sdls import RECENT_PER_SPI, SecurityAssociation, SequenceStore, Signer, Verifier, protect
from link.tmtc import encode_command

TARGET = Interface.build("target", commands=(
    CommandSpec(0x10, "MOVE", (Arg("steps", int, min=0, max=100), Arg("mode", str, choices=("slow", "fast"),
                                                                           required=False))),
), id_base=0x0C00)
TABLES = {"target": TARGET, "portless": TARGET, "ground_thing": TARGET, "ingest": INGEST_TABLE}
DICTIONARY = Dictionary.from_interfaces(TABLES)
APID = DICTIONARY.apid_of("target")
MOVE = TARGET.commands["MOVE"]
KEY1, KEY2 = bytes(range(32)), bytes(range(1, 33))
SA1 = SecurityAssociation(spi=1, key_id="ops1", algorithm="aes-gcm", window=8, operator="ops")
SA2 = SecurityAssociation(spi=2, key_id="ops2", algorithm="hmac-sha256", window=8, operator="night")
KEYS = {"ops1": KEY1, "ops2": KEY2}


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@dataclass
class FakeDispatcher:
    sent: list[tuple[str, str, dict[str, Any], str]] = field(default_factory=list)
    refuse: bool = False

    def send(self, process: str, cmd: str, args: dict[str, Any], operator: str) -> Hashable:
        if self.refuse:
            raise NotSent("port full")
        self.sent.append((process, cmd, args, operator))
        return len(self.sent)


@dataclass
class FakeEvents:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def limited(self, name: str, fields: dict[str, Any] | None = None, severity: str | None = None) -> bool:
        self.events.append((name, dict(fields or {})))
        return True

    def emit(self, name: str, fields: dict[str, Any] | None = None, severity: str | None = None) -> Any:
        self.events.append((name, dict(fields or {})))


class Rig:
    """An ingest core wired to fakes, and the ground's signer for each SA."""

    def __init__(self, directory: Path, max_pending: int = 64, sas: tuple[SecurityAssociation, ...] = (SA1, SA2)):
        self.dir = directory
        self.clock = FakeClock()
        self.dispatcher = FakeDispatcher()
        self.events = FakeEvents()
        self.stages: list[Stage] = []
        self.saved: list[dict[int, bool]] = []
        self.signers = {sa.spi: Signer(sa, KEYS[sa.key_id], SequenceStore(directory / f"ground-{sa.spi}.json"))
                        for sa in sas}
        self.sas = sas
        self.max_pending = max_pending
        self.core = self.restart()

    def restart(self) -> Ingest:
        """A new core over the same durable sequence file (what a process restart leaves)."""
        verifier = Verifier(list(self.sas), KEYS, SequenceStore(self.dir / "board.json"),
                            known_apids=DICTIONARY.apids())
        self.core = Ingest(verifier, DICTIONARY, {"target": True, "portless": False, "ingest": True},
                           self.dispatcher, self.events, self.stages.append, self.clock,
                           reply_timeout_s=5.0, completion_timeout_s=60.0, max_pending=self.max_pending,
                           save_enables=self.saved.append)
        return self.core

    def sign(self, steps: int = 1, spi: int = 1, apid: int = APID, spec: CommandSpec = MOVE,
             args: dict[str, Any] | None = None) -> bytes:
        return self.signers[spi].sign(apid, spec, {"steps": steps} if args is None else args).packet

    def rejections(self) -> list[str]:
        return [f["reason"] for name, f in self.events.events if name == "tc_rejected"]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


# -- what acts --------------------------------------------------------------------------------
def test_an_authentic_command_is_dispatched_once_with_the_sas_operator_and_its_stages_follow(rig: Rig) -> None:
    stage = rig.core.receive(rig.sign(7, spi=2))
    assert stage is not None and stage.stage == "received"
    assert rig.dispatcher.sent == [("target", "MOVE", {"steps": 7}, "night")]
    rig.core.reply(1, "accepted")
    rig.core.reply(1, "completed")
    assert [s.stage for s in rig.stages] == ["received", "accepted", "completed"]
    assert {(s.spi, s.tc_seq, s.target_apid, s.opcode) for s in rig.stages} == {(2, 1, APID, 0x10)}
    c = rig.core.counters()
    assert (c["tc_received"], c["tc_authenticated"], c["tc_dispatched"], c["tc_accepted"], c["tc_completed"]) == \
        (1, 1, 1, 1, 1)
    assert c["sa_last_seq"] == {"1": 0, "2": 1} and c["tc_pending"] == 0


def test_a_target_that_rejects_or_fails_is_reported_with_its_reason(rig: Rig) -> None:
    rig.core.receive(rig.sign(1))
    rig.core.receive(rig.sign(2))
    rig.core.reply(1, "rejected", "not now")
    rig.core.reply(2, "accepted")
    rig.core.reply(2, "failed", "motor stalled")
    assert [(s.tc_seq, s.stage, s.reason) for s in rig.stages if s.stage in ("rejected", "failed")] == \
        [(1, "rejected", "not now"), (2, "failed", "motor stalled")]
    assert rig.core.counters()["rejected_by_target"] == 1 and rig.core.counters()["tc_failed"] == 1


def test_a_target_that_does_not_answer_in_time_ends_failed_and_its_late_reply_is_ignored(rig: Rig) -> None:
    rig.core.receive(rig.sign(1))
    rig.clock.t += 4.9
    assert rig.core.expire() == []
    rig.clock.t += 0.2
    (failed,) = rig.core.expire()
    assert failed.stage == "failed" and failed.reason.startswith("timeout")
    assert rig.core.reply(1, "accepted") is None and rig.core.counters()["failed_timeout"] == 1
    assert ("tc_failed", {"reason": "timeout"}) in [(n, {"reason": f.get("reason")}) for n, f in rig.events.events]


def test_an_accepted_command_gets_the_longer_completion_timeout(rig: Rig) -> None:
    rig.core.receive(rig.sign(1))
    rig.clock.t += 4.0
    rig.core.reply(1, "accepted")
    rig.clock.t += 30.0
    assert rig.core.expire() == []
    rig.clock.t += 31.0
    assert [s.stage for s in rig.core.expire()] == ["failed"]


def test_a_port_that_takes_nothing_now_makes_the_command_failed_not_sent(rig: Rig) -> None:
    rig.dispatcher.refuse = True
    rig.core.receive(rig.sign(1))
    assert [s.stage for s in rig.stages] == ["received", "failed"]
    assert rig.core.counters()["failed_not_sent"] == 1 and not rig.core.pending


# -- what never acts --------------------------------------------------------------------------
def _nothing_acted(rig: Rig, before_stages: int = 0) -> None:
    assert rig.dispatcher.sent == []
    assert len(rig.stages) == before_stages


@settings(max_examples=60)
@given(data=st.data())
def test_any_flipped_bit_is_refused_with_an_event_and_nothing_acts(tmp_path_factory: Any, data: Any) -> None:
    rig = Rig(tmp_path_factory.mktemp("flip"))
    spi = data.draw(st.sampled_from([1, 2]))
    packet = bytearray(rig.sign(3, spi=spi))
    bit = data.draw(st.integers(0, len(packet) * 8 - 1))
    packet[bit // 8] ^= 1 << (bit % 8)
    assert rig.core.receive(bytes(packet)) is None
    _nothing_acted(rig)
    assert len(rig.rejections()) == 1
    c = rig.core.counters()
    assert c["tc_rejected"] == 1 and c["tc_authenticated"] == 0


@settings(max_examples=60)
@given(data=st.data())
def test_a_forged_mac_of_any_length_is_refused(tmp_path_factory: Any, data: Any) -> None:
    rig = Rig(tmp_path_factory.mktemp("forge"))
    genuine = rig.sign(3)
    unsigned = encode_command(APID, 0, 1, 1, MOVE, {"steps": 3})
    wrong_key = protect(unsigned, SA1, bytes(32))
    forged = data.draw(st.one_of(st.just(wrong_key), st.binary(min_size=0, max_size=40).map(
        lambda mac: wrong_key[:-16] + mac)))
    assert forged != genuine
    assert rig.core.receive(forged) is None
    _nothing_acted(rig)
    assert rig.rejections()[0] in ("bad_mac", "malformed")
    assert rig.core.receive(genuine) is not None  # the forgery used up nothing: sequence 1 still acts once


@settings(max_examples=80)
@given(garbage=st.binary(max_size=600))
def test_garbage_is_refused_and_nothing_acts(tmp_path_factory: Any, garbage: bytes) -> None:
    rig = Rig(tmp_path_factory.mktemp("garbage"))
    assert rig.core.receive(garbage) is None
    _nothing_acted(rig)
    assert rig.core.counters()["tc_rejected"] == 1 and rig.rejections()


@settings(max_examples=40)
@given(data=st.data())
def test_every_truncation_is_refused(tmp_path_factory: Any, data: Any) -> None:
    rig = Rig(tmp_path_factory.mktemp("cut"))
    packet = rig.sign(3, spi=data.draw(st.sampled_from([1, 2])))
    cut = data.draw(st.integers(0, len(packet) - 1))
    assert rig.core.receive(packet[:cut]) is None
    _nothing_acted(rig)
    assert rig.rejections() == ["malformed"]


@settings(max_examples=60)
@given(order=st.lists(st.integers(0, 11), min_size=1, max_size=30))
def test_reordered_stale_and_repeated_sequence_numbers_act_at_most_once_and_only_when_fresh(
        tmp_path_factory: Any, order: list[int]) -> None:
    """Twelve commands signed in order (sequence 1..12), delivered in any order, repeats included:
    a model of the window says which act; none acts twice; stale ones are replays."""
    rig = Rig(tmp_path_factory.mktemp("order"))
    packets = [rig.sign(i) for i in range(12)]
    last, acted, expect_dispatch = 0, set(), []
    for i in order:
        seq = i + 1
        before = len(rig.dispatcher.sent)
        stage = rig.core.receive(packets[i])
        fresh = last < seq <= last + SA1.window
        if fresh:
            last = seq
            acted.add(seq)
            expect_dispatch.append(i)
            assert stage is not None and stage.stage == "received"
        elif seq in acted:
            assert stage is not None and stage.stage == "duplicate"
        else:
            assert stage is None and rig.rejections()[-1] in ("replay", "out_of_window")
        assert len(rig.dispatcher.sent) - before == (1 if fresh else 0)
    assert [a["steps"] for _, _, a, _ in rig.dispatcher.sent] == expect_dispatch
    seqs = [s.tc_seq for s in rig.stages if s.stage == "received"]
    assert seqs == sorted(set(seqs))  # strictly increasing: never twice, never backwards


def test_beyond_the_window_is_refused_and_the_window_still_moves_with_fresh_ones(rig: Rig) -> None:
    packets = [rig.sign(i) for i in range(10)]
    assert rig.core.receive(packets[9]) is None  # sequence 10 > 0 + window 8
    assert rig.rejections() == ["out_of_window"]
    assert rig.core.receive(packets[7]) is not None  # 8: in the window
    assert rig.core.receive(packets[9]) is not None  # 10: now within 8 + 8
    assert rig.core.receive(packets[8]) is None and rig.rejections()[-1] == "replay"  # 9 is stale now


@settings(max_examples=30)
@given(times=st.integers(2, 8), final=st.sampled_from(["accepted", "completed", "rejected", "failed", None]))
def test_a_retransmission_is_answered_with_its_last_stage_and_never_dispatched_again(
        tmp_path_factory: Any, times: int, final: str | None) -> None:
    rig = Rig(tmp_path_factory.mktemp("dup"))
    packet = rig.sign(5)
    rig.core.receive(packet)
    if final in ("completed", "failed"):
        rig.core.reply(1, "accepted")
    if final is not None:
        rig.core.reply(1, final)
    for _ in range(times - 1):
        stage = rig.core.receive(packet)
        assert stage is not None and stage.stage == "duplicate" and stage.reason == (final or "received")
        assert (stage.spi, stage.tc_seq, stage.target_apid, stage.opcode) == (1, 1, APID, 0x10)
    assert len(rig.dispatcher.sent) == 1
    assert rig.core.counters()["tc_duplicates"] == times - 1


def test_after_a_restart_the_last_packet_replayed_never_acts(rig: Rig) -> None:
    """The sequence store on disk outlives the process: the last command again is a duplicate (it was
    received; the store keeps the recent ones), an older one a replay; neither acts."""
    old = rig.sign(4)
    rig.core.receive(old)
    for i in range(RECENT_PER_SPI):
        rig.core.receive(rig.sign(5 + i))
        rig.core.reply(len(rig.dispatcher.sent), "rejected", "not now")
    packet = rig.sign(99)
    rig.core.receive(packet)
    sent = len(rig.dispatcher.sent)
    rig.restart()  # the outcomes in memory are gone
    again = rig.core.receive(packet)
    assert again is not None and again.stage == "duplicate" and again.reason == "received"
    assert (again.spi, again.tc_seq, again.target_apid, again.opcode) == (1, 66, APID, 0x10)
    assert rig.core.receive(old) is None and rig.rejections() == ["replay"]
    assert len(rig.dispatcher.sent) == sent
    assert rig.core.receive(rig.sign(6)) is not None  # the next one acts


# -- authenticated but not dispatchable -------------------------------------------------------
def _authentic_but(rig: Rig, apid: int, body_spec: CommandSpec, args: dict[str, Any]) -> bytes:
    """A packet with a valid MAC and sequence number whose command the target's table refuses."""
    seq = rig.signers[1].next_seq()
    return protect(encode_command(apid, 0, 1, seq, body_spec, args), SA1, KEY1)


@pytest.mark.parametrize("case, reason", [
    ("range", "bad_args"), ("choice", "bad_args"), ("opcode", "bad_command"),
    ("target", "unknown_target"), ("portless", "no_command_port"),
])
def test_an_authentic_command_that_cannot_go_is_received_then_rejected_and_nothing_acts(
        rig: Rig, case: str, reason: str) -> None:
    loose = CommandSpec(0x10, "MOVE", (Arg("steps", int), Arg("mode", str, required=False)))
    packet = {
        "range": lambda: _authentic_but(rig, APID, loose, {"steps": 500}),
        "choice": lambda: _authentic_but(rig, APID, loose, {"steps": 1, "mode": "warp"}),
        "opcode": lambda: _authentic_but(rig, APID, CommandSpec(0x33, "NOPE"), {}),
        "target": lambda: rig.sign(1, apid=DICTIONARY.apid_of("ground_thing")),
        "portless": lambda: rig.sign(1, apid=DICTIONARY.apid_of("portless")),
    }[case]()
    rig.core.receive(packet)
    assert rig.dispatcher.sent == []
    assert [s.stage for s in rig.stages] == ["received", "rejected"]
    assert rig.stages[-1].reason.startswith(reason)
    assert rig.rejections() == [reason] and rig.core.counters()[f"rejected_{reason}"] == 1
    assert rig.core.receive(packet).stage == "duplicate"  # its retransmission still does not act
    assert rig.dispatcher.sent == []


def test_a_full_dispatch_table_refuses_busy(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_pending=1)
    rig.core.receive(rig.sign(1))
    rig.core.receive(rig.sign(2))
    assert len(rig.dispatcher.sent) == 1 and rig.stages[-1].stage == "rejected" and rig.rejections() == ["busy"]


# -- the security associations ----------------------------------------------------------------
def test_sa_status_lists_every_sa_without_key_material(rig: Rig) -> None:
    rig.core.receive(rig.sign(1, spi=2))
    status = rig.core.sa_status()
    assert [(s["spi"], s["last_seq"], s["enabled"], s["window"]) for s in status] == [(1, 0, True, 8), (2, 1, True, 8)]
    text = repr(status)
    assert KEY1.hex() not in text and KEY2.hex() not in text and repr(KEY1) not in text


def test_a_disabled_sa_refuses_its_commands_and_the_change_is_saved_first(rig: Rig) -> None:
    rig.core.set_enabled(1, False)
    assert rig.saved == [{1: False}]
    assert rig.core.receive(rig.sign(1)) is None and rig.rejections() == ["disabled_spi"]
    assert rig.core.receive(rig.sign(1, spi=2)) is not None
    with pytest.raises(CommandRejected, match="last enabled"):
        rig.core.set_enabled(2, False)
    rig.core.set_enabled(1, True)
    assert rig.saved[-1] == {1: True} and rig.core.receive(rig.sign(2)) is not None
    with pytest.raises(CommandRejected, match="no security association"):
        rig.core.set_enabled(9, True)
    assert ("sa_changed", {"spi": 1, "enabled": False}) in rig.events.events


def test_an_sa_change_that_cannot_be_saved_changes_nothing(rig: Rig) -> None:
    def broken(_: dict[int, bool]) -> None:
        raise OSError(28, "No space left on device")

    rig.core._save_enables = broken
    with pytest.raises(OSError):
        rig.core.set_enabled(1, False)
    assert rig.core.receive(rig.sign(1)) is not None


def test_the_enable_store_keeps_overrides_and_names_a_damaged_file(tmp_path: Path) -> None:
    store = EnableStore(tmp_path / "enables.json")
    assert store.load() == {}
    store.save({2: False, 1: True})
    assert EnableStore(tmp_path / "enables.json").load() == {1: True, 2: False}
    (tmp_path / "enables.json").write_text("{not json")
    with pytest.raises(EnableStoreDamaged):
        store.load()
