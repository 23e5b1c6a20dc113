"""Near-lossless products: no pixel beyond max_error, checked on board; the bound travels with the product."""

from __future__ import annotations

import collections
import time
from types import SimpleNamespace
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from framework.crc import pixels_crc32c
from framework.errors import CommandRejected, ProductError
from fsw.imaging.codecs import NEAR_CODECS, decode_pixels, encode_pixels, near_step
from fsw.imaging.commands import handlers
from fsw.imaging.frame import Frame
from fsw.imaging.interface import INTERFACE
from fsw.imaging.near_lossless import capture_codec, encode_near_lossless, make_near_lossless, max_abs_error
from fsw.imaging.product import decode_product, encode_product
from fsw.imaging.reencode import reencode


@st.composite
def _frames(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    bit_depth = draw(st.sampled_from((8, 12, 16)))
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    shape = draw(st.tuples(st.integers(1, 40), st.integers(1, 40)))
    px = draw(arrays(dtype, shape, elements=st.integers(0, (1 << bit_depth) - 1)))
    return px, bit_depth


@settings(max_examples=150, deadline=None)
@given(_frames(), st.integers(1, 255), st.sampled_from(NEAR_CODECS))
def test_no_decoded_pixel_is_beyond_max_error(frame: tuple[np.ndarray, int], max_error: int, codec: str) -> None:
    px, bit_depth = frame
    if codec == "jpegls_near" and max_error > min(255, np.iinfo(px.dtype).max // 2):
        with pytest.raises(ProductError, match="NEAR is at most"):
            encode_near_lossless(px, bit_depth, max_error, codec)
        return
    r = encode_near_lossless(px, bit_depth, max_error, codec)
    back = decode_pixels(codec, r.payload, px.shape, px.dtype.name, r.params)  # as the ground decodes
    assert back.dtype == px.dtype and back.shape == px.shape
    assert np.array_equal(back, r.decoded)
    assert max_abs_error(px, back) <= max_error
    assert r.max_error_measured_dn == max_abs_error(px, back)
    assert back.max(initial=0) <= (1 << bit_depth) - 1


def test_a_smooth_12_bit_frame_costs_fewer_bits_near_lossless_and_more_error_fewer_still() -> None:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:128, 0:128]
    px = np.clip(1500 + 8 * xx + 5 * yy + rng.normal(0, 3, (128, 128)), 0, 4095).astype(np.uint16)
    lossless = len(encode_pixels("jpegxl", px, {"bit_depth": 12, "effort": 3}))
    sizes = [len(encode_near_lossless(px, 12, k).payload) for k in (1, 2, 4)]
    assert lossless > sizes[0] > sizes[1] > sizes[2]


def _frame(counter: int = 5, pattern: str = "mono", shape: tuple[int, int] = (48, 64)) -> Frame:
    px = np.random.default_rng(counter).integers(100, 4000, shape).astype(np.uint16)
    return Frame("cam", counter, px, 12, pattern, 1000, 1.0, -10.0, 1.0e9 + counter, pixels_crc32c(px))


def test_the_product_states_its_bound_and_decodes_within_it() -> None:
    f = _frame()
    p = make_near_lossless(f, 3, {"score": 0.5, "calibration": "none"})
    assert p.id == "cam-00000005-near_lossless" and p.kind == "near_lossless" and p.codec == "jxl_near"
    assert p.codec_params["max_error"] == 3 and p.meta["max_error_dn"] == 3
    assert 0 < p.meta["max_error_measured_dn"] <= 3 and p.meta["source_crc32c"] == f.crc32c
    got, pixels = decode_product(encode_product(p))
    assert max_abs_error(pixels, f.pixels) <= 3 and got.crc32c == pixels_crc32c(pixels)
    assert p.grades["near_lossless_bpp"] > 0


def test_a_bayer_frame_stays_a_mosaic_and_a_region_keeps_its_phase() -> None:
    f = _frame(pattern="RGGB")
    p = make_near_lossless(f, 2, {}, region=(3, 5, 21, 17))
    _, pixels = decode_product(encode_product(p))
    assert pixels.shape == (16, 20) and pixels.ndim == 2 and p.meta["region"] == [3, 5, 21, 17]
    assert max_abs_error(pixels, f.pixels[4:20, 2:22]) <= 2


def _forged(p: Any, **over: Any) -> bytes:
    body = msgpack.unpackb(encode_product(p), raw=False)
    for k, v in over.items():
        body[k] = v
    return msgpack.packb(body, use_bin_type=True)


def test_a_product_whose_bound_is_stated_twice_differently_or_not_met_is_refused() -> None:
    p = make_near_lossless(_frame(), 2, {})
    with pytest.raises(ProductError, match="states max_error_dn"):
        decode_product(_forged(p, meta=p.meta | {"max_error_dn": 8}))
    with pytest.raises(ProductError, match="not within its bound"):
        decode_product(_forged(p, meta=p.meta | {"max_error_measured_dn": 3}))
    with pytest.raises(ProductError, match="max_error >= 1"):
        decode_product(_forged(p, codec_params=p.codec_params | {"max_error": 0}))


def test_a_bound_the_codec_cannot_keep_is_a_failed_product_never_a_sent_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The board decodes and compares every pixel: a codec that breaks its promise fails the product."""
    import fsw.imaging.near_lossless as nl

    real = nl.decode_pixels
    monkeypatch.setattr(nl, "decode_pixels", lambda *a, **k: real(*a, **k) + np.uint16(2))
    with pytest.raises(ProductError, match="beyond max_error 1"):
        make_near_lossless(_frame(), 1, {})


def test_the_quantiser_step_covers_plus_minus_max_error() -> None:
    assert [near_step(k) for k in (1, 2, 4)] == [3, 5, 9]


def test_a_near_lossless_product_is_never_re_encoded_losslessly() -> None:
    p = make_near_lossless(_frame(), 1, {}, kind="full")
    assert reencode(encode_product(p)) is None


def test_capture_codec_follows_the_lossless_codec_s_cpu_class() -> None:
    assert capture_codec("jpegls", {}) == ("jpegls_near", {})
    assert capture_codec("jpegxl", {"effort": 1}) == ("jxl_near", {"effort": 1})
    assert capture_codec("zstd", {"level": 3}) == ("jxl_near", {"effort": 3})


# -- the command --------------------------------------------------------------------------------------

def _core(counters: tuple[int, ...] = (10, 11)) -> tuple[SimpleNamespace, list[Any]]:
    made: list[Any] = []
    recent = {"cam": collections.deque((_frame(c), {"score": 0.1 * c}) for c in counters)}

    def recent_frame(cam: str, counter: int | None) -> Any:
        return next((h for h in reversed(recent[cam]) if counter is None or h[0].counter == counter), None)

    core = SimpleNamespace(cameras=["cam"], recent=recent, recent_frame=recent_frame, codec="jpegxl",
                           emit=lambda p, requested=False: made.append(p))
    return core, made


def _near(core: Any, **args: Any) -> dict[str, Any]:
    checked = INTERFACE.validate_args("MAKE_NEAR_LOSSLESS", {"camera": "cam", **args})
    return handlers(core)["MAKE_NEAR_LOSSLESS"](checked)


def test_the_command_makes_a_product_of_the_held_frame_and_replies_with_its_bound() -> None:
    core, made = _core()
    reply = _near(core, counter=10, max_error=4)
    assert made[-1].counter == 10 and made[-1].kind == "near_lossless"
    assert reply["id"] == "cam-00000010-near_lossless" and reply["max_error_dn"] == 4
    assert reply["max_error_measured_dn"] <= 4 and reply["bytes"] == len(made[-1].payload)
    _near(core, max_error=1, pick="best")
    assert made[-1].counter == 11


@pytest.mark.parametrize("args,match", [({"max_error": 0}, "max_error"), ({"max_error": 256}, "max_error"),
                                        ({}, "max_error")])
def test_the_table_refuses_a_bound_out_of_range(args: dict[str, Any], match: str) -> None:
    with pytest.raises(CommandRejected, match=match):
        INTERFACE.validate_args("MAKE_NEAR_LOSSLESS", {"camera": "cam", **args})


def test_a_frame_not_held_or_a_region_outside_it_is_rejected() -> None:
    core, made = _core()
    with pytest.raises(CommandRejected, match="not held"):
        _near(core, counter=99, max_error=2)
    with pytest.raises(CommandRejected, match="not inside"):
        _near(core, max_error=2, region=[40, 40, 100, 100])
    assert made == []


# -- the capture path ---------------------------------------------------------------------------------

def test_capture_path_set_near_lossless_makes_full_products_within_the_bound() -> None:
    from framework.config import validate_config
    from fsw.imaging.processor import FrameProcessor

    raw = {"version": 1, "endpoints": {"a": "tcp://127.0.0.1:1", "b": "tcp://127.0.0.1:2",
                                       "c": "tcp://127.0.0.1:3", "d": "tcp://127.0.0.1:4"},
           "processes": {"imaging": {"kind": "fsw.imaging", "cameras": ["cam"], "thumbnail_px": 32,
                                     "lossless_codec": "jpegxl", "lossless_params": {"effort": 1},
                                     "near_lossless_max_error": 2,
                                     "endpoints": {"bus_pub": "a", "bus_sub": "b", "products": "c", "command": "d"}}}}
    out: list[Any] = []
    proc = FrameProcessor(validate_config(raw).processes["imaging"], out.append, lambda n, f: None)
    frames = [_frame(c) for c in range(3)]
    for f in frames:
        proc.accept(f)
    for _ in range(2000):
        proc.step()
        if not proc.busy():
            break
        time.sleep(0.001)
    proc.close()
    fulls = [p for p in out if p.kind == "full"]
    assert [p.counter for p in fulls] == [0, 1, 2]
    for p, f in zip(fulls, frames):
        assert p.codec == "jxl_near" and p.codec_params["effort"] == 1 and p.meta["max_error_dn"] == 2
        _, pixels = decode_product(encode_product(p))
        assert max_abs_error(pixels, f.pixels) <= 2
