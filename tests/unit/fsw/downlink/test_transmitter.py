"""The transmitter on a fake clock and a fake radio: silent outside contacts, and the next product starts
once the last one's file data is out, while its tail still waits for the ground."""

from __future__ import annotations

from pathlib import Path

from link.contacts import plan_from_mapping
from link.mib import CfdpTimers
from link.packets import unwrap
from fsw.downlink.transmitter import Transmitter
from tests.unit.link.fakes import Radio

PLAN = plan_from_mapping({"relays": [{"name": "r", "period_s": 10.0, "lander_windows_s": [[0, 5]],
                                      "rate_bps": 80_000_000}]}, "t")


def make(tmp: Path, now: list[float]) -> tuple[Transmitter, Radio]:
    radio = Radio()
    tx = Transmitter(1, 2, 1024, CfdpTimers(inactivity_s=30), PLAN, radio, lambda: now[0], lambda: now[0],
                     lambda: now[0], lambda seq: None, max_in_flight=2)
    return tx, radio


def file(tmp: Path, name: str, size: int) -> Path:
    p = tmp / name
    p.write_bytes(bytes(range(256)) * (size // 256))
    return p


def seqs(radio: Radio) -> list[int]:
    return [unwrap(d).pdu.transaction_seq_num.value for d in radio.sent]


def test_nothing_is_sent_and_nothing_starts_outside_a_contact(tmp_path: Path) -> None:
    now = [7.0]
    tx, radio = make(tmp_path, now)
    assert tx.update_contact() is None and not tx.can_start()
    now[0] = 1.0
    assert tx.update_contact() is not None and tx.can_start()
    tx.start("a", file(tmp_path, "a", 20_000), 0x102, 1, ".prod")
    now[0] = 6.0
    tx.update_contact()
    tx.send(lambda: False)
    assert radio.sent == []
    now[0] = 11.0
    tx.update_contact()
    tx.send(lambda: False)
    assert radio.sent and set(seqs(radio)) == {1} and tx.c["contacts"] == 2


def test_the_next_product_starts_once_the_last_ones_data_is_out(tmp_path: Path) -> None:
    now = [1.0]
    tx, radio = make(tmp_path, now)
    tx.update_contact()
    tx.start("a", file(tmp_path, "a", 20_000), 0x102, 1, ".prod")
    assert not tx.can_start()  # a's file data is still to go
    for _ in range(50):
        now[0] += 0.01
        tx.send(lambda: False)
    assert tx.engines[0].tail and tx.can_start()
    tx.start("b", file(tmp_path, "b", 20_000), 0x102, 2, ".prod")
    assert tx.in_flight() == ["a", "b"] and not tx.can_start()  # both engines busy
    before = len(radio.sent)
    for _ in range(50):
        now[0] += 0.01
        tx.send(lambda: False)
    assert set(seqs(radio)[before:]) == {2}
