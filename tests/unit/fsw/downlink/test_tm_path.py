"""The downlink's TM/TC path on fakes: datagrams from the relay sorted into CFDP, TC (to ingest) and garbage;
bus housekeeping, events and verification as TM packets, sent realtime in contact (alerts first, several to a
datagram, paced), recorded always, and not sent realtime outside a contact."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from spacepackets.ccsds.spacepacket import PacketType
from spacepackets.cfdp.pdu import FinishedPdu, FinishedParams
from spacepackets.cfdp import ConditionCode, DeliveryCode, FileStatus
from spacepackets.cfdp.conf import PduConfig

from framework.bus.message import Header, Message
from framework.config import check_mapping
from framework.interface import Interface
from framework.reporters import EventReporter
from fsw.downlink.forwarder import Forwarder
from fsw.downlink.interface import INTERFACE, KIND
from fsw.downlink.tm import RealtimeQueue, TmPacketizer, classify_uplink
from link.dictionary import Dictionary
from link.packets import APID_CFDP, SpacePacketWrapper
from link.tlm_segments import decode_segment, segment_kind
from link.tmtc import MAX_TC_BYTES, TmType, decode_tm, encode_command, split_packets
from tests.unit.fsw.downlink.chain import CAMERA_INTERFACE, IMAGING_INTERFACE, TIMERS
from tests.unit.link.fakes import Bus, Log, Radio

INGEST = Interface.build("ingest")
DICTIONARY = Dictionary.from_interfaces({"navcam_driver": CAMERA_INTERFACE, "imaging": IMAGING_INTERFACE,
                                         "downlink": INTERFACE, "ingest": INGEST})
WINDOW = {"relays": [{"name": "r", "period_s": 100.0, "lander_windows_s": [[0, 50]], "rate_bps": 80_000_000}]}


class Sink:
    """Command ingest's end of the PUSH socket: takes packets while ``open``."""

    def __init__(self) -> None:
        self.open = True
        self.got: list[bytes] = []

    def __call__(self, packet: bytes) -> bool:
        if self.open:
            self.got.append(packet)
        return self.open


def forwarder(tmp_path: Path, now: list[float], sink: Sink | None = None, **keys: Any) -> tuple[Forwarder, Bus, Radio]:
    """A Forwarder on fakes whose wall clock is ``now[0]`` (orbit time: the plan's epoch is 0)."""
    bus, radio = Bus(), Radio()
    settings = check_mapping("<test>", "downlink", KIND.keys, {"max_packet_len": 1024, "reencode": {"enabled": False},
                                                              **TIMERS, **WINDOW, **keys})
    events = EventReporter(INTERFACE, bus, "evt.downlink", Log(), time.monotonic)
    fwd = Forwarder(settings, tmp_path, "<test>", "downlink", radio, events, Log(), lambda: now[0], time.monotonic,
                    record_telemetry=True, dictionary=DICTIONARY, tc_sink=sink)
    return fwd, bus, radio


def msg(topic: str, src: str, t: float, fields: dict[str, Any]) -> Message:
    return Message(topic, Header(src=src, seq=0, t=t, kind="x", fields=fields))


def hk(t: float, n: int, src: str = "imaging") -> Message:
    return msg(f"tlm.{src}", src, t, {"frames_in": n})


IMAGING_EVENT = next(iter(IMAGING_INTERFACE.events.values()))


def event(t: float) -> Message:
    """An imaging event as its EventReporter publishes it (name, id and severity from the table)."""
    return msg("evt.imaging", "imaging", t, IMAGING_INTERFACE.event_fields(IMAGING_EVENT.name, {"n": 1}))


def verification(t: float, stage: str = "received") -> Message:
    return msg("vrf.ingest", "ingest", t, {"spi": 1, "tc_seq": 42, "target_apid": 0x30, "opcode": 0x0301,
                                           "stage": stage, "reason": ""})


def tc_packet(size: int = 0) -> bytes:
    spec = INTERFACE.commands["STORE_LIST"]
    packet = encode_command(0x30, 0, 1, 1, spec, {}) + bytes(16)
    return packet + bytes(max(0, size - len(packet)))


def cfdp_datagram(packet_type: PacketType) -> bytes:
    finished = FinishedPdu(params=FinishedParams(DeliveryCode.DATA_COMPLETE, FileStatus.FILE_RETAINED,
                                                 ConditionCode.NO_ERROR), pdu_conf=PduConfig.default())
    return SpacePacketWrapper(packet_type).wrap(APID_CFDP, bytes(finished.pack()))


def realtime(radio: Radio) -> list[Any]:
    """Every TM packet the radio sent, decoded (CFDP datagrams left out)."""
    return [decode_tm(p, DICTIONARY) for d in radio.sent if classify_uplink(d) != "cfdp" for p in split_packets(d)]


# -- what a datagram from the relay is ---------------------------------------------------------------
@given(data=st.binary(max_size=64))
def test_every_datagram_is_cfdp_tc_or_garbage_and_sorting_never_raises(data: bytes) -> None:
    kind = classify_uplink(data)
    assert kind in ("cfdp", "tc", "garbage")
    if data[:1] and data[0] >> 5 not in (0, 1):
        assert kind == "garbage"


def test_tc_packets_go_to_ingest_and_cfdp_packets_of_either_type_stay_cfdp() -> None:
    assert classify_uplink(tc_packet()) == "tc"
    assert classify_uplink(cfdp_datagram(PacketType.TC)) == "cfdp"  # what the ground sends today
    assert classify_uplink(cfdp_datagram(PacketType.TM)) == "cfdp"
    assert classify_uplink(bytes([0x20, 0x00, 0x05])) == "cfdp"  # a bare PDU: version bits 001
    tm = TmPacketizer(DICTIONARY).packet(hk(1.0, 1))
    assert tm is not None and classify_uplink(tm.data) == "garbage"  # a TM packet coming up
    assert classify_uplink(b"") == classify_uplink(b"\x10") == classify_uplink(b"\xff" * 20) == "garbage"


def test_a_tc_packet_is_handed_to_ingest_copied_and_counted(tmp_path: Path) -> None:
    sink = Sink()
    fwd, bus, _ = forwarder(tmp_path, [10.0], sink)
    fwd.take_datagram(tc_packet())
    assert sink.got == [tc_packet()] and fwd.sample()["tc_forwarded"] == 1 and "tc_dropped" not in bus.names()


def test_a_tc_packet_ingest_does_not_take_is_dropped_counted_and_reported(tmp_path: Path) -> None:
    sink = Sink()
    sink.open = False
    fwd, bus, _ = forwarder(tmp_path, [10.0], sink)
    for _ in range(3):
        fwd.take_datagram(tc_packet())
    s = fwd.sample()
    assert s["tc_dropped"] == 3 and s["tc_forwarded"] == 0
    assert bus.names().count("tc_dropped") == 1  # rate-limited: the rest are folded into its count
    sink.open = True
    fwd.take_datagram(tc_packet())
    assert fwd.sample()["tc_forwarded"] == 1 and len(sink.got) == 1


def test_without_an_uplink_endpoint_tc_packets_are_dropped(tmp_path: Path) -> None:
    fwd, bus, _ = forwarder(tmp_path, [10.0], None)
    fwd.take_datagram(tc_packet())
    assert fwd.sample()["tc_dropped"] == 1 and "tc_dropped" in bus.names()


def test_an_oversized_tc_packet_and_garbage_are_refused(tmp_path: Path) -> None:
    sink = Sink()
    fwd, bus, _ = forwarder(tmp_path, [10.0], sink)
    fwd.take_datagram(tc_packet(MAX_TC_BYTES + 1))
    fwd.take_datagram(b"\xe0garbage")
    fwd.take_datagram(b"")
    assert sink.got == [] and fwd.sample()["datagrams_rejected"] == 3
    assert "datagram_rejected" in bus.names() and fwd.sample()["tc_dropped"] == 0


# -- TM packets ------------------------------------------------------------------------------------
def test_in_contact_tm_goes_out_at_once_alerts_first_and_is_recorded_too(tmp_path: Path) -> None:
    now = [10.0]
    fwd, bus, radio = forwarder(tmp_path, now)
    fwd.step(lambda: False)  # the contact opens
    for k in range(3):
        fwd.record(hk(10.0 + k, k))
    fwd.record(event(10.5))
    fwd.record(verification(10.6))
    fwd.step(lambda: False)
    got = realtime(radio)
    assert [p.packet_type for p in got] == [TmType.EVENT, TmType.VERIFICATION] + [TmType.HOUSEKEEPING] * 3
    assert len(radio.sent) == 1  # five small packets, one datagram
    assert [p.values["frames_in"] for p in got[2:]] == [0, 1, 2]
    assert [p.seq_count for p in got[2:]] == [0, 1, 2]  # per APID
    assert got[0].event_name == IMAGING_EVENT.name and got[0].process == "imaging" and got[0].fields["n"] == 1
    assert got[1].verification.tc_seq == 42 and got[1].verification.stage == "received"
    s = fwd.sample()
    assert s["tm_realtime_packets"] == 5 and s["tm_realtime_bytes"] == len(radio.sent[0])
    assert s["tlm_records"] == 5  # the recorder has every one of them too


def test_several_packets_share_a_datagram_up_to_max_packet_len(tmp_path: Path) -> None:
    now = [10.0]
    fwd, _, radio = forwarder(tmp_path, now, max_packet_len=256)
    fwd.step(lambda: False)
    for k in range(40):
        fwd.record(event(10.0 + k / 100))
    fwd.step(lambda: False)
    sizes = [len(d) for d in radio.sent]
    assert sum(len(split_packets(d)) for d in radio.sent) == 40
    assert all(n <= 256 for n in sizes) and max(len(split_packets(d)) for d in radio.sent) > 1


def test_out_of_contact_nothing_goes_realtime_and_the_recording_plays_back(tmp_path: Path) -> None:
    now = [70.0]  # the window is [0, 50) of each 100 s
    fwd, _, radio = forwarder(tmp_path, now, telemetry={"segment_s": 0.05, "alert_flush_s": 0.01})
    fwd.step(lambda: False)
    fwd.record(hk(70.0, 7))
    fwd.record(event(70.1))
    fwd.step(lambda: False)
    assert radio.sent == [] and fwd.sample()["tm_realtime_packets"] == 0
    time.sleep(0.06)
    fwd.flush_telemetry()
    kinds = {segment_kind(i): fwd.store.get(i) for i in fwd.store.ids()}
    assert set(kinds) == {"tlm_playback", "evt"}
    recorded = [decode_tm(p, DICTIONARY) for p in decode_segment(kinds["tlm_playback"].path.read_bytes())]
    assert [p.values["frames_in"] for p in recorded] == [7] and recorded[0].t == 70.0
    seg = fwd.recorder.playback(69.0, 71.0)
    assert seg is not None and [decode_tm(p, DICTIONARY).values["frames_in"] for p in seg.packets] == [7]
    now[0] = 110.0  # the next window: the recording goes by CFDP, nothing realtime that was recorded before
    fwd.step(lambda: False)
    assert realtime(radio) == []


def test_packets_waiting_when_the_contact_closes_are_not_sent_later(tmp_path: Path) -> None:
    now = [10.0]
    fwd, _, radio = forwarder(tmp_path, now)
    fwd.step(lambda: False)
    fwd.record(hk(10.0, 1))
    now[0] = 60.0
    fwd.step(lambda: False)
    now[0] = 110.0
    fwd.step(lambda: False)
    assert realtime(radio) == [] and fwd.sample()["tm_realtime_dropped"] == 1


def test_a_source_without_an_apid_is_counted_and_dropped(tmp_path: Path) -> None:
    fwd, bus, radio = forwarder(tmp_path, [10.0])
    fwd.step(lambda: False)
    fwd.record(hk(10.0, 1, src="stranger"))
    fwd.record(hk(10.0, 2, src="stranger"))
    fwd.record(msg("vrf.imaging", "imaging", 10.0, {"spi": 1}))  # verification from no ingest
    fwd.step(lambda: False)
    s = fwd.sample()
    assert s["tm_unknown_source"] == 2 and s["tm_unencodable"] == 1 and s["tlm_records"] == 0
    assert realtime(radio) == [] and "tm_dropped" in bus.names()


def test_the_sequence_count_is_per_apid_and_wraps_at_14_bits() -> None:
    p = TmPacketizer(DICTIONARY)
    counts = [decode_tm(p.packet(hk(1.0, 0)).data, DICTIONARY).seq_count for _ in range(2**14 + 2)]
    assert counts[:3] == [0, 1, 2] and counts[-2:] == [0, 1]
    assert decode_tm(p.packet(hk(1.0, 0, src="navcam_driver")).data, DICTIONARY).seq_count == 0


def test_the_realtime_queue_keeps_alerts_when_full() -> None:
    q = RealtimeQueue(1024, max_packets=3)
    for k in range(3):
        q.put(bytes([k]) * 10, alert=False)
    q.put(b"A" * 10, alert=True)
    q.put(b"B" * 10, alert=True)
    assert q.dropped == 2
    data, n = q.next_datagram()
    assert n == 3 and data.startswith(b"A" * 10 + b"B" * 10)
