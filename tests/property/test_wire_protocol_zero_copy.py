"""Camera wire protocol, fast path: scatter-gather encoding, receiving straight into the decoder's buffer,
and the CRC arithmetic that gives the message CRC and the pixel CRC in one pass."""

from __future__ import annotations

import dataclasses
import struct

import crc32c
from hypothesis import assume, given, strategies as st

from drivers.camera import protocol as p
from drivers.camera.decoder import StreamDecoder
from framework.crc import crc32c_combine
from tests.property.test_wire_protocol import frames, messages, only_messages_or_protocol_errors


def receive_directly(dec: StreamDecoder, data: bytes, sizes: list[int]) -> list[object]:
    """Play a socket: recv straight into recv_target() when the decoder offers one, else feed a chunk."""
    out: list[object] = []
    pos, i = 0, 0
    while pos < len(data):
        want = sizes[i % len(sizes)] if sizes else len(data)
        i += 1
        target = dec.recv_target()
        if target is None:
            out += dec.feed(data[pos:pos + want])
            pos += want
            continue
        n = min(len(target), want, len(data) - pos)
        target[:n] = data[pos:pos + n]
        out += dec.received(n)
        pos += n
    return out + dec.finish()


def summary(items: list[object]) -> list[object]:
    return [item if isinstance(item, p.Message) else (type(item).__name__, str(item)) for item in items]


@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_combined_crc_equals_crc_of_the_concatenation(a: bytes, b: bytes) -> None:
    assert crc32c_combine(crc32c.crc32c(a), crc32c.crc32c(b), len(b)) == crc32c.crc32c(a + b)


@given(messages)
def test_encoded_parts_join_to_the_documented_envelope(msg: p.Message) -> None:
    enc = p.encode_parts(msg)
    data = enc.tobytes()
    assert len(data) == enc.nbytes
    assert data[:4] == p.SYNC and struct.unpack_from("<I", data, 16)[0] == crc32c.crc32c(data[:16])
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == crc32c.crc32c(data[:-4])
    if isinstance(msg, p.Frame):
        assert enc.pixels_crc32c == crc32c.crc32c(bytes(msg.pixels))
    else:
        assert enc.pixels_crc32c is None


@given(st.lists(st.tuples(st.binary(max_size=200), messages), max_size=5), st.binary(max_size=200),
       st.lists(st.integers(1, 700), max_size=6))
def test_receiving_into_the_decoder_buffer_decodes_like_feeding(pairs: list[tuple[bytes, p.Message]], tail: bytes,
                                                                sizes: list[int]) -> None:
    data = b"".join(g + p.encode(m) for g, m in pairs) + tail
    direct = receive_directly(StreamDecoder(), data, sizes)
    fed = StreamDecoder()
    assert summary(direct) == summary(fed.feed(data) + fed.finish())
    assert only_messages_or_protocol_errors(direct)


@given(frames(), st.lists(st.integers(1, 97), max_size=5))
def test_decoded_frame_carries_the_crc_of_its_pixels(frame: p.Frame, sizes: list[int]) -> None:
    items = receive_directly(StreamDecoder(), p.encode(frame), sizes)
    assert items == [frame]
    assert items[0].pixels_crc32c == crc32c.crc32c(bytes(frame.pixels))


@given(st.lists(frames(), min_size=1, max_size=3), st.data())
def test_bit_flips_never_yield_a_corrupted_frame_when_receiving_directly(msgs: list[p.Frame],
                                                                          data: st.DataObject) -> None:
    wire = bytearray(b"".join(p.encode(m) for m in msgs))
    for pos in data.draw(st.lists(st.integers(0, len(wire) - 1), min_size=1, max_size=3)):
        wire[pos] ^= data.draw(st.integers(1, 255))
    sizes = data.draw(st.lists(st.integers(1, 300), max_size=4))
    for item in receive_directly(StreamDecoder(), bytes(wire), sizes):
        if isinstance(item, p.Frame):
            assert item in msgs and item.pixels_crc32c == crc32c.crc32c(bytes(item.pixels))


@given(frames())
def test_frame_with_its_pixel_crc_given_encodes_to_the_same_bytes(frame: p.Frame) -> None:
    given_crc = dataclasses.replace(frame, pixels_crc32c=crc32c.crc32c(bytes(frame.pixels)))
    assert p.encode(given_crc) == p.encode(frame)


@given(frames())
def test_frame_with_a_wrong_pixel_crc_given_is_rejected_by_the_decoder(frame: p.Frame) -> None:
    assume(len(frame.pixels) > 0)  # no pixels: nothing for the CRC to be wrong about
    wrong = dataclasses.replace(frame, pixels_crc32c=crc32c.crc32c(bytes(frame.pixels)) ^ 1)
    items = receive_directly(StreamDecoder(), p.encode(wrong), [])
    assert not any(isinstance(item, p.Frame) for item in items) and items
