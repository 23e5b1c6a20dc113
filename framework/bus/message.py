"""Bus messages: pure encode and decode, no sockets.

A message on the bus is multipart ``[topic, header, *buffers]``:

- ``topic``: dotted UTF-8, e.g. ``frame.navcam``, ``tlm.imaging``, ``evt.downlink``.
- ``header``: a msgpack map with ``v`` (schema version), ``src`` (publisher),
  ``seq`` (the publisher's counter for this topic; a gap shows a drop), ``t`` (send or capture
  time, seconds since the Unix epoch), ``kind``, and the kind's own fields.
- ``buffers``: raw payloads (pixels), never inside msgpack.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

import msgpack

from framework.counters import saturating_add
from framework.errors import BusError

__all__ = ["HEADER_VERSION", "Header", "Message", "encode_header", "decode_header",
           "decode_message", "GapCounter", "RESERVED_KEYS", "MAX_HEADER_BYTES", "MAX_PART_BYTES", "MAX_PARTS"]

HEADER_VERSION = 1
RESERVED_KEYS = frozenset({"v", "src", "seq", "t", "kind"})
MAX_HEADER_BYTES = 64 * 1024
MAX_PART_BYTES = 80 * 1024 * 1024
"""The largest part of a bus message: a frame's pixels inline (a camera message carries at most 64 MiB).
Subscribers set it as their sockets' MAXMSGSIZE, so a larger part costs a dropped connection, not memory."""
MAX_PARTS = 16
"""Topic, header and at most this many minus two buffers: a message of thousands of tiny parts is refused."""


@dataclass(frozen=True)
class Header:
    src: str
    seq: int
    t: float
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    v: int = HEADER_VERSION


@dataclass(frozen=True)
class Message:
    topic: str
    header: Header
    buffers: Sequence[Any] = ()


def encode_header(h: Header) -> bytes:
    """Pack a header into its msgpack map."""
    clash = RESERVED_KEYS.intersection(h.fields)
    if clash:
        raise BusError(f"header fields use reserved keys {sorted(clash)}")
    body = {"v": h.v, "src": h.src, "seq": h.seq, "t": h.t, "kind": h.kind}
    body.update(h.fields)
    try:
        return msgpack.packb(body, use_bin_type=True)
    except (OverflowError, TypeError, ValueError) as exc:  # an int beyond 64 bits, an object msgpack lacks
        raise BusError(f"header cannot be encoded: {type(exc).__name__}: {exc}") from None


def decode_header(data: bytes) -> Header:
    """Unpack a header; raise BusError naming what is wrong."""
    if len(data) > MAX_HEADER_BYTES:
        raise BusError(f"header too long: {len(data)} bytes > {MAX_HEADER_BYTES}")
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=MAX_HEADER_BYTES)
    except Exception as exc:  # msgpack raises several unrelated types on bad bytes
        raise BusError(f"header is not msgpack: {type(exc).__name__}: {exc}") from None
    if not isinstance(body, dict):
        raise BusError(f"header is not a map but {type(body).__name__}")
    v = body.get("v")
    if v != HEADER_VERSION:
        raise BusError(f"header version {v!r} is not {HEADER_VERSION}")
    src, seq, t, kind = body.get("src"), body.get("seq"), body.get("t"), body.get("kind")
    if not isinstance(src, str):
        raise BusError(f"header 'src' must be a string, got {src!r}")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise BusError(f"header 'seq' must be a non-negative int, got {seq!r}")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
        raise BusError(f"header 't' must be a finite number, got {t!r}")
    if not isinstance(kind, str):
        raise BusError(f"header 'kind' must be a string, got {kind!r}")
    fields = {k: val for k, val in body.items() if k not in RESERVED_KEYS}
    return Header(src=src, seq=seq, t=float(t), kind=kind, fields=fields, v=v)


def decode_message(frames: Sequence[Any]) -> Message:
    """Decode ``[topic, header, *buffers]`` (bytes or zmq.Frame) into a Message."""
    if not 2 <= len(frames) <= MAX_PARTS:
        raise BusError(f"message has {len(frames)} parts, needs topic and header and at most {MAX_PARTS}")
    raw_topic = frames[0].bytes if hasattr(frames[0], "bytes") else bytes(frames[0])
    try:
        topic = raw_topic.decode("utf-8")
    except UnicodeDecodeError:
        raise BusError("topic is not UTF-8") from None
    raw_header = frames[1].bytes if hasattr(frames[1], "bytes") else bytes(frames[1])
    header = decode_header(raw_header)
    buffers = [f.buffer if hasattr(f, "buffer") else f for f in frames[2:]]
    return Message(topic=topic, header=header, buffers=buffers)


class GapCounter:
    """Counts messages missing from each stream's ``seq`` sequence (a stream: one publisher's topic).

    Sources and sequence numbers come from the messages themselves, so anyone on the bus can claim
    any: the table keeps the :data:`MAX_STREAMS` streams heard from most recently (an evicted
    stream starts afresh, like a restarted publisher) and the counts saturate.
    """

    MAX_STREAMS = 1024

    def __init__(self) -> None:
        self._last: OrderedDict[str, int] = OrderedDict()
        self.gaps = 0
        self.missing = 0

    def __len__(self) -> int:
        return len(self._last)

    def observe(self, src: str, seq: int) -> int:
        """Record one received seq; return how many messages are missing before it."""
        last = self._last.pop(src, None)
        self._last[src] = seq
        if len(self._last) > self.MAX_STREAMS:
            self._last.popitem(last=False)
        if last is None or seq <= last:  # first sight, or the publisher restarted
            return 0
        missing = seq - last - 1
        if missing:
            self.gaps = saturating_add(self.gaps, 1)
            self.missing = saturating_add(self.missing, missing)
        return missing
