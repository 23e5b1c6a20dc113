"""Mechanism wire protocol: every message round-trips; garbage gives typed errors, never a crash."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drivers.deploy import protocol as p
from framework.errors import ProtocolError

u32 = st.integers(0, 2**32 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
text = st.text(max_size=60)

messages = st.one_of(
    st.builds(p.Ping, seq=u32), st.builds(p.StatusRequest, seq=u32), st.builds(p.Arm, seq=u32),
    st.builds(p.Disarm, seq=u32), st.builds(p.Stop, seq=u32),
    st.builds(p.Fire, circuit=st.sampled_from(["primary", "secondary"]), seq=u32),
    st.builds(p.Ack, ref_seq=u32, code=st.integers(0, 65535), reason=text, seq=u32),
    st.builds(p.Nak, ref_seq=u32, code=st.integers(0, 65535), reason=text, seq=u32),
    st.builds(p.Sample, ref_seq=u32, t_s=finite, state=st.sampled_from(p.STATE_CODES),
              circuit=st.sampled_from(p.CIRCUIT_CODES), released=st.booleans(), angle_valid=st.booleans(),
              stowed_switch=st.booleans(), deployed_switch=st.booleans(), angle_deg=finite, current_a=finite,
              temp_c=finite, element_temp_c=finite, reason=text, seq=u32),
)


@given(st.lists(messages, min_size=1, max_size=8), st.integers(1, 64))
def test_messages_round_trip_through_the_stream_decoder_in_any_chunking(msgs, chunk) -> None:
    data = b"".join(p.encode(m) for m in msgs)
    dec = p.StreamDecoder()
    out = []
    for i in range(0, len(data), chunk):
        out.extend(dec.feed(data[i:i + chunk]))
    out.extend(dec.finish())
    assert out == msgs


@given(st.binary(max_size=400), messages)
def test_garbage_before_a_message_is_reported_and_the_message_still_decodes(junk, msg) -> None:
    dec = p.StreamDecoder()
    out = dec.feed(junk + p.encode(msg)) + dec.finish()
    assert msg in out
    assert all(isinstance(x, ProtocolError) or x == msg or isinstance(x, tuple(p.COMMAND_TYPES) + (p.Ack, p.Nak, p.Sample))
               for x in out)


@given(st.binary(max_size=600))
def test_arbitrary_bytes_give_only_messages_or_typed_errors(data) -> None:
    dec = p.StreamDecoder()
    for x in dec.feed(data) + dec.finish():
        assert isinstance(x, (ProtocolError, *p.COMMAND_TYPES, p.Ack, p.Nak, p.Sample))


@given(messages, st.data())
def test_a_flipped_bit_never_yields_a_different_message(msg, data) -> None:
    raw = bytearray(p.encode(msg))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    dec = p.StreamDecoder()
    out = dec.feed(bytes(raw)) + dec.finish()
    assert not any(not isinstance(x, ProtocolError) and x != msg for x in out)


@given(u32, st.binary(max_size=64), st.integers(0, 255))
def test_sound_envelope_with_bad_payload_is_a_typed_error(seq, payload, mtype) -> None:
    import struct

    import crc32c

    head = struct.pack("<4sBBHII", p.SYNC, p.VERSION, mtype, 0, seq, len(payload))
    body = head + struct.pack("<I", crc32c.crc32c(head)) + payload
    raw = body + struct.pack("<I", crc32c.crc32c(body))
    out = p.StreamDecoder().feed(raw)
    assert len(out) == 1
    assert isinstance(out[0], (p.WireError, *p.COMMAND_TYPES, p.Ack, p.Nak, p.Sample))


def test_nan_or_unknown_state_cannot_be_encoded() -> None:
    import pytest

    with pytest.raises(p.EncodeError):
        p.encode(p.Fire(circuit="tertiary"))
    with pytest.raises(p.EncodeError):
        p.encode(p.Sample(ref_seq=0, t_s=float("nan"), state="stowed", circuit="", released=False, angle_valid=True,
                          stowed_switch=True, deployed_switch=False, angle_deg=0.0, current_a=0.0, temp_c=0.0,
                          element_temp_c=0.0))
