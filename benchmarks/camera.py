"""Camera -> imaging product: the consumer reads every pixel, against a raw TCP socket feeding the same consumer.

Every leg ends where the real system's frames end: the imaging core grades each
frame, makes its thumbnail and encodes and verifies its lossless product (JPEG
XL effort 1 with 2 workers, as the demo runs it). What changes between the legs
is only how the pixels reach it.

- **raw socket -> consumer** (the baseline): a child process ``sendall``s the
  camera's frames (4 of them cycled, each with its counter and pixel CRC) over a
  loopback TCP socket; another child receives each into one of a few reused buffers and hands it
  to a :class:`~fsw.imaging.processor.FrameProcessor` with the imaging core's
  settings, through the same boundary check (``frame_from_message``: CRC-32C, bit
  depth); it reads the next frame when the processor has room, so the socket never
  drops and the consumer is the bound. Frames/s = full products made per second.
- **shm in place** (the headline): the real broker, ``hil.camera`` emulator,
  ``drivers.camera`` driver (``frame_transport: shm``) and ``fsw.imaging`` core
  processes; the driver receives each frame into a shared-memory ring slot and the
  bus carries a handle; the core grades, thumbnails and encodes straight from the
  slot (no copy-out), checking the slot's generation after the work. Counted: full
  products arriving at a PULL socket here, where the downlink would take them.
- **inline, bus on tcp / on ipc**: the same processes with the pixels inline in the
  bus message (the transport for a bus that leaves the host), the bus on loopback
  TCP and then on ``ipc://`` sockets.

Both sides are bound by the consumer, as the raw socket's is: the raw receiver
reads the next frame when the processor has room, and the chains' camera is
triggered (``CAPTURE_BURST``) to keep a few frames in work, one more for each
full product that arrives. The emulator cycles 4 rendered frames
(``frame_cache``) of the same profile and seed as the baseline's, so the sensor
model is out of the figure. Each leg is measured in several rounds, the legs
interleaved; the median and the spread are printed, and the machine's load at
start and end (a busy machine is marked).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import msgpack
import numpy as np
import yaml
import zmq

from benchmarks.figures import Column, LoadWatch, Table, ratio, stop_processes
from framework.config import free_loopback_ports, validate_config
from framework.bus.client import Subscriber
from framework.bus.commands import CommandClient
from framework.errors import NotSent

__all__ = ["bench_camera"]

REPO = Path(__file__).resolve().parent.parent
CAMERA = "navcam"
SEED = 2026
EXPOSURE_US = 1000  # with FLUX: a mid-grey scene (about 1 350 DN of 4 095), and a frame time that allows 1000/s
FLUX_E_PER_S = 4_500_000  # the navcam's 900 000 e-/s at 5 ms, in 1 ms: the same electrons, the same frames
IMAGING = {"lossless_codec": "jpegxl", "lossless_params": {"effort": 1}, "workers": 2}  # as configs/demo.yaml
WARMUP_S = 1.5
_RAW_HEAD = struct.Struct("<QI")  # counter, pixel CRC-32C
MAX_STREAM_HZ = 1000.0  # the camera profile's frame-rate ceiling: the trigger, not the camera, sets the pace
WINDOW = 6  # frames in work at once in the chains, as many as the baseline's consumer may hold (2 per worker, 1
# waiting, 1 in the socket); fewer than the ring's 8 slots


# -- the frames ---------------------------------------------------------------------------------------------
def _profile(size_px: int) -> dict[str, Any]:
    return {"width": size_px, "height": size_px, "max_frame_rate_hz": MAX_STREAM_HZ, "readout_s": 0.0,
            "exposure_us": EXPOSURE_US, "flux_e_per_s": FLUX_E_PER_S}


def _camera_frames(size_px: int, n: int = 4) -> list[np.ndarray]:
    """The frames the emulator renders for this profile and seed (its ``frame_cache`` cycles ``n``)."""
    from hil.camera.frames import FrameSource

    base = yaml.safe_load((REPO / "configs" / "cameras" / f"{CAMERA}.yaml").read_text())
    source = FrameSource({**base, **_profile(size_px)}, SEED)
    return [source.frame(i, EXPOSURE_US, 1.0) for i in range(n)]


def _imaging_raw(endpoints: dict[str, str]) -> dict[str, Any]:
    return {"kind": "fsw.imaging", "cameras": [CAMERA], **IMAGING,
            "endpoints": {"bus_pub": "bus_pub", "bus_sub": "bus_sub", "products": "products", "command": "imaging_cmd"}}


def _imaging_settings() -> dict[str, Any]:
    import pdh.topology  # noqa: F401 - registers the process kinds the config names

    ep = {n: f"tcp://127.0.0.1:{i + 1}" for i, n in enumerate(("bus_pub", "bus_sub", "products", "imaging_cmd"))}
    return validate_config({"version": 1, "endpoints": ep,
                            "processes": {"imaging": _imaging_raw(ep)}}).processes["imaging"]


# -- the baseline: raw socket -> consumer -------------------------------------------------------------------
def _raw_sender(port: int, frames: list[np.ndarray]) -> None:
    from framework.crc import pixels_crc32c

    wire = [(px.tobytes(), pixels_crc32c(px)) for px in frames]
    sock = socket.create_connection(("127.0.0.1", port))
    counter = 0
    try:
        while True:
            data, crc = wire[counter % len(wire)]
            sock.sendall(_RAW_HEAD.pack(counter, crc))
            sock.sendall(data)
            counter += 1
    except OSError:
        pass  # the consumer is done and closed the socket
    finally:
        sock.close()


def _recv_exactly(conn: socket.socket, buf: memoryview) -> bool:
    got = 0
    while got < len(buf):
        n = conn.recv_into(buf[got:])
        if not n:
            return False
        got += n
    return True


def _raw_consumer(size_px: int, frames: list[np.ndarray], round_s: float, q: Any) -> None:
    """Receive frames from a raw socket into reused buffers (no allocation per frame) and make the imaging core's products of each."""
    from framework.bus.message import Header, Message
    from fsw.imaging.frame import frame_from_message
    from fsw.imaging.processor import FrameProcessor
    from fsw.imaging.product import encode_product

    srv = socket.create_server(("127.0.0.1", 0))
    sender = mp.get_context("spawn").Process(target=_raw_sender, args=(srv.getsockname()[1], frames), daemon=True)
    sender.start()
    conn, _ = srv.accept()
    fulls: list[float] = []

    def emit(p: Any) -> None:
        encode_product(p)  # the product's bytes are made, as the core makes them to push
        if p.kind == "full":
            fulls.append(time.monotonic())

    settings = _imaging_settings()
    proc = FrameProcessor(settings, emit, lambda n, f: None)
    head = bytearray(_RAW_HEAD.size)
    shape = [size_px, size_px]
    fields = dict(camera=CAMERA, shape=shape, dtype="uint16", bit_depth=12, pattern="mono", exposure_us=EXPOSURE_US,
                  gain=1.0, temp_c=20.0, t_capture=0.0)
    start = time.monotonic()
    end = start + WARMUP_S + round_s
    # Buffers used in turn, none allocated per frame (as the ring's slots): a frame's buffer comes round again
    # only after the frame left the processor (waiting, 2 per worker) and its held frames (recent_frames).
    pool = [np.empty(shape, np.uint16) for _ in range(2 * settings["workers"] + settings["recent_frames"] + 3)]
    for buf in pool:
        buf.fill(0)  # its pages are faulted in before the clock starts
    n = 0
    while time.monotonic() < end:
        if not proc.waiting:
            px = pool[n % len(pool)]
            n += 1
            if not _recv_exactly(conn, memoryview(head)) or not _recv_exactly(conn, memoryview(px).cast("B")):
                break
            counter, crc = _RAW_HEAD.unpack(head)
            msg = Message(f"frame.{CAMERA}", Header("raw", counter, 0.0, "frame",
                                                    dict(fields, counter=counter, crc32c=crc)), [px])
            proc.accept(frame_from_message(msg, cameras=[CAMERA]))
        proc.step()
        if proc.waiting:
            proc.wait(0.002)
    conn.close()
    srv.close()
    sender.join(10)
    proc.pool.shutdown(wait=False, cancel_futures=True)
    q.put(sum(start + WARMUP_S <= t < end for t in fulls) / round_s)


def _baseline_round(size_px: int, frames: list[np.ndarray], round_s: float) -> float:
    """One round of the raw socket feeding the consumer (a fresh pair of processes): full products/s."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_raw_consumer, args=(size_px, frames, round_s, q))
    p.start()
    deadline = time.monotonic() + 120 + round_s
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                return q.get(timeout=1.0)
            if not p.is_alive():
                break
        raise RuntimeError(f"the raw-socket consumer ended without figures (exit code {p.exitcode})")
    finally:
        p.join(30)
        if p.is_alive():
            p.kill()


# -- the chains: emulator -> driver -> bus -> imaging core ---------------------------------------------------
@contextlib.contextmanager
def _processes(raw: dict[str, Any], tmp: str, names: tuple[str, ...]) -> Iterator[dict[str, subprocess.Popen]]:
    cfg = Path(tmp) / "camera.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name in names:
            procs[name] = subprocess.Popen([sys.executable, "-m", "pdh.process", str(cfg), name, "--out", tmp],
                                           cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
        yield procs
    finally:
        stop_processes(list(procs.values()))


def _chain_config(size_px: int, transport: str, bus: str, tmp: str) -> dict[str, Any]:
    ep = free_loopback_ports({n: "tcp://127.0.0.1:0" for n in ("bus_pub", "bus_sub", "link", "cmd", "ctl",
                                                                "products", "imaging_cmd")})
    if bus == "ipc":
        ep.update(bus_pub=f"ipc://{tmp}/bus_pub", bus_sub=f"ipc://{tmp}/bus_sub")
    profile = _profile(size_px)
    return {"version": 1, "endpoints": ep, "bus": {"sndhwm": 50, "rcvhwm": 50},
            "security": {"curve": False},  # plain command ports: the bench triggers the camera, keys are not measured
            "processes": {
        "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
        "emu": {"kind": "hil.camera", "endpoints": {"link": "link", "control": "ctl"}, "camera": CAMERA,
                "profile_file": CAMERA, "profile": profile, "frame_cache": 4, "seed": SEED},
        "drv": {"kind": "drivers.camera", "endpoints": {"link": "link", "bus_pub": "bus_pub", "command": "cmd"},
                "camera": CAMERA, "profile_file": CAMERA, "profile": profile, "stream_on_start": False,
                "defect_check": False, "frame_transport": transport},
        "imaging": _imaging_raw(ep),
    }}


def _drain_products(pull: zmq.Socket, until: float, fulls: list[float], thumbs: list[float]) -> None:
    while True:
        left = until - time.monotonic()
        if left <= 0 or not pull.poll(max(1, int(left * 1000))):
            return
        head = msgpack.unpackb(pull.recv_multipart()[0])
        (fulls if head.get("kind") == "full" else thumbs).append(time.monotonic())


def _wait_health(sub: Subscriber, topics: set[str], timeout_s: float) -> None:
    seen: set[str] = set()
    end = time.monotonic() + timeout_s
    while seen != topics and time.monotonic() < end:
        msg = sub.recv(200)
        if msg is not None and msg.topic in topics:
            seen.add(msg.topic)
    if seen != topics:
        raise RuntimeError(f"no health from {sorted(topics - seen)} within {timeout_s} s")


class _Trigger:
    """The camera triggered so that ``window`` frames are in work: a frame is captured each time one of the
    core's full products arrives (a frame that never makes one is given up after ``stall_s``)."""

    def __init__(self, client: CommandClient, window: int, stall_s: float = 2.0) -> None:
        self.client, self.window, self.stall_s = client, window, stall_s
        self.sent = 0
        self.given_up = 0
        self.refused = 0

    def top_up(self, done: int, last_progress: float) -> None:
        if time.monotonic() - last_progress > self.stall_s and self.sent - self.given_up - done >= self.window:
            self.given_up += 1  # its full product never came (named lost by the core): capture another
        want = self.window - (self.sent - self.given_up - done)
        if want > 0:
            try:
                self.client.send("CAPTURE_BURST", {"count": want})
                self.sent += want
            except NotSent:
                pass  # the driver's command port is not up yet: again at the next turn
        reply = self.client.recv(0)
        while reply is not None:
            self.refused += reply.status in ("rejected", "failed")
            reply = self.client.recv(0)


class _Chain:
    """One chain's processes, started once; :meth:`round` triggers the camera for one measured round."""

    def __init__(self, size_px: int, transport: str, bus: str) -> None:
        self.transport = transport
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="pdh-cam-", dir="/tmp"))
        self.raw = _chain_config(size_px, transport, bus, tmp)
        self.zctx = zmq.Context()
        self.pull = self.zctx.socket(zmq.PULL)
        self.pull.bind(self.raw["endpoints"]["products"])
        self.health = Subscriber(self.zctx, self.raw["endpoints"]["bus_sub"], ["tlm.drv", "tlm.imaging"], rcvhwm=50)
        self.client = CommandClient(self.zctx, self.raw["endpoints"]["cmd"])
        self._stack.enter_context(_processes(self.raw, tmp, ("broker", "imaging", "emu", "drv")))
        self.thumbnail_only = 0
        self.given_up = 0

    def ready(self) -> None:
        _wait_health(self.health, {"tlm.drv", "tlm.imaging"}, 60.0)
        self.health.close()

    def round(self, round_s: float) -> float:
        """Full products per second over ``round_s`` after a warm-up, ``WINDOW`` frames kept in work; then
        the frames still in work are let finish, so the next round (or leg) starts from an idle core."""
        trigger = _Trigger(self.client, WINDOW)
        fulls: list[float] = []
        thumbs: list[float] = []
        t0 = time.monotonic() + WARMUP_S
        end = t0 + round_s
        last, progress = 0, time.monotonic()
        while time.monotonic() < end:
            trigger.top_up(len(fulls), progress)
            _drain_products(self.pull, time.monotonic() + 0.02, fulls, thumbs)
            if len(fulls) > last:
                last, progress = len(fulls), time.monotonic()
        _drain_products(self.pull, time.monotonic() + 0.5, fulls, thumbs)
        while len(fulls) + trigger.given_up < trigger.sent and time.monotonic() - progress < 3.0:
            _drain_products(self.pull, time.monotonic() + 0.2, fulls, thumbs)
            if len(fulls) > last:
                last, progress = len(fulls), time.monotonic()
        self.thumbnail_only += max(0, len(thumbs) - len(fulls))
        self.given_up += trigger.given_up
        if not fulls:
            raise RuntimeError(f"no product from the {self.transport} chain")
        return sum(t0 <= t < end for t in fulls) / round_s

    def close(self) -> None:
        self.client.close()
        self.pull.close(0)
        self.zctx.destroy(linger=0)
        self._stack.close()


# -- the table ------------------------------------------------------------------------------------------------
def _row(leg: str, fps: list[float], base: float, mb: float, thumbnail_only: int | None = None,
         given_up: int | None = None) -> dict[str, Any]:
    med = statistics.median(fps)
    return {"leg": leg, "vs_base": ratio(med, base), "fps": med, "fps_min": min(fps), "fps_max": max(fps),
            "mb_s": med * mb, "thumbnail_only": thumbnail_only, "given_up": given_up}


LEGS = (("camera -> driver -> bus -> imaging core, shm in place", "shm", "tcp"),
        ("camera -> driver -> bus -> imaging core, pixels inline, bus on tcp", "inline", "tcp"),
        ("camera -> driver -> bus -> imaging core, pixels inline, bus on ipc://", "inline", "ipc"))


def bench_camera(size_px: int = 2048, duration_s: float = 10.0, rounds: int = 5) -> Table:
    """``duration_s``: each leg's measured time, split into ``rounds`` rounds of at least 2 s; the rounds of the
    legs are interleaved (baseline, shm, inline tcp, inline ipc, again), so the machine's slow moments spread."""
    watch = LoadWatch()
    round_s = max(2.0, duration_s / rounds)
    frames = _camera_frames(size_px)
    mb = frames[0].nbytes / 1e6
    runs: dict[str, list[float]] = {label: [] for label, _, _ in LEGS}
    base_fps: list[float] = []
    chains: dict[str, _Chain] = {}
    try:
        for label, transport, bus in LEGS:
            chains[label] = _Chain(size_px, transport, bus)
        for chain in chains.values():
            chain.ready()
        for _ in range(rounds):
            base_fps.append(_baseline_round(size_px, frames, round_s))
            for label, chain in chains.items():
                runs[label].append(chain.round(round_s))
    finally:
        for chain in chains.values():
            chain.close()
    base = statistics.median(base_fps)
    rows = [_row("raw TCP socket -> same consumer (baseline)", base_fps, base, mb)]
    rows += [_row(label, runs[label], base, mb, chains[label].thumbnail_only, chains[label].given_up)
             for label, _, _ in LEGS]
    load = watch.done()
    head = rows[1]
    return Table(
        name="camera",
        title=f"Camera -> imaging product, {size_px}x{size_px} 12-bit, the consumer reading every pixel",
        baseline=f"a raw TCP socket feeding the same consumer (FrameProcessor, {IMAGING['lossless_codec']} effort "
                 f"{IMAGING['lossless_params']['effort']}, {IMAGING['workers']} workers) the same frames, in this "
                 f"run: median {base:.1f} full products/s",
        columns=[Column("leg", "leg"), Column("vs_base", "vs raw socket", ".2f", True),
                 Column("fps", "products/s median", ".1f"), Column("fps_min", "min", ".1f"),
                 Column("fps_max", "max", ".1f"), Column("mb_s", "MB/s", ".0f"),
                 Column("thumbnail_only", "thumbnail only", "d"), Column("given_up", "no product", "d")],
        rows=rows,
        notes=[f"goal: shm in place >= 0.9 of the raw socket rate; here {head['vs_base'] or 0:.2f} "
               f"(min {head['fps_min']:.1f}, median {head['fps']:.1f}, max {head['fps_max']:.1f} products/s)",
               f"{rounds} rounds of {round_s:.1f} s per leg, each after {WARMUP_S} s warm-up, legs interleaved; "
               "products/s = full (lossless) products made per second (each frame also had its thumbnail); "
               "median and min-max over the rounds",
               f"both sides are bound by the consumer: the raw receiver reads the next frame when the processor has "
               f"room (TCP holds the sender back); the camera is triggered (CAPTURE_BURST) to keep {WINDOW} frames in "
               "work, one more for each full product that arrives. 'thumbnail only': frames whose full product "
               "was not made; 'no product': frames given up after 2 s without one (none are expected)",
               "every leg shares the machine's cores with its other processes: the raw sender; or the emulator, "
               "driver and broker (the emulator cycles 4 rendered frames, frame_cache); the other legs' "
               "processes idle meanwhile"],
        load=load)
