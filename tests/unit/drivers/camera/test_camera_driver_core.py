"""The driver's logic against byte transcripts: what comes off the link, what goes on the bus."""

from __future__ import annotations

from typing import Any

import numpy as np

from drivers.camera import protocol as p
from drivers.camera.decoder import StreamDecoder
from drivers.camera.core import DriverCore
from drivers.links.tcp import Backoff
from framework.crc import pixels_crc32c


class Recorder:
    def __init__(self) -> None:
        self.frames: list[tuple[dict[str, Any], memoryview]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, fields: dict[str, Any], pixels: memoryview) -> None:
        self.frames.append((fields, pixels))

    def emit(self, name: str, details: dict[str, Any]) -> None:
        self.events.append((name, details))

    def event_names(self) -> list[str]:
        return [n for n, _ in self.events]


def make_core() -> tuple[DriverCore, Recorder]:
    rec = Recorder()
    return DriverCore("navcam", rec.publish, rec.emit), rec


def frame(counter: int, camera: str = "navcam") -> p.Frame:
    pixels = (np.arange(12, dtype=np.uint16) * (counter + 1)).reshape(3, 4)
    return p.Frame(camera=camera, counter=counter, width=4, height=3, bit_depth=12, pattern="mono",
                   exposure_us=20000, gain=1.5, temp_c=19.5, t_capture=100.0 + counter, pixels=pixels.tobytes())


def test_good_frame_is_published_with_exactly_the_frame_header_fields() -> None:
    core, rec = make_core()
    core.on_bytes(p.encode(frame(0)))
    [(fields, pixels)] = rec.frames
    assert set(fields) == {"camera", "counter", "shape", "dtype", "bit_depth", "pattern", "exposure_us", "gain",
                           "temp_c", "t_capture", "crc32c"}
    arr = np.frombuffer(pixels, dtype=fields["dtype"]).reshape(fields["shape"])
    assert fields["shape"] == [3, 4] and fields["dtype"] == "uint16" and fields["counter"] == 0
    assert fields["crc32c"] == pixels_crc32c(arr) and core.frames_good == 1 and core.temp_c == 19.5


def test_frame_with_bad_crc_is_counted_and_never_published() -> None:
    core, rec = make_core()
    data = bytearray(p.encode(frame(0)))
    data[-10] ^= 0xFF
    core.on_bytes(bytes(data) + p.encode(frame(1)))
    assert [f["counter"] for f, _ in rec.frames] == [1]
    assert core.frames_bad == 1 and "frame_crc_error" in rec.event_names()


def test_counter_gap_is_counted_with_the_missing_frames() -> None:
    core, rec = make_core()
    for n in (0, 1, 4, 5):
        core.on_bytes(p.encode(frame(n)))
    assert core.counter_gaps == 1 and core.frames_missing == 2
    [(_, details)] = [e for e in rec.events if e[0] == "frame_counter_gap"]
    assert details["missing"] == 2 and details["counter"] == 4


def test_link_closing_mid_frame_counts_a_truncated_frame() -> None:
    core, rec = make_core()
    core.on_bytes(p.encode(frame(0))[:40])
    core.on_link_closed()
    assert core.frames_bad == 1 and "frame_truncated" in rec.event_names() and not rec.frames


def test_garbage_is_counted_in_bytes_and_frames_after_it_still_arrive() -> None:
    core, rec = make_core()
    core.on_bytes(b"\x00\x01" * 50 + p.encode(frame(0)))
    assert core.bytes_skipped == 100 and len(rec.frames) == 1 and "link_garbage" in rec.event_names()


def test_frame_from_another_camera_is_dropped() -> None:
    core, rec = make_core()
    core.on_bytes(p.encode(frame(0, camera="hazcam")))
    assert not rec.frames and core.frames_bad == 1


def test_awaited_reply_is_kept_and_nak_is_counted() -> None:
    core, rec = make_core()
    seq, data = core.command(p.SetGain(gain=2.0))
    assert StreamDecoder().feed(data) == [p.SetGain(gain=2.0, seq=seq)]
    core.on_bytes(p.encode(p.Nak(ref_seq=seq, code=p.Code.OUT_OF_RANGE, reason="too high")))
    reply = core.take_reply(seq)
    assert isinstance(reply, p.Nak) and core.camera_naks == 1 and "camera_nak" in rec.event_names()
    assert core.take_reply(seq) is None


def test_sequence_numbers_start_at_one_and_skip_zero_on_wrap() -> None:
    core, _ = make_core()
    assert core.command(p.Ping())[0] == 1
    core._seq = 2**32 - 1
    assert core.command(p.Ping())[0] == 1


def test_reset_counters_zeroes_the_fault_counters() -> None:
    core, _ = make_core()
    core.on_bytes(b"junk" * 10 + p.encode(frame(0)))
    core.reset_counters()
    assert (core.frames_good, core.frames_bad, core.bytes_skipped, core.counter_gaps) == (0, 0, 0, 0)


def test_link_backoff_doubles_up_to_its_cap_and_resets() -> None:
    b = Backoff(0.1, 0.5)
    assert [b.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    b.reset()
    assert b.next_delay() == 0.1
