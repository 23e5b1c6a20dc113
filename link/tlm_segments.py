"""The telemetry segment: how the lander's housekeeping and events travel to the ground. No I/O.

A segment is one msgpack map, ``{"v": 1, "kind", "t0", "t1", "records": [[t, topic, src, fields], ...]}``,
records in time order; its kind says how it was made (``tlm``: housekeeping closed during a contact;
``tlm_playback``: recorded outside one, or played back on request; ``evt``: events). The lander's
recorder (:mod:`fsw.downlink.recorder`) writes segments and sends each as a file (``.tlm``); the
ground reads them. Both ends import the format from here, so neither imports the other.
"""

from __future__ import annotations

from typing import Any

import msgpack

from framework.errors import ProtocolError

__all__ = ["SEGMENT_VERSION", "SEGMENT_KINDS", "encode_segment", "decode_segment"]

SEGMENT_VERSION = 1
SEGMENT_KINDS = ("tlm", "tlm_playback", "evt")


def encode_segment(kind: str, records: list[list[Any]]) -> bytes:
    """A segment's bytes; ``records`` already in time order (``t0``/``t1`` are the first and last)."""
    t0 = records[0][0] if records else 0.0
    t1 = records[-1][0] if records else 0.0
    return msgpack.packb({"v": SEGMENT_VERSION, "kind": kind, "t0": t0, "t1": t1, "records": records},
                         use_bin_type=True)


def decode_segment(data: bytes) -> dict[str, Any]:
    """A segment's map; ProtocolError if it is not one."""
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"telemetry segment is not msgpack: {type(exc).__name__}") from None
    if not isinstance(body, dict) or body.get("v") != SEGMENT_VERSION or body.get("kind") not in SEGMENT_KINDS:
        raise ProtocolError("telemetry segment lacks v=1 or a known kind")
    recs = body.get("records")
    if not isinstance(recs, list) or not all(
            isinstance(r, list) and len(r) == 4 and isinstance(r[0], (int, float)) and isinstance(r[1], str)
            and isinstance(r[2], str) and isinstance(r[3], dict) for r in recs):
        raise ProtocolError("telemetry segment records are not [t, topic, src, fields] lists")
    return body
