"""link.fec: the coded file round trip, the redundancy rule, the name codec, garbage in."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from link.fec import (
    Coding,
    FecError,
    LossEstimate,
    SymbolDecoder,
    coding_for,
    crc32_of,
    encode,
    extract,
    repair_for,
    resend_for,
    split_name,
    symbol_size,
    _at_least,
)

SMALL_T = 64


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=1, max_size=3000), repair=st.integers(0, 8), seed=st.integers(0, 2**32 - 1))
def test_any_k_plus_2_symbols_rebuild_the_product_and_the_coded_file(data: bytes, repair: int, seed: int) -> None:
    coding = Coding(len(data), SMALL_T, repair)
    coded = encode(data, coding)
    assert len(coded) == coding.coded_size
    assert extract(coded, coding) == data
    n = coding.packet_len
    rng = random.Random(seed)
    keep = rng.sample(range(coding.packets), min(coding.packets, coding.source + 2))  # up to R-2 erasures
    dec = SymbolDecoder(coding)
    for i in keep:
        dec.add(i * n, coded[i * n:(i + 1) * n])
    assert dec.product == data
    assert dec.coded() == coded


@settings(max_examples=30, deadline=None)
@given(data=st.binary(min_size=1, max_size=2000))
def test_the_source_symbols_alone_decode_and_count_the_product_bytes_once(data: bytes) -> None:
    coding = Coding(len(data), SMALL_T, 2)
    coded = encode(data, coding)
    dec = SymbolDecoder(coding)
    n = coding.packet_len
    got = sum(dec.add(i * n, coded[i * n:(i + 1) * n]) for i in range(coding.source))
    assert got == len(data)
    assert dec.add(0, coded[:n]) == 0  # a repeat adds nothing
    assert dec.add(coding.source * n, coded[coding.source * n:(coding.source + 1) * n]) == 0  # parity is no product
    assert dec.product == data


@settings(max_examples=60, deadline=None)
@given(offset=st.integers(-10, 2000), chunk=st.binary(max_size=300))
def test_garbage_symbols_raise_fec_error_only(offset: int, chunk: bytes) -> None:
    coding = Coding(500, SMALL_T, 3)
    dec = SymbolDecoder(coding)
    try:
        dec.add(offset, chunk)
    except FecError:
        pass
    assert dec.product is None or len(dec.product) == 500


def test_a_symbol_with_another_payload_id_is_refused() -> None:
    coding = Coding(500, SMALL_T, 3)
    coded = encode(bytes(range(250)) * 2, coding)
    n = coding.packet_len
    dec = SymbolDecoder(coding)
    with pytest.raises(FecError):
        dec.add(n, coded[:n])  # symbol 0's packet at symbol 1's place
    with pytest.raises(FecError):
        dec.add(0, b"\x01" + coded[1:n])  # another source block
    with pytest.raises(FecError):
        dec.add(1, coded[1:n + 1])  # off the grid


@settings(max_examples=80, deadline=None)
@given(plain=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,40}\.prod", fullmatch=True),
       length=st.integers(1, 10**8), t=st.integers(1, 8000), repair=st.integers(0, 500))
def test_the_coding_suffix_round_trips(plain: str, length: int, t: int, repair: int) -> None:
    t = t * 8
    try:
        coding = Coding(length, t, repair)
    except FecError:
        return  # out of bounds: never named
    assert split_name(plain + coding.suffix) == (plain, coding)
    assert split_name(plain) == (plain, None)


@pytest.mark.parametrize("name", ["a.prod.rq0-4072-1", "a.prod.rq10-4071-1", "a.prod.rq10-0-1",
                                  "a.prod.rq12-40x", "a.prod.rq99999999-8-999999", ".rq5-8-1",
                                  "a.prod.rq1300000-4072-9999999"])
def test_a_malformed_or_unbounded_coding_suffix_is_a_fec_error(name: str) -> None:
    with pytest.raises(FecError):
        split_name(name)


@settings(max_examples=100, deadline=None)
@given(name=st.text(max_size=80))
def test_any_name_splits_or_raises_fec_error(name: str) -> None:
    try:
        plain, coding = split_name(name)
    except FecError:
        return
    assert coding is None or name == plain + coding.suffix


def test_the_repair_rule_meets_its_probability_and_is_the_smallest() -> None:
    for k in (1, 5, 40, 320):
        for p in (0.01, 0.05, 0.2):
            r = repair_for(k, p)
            assert r >= 1
            assert _at_least(k + r, k + 1, 1 - p) >= 0.8
            if r > 1:
                assert _at_least(k + r - 1, k + 1, 1 - p) < 0.8
    assert repair_for(320, 0.0) == 1


def test_resends_cover_the_deficit_with_margin_and_never_exceed_what_is_missing() -> None:
    assert resend_for(0, 0.2, 50) == 0
    n = resend_for(40, 0.2, 100)
    assert 40 < n <= 100 and _at_least(n, 40, 0.8) >= 0.9
    assert resend_for(40, 0.2, 30) == 40  # asks for what the deficit needs; the caller has fewer


@settings(max_examples=25, deadline=None)
@given(data=st.binary(min_size=1, max_size=20_000), segment=st.integers(40, 4078))
def test_coding_for_pads_little_and_round_trips(data: bytes, segment: int) -> None:
    coding = coding_for(len(data), segment, 0.1)
    assert coding is not None and coding.packet_len <= segment
    assert coding.source * coding.symbol - len(data) < coding.source * 8  # under one alignment a symbol
    coded = encode(data, coding)
    dec = SymbolDecoder(coding)
    n = coding.packet_len
    for i in range(coding.repair - 1, coding.packets):  # the first R - 1 symbols lost: K + 1 arrive
        dec.add(i * n, coded[i * n:(i + 1) * n])
    assert dec.product == data


def test_coding_for_fits_the_segment_and_leaves_empty_files_plain() -> None:
    assert symbol_size(4078) == 4072
    c = coding_for(1_300_000, 4078, 0.05)
    assert c is not None and c.packet_len <= 4078 and c.source == 320
    assert coding_for(0, 4078, 0.05) is None
    with pytest.raises(FecError):
        symbol_size(10)


def test_crc32_matches_the_cfdp_file_checksum(tmp_path) -> None:
    from cfdppy.filestore import NativeFilestore
    from spacepackets.cfdp import ChecksumType

    data = random.Random(1).randbytes(100_000)
    p = tmp_path / "f"
    p.write_bytes(data)
    assert crc32_of(data) == NativeFilestore().calculate_checksum(ChecksumType.CRC_32, p, len(data))


def test_the_loss_estimate_follows_evidence_and_a_clean_thumbnail_moves_it_gently() -> None:
    est = LossEstimate(0.05)
    est.observe(66, 330)
    assert 0.12 < est.value < 0.2
    before = est.value
    est.observe(0, 6)
    assert before * 0.95 < est.value < before
    est.observe(0, 0)
    assert est.value > 0
