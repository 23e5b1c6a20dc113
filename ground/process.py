"""The ground station process: the radio's UDP socket, the bus, an optional command port, the loop.

``run(ctx)`` binds UDP on ``radio`` and answers through ``relay``; every
datagram goes to the I/O-free :class:`~ground.station.Station`, which owns the
CFDP engine, the ledger and what happens to received files. Products are
decoded on one worker thread. With a ``command`` endpoint, the station takes the
operator's uplink commands (:mod:`ground.commands`); the uplink signs with the
run's SDLS keys (``<keys_dir>/sdls/``) under the SAs of ``sa_file``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import zmq

from framework.bus.commands import CommandServer, register_table
from framework.config import find_config
from framework.process import ProcessContext
from framework.reporters import EventReporter, HealthReporter
from ground.commands import handlers
from ground.interface import INTERFACE
from ground.station import Station
from ground.uplink import Signers
from link.dictionary import Dictionary
from link.radio import RadioPort

__all__ = ["run", "StationProcess"]

_DATAGRAMS_PER_TURN = 1024
_SEQUENCE_FILE = "uplink_sequences.json"  # the SDLS sequence numbers the ground has used, per SPI
_POLL_MS = 10


class StationProcess:
    """Owns the sockets, the decode thread and the reporters; one :meth:`turn` at a time."""

    def __init__(self, ctx: ProcessContext) -> None:
        self.ctx = ctx
        self.pub = ctx.publisher()
        self.events = EventReporter(INTERFACE, self.pub, f"evt.{ctx.name}", ctx.log, ctx.monotonic)
        # Only the relay's datagrams are read; others are counted (datagrams_refused) and reported.
        self.radio = RadioPort(ctx.endpoint("radio"), ctx.endpoint("relay"), only_from_peer=True,
                               reject=self.events.limited)
        self.decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ground-decode")
        self.poller = zmq.Poller()
        self.poller.register(self.radio.fileno(), zmq.POLLIN)
        s = ctx.settings
        signers = Signers(find_config(s["sa_file"]), ctx.keys_dir, ctx.out_dir / s["out_subdir"] / _SEQUENCE_FILE)
        self.station = Station(s, ctx.out_dir, ctx.config.file, self.radio, self.events, ctx.clock,
                               self.decoder, dictionary=Dictionary.from_config(ctx.config), signers=signers,
                               name=ctx.name, publisher=self.pub)
        self.commands: CommandServer | None = None
        if ctx.has_endpoint("command"):
            self.commands = ctx.command_server(on_event=self.events.emit,
                                          reset_counters=lambda: (self.station.reset_counters(), self.events.reset()), interface=INTERFACE)
            register_table(self.commands, INTERFACE, handlers(self.station))
            self.poller.register(self.commands.sock, zmq.POLLIN)
        self.health = HealthReporter(ctx, self.pub, self.sample, channels=INTERFACE.telemetry,
                                     events=self.events, commands=self.commands)
        st = self.station
        ctx.log.info("ground_started", radio=self.radio.address, out=str(st.out_dir),
                     relays=[r.name for r in st.plan.relays], recovered=st.c["recovered_files"],
                     resumed=st.c["transfers_resumed"], resumed_bytes=st.engine.counters["resumed_bytes"],
                     command=self.commands is not None)

    def sample(self) -> dict[str, Any]:
        return {**self.station.sample(), "datagrams_refused": self.radio.refused}

    def turn(self) -> None:
        self.poller.poll(_POLL_MS)
        for _ in range(_DATAGRAMS_PER_TURN):
            got = self.radio.recv()
            if got is None:
                break
            self.station.take_datagram(got[0])
        if self.commands is not None:
            self.commands.poll(0)
        self.station.step()
        self.health.tick()

    def close(self) -> None:
        self.decoder.shutdown(wait=True)
        self.station.collect()
        self.health.tick(force=True)
        self.station.close()
        if self.commands is not None:
            self.commands.close()
        self.radio.close()
        self.pub.close()


def run(ctx: ProcessContext) -> None:
    """Entry point of kind ``ground.station``; returns when ``ctx.stop`` is set."""
    process = StationProcess(ctx)
    try:
        while not ctx.stop.is_set():
            process.turn()
    finally:
        ctx.log.info("ground_stopping", received=process.station.c["products_received"])
        process.close()
