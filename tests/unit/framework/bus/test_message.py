from __future__ import annotations

import msgpack
import pytest

from framework.bus.message import GapCounter, Header, decode_header, decode_message, encode_header
from framework.errors import BusError


def test_header_round_trip_keeps_fields() -> None:
    h = Header(src="cam", seq=7, t=12.5, kind="frame", fields={"counter": 3, "shape": [2, 2]})
    assert decode_header(encode_header(h)) == h


def test_reserved_field_name_is_refused() -> None:
    with pytest.raises(BusError, match="reserved"):
        encode_header(Header(src="a", seq=0, t=0.0, kind="k", fields={"seq": 1}))


def test_wrong_version_is_refused() -> None:
    raw = msgpack.packb({"v": 2, "src": "a", "seq": 0, "t": 0.0, "kind": "k"})
    with pytest.raises(BusError, match="version"):
        decode_header(raw)


def test_message_needs_topic_and_header() -> None:
    with pytest.raises(BusError, match="parts"):
        decode_message([b"tlm.x"])


def test_gap_counter_counts_missing_messages_per_source() -> None:
    g = GapCounter()
    for seq in (0, 1, 4, 5):
        g.observe("a", seq)
    g.observe("b", 10)
    assert (g.gaps, g.missing) == (1, 2)


def test_gap_counter_treats_restart_as_no_gap() -> None:
    g = GapCounter()
    g.observe("a", 50)
    assert g.observe("a", 0) == 0 and g.missing == 0


def test_gaps_are_per_stream_so_filtered_topics_make_no_false_gaps() -> None:
    g = GapCounter()
    for seq in range(5):
        g.observe("drv|frame.cam", seq)  # tlm of the same publisher is interleaved but not subscribed
    assert g.missing == 0
