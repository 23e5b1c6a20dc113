"""Counters the camera driver publishes saturate instead of overflowing: a lying frame counter cannot kill it."""

from __future__ import annotations

from typing import Any

import numpy as np

from drivers.camera import protocol as p
from drivers.camera.core import DriverCore
from framework.bus.message import Header, encode_header

U64_MAX = 2**64 - 1


def _frame(counter: int) -> p.Frame:
    pixels = np.full((3, 4), 100 + counter % 7, dtype=np.uint16)
    return p.Frame(camera="navcam", counter=counter, width=4, height=3, bit_depth=12, pattern="mono",
                   exposure_us=20000, gain=1.0, temp_c=20.0, t_capture=1.0, pixels=pixels.tobytes())


def test_extreme_counter_then_reset_saturates_frames_missing_and_health_still_encodes() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    core = DriverCore("navcam", lambda fields, pixels: None, lambda n, f: events.append((n, f)))
    for counter in (0, U64_MAX, 0, U64_MAX, 0, U64_MAX):
        core.on_bytes(p.encode(_frame(counter)))
    assert core.frames_good == 6
    assert core.frames_missing == U64_MAX  # saturated, not 3 * (2**64 - 2)
    health = {"frames_missing": core.frames_missing, "counter_gaps": core.counter_gaps,
              "last_counter": core.last_counter, "bytes_skipped": core.bytes_skipped}
    encode_header(Header(src="navcam_driver", seq=0, t=1.0, kind="health", fields=health))
    for _, fields in events:  # every event it raised can be published too
        encode_header(Header(src="navcam_driver", seq=0, t=1.0, kind="evt", fields=fields))
