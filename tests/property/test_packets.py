"""Space Packets carrying CFDP PDUs: round trips, and garbage gives a typed ProtocolError."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from spacepackets.ccsds.spacepacket import PacketType
from spacepackets.cfdp import ConditionCode, CrcFlag, Direction, PduConfig, TransmissionMode
from spacepackets.cfdp.pdu import AckPdu, DirectiveType, EofPdu, FileDataPdu, NakPdu, TransactionStatus
from spacepackets.cfdp.pdu.file_data import FileDataParams
from spacepackets.util import ByteFieldU16, ByteFieldU32

import pytest

from link.packets import APIDS, PacketError, PduError, SpacePacketWrapper, unwrap
from framework.errors import ProtocolError


def conf(seq: int, crc: bool) -> PduConfig:
    return PduConfig(source_entity_id=ByteFieldU16(1), dest_entity_id=ByteFieldU16(2),
                     transaction_seq_num=ByteFieldU32(seq), trans_mode=TransmissionMode.ACKNOWLEDGED,
                     crc_flag=CrcFlag.WITH_CRC if crc else CrcFlag.NO_CRC, direction=Direction.TOWARDS_RECEIVER)


pdus = st.one_of(
    st.builds(lambda seq, crc, off, data: FileDataPdu(conf(seq, crc), FileDataParams(data, off)),
              st.integers(0, 2**32 - 1), st.booleans(), st.integers(0, 2**32 - 1), st.binary(min_size=1, max_size=512)),
    st.builds(lambda seq, crc, size: EofPdu(file_checksum=b"\x01\x02\x03\x04", file_size=size, pdu_conf=conf(seq, crc)),
              st.integers(0, 2**32 - 1), st.booleans(), st.integers(0, 2**32 - 1)),
    st.builds(lambda seq, crc: AckPdu(conf(seq, crc), DirectiveType.EOF_PDU, ConditionCode.NO_ERROR,
                                      TransactionStatus.ACTIVE), st.integers(0, 2**32 - 1), st.booleans()),
    st.builds(lambda seq, crc, a, b: NakPdu(conf(seq, crc), 0, max(a, b) + 1, [(min(a, b), max(a, b) + 1)]),
              st.integers(0, 2**32 - 1), st.booleans(), st.integers(0, 2**31), st.integers(0, 2**31)),
)


@given(pdu=pdus, apid=st.sampled_from(sorted(set(APIDS.values()) | {0x101, 0x102, 0x110})), repeat=st.integers(1, 3))
def test_a_wrapped_pdu_unwraps_to_the_same_pdu_and_sequence(pdu, apid: int, repeat: int) -> None:
    w = SpacePacketWrapper(PacketType.TM)
    raw = bytes(pdu.pack())
    for i in range(repeat):
        out = unwrap(w.wrap(apid, raw))
        assert out.apid == apid and out.seq_count == i and out.packet_type == PacketType.TM
        assert bytes(out.pdu.pack()) == raw and out.pdu_len == len(raw)


def test_sequence_counts_are_kept_per_apid_and_wrap_at_14_bits() -> None:
    w = SpacePacketWrapper()
    raw = bytes(AckPdu(conf(1, True), DirectiveType.EOF_PDU, ConditionCode.NO_ERROR, TransactionStatus.ACTIVE).pack())
    for _ in range(3):
        w.wrap(0x102, raw)
    assert unwrap(w.wrap(0x101, raw)).seq_count == 0
    w._seq[0x102] = 2**14 - 1
    assert unwrap(w.wrap(0x102, raw)).seq_count == 2**14 - 1
    assert unwrap(w.wrap(0x102, raw)).seq_count == 0


@given(st.binary(max_size=600))
def test_garbage_datagrams_raise_a_protocol_error_never_anything_else(data: bytes) -> None:
    try:
        unwrap(data)
    except ProtocolError:
        pass


@given(pdu=pdus, cut=st.integers(1, 40), flip=st.integers(0, 10_000))
def test_truncated_or_corrupted_packets_raise_a_protocol_error(pdu, cut: int, flip: int) -> None:
    good = SpacePacketWrapper().wrap(APIDS["full"], bytes(pdu.pack()))
    with pytest.raises(PacketError):
        unwrap(good[:-cut] if cut < len(good) else good[:3])
    bad = bytearray(good)
    bad[6 + flip % (len(good) - 6)] ^= 0xFF
    try:
        unwrap(bytes(bad))
    except ProtocolError:
        pass


def test_a_packet_whose_data_is_not_a_pdu_raises_a_pdu_error() -> None:
    with pytest.raises(PduError):
        unwrap(SpacePacketWrapper().wrap(APIDS["full"], b"\x00"))


@given(st.lists(st.binary(max_size=64), min_size=0, max_size=3))
def test_a_garbage_products_message_is_a_product_error(frames: list[bytes]) -> None:
    from fsw.downlink.messages import parse_product_message
    from framework.errors import ProductError
    with pytest.raises(ProductError):
        parse_product_message(frames)


@given(st.lists(pdus, max_size=12))
def test_stray_pdus_never_raise_out_of_either_engine(tmp_path_factory, stray: list) -> None:
    from link.source_engine import SourceEngine
    from link.mib import CfdpTimers
    from link.dest_engine import DestEngine
    src = SourceEngine(2, 1, 1024, CfdpTimers())
    dst = DestEngine(2, 1, 1024, CfdpTimers(), tmp_path_factory.mktemp("in"))
    for pdu in stray:
        src.insert(pdu)
        dst.insert(pdu)
        dst.tick()
        while dst.pop() is not None:
            pass
