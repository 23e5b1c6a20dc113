"""The relay constellation emulator process: UDP between lander and ground through the relays in contact.

``run(ctx)``: datagrams from the lander arrive on ``lander_in`` and leave for
``ground`` from ``ground_in`` (so the ground's replies come back to
``ground_in``); datagrams from the ground leave for ``lander`` from
``lander_in``. The contact plan (:mod:`link.contacts`, the same one the
lander and the ground read) says which relay joins them at each moment; a
datagram sent while no relay is in contact is lost, as in space. The routing
and each relay's :class:`~hil.relay.link.LinkModel` per direction (seeded: the
pass's rate, light time plus the relay hop, random loss (its own plus the
process's ``loss``), burst loss and bit corruption) are the I/O-free
:mod:`hil.relay.link`; this module is the thin adapter that owns the sockets.
Every datagram received, in both directions, is recorded to ``<out>/<pcap>``
as sent, before its fate is decided.

With the optional ``bus_pub`` endpoint the relay publishes its health (each
direction's counters) and events; the optional ``command`` endpoint is the
bench's control port (:mod:`hil.relay.commands`): windows forced open or closed,
a relay out for a while, loss, corruption and rate changed, the relay's clock
stepped, through the override layer :class:`~link.contacts.PlanOverrides`
over the plan. Without them it needs no bus, as before.
"""

from __future__ import annotations

import heapq
import itertools
import select
from dataclasses import dataclass
from typing import Any

from framework.bus.commands import CommandServer, register_table
from framework.process import ProcessContext
from framework.reporters import EventReporter, HealthReporter
from hil.relay.commands import handlers
from hil.relay.interface import INTERFACE
from hil.relay.link import Constellation, Direction
from hil.relay.pcap import PcapRecorder
from link.contacts import PlanOverrides, load_plan
from link.radio import RadioPort, udp_address

__all__ = ["RelayEmulator", "run"]

_STATS_PERIOD_S = 5.0
_MAX_WAIT_S = 0.02


@dataclass
class _Ports:
    """The sockets of one direction: where its datagrams arrive, and where they leave from."""

    direction: Direction
    inbound: RadioPort
    outbound: RadioPort


class RelayEmulator:
    """Two directions, the pcap, the datagrams in flight, and the optional bus and command port."""

    def __init__(self, ctx: ProcessContext) -> None:
        self.ctx = ctx
        self.plan = load_plan(ctx.settings, ctx.config.file)
        self.overrides = PlanOverrides(self.plan)
        self.net = Constellation(self.overrides, ctx.settings)
        self.link_changed = False  # SET_LINK since start (or the last CLEAR_OVERRIDES)
        self.lander_in = lander_in = RadioPort(ctx.endpoint("lander_in"))
        self.ground_in = ground_in = RadioPort(ctx.endpoint("ground_in"))
        self.down = Direction("lander_to_ground", udp_address(ctx.endpoint("ground")), self.net.models("down"))
        self.up = Direction("ground_to_lander", udp_address(ctx.endpoint("lander")), self.net.models("up"))
        self.ports = {lander_in.fileno(): _Ports(self.down, lander_in, ground_in),
                      ground_in.fileno(): _Ports(self.up, ground_in, lander_in)}
        self.pcap = PcapRecorder(ctx.out_dir / ctx.settings["pcap"], ctx.settings["pcap_max_bytes"],
                                 ctx.settings["pcap_files"])
        self.pending: list[tuple[float, int, _Ports, bytes]] = []
        self._order = itertools.count()
        self.contact: str | None = None  # the relay in contact
        self._contact_known = False
        self.pub = ctx.optional_publisher()
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic)
        self.commands: CommandServer | None = None
        if ctx.has_endpoint("command"):
            self.commands = ctx.command_server(on_event=self.events.emit,
                                          reset_counters=lambda: (self._reset_counters(), self.events.reset()), interface=INTERFACE)
            register_table(self.commands, INTERFACE, handlers(self))
        self.health = (HealthReporter(ctx, self.pub, self.sample, channels=INTERFACE.telemetry, events=self.events,
                                      commands=self.commands)
                       if ctx.has_endpoint("bus_pub") else None)

    def _reset_counters(self) -> None:
        self.down.reset_counters()
        self.up.reset_counters()

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for prefix, d in (("down", self.down), ("up", self.up)):
            out.update({f"{prefix}_{k}": v for k, v in d.counters().items()})
        out.update(queued=len(self.pending), pcap_records=self.pcap.records, contact=self.contact or "",
                   overrides=self.override_count())
        return out

    def override_count(self) -> int:
        st = self.overrides.state(self.ctx.clock())
        return ((st["forced"] is not None) + len(st["out"]) + (st["clock_offset_s"] != 0.0)
                + int(self.link_changed))

    def link_status(self) -> dict[str, Any]:
        """The contact now, the overrides in force and each relay's link (LINK_STATUS, and every change)."""
        now = self.ctx.clock()
        contact = self.overrides.contact(now)
        return {"contact": None if contact is None else contact.relay,
                "overrides": self.overrides.state(now),
                "link": self.net.link_state(self.down)}

    def receive(self, ports: _Ports) -> None:
        """Record every datagram waiting on ``ports`` and schedule the ones a relay carries."""
        d = ports.direction
        while (got := ports.inbound.recv()) is not None:
            data, sender = got
            t_wall = self.ctx.clock()
            self.pcap.record(data, sender, d.dest, t_wall)
            routed = self.net.route(d, data, t_wall, self.ctx.monotonic())
            if routed is not None:
                heapq.heappush(self.pending, (routed[0], next(self._order), ports, routed[1]))

    def deliver(self, now: float) -> None:
        while self.pending and self.pending[0][0] <= now:
            _, _, ports, data = heapq.heappop(self.pending)
            if not ports.outbound.send(data, ports.direction.dest):
                ports.direction.send_failures += 1

    def watch_contact(self) -> None:
        """An event whenever the relay in contact changes (and once at start)."""
        contact = self.overrides.contact(self.ctx.clock())
        name = contact.relay if contact else None
        if name != self.contact or not self._contact_known:
            self.contact, self._contact_known = name, True
            self.events.emit("contact_changed", {"relay": name, "rate_bps": contact.rate_bps if contact else 0,
                                                 "pass_number": contact.pass_number if contact else None})

    def step(self) -> None:
        now = self.ctx.monotonic()
        wait = _MAX_WAIT_S if not self.pending else min(_MAX_WAIT_S, max(0.0, self.pending[0][0] - now))
        ready, _, _ = select.select(list(self.ports), [], [], wait)
        for fd in ready:
            self.receive(self.ports[fd])
        self.deliver(self.ctx.monotonic())
        self.watch_contact()
        if self.commands is not None:
            self.commands.poll(0)
        if self.health is not None:
            self.health.tick()

    def close(self) -> None:
        self.pcap.close()
        self.lander_in.close()
        self.ground_in.close()
        if self.commands is not None:
            self.commands.close()
        self.pub.close()


def run(ctx: ProcessContext) -> None:
    """Entry point of kind ``hil.relay``; returns when ``ctx.stop`` is set."""
    relay = RelayEmulator(ctx)
    ctx.log.info("relay_started", lander_in=relay.lander_in.address, ground_in=relay.ground_in.address,
                 pcap=str(relay.pcap.path), relays=[r.name for r in relay.plan.relays],
                 time_scale=relay.plan.time_scale, loss=ctx.settings["loss"])
    next_stats = ctx.monotonic() + _STATS_PERIOD_S
    try:
        while not ctx.stop.is_set():
            relay.step()
            now = ctx.monotonic()
            if now >= next_stats:
                next_stats = now + _STATS_PERIOD_S
                ctx.log.info("relay_stats", down=relay.down.stats(), up=relay.up.stats(), queued=len(relay.pending),
                             pcap_records=relay.pcap.records)
    finally:
        ctx.log.info("relay_stopped", down=relay.down.stats(), up=relay.up.stats(), pcap_records=relay.pcap.records)
        relay.close()
