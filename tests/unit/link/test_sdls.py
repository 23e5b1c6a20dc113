"""link.sdls: forged, replayed, reordered, stale and garbage TCs are rejected and nothing acts;
sequence numbers are durable (a SIGKILL never lets a replay through); keys and SA files are checked."""

from __future__ import annotations

import hmac
import hashlib
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings, strategies as st

from framework.errors import ConfigError
from framework.interface import Arg, CommandSpec, Interface
from link.sdls import (
    MAC_LENGTHS,
    RECENT_PER_SPI,
    SecurityAssociation,
    SequenceStore,
    SequenceStoreDamaged,
    Signer,
    TcDuplicate,
    TcNotActed,
    TcRejected,
    Verifier,
    generate_key,
    load_associations,
    load_key,
    load_keys,
    protect,
)
from link.tmtc import MAX_TC_BYTES, TcEncodeError, decode_command, encode_command

ROOT = Path(__file__).resolve().parents[3]
SPEC = CommandSpec(0x10, "GO", (Arg("n", int, required=False), Arg("s", str, required=False)))
IFACE = Interface.build("imaging", commands=[SPEC])
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
FUNCTION_TMP = [HealthCheck.function_scoped_fixture]


def _sas(window: int = 64) -> list[SecurityAssociation]:
    return [SecurityAssociation(1, "gcm", "aes-gcm", window, True, "ops"),
            SecurityAssociation(2, "mac", "hmac-sha256", window, True, "alice"),
            SecurityAssociation(3, "off", "aes-gcm", window, False, "ops")]


def _verifier(path: Path, window: int = 64, **kw) -> Verifier:
    return Verifier(_sas(window), {"gcm": KEY, "mac": KEY}, SequenceStore(path / "seq.json"), **kw)


def _packet(spi: int, seq: int, n: int = 1, key: bytes = KEY, apid: int = 0x20) -> bytes:
    sa = next(s for s in _sas() if s.spi == spi)
    return protect(encode_command(apid, seq & 0x3FFF, spi, seq, SPEC, {"n": n}), sa, key)


# -- the MAC itself -------------------------------------------------------------------------------
def test_macs_are_those_the_contract_defines(tmp_path):
    gcm = _packet(1, 7)
    expected = AESGCM(KEY).encrypt(b"\x00\x01" + bytes(6) + b"\x00\x00\x00\x07", b"", gcm[:-16])
    assert gcm[-16:] == expected
    mac = _packet(2, 7)
    assert mac[-32:] == hmac.new(KEY, mac[:-32], hashlib.sha256).digest()
    assert len(gcm) + 16 == len(mac)


@pytest.mark.parametrize("spi", [1, 2])
def test_authentic_packet_is_verified_and_its_sequence_durable(tmp_path, spi):
    v = _verifier(tmp_path)
    got = v.check(_packet(spi, 5, n=42))
    assert (got.spi, got.seq, got.apid, got.operator) == (spi, 5, 0x20, "ops" if spi == 1 else "alice")
    assert decode_command(got.body, IFACE) == (IFACE.commands["GO"], {"n": 42})
    assert SequenceStore(tmp_path / "seq.json").last(spi) == 5
    assert v.counters()["tc_verified"] == 1


@settings(suppress_health_check=FUNCTION_TMP)
@given(st.sampled_from([1, 2]), st.data())
def test_any_bit_flip_is_rejected_and_nothing_changes(tmp_path, spi, data):
    store = tmp_path / f"flip{spi}.json"
    store.unlink(missing_ok=True)
    v = Verifier(_sas(), {"gcm": KEY, "mac": KEY}, SequenceStore(store))
    packet = bytearray(_packet(spi, 3))
    bit = data.draw(st.integers(0, len(packet) * 8 - 1))
    packet[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(TcRejected):
        v.check(bytes(packet))
    assert not store.exists() and v.store.last(spi) == 0


@pytest.mark.parametrize("spi", [1, 2])
def test_wrong_key_is_a_bad_mac(tmp_path, spi):
    with pytest.raises(TcRejected) as err:
        _verifier(tmp_path).check(_packet(spi, 1, key=OTHER_KEY))
    assert err.value.reason_code == "bad_mac"


@settings(suppress_health_check=FUNCTION_TMP)
@given(st.binary(max_size=200) | st.binary(min_size=MAX_TC_BYTES - 2, max_size=MAX_TC_BYTES + 2))
def test_garbage_is_rejected_with_a_reason_only(tmp_path, data):
    v = _verifier(tmp_path)
    with pytest.raises(TcRejected) as err:
        v.check(data)
    assert err.value.reason_code in ("malformed", "unknown_spi", "disabled_spi", "bad_mac")


def test_every_truncation_is_rejected(tmp_path):
    v = _verifier(tmp_path)
    packet = _packet(2, 1)
    for cut in range(len(packet)):
        with pytest.raises(TcRejected):
            v.check(packet[:cut])
    assert v.store.last(2) == 0


def test_unknown_and_disabled_spi_and_unknown_apid(tmp_path):
    v = _verifier(tmp_path, known_apids={0x20})
    unknown = protect(encode_command(0x20, 0, 9, 1, SPEC, {}), SecurityAssociation(9, "gcm"), KEY)
    disabled = protect(encode_command(0x20, 0, 3, 1, SPEC, {}), _sas()[2], KEY)
    elsewhere = _packet(1, 1, apid=0x21)
    for packet, reason in ((unknown, "unknown_spi"), (disabled, "disabled_spi"), (elsewhere, "malformed")):
        with pytest.raises(TcRejected) as err:
            v.check(packet)
        assert err.value.reason_code == reason
        assert v.counters()[f"tc_rejected_{reason}"] == 1
    assert v.store.items() == {}


@settings(suppress_health_check=FUNCTION_TMP, max_examples=40)
@given(st.lists(st.integers(1, 40), max_size=30), st.integers(1, 10), st.sampled_from([1, 2]))
def test_replays_reordering_and_window_follow_the_model(tmp_path, seqs, window, spi):
    """A model of the contract: accept iff last < seq <= last + window; an accepted one again is a
    duplicate; any other seq <= last is a replay."""
    path = tmp_path / "model.json"
    path.unlink(missing_ok=True)
    v = Verifier(_sas(window), {"gcm": KEY, "mac": KEY}, SequenceStore(path), memory=1000)
    last, accepted = 0, set()
    for seq in seqs:
        packet = _packet(spi, seq)
        if last < seq <= last + window:
            assert v.check(packet).seq == seq
            last = seq
            accepted.add(seq)
        elif seq in accepted:
            with pytest.raises(TcDuplicate) as dup:
                v.check(packet)
            assert (dup.value.spi, dup.value.seq, dup.value.stage) == (spi, seq, "received")
        else:
            with pytest.raises(TcRejected) as err:
                v.check(packet)
            assert err.value.reason_code == ("out_of_window" if seq > last else "replay")
        assert v.store.last(spi) == last
    assert SequenceStore(path).last(spi) == last


def test_duplicate_answers_the_recorded_outcome_and_memory_is_bounded(tmp_path):
    v = _verifier(tmp_path, memory=3)
    for seq in range(1, 6):
        v.check(_packet(1, seq))
    v.record_outcome(1, 5, "completed")
    with pytest.raises(TcDuplicate) as dup:
        v.check(_packet(1, 5))
    assert dup.value.stage == "completed" and isinstance(dup.value, TcNotActed)
    with pytest.raises(TcRejected) as err:  # forgotten (only the last 3 are kept): a replay, still never acts
        v.check(_packet(1, 1))
    assert err.value.reason_code == "replay"
    v.record_outcome(1, 1, "failed")  # forgotten entries are not brought back
    assert v.outcome(1, 1) is None and v.outcome(1, 5) == "completed"


def test_restart_after_the_check_never_lets_the_replay_through(tmp_path):
    """A SIGKILL between the check (sequence durable) and the act: after restart the same packet is
    answered as a duplicate of a received command, and does not act."""
    packet = _packet(1, 1)
    assert _verifier(tmp_path).check(packet).seq == 1
    restarted = _verifier(tmp_path)
    with pytest.raises(TcDuplicate) as dup:
        restarted.check(packet)
    assert (dup.value.seq, dup.value.stage, dup.value.apid) == (1, "received", 0x20)


def test_after_restart_only_the_recent_are_duplicates_the_rest_replays(tmp_path):
    v = _verifier(tmp_path)
    for seq in range(1, RECENT_PER_SPI + 3):
        v.check(_packet(1, seq))
    restarted = _verifier(tmp_path)
    with pytest.raises(TcDuplicate):
        restarted.check(_packet(1, RECENT_PER_SPI + 2))
    for seq in (1, 2):
        with pytest.raises(TcRejected) as err:
            restarted.check(_packet(1, seq))
        assert err.value.reason_code == "replay"
    assert restarted.check(_packet(1, RECENT_PER_SPI + 3)).seq == RECENT_PER_SPI + 3


def test_sequence_not_made_durable_is_rejected_and_does_not_act(tmp_path):
    v = _verifier(tmp_path)
    (tmp_path / "seq.json").mkdir()  # the store can no longer be written
    with pytest.raises(TcRejected) as err:
        v.check(_packet(1, 1))
    assert err.value.reason_code == "not_durable" and v.store.last(1) == 0


# -- the sequence store ----------------------------------------------------------------------------
def test_store_round_trips_and_damage_is_never_zero(tmp_path):
    path = tmp_path / "seq.json"
    store = SequenceStore(path)
    assert store.last(1) == 0
    store.commit(1, 10)
    store.commit(2, 2**32 - 1)
    assert SequenceStore(path).items() == {1: 10, 2: 2**32 - 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ValueError):
        store.commit(1, 10)  # the last never goes back
    for damaged in (b"", b"{", b"\xff", b"[]", b'{"format":"x","last":{}}',
                    b'{"format":"pdh-sdls-sequences/1","last":{"1":3},"recent":{"1":[[4,32]]}}',
                    b'{"format":"pdh-sdls-sequences/1","last":{"1":3},"recent":{"1":[[2]]}}',
                    b'{"format":"pdh-sdls-sequences/1","last":{"1":3},"recent":[]}',
                    b'{"format":"pdh-sdls-sequences/1","last":{"1":-1}}',
                    b'{"format":"pdh-sdls-sequences/1","last":{"0":1}}',
                    b'{"format":"pdh-sdls-sequences/1","last":{"1":true}}'):
        path.write_bytes(damaged)
        with pytest.raises(SequenceStoreDamaged, match=str(path)):
            SequenceStore(path)


_CHILD = """
import sys
from link.sdls import SequenceStore
store = SequenceStore(sys.argv[1])
seq = 0
while True:
    seq += 1
    store.commit(7, seq)
    print(seq, flush=True)
"""


def test_store_survives_sigkill_mid_write(tmp_path):
    path = tmp_path / "seq.json"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        reported = 0
        for line in child.stdout:
            reported = int(line)
            if reported >= 200:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert reported >= 200
    assert SequenceStore(path).last(7) >= reported  # never older than a commit that returned


_ALLOCATOR = """
import sys
from link.sdls import SequenceStore
store = SequenceStore(sys.argv[1])
print(" ".join(str(store.advance(3)) for _ in range(40)), flush=True)
"""


def test_senders_sharing_a_store_never_get_the_same_number(tmp_path):
    path = tmp_path / "ground.json"
    children = [subprocess.Popen([sys.executable, "-c", _ALLOCATOR, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                                 text=True) for _ in range(3)]
    numbers: list[int] = []
    try:
        for child in children:
            out, _ = child.communicate(timeout=120)
            numbers += [int(n) for n in out.split()]
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert sorted(numbers) == list(range(1, 121))


# -- the ground's signer ---------------------------------------------------------------------------
def test_signer_allocates_durably_and_verifies_on_board(tmp_path):
    sa = _sas()[1]
    ground = tmp_path / "ground.json"
    first = Signer(sa, KEY, SequenceStore(ground)).sign(0x20, SPEC, {"s": "hi"})
    second = Signer(sa, KEY, SequenceStore(ground)).sign(0x20, SPEC, {"n": 3})  # a restarted ground goes on
    assert (first.seq, second.seq) == (1, 2)
    v = _verifier(tmp_path)
    assert decode_command(v.check(first.packet).body, IFACE)[1] == {"s": "hi"}
    assert v.check(second.packet).seq == 2


def test_signer_spends_no_number_on_an_unencodable_command(tmp_path):
    signer = Signer(_sas()[0], KEY, SequenceStore(tmp_path / "g.json"))
    with pytest.raises(TcEncodeError):
        signer.sign(0x20, SPEC, {"n": "three"})
    assert signer.sign(0x20, SPEC, {}).seq == 1


def test_signer_needs_an_enabled_sa_and_a_whole_key(tmp_path):
    with pytest.raises(ConfigError):
        Signer(_sas()[2], KEY, SequenceStore(tmp_path / "g.json"))
    with pytest.raises(ConfigError):
        Signer(_sas()[0], KEY[:16], SequenceStore(tmp_path / "g.json"))


def test_verifier_needs_keys_of_enabled_sas_only(tmp_path):
    with pytest.raises(ConfigError, match="gcm"):
        Verifier(_sas(), {"mac": KEY}, SequenceStore(tmp_path / "s.json"))
    Verifier(_sas(), {"gcm": KEY, "mac": KEY}, SequenceStore(tmp_path / "s.json"))  # "off" needs none


# -- keys and SA files -----------------------------------------------------------------------------
def test_generate_and_load_key_with_private_modes(tmp_path):
    key = generate_key(tmp_path, "ops1")
    path = tmp_path / "sdls" / "ops1.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(key) == 32 and load_key(tmp_path, "ops1") == key
    assert generate_key(tmp_path, "ops1") == key
    assert generate_key(tmp_path, "ops1", overwrite=True) != key
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="0600"):
        load_key(tmp_path, "ops1")
    os.chmod(path, 0o600)
    path.write_text("abc\n")
    with pytest.raises(ConfigError, match="64 hex"):
        load_key(tmp_path, "ops1")
    with pytest.raises(ConfigError, match="pdh keys"):
        load_key(tmp_path, "nothere")
    with pytest.raises(ConfigError, match="key_id"):
        load_key(tmp_path, "../etc")


def test_shipped_sa_file_loads_and_its_keys_load(tmp_path):
    sas = load_associations(ROOT / "configs" / "sa.yaml")
    assert sas and all(sa.mac_len == MAC_LENGTHS[sa.algorithm] for sa in sas)
    for sa in sas:
        generate_key(tmp_path, sa.key_id)
    assert set(load_keys(tmp_path, sas)) == {sa.key_id for sa in sas if sa.enabled}


@pytest.mark.parametrize("text,key", [
    ("", "<file>"), ("{a: 1}", "<file>"), ("- [1]", "[0]"),
    ("- {spi: 0, key_id: a, algorithm: aes-gcm}", "[0].spi"),
    ("- {spi: 1, key_id: a, algorithm: rot13}", "[0].algorithm"),
    ("- {spi: 1, key_id: a, algorithm: aes-gcm}\n- {spi: 2, key_id: b, algorithm: aes-gcm, window: 0}",
     "[1].window"),
    ("- {spi: 1, key_id: a, algorithm: aes-gcm}\n- {spi: 1, key_id: b, algorithm: aes-gcm}", "[1].spi"),
    ("- {spi: 1, key_id: a/b, algorithm: aes-gcm}", "[0].key_id"),
    ("- {spi: 1, key_id: a, algorithm: aes-gcm, enabled: 'yes'}", "[0].enabled"),
    ("- {spi: 1, key_id: a, algorithm: aes-gcm, colour: red}", "[0].colour"),
    ("- {spi: 1, key_id: a, algorithm: aes-gcm\n", "<file>"),
])
def test_bad_sa_files_name_file_entry_and_field(tmp_path, text, key):
    path = tmp_path / "sa.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_associations(path)
    assert err.value.file == str(path) and err.value.key == key


def test_missing_sa_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nothere"):
        load_associations(tmp_path / "nothere.yaml")
