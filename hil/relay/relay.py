"""The relay link emulator process: UDP between lander and ground through a link model, recorded to pcap.

``run(ctx)``: datagrams from the lander arrive on ``lander_in`` and leave for
``ground`` from ``ground_in`` (so the ground's replies come back to
``ground_in``); datagrams from the ground leave for ``lander`` from
``lander_in``. Each direction has its own :class:`~hil.relay.link.LinkModel`
(seeded). Every datagram received, in both directions, is recorded to
``<out>/<pcap>`` with the sender's real address and the far end's address,
before the model decides its fate.
"""

from __future__ import annotations

import heapq
import itertools
import random
import select
from dataclasses import dataclass
from typing import Any

from fsw.app.process import ProcessContext
from fsw.downlink.radio import RadioPort, udp_address
from hil.relay.link import LinkModel
from hil.relay.pcap import PcapRecorder

__all__ = ["run", "Direction"]

_STATS_PERIOD_S = 5.0
_MAX_WAIT_S = 0.05


@dataclass
class Direction:
    name: str
    inbound: RadioPort
    outbound: RadioPort
    dest: tuple[str, int]
    model: LinkModel
    send_failures: int = 0


def _directions(ctx: ProcessContext) -> tuple[Direction, Direction]:
    s = ctx.settings
    lander_in = RadioPort(ctx.endpoint("lander_in"))
    ground_in = RadioPort(ctx.endpoint("ground_in"))

    def model(tag: str) -> LinkModel:
        return LinkModel(s["rate_bps"], s["latency_ms"], s["loss"], s["queue_bytes"],
                         random.Random(f"{s['seed']}:{tag}"))

    down = Direction("lander_to_ground", lander_in, ground_in, udp_address(ctx.endpoint("ground")), model("down"))
    up = Direction("ground_to_lander", ground_in, lander_in, udp_address(ctx.endpoint("lander")), model("up"))
    return down, up


def _stats(d: Direction) -> dict[str, Any]:
    st = d.model.stats
    return {"offered": st.offered, "delivered": st.delivered, "lost": st.lost, "tail_dropped": st.tail_dropped,
            "send_failures": d.send_failures}


def run(ctx: ProcessContext) -> None:
    """Entry point of kind ``hil.relay``; returns when ``ctx.stop`` is set."""
    down, up = _directions(ctx)
    pcap = PcapRecorder(ctx.out_dir / ctx.settings["pcap"])
    pending: list[tuple[float, int, Direction, bytes]] = []
    order = itertools.count()
    by_fd = {down.inbound.fileno(): down, up.inbound.fileno(): up}
    next_stats = ctx.monotonic() + _STATS_PERIOD_S
    ctx.log.info("relay_started", lander_in=down.inbound.address, ground_in=up.inbound.address,
                 pcap=str(pcap.path), rate_bps=ctx.settings["rate_bps"], loss=ctx.settings["loss"])
    try:
        while not ctx.stop.is_set():
            now = ctx.monotonic()
            wait = _MAX_WAIT_S if not pending else min(_MAX_WAIT_S, max(0.0, pending[0][0] - now))
            ready, _, _ = select.select(list(by_fd), [], [], wait)
            for fd in ready:
                d = by_fd[fd]
                while (got := d.inbound.recv()) is not None:
                    data, sender = got
                    pcap.record(data, sender, d.dest, ctx.clock())
                    arrival = d.model.offer(len(data), ctx.monotonic())
                    if arrival is not None:
                        heapq.heappush(pending, (arrival, next(order), d, data))
            now = ctx.monotonic()
            while pending and pending[0][0] <= now:
                _, _, d, data = heapq.heappop(pending)
                if not d.outbound.send(data, d.dest):
                    d.send_failures += 1
            if now >= next_stats:
                next_stats = now + _STATS_PERIOD_S
                ctx.log.info("relay_stats", down=_stats(down), up=_stats(up), queued=len(pending),
                             pcap_records=pcap.records)
    finally:
        ctx.log.info("relay_stopped", down=_stats(down), up=_stats(up), pcap_records=pcap.records)
        pcap.close()
        down.inbound.close()
        up.inbound.close()
