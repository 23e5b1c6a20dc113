"""The frame reader under garbage and well-formed-but-wrong messages: a typed error or a sound frame, never a
crash; and the imaging core that reads them keeps going (unknown cameras, unsafe ids, extreme counters,
wrong types, huge maps, handles naming no ring)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.bus.message import Header, Message
from framework.crc import pixels_crc32c
from fsw.imaging.frame import CAMERA_ID, Frame, FrameRejected, frame_from_message

H, W = 4, 6
_PX = np.arange(H * W, dtype=np.uint16).reshape(H, W)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**64 - 1),
    st.integers(min_value=2**64, max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.binary(max_size=20),
)
garbage = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=12)
cameras = st.one_of(st.just("cam"), st.sampled_from(["evilcam", "../../../x", "cam/../x", "", "a-0001-full",
                                                     "cam\x00", "CAM", "c" * 65]), st.text(max_size=70))
counters = st.one_of(st.integers(min_value=0, max_value=50), st.just(2**64 - 1),
                     st.integers(min_value=-2**63, max_value=-1), st.integers(min_value=2**64, max_value=2**80))


def _good_fields() -> dict[str, Any]:
    return dict(camera="cam", counter=1, shape=[H, W], dtype="uint16", bit_depth=12, pattern="mono",
                exposure_us=10, gain=1.0, temp_c=0.0, t_capture=1.0, crc32c=pixels_crc32c(_PX))


@st.composite
def frame_messages(draw: Any) -> Message:
    """Mostly a good frame with some fields replaced by wrong values or garbage; sometimes pure garbage."""
    fields = _good_fields()
    fields["camera"] = draw(cameras)
    fields["counter"] = draw(counters)
    for key in draw(st.lists(st.sampled_from(sorted(fields) + ["shm", "priority", "extra"]), max_size=4)):
        fields[key] = draw(garbage)
    if draw(st.booleans()):
        fields["shm"] = draw(st.fixed_dictionaries({"name": st.one_of(st.text(max_size=12), garbage),
                                                    "slot": garbage, "generation": garbage, "length": garbage}))
    if draw(st.integers(0, 9)) == 0:
        fields = draw(st.dictionaries(st.text(max_size=10), garbage, max_size=30))
    buffers = draw(st.one_of(st.just([_PX.tobytes()]), st.lists(st.binary(max_size=64), max_size=3)))
    topic = draw(st.one_of(st.just("frame.cam"), st.builds(lambda c: f"frame.{c}", cameras), st.text(max_size=20)))
    return Message(topic, Header("drv", 0, 0.0, "frame", fields), buffers)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(frame_messages())
def test_any_frame_message_gives_a_sound_frame_or_a_typed_rejection(msg: Message) -> None:
    try:
        frame = frame_from_message(msg, cameras=["cam"])
    except FrameRejected as exc:
        assert exc.reason and isinstance(str(exc), str)
        assert exc.camera in (None, "cam")
        return
    assert isinstance(frame, Frame) and frame.camera == "cam" and msg.topic == "frame.cam"
    assert CAMERA_ID.match(frame.camera) and 0 <= frame.counter <= 2**64 - 1
    assert frame.pixels.shape == tuple(msg.header.fields["shape"])
    assert math.isfinite(frame.gain) and pixels_crc32c(frame.pixels) == frame.crc32c


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One imaging core, in-process, its sockets on free ports nobody listens on (nothing is received)."""
    import pdh.topology  # noqa: F401  (registers the kinds)
    from framework.config import load_config
    from framework.process import ProcessContext
    from fsw.imaging.process import ImagingCore
    from tests.conftest import free_port

    tmp: Path = tmp_path_factory.mktemp("reader")
    ep = {k: f"tcp://127.0.0.1:{free_port()}" for k in ("bus_pub", "bus_sub", "products", "command")}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "endpoints": ep, "processes": {"imaging": {
        "kind": "fsw.imaging", "cameras": ["cam"], "thumbnail_px": 16, "lossless_codec": "zstd", "workers": 1,
        "endpoints": {k: k for k in ep}}}}))

    class Log:
        def __getattr__(self, level: str) -> Any:
            return lambda event, **fields: None

    ctx = ProcessContext(name="imaging", config=load_config(path), out_dir=tmp / "out", log=Log())
    c = ImagingCore(ctx)
    try:
        yield c
    finally:
        c.proc.pool.shutdown(wait=True)
        ctx.zmq.destroy(linger=0)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(msgs=st.lists(frame_messages(), min_size=1, max_size=5))
def test_the_imaging_core_takes_any_frame_messages_and_keeps_going(core: Any, msgs: list[Message]) -> None:
    for msg in msgs:
        core.take(msg)
    core.turn(wait_ms=0)
    assert core.accounts.sample()["frames_open"] <= 4096
    assert len(core.accounts.reports) <= core.accounts.max_reports
