"""Helpers for the downlink's unit tests: a Forwarder on in-memory fakes, real products, and a ground to talk to.

Used in-process and by the child processes the disk-full tests start (so the child's code is the same).
"""

from __future__ import annotations

import time
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, Callable

import msgpack
import numpy as np
from spacepackets.ccsds.spacepacket import PacketType

from framework.config import check_mapping
from framework.crc import pixels_crc32c
from framework.reporters import EventReporter
from fsw.downlink.forwarder import Forwarder, RegionSender
from drivers.camera.interface import INTERFACE as CAMERA_INTERFACE
from fsw.downlink.interface import INTERFACE, KIND
from fsw.imaging.interface import INTERFACE as IMAGING_INTERFACE
from fsw.imaging.codecs import encode_pixels
from fsw.imaging.product import Product, encode_product, product_id
from link.dest_engine import DestEngine
from link.dictionary import Dictionary
from link.mib import CfdpTimers
from link.packets import APID_DIRECTIVE, SpacePacketWrapper, unwrap
from link.tmtc import encode_event, encode_housekeeping
from tests.unit.link.fakes import Bus, Log, Radio

TIMERS = {"ack_timer_s": 0.02, "nak_timer_s": 0.02, "inactivity_s": 5.0}
DICTIONARY = Dictionary.from_interfaces({"navcam_driver": CAMERA_INTERFACE, "imaging": IMAGING_INTERFACE,
                                         "downlink": INTERFACE})
"""The lander processes the test forwarder knows (APIDs 0x10, 0x20, 0x30)."""


def make_forwarder(out: Path, bus: Bus, radio: Radio, imaging: RegionSender | None = None,
                   record_telemetry: bool = False, tc_sink: Callable[[bytes], bool] | None = None,
                   **keys: Any) -> Forwarder:
    """A Forwarder storing under ``out/store`` (re-encoding off), reporting to ``bus``, sending through ``radio``;
    its dictionary knows :data:`PROCESSES`."""
    settings = check_mapping("<test>", "downlink", KIND.keys,
                             {"max_packet_len": 1024, "reencode": {"enabled": False}, **TIMERS, **keys})
    events = EventReporter(INTERFACE, bus, "evt.downlink", Log(), time.monotonic)
    return Forwarder(settings, out, "<test>", "downlink", radio, events, Log(), time.time, time.monotonic,
                     record_telemetry=record_telemetry, imaging=imaging, dictionary=DICTIONARY, tc_sink=tc_sink)


def hk_packet(t: float, fields: dict[str, Any], src: str = "imaging", seq: int = 0) -> bytes:
    """A housekeeping TM packet of ``src`` (a process of :data:`DICTIONARY`)."""
    apid = DICTIONARY.apid_of(src)
    return encode_housekeeping(apid, seq, t, DICTIONARY.interface_of(apid), fields)


def event_packet(t: float, name: str, severity: str = "warning", src: str = "imaging", seq: int = 0) -> bytes:
    """An event TM packet of ``src`` (a process of :data:`DICTIONARY`)."""
    return encode_event(DICTIONARY.apid_of(src), seq, t, 0, severity, {"name": name})


def make_product(counter: int, kind: str = "full", side: int = 48, crc_offset: int = 0) -> Product:
    """A real lossless product of random 12-bit pixels (``crc_offset`` != 0: a product made wrong)."""
    pixels = np.random.default_rng(counter).integers(0, 4096, size=(side * 2 // 3, side), dtype=np.uint16)
    return Product(id=product_id("navcam", counter, kind), kind=kind, camera="navcam", counter=counter,
                   t_capture=1.0 + counter, codec="jpegls", shape=pixels.shape, dtype="uint16", bit_depth=12,
                   payload=encode_pixels("jpegls", pixels), crc32c=(pixels_crc32c(pixels) + crc_offset) % 2**32,
                   meta={"exposure_us": 900}, grades={"score": 0.5})


def products_message(p: Product, score: float = 0.5) -> list[bytes]:
    """What the imaging core pushes: the header map, then the product's bytes."""
    return [msgpack.packb({"id": p.id, "kind": p.kind, "score": score}), encode_product(p)]


def flip_bytes(path: Path, count: int = 64, at: float = 0.6) -> None:
    """Flip ``count`` bytes of a file in place (same size) from ``at`` of its length: silent corruption."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    for i in range(start, min(len(data), start + count)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


class Inline(Executor):
    """Runs each job at once, so a decode is done when submit returns."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # the station reads the failure from the future, as from a thread
            fut.set_exception(exc)
        return fut


CFDP_PREFIX = bytes([(APID_DIRECTIVE >> 8) & 0x07, APID_DIRECTIVE & 0xFF])
"""The first two bytes of a CFDP Space Packet the lander sends (TM, no secondary header, the CFDP APID)."""


class Ground:
    """A CFDP receiver (a bare DestEngine) joined to a Forwarder's radio; PDUs back can be held."""

    def __init__(self, incoming: Path) -> None:
        self.engine = DestEngine(2, 1, 1024, CfdpTimers.from_settings(TIMERS), incoming)
        self.up = SpacePacketWrapper(PacketType.TC)
        self.listening = True  # False: what the lander sends is lost (an outage)
        self.held: list[bytes] = []  # ground PDUs not yet delivered to the lander
        self.names: list[str] = []

    def exchange(self, fwd: Forwarder, radio: Radio, deliver: bool = True) -> None:
        """One round: the lander steps, the ground takes what it sent, the ground's answers go back
        (or wait in ``held`` if not ``deliver``)."""
        fwd.step(lambda: False)
        for datagram in radio.sent:
            if self.listening and datagram[:2] == CFDP_PREFIX:  # realtime TM datagrams are not its
                self.engine.insert(unwrap(datagram).pdu)
        radio.sent.clear()
        if self.listening:
            self.engine.tick()
        while (raw := self.engine.pop()) is not None:
            self.held.append(self.up.wrap(APID_DIRECTIVE, raw))
        while self.engine.received:
            rf = self.engine.received.popleft()
            if rf.delivered:
                self.names.append(rf.name)
        if deliver:
            for datagram in self.held:
                fwd.take_datagram(datagram)
            self.held.clear()

    def run(self, fwd: Forwarder, radio: Radio, until: Callable[[], bool], timeout_s: float = 15.0,
            deliver: bool = True) -> bool:
        deadline = time.monotonic() + timeout_s
        while not until() and time.monotonic() < deadline:
            self.exchange(fwd, radio, deliver)
        return until()


class FileSizeLimit:
    """A disk that fills and empties, for a child process: the kernel's file-size limit (RLIMIT_FSIZE).

    ``full()`` lets no write extend any regular file of this process (product files, SQLite's WAL,
    the telemetry archive): every such write fails in the kernel (EFBIG; SIGXFSZ is ignored, as a
    full disk sends none), exactly where a full disk fails with ENOSPC, with no root and no mount.
    ``free()`` puts the limit back. Only for a child process: it binds every file the process writes."""

    def __init__(self) -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        self._resource = resource
        self.soft, self.hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def full(self) -> None:
        self._resource.setrlimit(self._resource.RLIMIT_FSIZE, (1, self.hard))

    def free(self) -> None:
        self._resource.setrlimit(self._resource.RLIMIT_FSIZE, (self.soft, self.hard))
