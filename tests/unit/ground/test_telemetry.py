"""The ground's TM intake: housekeeping to parameters, events to the ledger, verification handed on, each
packet once; a packet damaged on the link (its PEC does not match) is counted and nothing of it stored, the
rest of its datagram kept; garbage datagrams and segments raise typed errors or are counted, never anything else."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from framework.errors import ProtocolError
from framework.interface import Interface
from framework.reporters import EventReporter
from fsw.imaging.interface import INTERFACE as IMAGING
from ground.interface import INTERFACE
from ground.ledger import Ledger
from ground.telemetry import TelemetryIntake, is_tm
from link.dictionary import Dictionary
from link.packets import APID_CFDP, SpacePacketWrapper
from link.tlm_segments import decode_segment, encode_segment
from link.tmtc import TmPacket, TmtcError, encode_event, encode_housekeeping, encode_verification
from tests.unit.link.fakes import Bus, Log

DICTIONARY = Dictionary.from_interfaces({"imaging": IMAGING, "ingest": Interface.build("ingest")})
IMG, ING = DICTIONARY.apid_of("imaging"), DICTIONARY.apid_of("ingest")


def intake(tmp_path: Path, bus: Bus, got: list[TmPacket] | None = None) -> TelemetryIntake:
    events = EventReporter(INTERFACE, bus, "evt.ground", Log(), time.monotonic)
    sink = got if got is not None else []
    return TelemetryIntake(DICTIONARY, Ledger(tmp_path / "ledger.sqlite"), events, on_verification=sink.append)


def test_housekeeping_events_and_verification_go_where_they_belong_once(tmp_path: Path) -> None:
    bus, got = Bus(), []
    tm = intake(tmp_path, bus, got)
    hk = encode_housekeeping(IMG, 1, 100.5, IMAGING, {"frames_in": 7, "commands_accepted": 2})
    ev_spec = next(iter(IMAGING.events.values()))
    ev = encode_event(IMG, 2, 100.75, ev_spec.id, "warning", {"camera": "navcam"})
    vf = encode_verification(ING, 1, 101.0, 1, 42, IMG, 0x220, "completed", "")
    first = tm.take_datagram(hk + ev + vf)
    assert (first.packets, first.new, first.rejected) == (3, 3, 0)
    again = tm.take_packets(decode_segment(encode_segment([hk, ev, vf])), "tlm-1.tlm")
    assert (again.packets, again.new) == (3, 0), "a packet sent realtime and recorded counts once"
    led = tm.ledger
    assert (100.5, 7) in led.parameters("imaging", "frames_in")
    assert led.events() == [(100.75, "evt.imaging", "imaging", {"camera": "navcam", "name": ev_spec.name,
                                                                "event_id": ev_spec.id, "severity": "warning"})]
    assert [p.verification.tc_seq for p in got] == [42] and got[0].verification.stage == "completed"
    assert led.tm_packet_count() == 3 and tm.c["tm_parameters"] == len(IMAGING.telemetry)
    assert {r[1] for r in led.telemetry()} == {"tlm.imaging", "evt.imaging", "vrf.ingest"}


def test_a_bad_packet_among_good_ones_is_counted_and_the_rest_kept(tmp_path: Path) -> None:
    bus = Bus()
    tm = intake(tmp_path, bus)
    unknown_apid = encode_event(0x555, 1, 5.0, 1, "info", {})
    good = encode_event(IMG, 1, 5.0, next(iter(IMAGING.events.values())).id, "info", {})
    forged_vrf = encode_verification(IMG, 2, 5.0, 1, 1, IMG, 0, "received")  # only ingest sends these
    got = tm.take_datagram(unknown_apid + good + forged_vrf)
    assert (got.packets, got.new, got.rejected) == (3, 1, 2)
    assert tm.c["tm_rejected"] == 2 and bus.names() == ["tm_rejected"]  # rate-limited: the second folded


def test_a_datagram_without_one_whole_packet_raises_a_protocol_error(tmp_path: Path) -> None:
    tm = intake(tmp_path, Bus())
    whole = encode_event(IMG, 1, 5.0, 1, "info", {})
    longer = bytearray(whole)
    longer[5] += 1  # its length field claims a byte more than the datagram holds
    for datagram in (whole[:5], whole[:-1], bytes(longer)):
        with pytest.raises(ProtocolError):
            tm.take_datagram(datagram)
    assert tm.ledger.tm_packet_count() == 0


def test_bytes_after_a_damaged_length_count_as_one_corrupt_packet_and_the_packets_before_are_kept(
        tmp_path: Path) -> None:
    bus = Bus()
    tm = intake(tmp_path, bus)
    whole = encode_event(IMG, 1, 5.0, 1, "info", {})
    got = tm.take_datagram(whole + whole[:5])
    assert (got.packets, got.new, got.rejected, got.corrupt) == (2, 1, 1, 1)
    assert tm.ledger.tm_packet_count() == 1 and (tm.c["tm_corrupt"], tm.c["tm_rejected"]) == (1, 0)
    assert bus.names() == ["tm_corrupt"]


def _stored(tm: TelemetryIntake) -> list[bytes]:
    return [raw for _rowid, raw, _received in tm.ledger.tm_since(0, 1000)]


def test_a_corrupted_packet_is_counted_stored_nowhere_and_the_rest_of_its_datagram_kept(tmp_path: Path) -> None:
    bus, got = Bus(), []
    tm = intake(tmp_path, bus, got)
    hk = encode_housekeeping(IMG, 1, 100.5, IMAGING, {"frames_in": 7})
    vf = encode_verification(ING, 1, 101.0, 1, 42, IMG, 0x220, "completed", "")
    ev = encode_event(IMG, 2, 100.75, next(iter(IMAGING.events.values())).id, "warning", {"camera": "navcam"})
    damaged = bytearray(vf)
    damaged[-5] ^= 0x04  # inside the verification body: its values would decode, wrongly
    result = tm.take_datagram(hk + bytes(damaged) + ev)
    assert (result.packets, result.new, result.rejected, result.corrupt) == (3, 2, 1, 1)
    assert _stored(tm) == [hk, ev] and got == []
    assert (tm.c["tm_corrupt"], tm.c["tm_rejected"]) == (1, 0) and bus.names() == ["tm_corrupt"]
    assert bus.events[0]["source"] == "radio" and "PEC" in bus.events[0]["reason"]
    tm.take_datagram(bytes(damaged) + bytes(damaged))
    assert tm.c["tm_corrupt"] == 3 and bus.names() == ["tm_corrupt"], "rate-limited: the later ones folded"
    tm.reset_counters()
    assert tm.c["tm_corrupt"] == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_bit_flipped_anywhere_in_a_datagram_never_stores_a_wrong_value(data: st.DataObject) -> None:
    ev_id = next(iter(IMAGING.events.values())).id
    packets = [encode_housekeeping(IMG, 1, 100.5, IMAGING, {"frames_in": data.draw(st.integers(0, 99))}),
               encode_event(IMG, 2, 100.75, ev_id, "warning", {"camera": data.draw(st.text(max_size=20))}),
               encode_verification(ING, 1, 101.0, 1, data.draw(st.integers(0, 2**32 - 1)), IMG, 0x220, "completed")]
    packets = data.draw(st.permutations(packets))
    datagram = bytearray(b"".join(packets))
    bit = data.draw(st.integers(0, 8 * len(datagram) - 1), label="bit")
    datagram[bit // 8] ^= 0x80 >> bit % 8
    hit = next(i for i in range(len(packets)) if bit // 8 < sum(map(len, packets[:i + 1])))
    with tempfile.TemporaryDirectory() as d:
        tm = intake(Path(d), Bus())
        try:
            got = tm.take_datagram(bytes(datagram))
        except TmtcError:
            assert hit == 0 and tm.ledger.tm_packet_count() == 0  # the first header's length cut nothing
            return
        finally:
            stored = _stored(tm)
            tm.ledger.close()
        assert got.corrupt >= 1 and tm.c["tm_corrupt"] == got.corrupt and tm.c["tm_rejected"] == 0
        assert set(stored) <= set(packets) - {packets[hit]}
        assert set(packets[:hit]) <= set(stored), "the packets before the damage are kept"
        if bit // 8 >= sum(map(len, packets[:hit])) + 6:  # the damage is past the header: the rest cut right
            assert stored == [p for i, p in enumerate(packets) if i != hit]


def test_cfdp_packets_and_tc_are_not_tm() -> None:
    cfdp = SpacePacketWrapper().wrap(APID_CFDP, b"\x20" * 12)
    assert not is_tm(cfdp) and not is_tm(b"\x10\x20garbage") and not is_tm(b"\x20")
    assert is_tm(encode_event(IMG, 1, 5.0, 1, "info", {}))


def test_absent_float_channels_are_stored_as_null(tmp_path: Path) -> None:
    tm = intake(tmp_path, Bus())
    tm.take_datagram(encode_housekeeping(IMG, 1, 9.0, IMAGING, {}))
    floats = [c.name for c in IMAGING.telemetry.values() if c.type is float]
    for name in floats:
        (_, value), = tm.ledger.parameters("imaging", name)
        assert value is None or math.isnan(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"\x00", b"\x08\x20", b"\x0a\x00\xc0\x00"]))
def test_garbage_datagrams_raise_only_protocol_errors_and_never_store_junk(data: bytes, prefix: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        tm = intake(Path(d), Bus())
        try:
            got = tm.take_datagram(prefix + data)
        except ProtocolError:
            return
        finally:
            tm.ledger.close()
        assert got.new + got.rejected == got.packets


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(1, 200), flip=st.integers(0, 2000))
def test_damaged_segments_raise_protocol_errors_or_are_counted(cut: int, flip: int) -> None:
    ev = encode_event(IMG, 1, 5.0, next(iter(IMAGING.events.values())).id, "info", {"a": 1})
    hk = encode_housekeeping(IMG, 2, 6.0, IMAGING, {"frames_in": 1})
    raw = bytearray(encode_segment([ev, hk]))
    raw[flip % len(raw)] ^= 0xFF
    damaged = bytes(raw[: max(1, len(raw) - cut % len(raw))])
    with tempfile.TemporaryDirectory() as d:
        tm = intake(Path(d), Bus())
        try:
            packets = decode_segment(damaged)
        except ProtocolError:
            tm.ledger.close()
            return
        got = tm.take_packets(packets, "seg.tlm")
        tm.ledger.close()
        assert got.new + got.rejected == got.packets
