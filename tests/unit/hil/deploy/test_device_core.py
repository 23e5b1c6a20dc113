"""The emulator's firmware core against byte transcripts: bytes in, reply bytes out, clock given."""

from __future__ import annotations

from drivers.deploy import protocol as p
from drivers.deploy.profile import load_profile
from hil.deploy.device import DeviceCore


def _exchange(core: DeviceCore, *msgs: p.Message) -> list[p.Message]:
    dec = p.StreamDecoder()
    replies = []
    for item in dec.feed(b"".join(p.encode(m) for m in msgs)):
        r = core.nak_for(item) if isinstance(item, p.WireError) else core.handle(item)
        if r is not None:
            replies.extend(p.StreamDecoder().feed(p.encode(r)))
    return replies


def test_arm_fire_and_status_are_answered_in_order_with_matching_ref_seq() -> None:
    core = DeviceCore(load_profile("spring_boom"), seed=1, physics_hz=200.0)
    replies = _exchange(core, p.Arm(seq=7), p.Fire(circuit="primary", seq=8))
    assert [(type(r), r.ref_seq) for r in replies] == [(p.Ack, 7), (p.Ack, 8)]
    core.advance_to(20.0)
    (sample,) = _exchange(core, p.StatusRequest(seq=9))
    assert isinstance(sample, p.Sample) and sample.ref_seq == 9 and sample.state == "deployed"
    assert sample.t_s >= 19.99


def test_fire_before_arm_is_nakked_with_a_reason() -> None:
    core = DeviceCore(load_profile("holddown_release"), seed=1, physics_hz=200.0)
    (nak,) = _exchange(core, p.Fire(circuit="primary", seq=3))
    assert isinstance(nak, p.Nak) and nak.code == p.Code.NOT_ALLOWED and "arm first" in nak.reason


def test_unknown_message_type_is_nakked_and_corrupt_bytes_are_ignored() -> None:
    import struct

    import crc32c

    core = DeviceCore(load_profile("holddown_release"), seed=1, physics_hz=200.0)
    head = struct.pack("<4sBBHII", p.SYNC, p.VERSION, 0x7E, 0, 5, 0)
    body = head + struct.pack("<I", crc32c.crc32c(head))
    unknown = body + struct.pack("<I", crc32c.crc32c(body))
    corrupt = bytearray(p.encode(p.Arm(seq=6)))
    corrupt[-1] ^= 0xFF
    dec = p.StreamDecoder()
    items = dec.feed(unknown + bytes(corrupt))
    replies = [core.nak_for(i) if isinstance(i, p.WireError) else core.handle(i) for i in items]
    naks = [r for r in replies if r is not None]
    assert len(naks) == 1 and naks[0].code == p.Code.UNKNOWN_TYPE and naks[0].ref_seq == 5
    assert core.mech.state == "stowed"
