"""The relay constellation emulator process: UDP between lander and ground through the relays in contact.

``run(ctx)``: datagrams from the lander arrive on ``lander_in`` and leave for
``ground`` from ``ground_in`` (so the ground's replies come back to
``ground_in``); datagrams from the ground leave for ``lander`` from
``lander_in``. The contact plan (:mod:`link.contacts`, the same one the
lander and the ground read) says which relay joins them at each moment; a
datagram sent while no relay is in contact is lost, as in space. Each relay has
its own :class:`~hil.relay.link.LinkModel` per direction (seeded): the pass's
rate, light time plus the relay hop, random loss (its own plus the process's
``loss``), burst loss and bit corruption. Every datagram received, in both
directions, is recorded to ``<out>/<pcap>`` as sent, before its fate is decided.
"""

from __future__ import annotations

import heapq
import itertools
import random
import select
from dataclasses import dataclass, field
from typing import Any

from framework.process import ProcessContext
from link.contacts import ContactPlan, load_plan
from link.radio import RadioPort, udp_address
from hil.relay.link import LinkModel
from hil.relay.pcap import PcapRecorder

__all__ = ["run", "Direction", "Constellation"]

_STATS_PERIOD_S = 5.0
_MAX_WAIT_S = 0.02


@dataclass
class Direction:
    name: str
    inbound: RadioPort
    outbound: RadioPort
    dest: tuple[str, int]
    models: list[LinkModel]
    send_failures: int = 0
    outside_window: int = 0
    by_relay: dict[str, int] = field(default_factory=dict)


class Constellation:
    """Routes one datagram through the relay in contact. Pure: times are passed in."""

    def __init__(self, plan: ContactPlan, settings: dict[str, Any]) -> None:
        self.plan = plan
        self.settings = settings

    def models(self, tag: str) -> list[LinkModel]:
        s = self.settings
        return [LinkModel(r.rate_bps[0], r.latency_ms, min(0.95, r.loss + s["loss"]), s["queue_bytes"],
                          random.Random(f"{s['seed']}:{r.name}:{tag}"), r.burst, r.corrupt)
                for r in self.plan.relays]

    def route(self, d: Direction, data: bytes, t_wall: float, t_mono: float) -> tuple[float, bytes] | None:
        """(arrival time on the monotonic clock, bytes as they arrive), or None if lost."""
        contact = self.plan.contact(t_wall)
        if contact is None:
            d.outside_window += 1
            return None
        model = d.models[contact.index]
        model.set_rate(contact.rate_bps)
        arrival = model.offer(len(data), t_mono)
        if arrival is None:
            return None
        d.by_relay[contact.relay] = d.by_relay.get(contact.relay, 0) + 1
        return arrival, model.corrupt(data)


def _directions(ctx: ProcessContext, net: Constellation) -> tuple[Direction, Direction]:
    lander_in = RadioPort(ctx.endpoint("lander_in"))
    ground_in = RadioPort(ctx.endpoint("ground_in"))
    down = Direction("lander_to_ground", lander_in, ground_in, udp_address(ctx.endpoint("ground")), net.models("down"))
    up = Direction("ground_to_lander", ground_in, lander_in, udp_address(ctx.endpoint("lander")), net.models("up"))
    return down, up


def _stats(d: Direction) -> dict[str, Any]:
    total: dict[str, int] = {}
    for m in d.models:
        for k, v in vars(m.stats).items():
            total[k] = total.get(k, 0) + v
    return {**total, "outside_window": d.outside_window, "send_failures": d.send_failures, "by_relay": d.by_relay}


def run(ctx: ProcessContext) -> None:
    """Entry point of kind ``hil.relay``; returns when ``ctx.stop`` is set."""
    plan = load_plan(ctx.settings, ctx.config.file)
    net = Constellation(plan, ctx.settings)
    down, up = _directions(ctx, net)
    pcap = PcapRecorder(ctx.out_dir / ctx.settings["pcap"])
    pending: list[tuple[float, int, Direction, bytes]] = []
    order = itertools.count()
    by_fd = {down.inbound.fileno(): down, up.inbound.fileno(): up}
    next_stats = ctx.monotonic() + _STATS_PERIOD_S
    was_open: str | None = "?"
    ctx.log.info("relay_started", lander_in=down.inbound.address, ground_in=up.inbound.address,
                 pcap=str(pcap.path), relays=[r.name for r in plan.relays], time_scale=plan.time_scale,
                 loss=ctx.settings["loss"])
    try:
        while not ctx.stop.is_set():
            now = ctx.monotonic()
            wait = _MAX_WAIT_S if not pending else min(_MAX_WAIT_S, max(0.0, pending[0][0] - now))
            ready, _, _ = select.select(list(by_fd), [], [], wait)
            for fd in ready:
                d = by_fd[fd]
                while (got := d.inbound.recv()) is not None:
                    data, sender = got
                    t_wall = ctx.clock()
                    pcap.record(data, sender, d.dest, t_wall)
                    routed = net.route(d, data, t_wall, ctx.monotonic())
                    if routed is not None:
                        heapq.heappush(pending, (routed[0], next(order), d, routed[1]))
            now = ctx.monotonic()
            while pending and pending[0][0] <= now:
                _, _, d, data = heapq.heappop(pending)
                if not d.outbound.send(data, d.dest):
                    d.send_failures += 1
            contact = plan.contact(ctx.clock())
            name = contact.relay if contact else None
            if name != was_open:
                was_open = name
                ctx.log.info("contact_changed", relay=name, rate_bps=contact.rate_bps if contact else 0,
                             pass_number=contact.pass_number if contact else None)
            if now >= next_stats:
                next_stats = now + _STATS_PERIOD_S
                ctx.log.info("relay_stats", down=_stats(down), up=_stats(up), queued=len(pending),
                             pcap_records=pcap.records)
    finally:
        ctx.log.info("relay_stopped", down=_stats(down), up=_stats(up), pcap_records=pcap.records)
        pcap.close()
        down.inbound.close()
        up.inbound.close()
