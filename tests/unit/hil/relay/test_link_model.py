"""The relay link model on a fake clock: delay, loss rate, tail drop."""

from __future__ import annotations

import random

import pytest

from hil.relay.link import LinkModel


def test_an_idle_link_delivers_after_latency_plus_serialisation() -> None:
    link = LinkModel(rate_bps=8000.0, latency_ms=250.0, loss=0.0, queue_bytes=100_000, rng=random.Random(1))
    assert link.offer(100, now=10.0) == pytest.approx(10.0 + 0.25 + 100 * 8 / 8000)


def test_back_to_back_packets_queue_behind_each_other() -> None:
    link = LinkModel(rate_bps=8000.0, latency_ms=0.0, loss=0.0, queue_bytes=100_000, rng=random.Random(1))
    first = link.offer(1000, now=0.0)
    second = link.offer(1000, now=0.0)
    assert first == pytest.approx(1.0) and second == pytest.approx(2.0)
    assert link.backlog_bytes(0.5) == pytest.approx(1500)


def test_loss_rate_is_near_the_setting_with_a_fixed_seed() -> None:
    link = LinkModel(rate_bps=1e9, latency_ms=0.0, loss=0.1, queue_bytes=10**9, rng=random.Random(42))
    n = 20_000
    delivered = sum(link.offer(100, now=i * 1.0) is not None for i in range(n))
    assert link.stats.lost == n - delivered
    assert abs(link.stats.lost / n - 0.1) < 0.01


def test_a_full_queue_drops_the_tail_and_counts_it() -> None:
    link = LinkModel(rate_bps=8000.0, latency_ms=0.0, loss=0.0, queue_bytes=2500, rng=random.Random(1))
    results = [link.offer(1000, now=0.0) for _ in range(4)]
    assert results[0] is not None and results[1] is not None
    assert results[2] is None and results[3] is None
    assert link.stats.tail_dropped == 2
    assert link.offer(1000, now=10.0) is not None  # the queue drained


def test_the_same_seed_gives_the_same_losses() -> None:
    def run() -> list[bool]:
        link = LinkModel(1e9, 0.0, 0.3, 10**9, random.Random(7))
        return [link.offer(10, float(i)) is None for i in range(200)]
    assert run() == run()


def test_burst_loss_comes_in_runs_and_averages_the_gilbert_elliott_mean() -> None:
    from link.contacts import Burst

    burst = Burst(enter=0.0125, leave=0.2, loss=0.85)
    link = LinkModel(rate_bps=1e9, latency_ms=0.0, loss=0.0, queue_bytes=10**9, rng=random.Random(7), burst=burst)
    fates = [link.offer(100, now=i * 1.0) is None for i in range(40_000)]
    assert abs(sum(fates) / len(fates) - burst.mean_loss) < 0.01
    runs = [n for n in (len(r) for r in "".join("x" if f else "." for f in fates).split(".")) if n]
    assert sum(runs) / len(runs) > 2.0  # losses cluster: far longer runs than independent 5% loss gives


def test_corruption_flips_exactly_one_bit_in_about_the_set_share_of_packets() -> None:
    link = LinkModel(rate_bps=1e9, latency_ms=0.0, loss=0.0, queue_bytes=10**9, rng=random.Random(3), corrupt=0.01)
    data = bytes(range(256)) * 4
    flipped = 0
    for _ in range(20_000):
        out = link.corrupt(data)
        diff = sum(bin(a ^ b).count("1") for a, b in zip(out, data))
        assert diff in (0, 1)
        flipped += diff
    assert flipped == link.stats.corrupted and abs(flipped / 20_000 - 0.01) < 0.003


def test_a_corrupted_pdu_is_rejected_by_its_crc_as_a_typed_error(tmp_path) -> None:
    from spacepackets.ccsds.spacepacket import PacketType

    from link.packets import SpacePacketWrapper, unwrap
    from framework.errors import ProtocolError
    from tests.unit.link.test_cfdp_engine import Link, make_files

    link = Link(tmp_path)
    link.src.start("p", make_files(tmp_path, [3000])[0], 0x102)
    link.src.pump(32)
    wrapper = SpacePacketWrapper(PacketType.TM)
    datagrams = [wrapper.wrap(*item) for item in iter(link.src.pop, None)]
    assert len(datagrams) >= 6
    rng = random.Random(5)
    for k in range(300):
        dg = bytearray(datagrams[k % len(datagrams)])
        bit = rng.randrange(6 * 8, len(dg) * 8)  # a flip in the PDU (CCSDS header faults are tested elsewhere)
        dg[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ProtocolError):
            unwrap(bytes(dg), require_crc=True)  # as the lander and the ground unwrap
