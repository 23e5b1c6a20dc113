"""Round-trips and garbage properties of the bus header and the product codec."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from framework.bus.message import RESERVED_KEYS, Header, decode_header, decode_message, encode_header
from framework.errors import BusError, ProductError
from fsw.imaging.codecs import CODECS, encode_pixels
from fsw.imaging.product import Product, decode_product, encode_product
from framework.crc import pixels_crc32c

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=False),
                     st.text(max_size=20), st.binary(max_size=20))
_values = st.recursive(_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                       max_leaves=10)
_field_names = st.text(min_size=1, max_size=12).filter(lambda k: k not in RESERVED_KEYS)


@given(src=st.text(max_size=30), seq=st.integers(0, 2**63), t=st.floats(0, 2e9), kind=st.text(max_size=12),
       fields=st.dictionaries(_field_names, _values, max_size=6))
def test_header_round_trips(src, seq, t, kind, fields) -> None:
    h = Header(src=src, seq=seq, t=t, kind=kind, fields=fields)
    assert decode_header(encode_header(h)) == h


@given(st.binary(max_size=300))
def test_garbage_header_gives_bus_error_or_a_valid_header(data) -> None:
    try:
        h = decode_header(data)
    except BusError:
        return
    assert isinstance(h, Header) and h.v == 1


@given(st.lists(st.binary(max_size=50), max_size=5))
def test_garbage_message_parts_give_bus_error_or_a_message(parts) -> None:
    try:
        decode_message(parts)
    except BusError:
        pass


_lossless = sorted(n for n, c in CODECS.items() if c.lossless)


@given(codec=st.sampled_from(_lossless), bits=st.sampled_from([8, 12, 16]),
       shape=st.tuples(st.integers(1, 40), st.integers(1, 40)), data=st.data(),
       grades=st.dictionaries(st.text(max_size=8), st.floats(allow_nan=False), max_size=4))
def test_lossless_product_round_trips_bit_exact(codec, bits, shape, data, grades) -> None:
    dtype = np.uint8 if bits == 8 else np.uint16
    px = data.draw(arrays(dtype, shape, elements=st.integers(0, (1 << bits) - 1)))
    payload = encode_pixels(codec, px, {"bit_depth": bits})
    p = Product(id="cam-00000001-full", kind="full", camera="cam", counter=1, t_capture=1.5, codec=codec,
                shape=shape, dtype=np.dtype(dtype).name, bit_depth=bits, payload=payload,
                crc32c=pixels_crc32c(px), grades=grades, codec_params={"bit_depth": bits})
    back, pixels = decode_product(encode_product(p))
    assert back == p
    assert np.array_equal(pixels, px)


@given(st.binary(max_size=2000))
def test_garbage_product_gives_product_error(data) -> None:
    with pytest.raises(ProductError):
        decode_product(data)


@given(st.dictionaries(st.sampled_from(["v", "id", "kind", "codec", "shape", "dtype", "payload", "crc32c",
                                        "bit_depth", "camera", "counter", "t_capture", "meta", "grades",
                                        "codec_params"]), _values, max_size=15))
def test_product_maps_with_wrong_fields_give_product_error(body) -> None:
    with pytest.raises(ProductError):
        decode_product(msgpack.packb(body, use_bin_type=True))


@given(flip=st.integers(0, 10_000))
def test_corrupted_product_payload_never_passes_as_exact(flip) -> None:
    px = (np.arange(32 * 32, dtype=np.uint16) * 37 % 4096).reshape(32, 32)
    payload = bytearray(encode_pixels("jpegls", px))
    payload[flip % len(payload)] ^= 0x5A
    p = Product(id="c-1-full", kind="full", camera="c", counter=1, t_capture=0.0, codec="jpegls", shape=(32, 32),
                dtype="uint16", bit_depth=12, payload=bytes(payload), crc32c=pixels_crc32c(px))
    try:
        _, got = decode_product(encode_product(p))
    except ProductError:
        return
    assert np.array_equal(got, px)
