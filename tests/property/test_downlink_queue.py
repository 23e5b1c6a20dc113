"""Properties of the downlink queue's parts: telemetry segments round-trip and garbage gives typed errors,
the send order never puts a lower class before a higher one, and the contact plan agrees with its windows."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from link.contacts import plan_from_mapping
from fsw.downlink.policy import CLASSES, Policy
from fsw.downlink.store import ProductStore
from framework.errors import ProtocolError
from link.tlm_segments import SEGMENT_ID_PREFIX, decode_segment, encode_segment, segment_kind
from link.tmtc import encode_event, encode_verification

FIELDS = st.dictionaries(st.text(max_size=8), st.one_of(st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                                                         st.text(max_size=10), st.booleans()), max_size=4)
TIMES = st.floats(0, 2**32 - 1, allow_nan=False)
EVENTS = st.builds(lambda apid, seq, t, eid, sev, f: encode_event(apid, seq, t, eid, sev, f),
                   st.integers(0, 0x7FE), st.integers(0, 2**14 - 1), TIMES, st.integers(0, 2**16 - 1),
                   st.sampled_from(["info", "warning", "error"]), FIELDS)
VERIFICATIONS = st.builds(lambda apid, seq, t, stage, reason: encode_verification(apid, seq, t, 1, 7, 0x30, 0x301,
                                                                                  stage, reason),
                          st.integers(0, 0x7FE), st.integers(0, 2**14 - 1), TIMES,
                          st.sampled_from(["received", "accepted", "completed", "duplicate"]), st.text(max_size=40))
PACKETS = st.lists(st.one_of(EVENTS, VERIFICATIONS), min_size=1, max_size=20)


@given(packets=PACKETS)
def test_segments_round_trip(packets: list[bytes]) -> None:
    assert decode_segment(encode_segment(packets)) == packets


@given(kind=st.sampled_from(["tlm", "tlm_playback", "evt"]), n=st.integers(0, 10**9))
def test_a_segments_kind_travels_in_its_id(kind: str, n: int) -> None:
    assert segment_kind(f"{SEGMENT_ID_PREFIX[kind]}-{n}-7-1") == kind
    assert segment_kind(f"navcam-{n}-full") is None


@given(data=st.binary(max_size=300))
def test_garbage_segments_give_protocol_errors(data: bytes) -> None:
    try:
        packets = decode_segment(data)
    except ProtocolError:
        return
    assert b"".join(packets) == data and packets


@settings(max_examples=30)
@given(items=st.lists(st.tuples(st.sampled_from(["evt", "thumbnail", "tlm", "tlm_playback", "full", "roi"]),
                                st.floats(0, 1), st.booleans()), min_size=1, max_size=12),
       order=st.permutations(list(CLASSES)))
def test_the_send_order_follows_the_class_priority(items: list, order: list) -> None:
    policy = Policy(tuple(order), 0.1)
    with tempfile.TemporaryDirectory() as tmp:
        store = ProductStore(Path(tmp), policy=policy)
        for i, (kind, score, requested) in enumerate(items):
            store.add(f"p{i}", kind, b"x", score=score, requested=requested)
        ranks = [policy.rank(store.get(pid).cls) for pid in store.ids()]
        store.close()
    assert ranks == sorted(ranks)


@given(t=st.floats(0, 1e6), scale=st.floats(0.5, 500), a=st.floats(0, 50), d=st.floats(1, 50))
def test_a_contact_is_open_exactly_inside_its_window(t: float, scale: float, a: float, d: float) -> None:
    plan = plan_from_mapping({"time_scale": scale, "relays": [
        {"name": "r", "period_s": 100.0, "lander_windows_s": [[a, a + d]]}]}, "t")
    phase = (t * scale) % 100.0
    inside = a <= phase < a + d
    if min(abs(phase - a), abs(phase - a - d)) > 1e-6 * max(1.0, t * scale):
        assert plan.is_open(t) == inside
    c = plan.contact(t)
    if c is not None:
        assert c.opened_at <= t + 1e-6 and (c.closes_at >= t - 1e-6 or math.isclose(c.closes_at, t))
