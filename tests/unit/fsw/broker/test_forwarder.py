"""The broker's forwarding logic without sockets: bounded batches, and what it counts."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from fsw.broker.forwarder import Forwarder


def _queue(*messages: list[bytes]) -> tuple[Any, list[Any]]:
    waiting = deque(messages)
    sent: list[Any] = []
    return (lambda: waiting.popleft() if waiting else None), sent


def test_waiting_messages_are_forwarded_in_order_and_counted_with_every_frames_bytes() -> None:
    fwd = Forwarder()
    take, sent = _queue([b"frame.cam", b"hdr", b"x" * 100], [b"tlm.a", b"hdr2"])
    assert fwd.forward(take, sent.append) == 2
    assert sent == [[b"frame.cam", b"hdr", b"x" * 100], [b"tlm.a", b"hdr2"]]
    assert fwd.counters() == {"messages": 2, "bytes": 9 + 3 + 100 + 5 + 4, "subscription_changes": 0}


def test_a_flood_moves_at_most_one_batch_per_call_and_the_rest_waits() -> None:
    fwd = Forwarder(batch_max=3)
    take, sent = _queue(*([b"m"] for _ in range(7)))
    assert [fwd.forward(take, sent.append) for _ in range(4)] == [3, 3, 1, 0]
    assert len(sent) == 7 and fwd.messages == 7


def test_subscriptions_travel_upstream_counted_apart_from_messages() -> None:
    fwd = Forwarder()
    take, sent = _queue([b"\x01frame."], [b"\x00frame."])
    assert fwd.subscriptions(take, sent.append) == 2
    assert sent == [[b"\x01frame."], [b"\x00frame."]]
    assert fwd.counters() == {"messages": 0, "bytes": 0, "subscription_changes": 2}


def test_reset_zeroes_every_counter() -> None:
    fwd = Forwarder()
    take, sent = _queue([b"a", b"b"])
    fwd.forward(take, sent.append)
    take, sent = _queue([b"\x01a"])
    fwd.subscriptions(take, sent.append)
    fwd.reset()
    assert fwd.counters() == {"messages": 0, "bytes": 0, "subscription_changes": 0}


def test_a_batch_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_max"):
        Forwarder(batch_max=0)
