"""The ground's uplink with a fake radio and a fake clock: windows, light time, retries, not_delivered,
verification, refusals at enqueue, a restart; and, against the real on-board check, no command acts twice."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from framework.errors import CommandRejected
from framework.interface import Interface
from framework.reporters import EventReporter
from fsw.imaging.interface import INTERFACE as IMAGING
from ground.interface import INTERFACE
from ground.queue import CommandQueue
from ground.uplink import Signers, Uplink, UplinkSettings
from link.contacts import plan_from_mapping
from link.dictionary import Dictionary
from link.sdls import SequenceStore, TcDuplicate, TcRejected, Verifier, generate_key, load_associations, load_keys
from link.tmtc import decode_command, decode_tm, encode_verification
from tests.unit.link.fakes import Bus, Log

DICTIONARY = Dictionary.from_interfaces({"imaging": IMAGING, "ingest": Interface.build("ingest")})
INGEST_APID = DICTIONARY.apid_of("ingest")
LATENCY_S = 1.0
# one relay, period 100 s: the lander is in view for [0, 50) of each period
PLAN = plan_from_mapping({"relays": [{"name": "r", "period_s": 100.0, "lander_windows_s": [[0, 50]],
                                      "latency_ms": LATENCY_S * 1000}]}, "<test>")
SA_YAML = "- {spi: 1, key_id: ops1, algorithm: aes-gcm, window: 64}\n" \
          "- {spi: 2, key_id: ops2, algorithm: hmac-sha256, window: 64}\n" \
          "- {spi: 3, key_id: off3, algorithm: aes-gcm, enabled: false}\n" \
          "- {spi: 4, key_id: nokey4, algorithm: aes-gcm}\n"
NOOP_ARGS = json.dumps({"camera": "navcam"})


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class LossyRadio:
    """Keeps every datagram offered; ``lose`` decides, per datagram, whether the relay loses it."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.full = False

    def send(self, datagram: bytes) -> bool:
        if self.full:
            return False
        self.sent.append(datagram)
        return True


def keys_and_sas(root: Path) -> tuple[Path, Path]:
    sa_file = root / "sa.yaml"
    sa_file.write_text(SA_YAML)
    for key_id in ("ops1", "ops2", "off3"):
        generate_key(root / "keys", key_id)
    return sa_file, root / "keys"


def make_uplink(root: Path, clock: Clock, radio: LossyRadio, bus: Bus, **kw: Any) -> Uplink:
    sa_file, keys = keys_and_sas(root)
    events = EventReporter(INTERFACE, bus, "evt.ground", Log(), time.monotonic)
    return Uplink(CommandQueue(root / "q.sqlite", clock), DICTIONARY, PLAN, clock, radio, events,
                  Signers(sa_file, keys, root / "seq.json"), UplinkSettings(**{"max_attempts": 3, **kw}))


def lander(root: Path) -> Verifier:
    """The on-board check, with the SAs whose keys exist."""
    sas = [sa for sa in load_associations(root / "sa.yaml") if sa.spi in (1, 2)]
    return Verifier(sas, load_keys(root / "keys", sas), SequenceStore(root / "board.json"))


def run_until(up: Uplink, clock: Clock, t_end: float, dt: float = 0.25) -> None:
    while clock.t < t_end:
        clock.t += dt
        up.step()


def verification(seq: int, stage: str, spi: int = 1, n: int = 0) -> Any:
    raw = encode_verification(INGEST_APID, n, 1000.0 + n, spi, seq, DICTIONARY.apid_of("imaging"), 0x220, stage, "")
    return decode_tm(raw, DICTIONARY)


def stages(bus: Bus) -> list[tuple[int, str]]:
    return [(e["id"], e["stage"]) for e in bus.events if e["name"] == "command_stage"]


def test_a_command_queued_outside_a_window_goes_when_one_opens_with_room_for_its_light_time(tmp_path: Path) -> None:
    clock, radio, bus = Clock(60.0), LossyRadio(), Bus()
    up = make_uplink(tmp_path, clock, radio, bus)
    cid = up.enqueue("imaging", "AE_ENABLE", NOOP_ARGS)
    run_until(up, clock, 99.75)
    assert radio.sent == [], "no contact from 50 to 100"
    run_until(up, clock, 100.25)
    assert len(radio.sent) == 1 and up.queue.get(cid).state == "sent"
    assert stages(bus) == [(cid, "queued"), (cid, "sent#1")]
    late = up.enqueue("imaging", "AE_DISABLE", NOOP_ARGS)
    up.verified(verification(1, "received"))
    clock.t = 149.0  # the window closes at 150: 1 s of light time and 0.5 s of guard do not fit
    up.step()
    assert len(radio.sent) == 1 and up.queue.get(late).state == "queued"


def test_the_bytes_sent_are_the_signed_command_for_its_target(tmp_path: Path) -> None:
    clock, radio, bus = Clock(1.0), LossyRadio(), Bus()
    up = make_uplink(tmp_path, clock, radio, bus)
    up.enqueue("imaging", "AE_ENABLE", NOOP_ARGS)
    up.step()
    got = lander(tmp_path).check(radio.sent[0])
    assert (got.spi, got.seq, got.apid) == (1, 1, DICTIONARY.apid_of("imaging"))
    spec, args = decode_command(got.body, IMAGING)
    assert (spec.name, args) == ("AE_ENABLE", {"camera": "navcam"})


def test_a_lost_command_is_resent_with_the_same_bytes_then_reported_not_delivered(tmp_path: Path) -> None:
    clock, radio, bus = Clock(1.0), LossyRadio(), Bus()
    up = make_uplink(tmp_path, clock, radio, bus, retry_s=4.0)
    cid = up.enqueue("imaging", "AE_ENABLE", NOOP_ARGS)
    run_until(up, clock, 49.0)
    assert len(radio.sent) == 3 and len(set(radio.sent)) == 1, "three attempts of the same bytes"
    c = up.queue.get(cid)
    assert (c.state, c.attempts) == ("not_delivered", 3)
    assert [s.stage for s in c.stages] == ["queued", "sent#1", "sent#2", "sent#3", "not_delivered"]
    bad = [e for e in bus.events if e.get("stage") == "not_delivered"]
    assert bad and bad[0]["severity"] == "error" and "3 attempts" in bad[0]["reason"]
    assert up.sample()["uplink_not_delivered"] == 1 and up.sample()["uplink_resent"] == 2


def test_the_retry_timer_counts_only_open_contact_time(tmp_path: Path) -> None:
    clock, radio, bus = Clock(47.0), LossyRadio(), Bus()
    up = make_uplink(tmp_path, clock, radio, bus, retry_s=4.0)
    up.enqueue("imaging", "AE_ENABLE", NOOP_ARGS)
    up.step()  # 47 + 1 s light time + 0.5 s guard < 50: it goes
    assert len(radio.sent) == 1
    run_until(up, clock, 100.75)  # 3 s of contact before the outage, 0.75 after it: not yet 4
    assert len(radio.sent) == 1
    run_until(up, clock, 101.5)
    assert len(radio.sent) == 2 and radio.sent[0] == radio.sent[1]


def test_received_stops_the_resends_and_lets_the_next_command_go(tmp_path: Path) -> None:
    clock, radio, bus = Clock(1.0), LossyRadio(), Bus()
    up = make_uplink(tmp_path, clock, radio, bus, retry_s=4.0)
    a = up.enqueue("imaging", "AE_ENABLE", NOOP_ARGS)
    b = up.enqueue("imaging", "AE_DISABLE", NOOP_ARGS)
    run_until(up, clock, 3.0)
    assert len(radio.sent) == 1, "one command in flight at a time"
    up.verified(verification(1, "received", n=1))
    up.verified(verification(1, "accepted", n=2))
    up.step()
    assert len(radio.sent) == 2 and up.queue.get(b).seq == 2
    up.verified(verification(1, "completed", n=3))
    up.verified(verification(2, "received", n=4))
    up.verified(verification(2, "rejected", n=5))
    run_until(up, clock, 20.0)
    assert len(radio.sent) == 2
    assert up.queue.get(a).state == "completed" and up.queue.get(b).state == "rejected"
    assert [s for i, s in stages(bus) if i == a] == ["queued", "sent#1", "received", "accepted", "completed"]
    assert next(e for e in bus.events if e.get("stage") == "rejected")["severity"] == "warning"
    up.verified(verification(99, "received"))
    assert up.sample()["verifications_unmatched"] == 1 and "verification_unmatched" in bus.names()


@pytest.mark.parametrize("target, cmd, args_json, spi, reason", [
    ("nobody", "AE_ENABLE", NOOP_ARGS, None, "no process named 'nobody'"),
    ("imaging", "NO_SUCH", "{}", None, "unknown command"),
    ("imaging", "AE_ENABLE", "{}", None, "missing argument 'camera'"),
    ("imaging", "MAKE_PREVIEW", json.dumps({"camera": "navcam", "counter": 1, "factor": 999}), None, "above 64"),
    ("imaging", "AE_ENABLE", "[1, 2]", None, "must be a JSON object"),
    ("imaging", "AE_ENABLE", "{not json", None, "not JSON"),
    ("imaging", "AE_ENABLE", '{"camera": NaN}', None, "not JSON"),
    ("imaging", "AE_ENABLE", json.dumps({"camera": "x" * 300}), None, "cannot be encoded"),
    ("imaging", "AE_ENABLE", NOOP_ARGS, 9, "no such security association"),
    ("imaging", "AE_ENABLE", NOOP_ARGS, 3, "disabled"),
    ("imaging", "AE_ENABLE", NOOP_ARGS, 4, "nokey4"),
])
def test_a_bad_command_is_refused_at_once_with_the_reason(tmp_path: Path, target: str, cmd: str, args_json: str,
                                                          spi: int | None, reason: str) -> None:
    clock, radio, bus = Clock(1.0), LossyRadio(), Bus()
    up = make_uplink(tmp_path, clock, radio, bus)
    with pytest.raises(CommandRejected, match=reason):
        up.enqueue(target, cmd, args_json, spi)
    assert up.queue.listing(include_done=True) == []


def test_a_full_socket_costs_no_attempt_and_no_sequence_number(tmp_path: Path) -> None:
    clock, radio, bus = Clock(1.0), LossyRadio(), Bus()
    up = make_uplink(tmp_path, clock, radio, bus)
    cid = up.enqueue("imaging", "AE_ENABLE", NOOP_ARGS)
    radio.full = True
    run_until(up, clock, 3.0)
    c = up.queue.get(cid)
    assert (c.state, c.attempts, c.seq) == ("signed", 0, 1)
    radio.full = False
    up.step()
    assert up.queue.get(cid).attempts == 1 and radio.sent[0] == c.packet


def test_after_a_restart_the_command_in_flight_goes_again_as_the_same_bytes(tmp_path: Path) -> None:
    clock, radio, bus = Clock(1.0), LossyRadio(), Bus()
    up = make_uplink(tmp_path, clock, radio, bus, retry_s=4.0)
    a = up.enqueue("imaging", "AE_ENABLE", NOOP_ARGS)
    up.step()
    up.queue.close()
    again = make_uplink(tmp_path, clock, radio, bus, retry_s=4.0)
    run_until(again, clock, 6.0)
    assert len(radio.sent) == 2 and radio.sent[0] == radio.sent[1]
    again.verified(verification(1, "received"))
    b = again.enqueue("imaging", "AE_DISABLE", NOOP_ARGS)
    again.step()
    assert again.queue.get(a).state == "received" and again.queue.get(b).seq == 2


def test_cancel_and_move_through_the_uplink(tmp_path: Path) -> None:
    clock, radio, bus = Clock(60.0), LossyRadio(), Bus()
    up = make_uplink(tmp_path, clock, radio, bus)
    a, b, c = (up.enqueue("imaging", "AE_ENABLE", NOOP_ARGS) for _ in range(3))
    assert up.move(c, 0) == [c, a, b]
    up.cancel(a)
    assert [x["id"] for x in up.listing()] == [c, b]
    assert up.listing(a)[0]["state"] == "cancelled" and (a, "cancelled") in stages(bus)
    run_until(up, clock, 100.5)
    assert up.queue.get(c).state == "sent"
    with pytest.raises(CommandRejected, match="cannot be cancelled|only a command"):
        up.cancel(c)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(losses=st.lists(st.booleans(), min_size=1, max_size=40), n=st.integers(1, 4),
       verification_lost=st.lists(st.booleans(), min_size=1, max_size=40))
def test_over_a_lossy_link_each_command_acts_once_or_is_reported_never_dropped(
        losses: list[bool], n: int, verification_lost: list[bool]) -> None:
    """The relay loses uplink datagrams and verification packets as told; the lander checks each
    datagram with the real Verifier. Every command ends received (acted once) or not_delivered."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        clock, radio, bus = Clock(1.0), LossyRadio(), Bus()
        up = make_uplink(root, clock, radio, bus, retry_s=3.0, max_attempts=4)
        board = lander(root)
        ids = [up.enqueue("imaging", "AE_ENABLE", NOOP_ARGS) for _ in range(n)]
        acted: list[int] = []
        delivered = 0
        k = 0
        while clock.t < 400 and any(up.queue.get(i).state not in ("received", "not_delivered") for i in ids):
            clock.t += 0.5
            up.step()
            while delivered < len(radio.sent):
                datagram = radio.sent[delivered]
                delivered += 1
                if losses[delivered % len(losses)]:
                    continue
                try:
                    got = board.check(datagram)
                    acted.append(got.seq)
                    seq = got.seq
                except TcDuplicate as dup:
                    seq = dup.seq
                except TcRejected:
                    continue
                k += 1
                if not verification_lost[k % len(verification_lost)]:
                    up.verified(verification(seq, "received", n=k))
        final = {i: up.queue.get(i) for i in ids}
        assert len(acted) == len(set(acted)), "no sequence number acted twice"
        for c in final.values():
            assert c.state in ("received", "not_delivered"), c
            assert c.attempts <= 4
        sent_seqs = sorted(c.seq for c in final.values() if c.seq is not None)
        assert len(set(sent_seqs)) == len(sent_seqs), "every command its own sequence number"
        assert set(acted) <= set(sent_seqs)
        by_packet = {c.packet for c in final.values()}
        assert set(radio.sent) <= by_packet, "every datagram is one command's signed bytes"
        up.queue.close()
