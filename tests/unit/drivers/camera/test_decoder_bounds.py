"""The camera stream decoder does bounded work per byte received and per call, whatever the bytes.

Sound headers announcing long messages every 24 bytes used to make it re-hunt inside every failed
message (work growing with the square of the stream: NOOP unanswered for minutes, SIGTERM ignored).
Work is measured as the bytes the decoder runs its CRC over, counted through a shim: no clocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from drivers.camera import decoder as decoder_module
from drivers.camera import protocol as p
from drivers.camera.core import DriverCore
from drivers.camera.decoder import StreamDecoder
from framework.errors import ProtocolError

MAX_PAYLOAD = 64 * 1024


class CountingCrc:
    """Stands in for the ``crc32c`` module in the decoder: counts the bytes it is asked to cover."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.bytes = 0

    def crc32c(self, data: Any, value: int = 0) -> int:
        self.bytes += memoryview(data).nbytes
        return self.real.crc32c(data, value)


@pytest.fixture()
def crc(monkeypatch: pytest.MonkeyPatch) -> CountingCrc:
    shim = CountingCrc(decoder_module.crc32c)
    monkeypatch.setattr(decoder_module, "crc32c", shim)
    return shim


def sound_headers(announced: int, count: int, every: int = 24) -> bytes:
    """``count`` sound headers, each announcing ``announced`` payload bytes, ``every`` bytes apart."""
    return b"".join(p.pack_header(p.MsgType.FRAME, n, announced).ljust(every, b"\x00") for n in range(count))


def feed_all(dec: StreamDecoder, data: bytes, chunk: int) -> list[object]:
    out: list[object] = []
    for at in range(0, len(data), chunk):
        out += dec.feed(data[at:at + chunk])
        while getattr(dec, "busy", False):  # (getattr: so the unbounded decoder fails on the work, not the name)
            out += dec.pump()
    return out


def bound(stream_bytes: int) -> int:
    """What a linear decoder may spend: a few passes over the stream plus its re-hunt allowance."""
    return 8 * stream_bytes + 4 * (MAX_PAYLOAD + p.OVERHEAD)


def test_sound_headers_every_24_bytes_cost_work_linear_in_the_stream(crc: CountingCrc) -> None:
    stream = sound_headers(32 * 1024, 10_000) + p.encode(p.Ping(seq=7))
    items = feed_all(StreamDecoder(MAX_PAYLOAD), stream, 4096)
    assert crc.bytes <= bound(len(stream)), f"{crc.bytes} CRC bytes for a {len(stream)}-byte stream"
    assert all(isinstance(i, (ProtocolError, p.Ping)) for i in items)


def test_finish_inside_a_flood_of_sound_headers_costs_work_linear_in_what_is_buffered(crc: CountingCrc) -> None:
    stream = sound_headers(MAX_PAYLOAD, 6_000)  # every message announced runs past the end of the stream
    dec = StreamDecoder(MAX_PAYLOAD * 4)
    items = feed_all(dec, stream, 4096) + dec.finish()
    allowed = 8 * len(stream) + 4 * (4 * MAX_PAYLOAD + p.OVERHEAD)
    assert crc.bytes <= allowed, f"{crc.bytes} CRC bytes for a {len(stream)}-byte stream"
    assert items and all(isinstance(i, ProtocolError) for i in items)
    assert not dec.in_message and dec.buffered_bytes == 0


def test_a_message_cut_short_by_the_next_is_still_recovered() -> None:
    ping = p.encode(p.Ping(seq=2))
    frame = p.encode(p.Frame(camera="navcam", counter=1, width=64, height=64, bit_depth=8, pattern="mono",
                             exposure_us=1, gain=1.0, temp_c=0.0, t_capture=0.0, pixels=bytes(4096), seq=1))
    items = feed_all(StreamDecoder(MAX_PAYLOAD), frame[:300] + ping + frame + bytes(4096), 512)
    assert [i for i in items if not isinstance(i, ProtocolError)][0] == p.Ping(seq=2)
    assert isinstance(items[0], p.TruncatedError)


def test_a_call_returns_after_bounded_work_and_pump_goes_on_where_it_stopped() -> None:
    false_syncs = (p.SYNC + b"\xff" * 20) * 60_000  # each a header check that fails
    dec = StreamDecoder(MAX_PAYLOAD)
    items = dec.feed(false_syncs + p.encode(p.Ping(seq=9)))
    assert dec.busy, "one call did all the work of 60 000 header checks"
    while dec.busy:
        items += dec.pump()
    assert sum(isinstance(i, p.HeaderCrcError) for i in items) == 60_000
    assert items[-1] == p.Ping(seq=9)


def test_the_driver_core_pumps_a_busy_decoder_and_still_publishes_the_frame_behind_the_garbage() -> None:
    published: list[dict[str, Any]] = []
    core = DriverCore("navcam", lambda fields, px: published.append(fields), lambda n, f: None)
    pixels = np.zeros((4, 4), dtype=np.uint8).tobytes()
    frame = p.Frame(camera="navcam", counter=3, width=4, height=4, bit_depth=8, pattern="mono", exposure_us=1,
                    gain=1.0, temp_c=0.0, t_capture=0.0, pixels=pixels)
    core.on_bytes((p.SYNC + b"\xff" * 20) * 60_000 + p.encode(frame))
    assert core.busy
    while core.busy:
        core.pump()
    assert [f["counter"] for f in published] == [3]
