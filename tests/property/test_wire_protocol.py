"""Camera wire protocol: every message round-trips; garbage gives typed errors, never a crash or hang."""

from __future__ import annotations

from hypothesis import given, strategies as st

from drivers.camera import protocol as p
from drivers.camera.decoder import StreamDecoder
from framework.errors import ProtocolError

u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=40)


@st.composite
def frames(draw: st.DrawFn) -> p.Frame:
    w, h = draw(st.integers(0, 12)), draw(st.integers(0, 9))
    bits = draw(st.integers(1, 16))
    pixels = draw(st.binary(min_size=w * h * p.bytes_per_pixel(bits), max_size=w * h * p.bytes_per_pixel(bits)))
    camera = draw(st.text(max_size=20).filter(lambda s: len(s.encode()) <= 255))
    return p.Frame(camera=camera, counter=draw(st.integers(0, 2**64 - 1)), width=w, height=h, bit_depth=bits,
                   pattern=draw(st.sampled_from(p.PATTERNS)), exposure_us=draw(u32), gain=draw(finite),
                   temp_c=draw(finite), t_capture=draw(finite), pixels=pixels, seq=draw(u32))


messages = st.one_of(
    st.builds(p.Ping, seq=u32),
    st.builds(p.StatusRequest, seq=u32),
    st.builds(p.SetExposure, exposure_us=u32, seq=u32),
    st.builds(p.SetGain, gain=finite, seq=u32),
    st.builds(p.Capture, seq=u32),
    st.builds(p.StreamStart, rate_hz=finite, seq=u32),
    st.builds(p.StreamStop, seq=u32),
    st.builds(p.CaptureBurst, count=u32, seq=u32),
    st.builds(p.SetWindow, x=u32, y=u32, width=u32, height=u32, seq=u32),
    st.builds(p.SetBinning, factor=st.integers(0, 255), seq=u32),
    st.builds(p.PowerCycle, seq=u32),
    st.builds(p.SelfTest, seq=u32),
    st.builds(p.Ack, ref_seq=u32, code=u16, reason=text, seq=u32),
    st.builds(p.Nak, ref_seq=u32, code=u16, reason=text, seq=u32),
    st.builds(p.StatusReply, ref_seq=u32, temp_c=finite, exposure_us=u32, gain=finite,
              frames_sent=st.integers(0, 2**64 - 1), streaming=st.booleans(), rate_hz=finite, window_x=u32,
              window_y=u32, width=u32, height=u32, binning=st.integers(0, 255), flags=st.integers(0, 255),
              boot_count=u32, seq=u32),
    frames(),
)


def feed_in_chunks(dec: StreamDecoder, data: bytes, cuts: list[int]) -> list[object]:
    out: list[object] = []
    pos = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        out += dec.feed(data[pos:cut])
        pos = max(pos, cut)
    out += dec.feed(data[pos:])
    return out + dec.finish()


def only_messages_or_protocol_errors(items: list[object]) -> bool:
    return all(isinstance(i, ProtocolError) or isinstance(i, tuple(p.Message.__args__)) for i in items)


@given(messages)
def test_every_message_round_trips_through_encode_and_stream_decoder(msg: p.Message) -> None:
    dec = StreamDecoder()
    assert dec.feed(p.encode(msg)) == [msg]
    assert dec.finish() == []


@given(st.lists(messages, max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
def test_messages_split_at_any_points_decode_in_order(msgs: list[p.Message], cuts: list[int]) -> None:
    data = b"".join(p.encode(m) for m in msgs)
    assert feed_in_chunks(StreamDecoder(), data, cuts) == msgs


@given(st.binary(max_size=4000), st.lists(st.integers(0, 5000), max_size=8))
def test_random_bytes_give_only_protocol_errors(data: bytes, cuts: list[int]) -> None:
    items = feed_in_chunks(StreamDecoder(), data, cuts)
    assert all(isinstance(i, ProtocolError) for i in items)


@given(st.lists(st.tuples(st.binary(max_size=300), messages), min_size=1, max_size=5), st.binary(max_size=300),
       st.lists(st.integers(0, 20_000), max_size=8))
def test_every_valid_message_between_garbage_is_recovered(pairs: list[tuple[bytes, p.Message]], tail: bytes,
                                                           cuts: list[int]) -> None:
    data = b"".join(g + p.encode(m) for g, m in pairs) + tail
    items = feed_in_chunks(StreamDecoder(), data, cuts)
    assert only_messages_or_protocol_errors(items)
    decoded = [i for i in items if not isinstance(i, ProtocolError)]
    expected = [m for _, m in pairs]
    # Garbage may by chance hold a sound message of its own; every real one must be there, in order.
    it = iter(decoded)
    assert all(any(d == m for d in it) for m in expected)


@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_truncated_message_before_a_valid_one_is_reported_and_the_valid_one_recovered(
        msgs: list[p.Message], data: st.DataObject) -> None:
    first = p.encode(msgs[0])
    cut = data.draw(st.integers(1, len(first) - 1))
    rest = [p.encode(m) for m in msgs[1:]]
    items = feed_in_chunks(StreamDecoder(), first[:cut] + b"".join(rest), data.draw(st.lists(st.integers(0, 9999))))
    assert any(isinstance(i, ProtocolError) for i in items)
    decoded = [i for i in items if not isinstance(i, ProtocolError)]
    it = iter(decoded)
    assert all(any(d == m for d in it) for m in msgs[1:])


@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_bit_flips_never_yield_a_corrupted_message(msgs: list[p.Message], data: st.DataObject) -> None:
    stream = bytearray(b"".join(p.encode(m) for m in msgs))
    flips = data.draw(st.lists(st.integers(0, len(stream) * 8 - 1), min_size=1, max_size=4, unique=True))
    for bit in flips:
        stream[bit // 8] ^= 1 << (bit % 8)
    items = feed_in_chunks(StreamDecoder(), bytes(stream), data.draw(st.lists(st.integers(0, 9999))))
    assert only_messages_or_protocol_errors(items)
    for item in items:
        if not isinstance(item, ProtocolError):
            assert item in msgs  # anything decoded is exactly a message that was sent


@st.composite
def nasty_garbage(draw: st.DrawFn) -> bytes:
    """Garbage built from sync markers, random bytes and cut-off or bit-flipped real messages."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["sync", "random", "cut", "flipped"]))
        if kind == "sync":
            parts.append(p.SYNC + draw(st.binary(max_size=24)))
        elif kind == "random":
            parts.append(draw(st.binary(max_size=64)))
        else:
            data = bytearray(p.encode(draw(messages)))
            if kind == "cut":
                data = data[:draw(st.integers(1, len(data) - 1))]
            else:
                bit = draw(st.integers(0, len(data) * 8 - 1))
                data[bit // 8] ^= 1 << (bit % 8)
            parts.append(bytes(data))
    return b"".join(parts)


@given(st.lists(st.tuples(nasty_garbage(), messages), min_size=1, max_size=4),
       st.lists(st.integers(0, 20_000), max_size=8))
def test_valid_messages_survive_garbage_made_of_syncs_and_broken_messages(
        pairs: list[tuple[bytes, p.Message]], cuts: list[int]) -> None:
    data = b"".join(g + p.encode(m) for g, m in pairs)
    items = feed_in_chunks(StreamDecoder(), data, cuts)
    assert only_messages_or_protocol_errors(items)
    it = iter(i for i in items if not isinstance(i, ProtocolError))
    assert all(any(d == m for d in it) for _, m in pairs)
