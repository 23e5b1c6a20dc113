"""Camera wire protocol: envelope layout, limits and each typed error."""

from __future__ import annotations

import struct

import crc32c
import pytest

from drivers.camera import protocol as p
from drivers.camera.decoder import StreamDecoder


def envelope(mtype: int, payload: bytes, seq: int = 7, version: int = p.VERSION, length: int | None = None) -> bytes:
    """Hand-built envelope, independent of encode(), to pin the layout down."""
    head = struct.pack("<4sBBHII", p.SYNC, version, mtype, 0, seq, len(payload) if length is None else length)
    head += struct.pack("<I", crc32c.crc32c(head))
    body = head + payload
    return body + struct.pack("<I", crc32c.crc32c(body))


def decode_all(data: bytes) -> list[object]:
    dec = StreamDecoder()
    return dec.feed(data) + dec.finish()


def test_encode_produces_the_documented_layout() -> None:
    assert p.encode(p.SetExposure(exposure_us=1234, seq=7)) == envelope(p.MsgType.SET_EXPOSURE,
                                                                         struct.pack("<I", 1234))
    assert len(p.encode(p.Ping())) == p.OVERHEAD == 24


def test_frame_pixels_decode_as_a_view_without_copy_into_the_message_buffer() -> None:
    f = p.Frame(camera="navcam", counter=9, width=3, height=2, bit_depth=12, pattern="mono", exposure_us=100,
                gain=2.0, temp_c=21.5, t_capture=1.5, pixels=bytes(range(12)))
    [got] = decode_all(p.encode(f))
    assert isinstance(got.pixels, memoryview) and bytes(got.pixels) == bytes(range(12))
    assert got == f and got.dtype == "uint16"


def test_unknown_type_with_sound_crc_is_reported_with_its_seq() -> None:
    [err] = decode_all(envelope(0x55, b"abc", seq=42))
    assert isinstance(err, p.UnknownMessageType) and err.seq == 42 and err.msg_type == 0x55


def test_payload_of_wrong_length_is_malformed() -> None:
    [err] = decode_all(envelope(p.MsgType.SET_EXPOSURE, b"\x01\x02", seq=3))
    assert isinstance(err, p.MalformedPayload) and err.seq == 3


def test_non_finite_float_is_malformed() -> None:
    [err] = decode_all(envelope(p.MsgType.SET_GAIN, struct.pack("<d", float("nan"))))
    assert isinstance(err, p.MalformedPayload) and "gain" in str(err)


def test_frame_whose_pixels_do_not_fit_its_size_is_malformed() -> None:
    good = p.encode(p.Frame(camera="c", counter=1, width=2, height=2, bit_depth=8, pattern="mono", exposure_us=1,
                            gain=1.0, temp_c=0.0, t_capture=0.0, pixels=bytes(4)))
    payload = good[p.HEADER_LEN:-p.TRAILER_LEN] + b"\x00"
    [err] = decode_all(envelope(p.MsgType.FRAME, payload))
    assert isinstance(err, p.MalformedPayload) and err.msg_type == p.MsgType.FRAME


def test_length_above_64_mib_is_rejected_without_waiting_for_the_payload() -> None:
    data = envelope(p.MsgType.FRAME, b"", length=p.MAX_PAYLOAD_BYTES + 1)[:p.HEADER_LEN] + p.encode(p.Ping(seq=5))
    items = StreamDecoder().feed(data)
    assert isinstance(items[0], p.LengthError)
    assert items[-1] == p.Ping(seq=5)


def test_encode_refuses_a_payload_above_64_mib() -> None:
    side = 5793  # 5793**2 * 2 bytes > 64 MiB
    with pytest.raises(p.EncodeError):
        p.encode(p.Frame(camera="c", counter=0, width=side, height=side, bit_depth=16, pattern="mono",
                         exposure_us=1, gain=1.0, temp_c=0.0, t_capture=0.0, pixels=bytearray(side * side * 2)))


def test_unsupported_version_is_reported() -> None:
    items = decode_all(envelope(p.MsgType.PING, b"", version=9))
    assert isinstance(items[0], p.UnsupportedVersion)
    assert all(isinstance(i, p.WireError) for i in items)


def test_flipped_payload_bit_gives_crc_error_and_next_message_survives() -> None:
    bad = bytearray(p.encode(p.Ack(ref_seq=1, reason="fine")))
    bad[p.HEADER_LEN + 3] ^= 0x10
    items = decode_all(bytes(bad) + p.encode(p.Ping(seq=2)))
    assert isinstance(items[0], p.CrcError) and items[0].seq == bad[8]
    assert items[-1] == p.Ping(seq=2)


def test_flipped_header_bit_gives_header_crc_error() -> None:
    bad = bytearray(p.encode(p.Ping(seq=1)))
    bad[13] ^= 0x01
    items = decode_all(bytes(bad))
    assert isinstance(items[0], p.HeaderCrcError)


def test_stream_ending_inside_a_message_is_truncated_on_finish() -> None:
    dec = StreamDecoder()
    data = p.encode(p.StatusRequest(seq=4))
    assert dec.feed(data[:-1]) == []
    [err] = dec.finish()
    assert isinstance(err, p.TruncatedError) and err.seq == 4


def test_garbage_is_reported_once_with_its_size() -> None:
    items = decode_all(b"\x00" * 100 + p.encode(p.Ping(seq=1)))
    assert isinstance(items[0], p.SyncLostError) and items[0].skipped_bytes == 100
    assert items[1] == p.Ping(seq=1)


@pytest.mark.parametrize("msg", [
    p.SetExposure(exposure_us=-1), p.SetExposure(exposure_us=2**32), p.SetGain(gain=float("inf")),
    p.Ping(seq=-1), p.Nak(ref_seq=0, code=2**16),
    p.Frame(camera="c", counter=0, width=2, height=2, bit_depth=8, pattern="XYZW", exposure_us=1, gain=1.0,
            temp_c=0.0, t_capture=0.0, pixels=bytes(4)),
    p.Frame(camera="c", counter=0, width=2, height=2, bit_depth=12, pattern="mono", exposure_us=1, gain=1.0,
            temp_c=0.0, t_capture=0.0, pixels=bytes(4)),
])
def test_encode_refuses_out_of_range_fields(msg: p.Message) -> None:
    with pytest.raises(p.EncodeError):
        p.encode(msg)


def test_decoder_keeps_a_large_frame_intact_across_small_chunks() -> None:
    pixels = bytes(range(256)) * 512  # 256x256 at 16 bits
    f = p.Frame(camera="navcam", counter=1, width=256, height=256, bit_depth=16, pattern="RGGB", exposure_us=5,
                gain=1.0, temp_c=0.0, t_capture=0.0, pixels=pixels)
    data = p.encode(f)
    dec = StreamDecoder()
    out: list[object] = []
    for i in range(0, len(data), 1000):
        out += dec.feed(data[i:i + 1000])
    assert out == [f]
