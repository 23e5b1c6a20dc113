"""Camera link throughput: emulator -> driver -> bus, against a raw TCP socket sending the same bytes.

The chain leg runs the real processes (broker, ``hil.camera`` emulator with the
navcam profile over TCP, ``drivers.camera`` driver) and a bus subscriber in
this process counting ``frame.navcam`` messages for ``duration_s``. The
emulator runs in benchmark mode (``frame_cache``: it cycles the pixels of a few
rendered frames, so the sensor model's cost is out of the figure) with no
frame-rate cap and minimal exposure and readout. The driver's CPU time per
frame is read from /proc before and after. The baseline, in the same run: a
child process sends the same encoded frame bytes over a raw loopback TCP
socket to a receiver that only counts them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
import zmq

from benchmarks.figures import Column, Table, ratio
from drivers.camera import protocol as p
from fsw.bus.client import Subscriber

__all__ = ["bench_camera"]

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _frame_bytes(size_px: int) -> bytes:
    px = np.random.default_rng(1).integers(0, 4096, (size_px, size_px), dtype=np.uint16)
    return p.encode(p.Frame(camera="navcam", counter=1, width=size_px, height=size_px, bit_depth=12, pattern="mono",
                            exposure_us=100, gain=1.0, temp_c=20.0, t_capture=0.0, pixels=px.tobytes(), seq=1))


def _raw_sender(port: int, data: bytes, duration_s: float) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        sock.sendall(data)
    sock.close()


def _raw_leg(size_px: int, duration_s: float) -> tuple[float, int]:
    """Frames per second a raw socket carries, receiver counting bytes."""
    data = _frame_bytes(size_px)
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    proc = mp.get_context("spawn").Process(target=_raw_sender, args=(port, data, duration_s))
    proc.start()
    conn, _ = srv.accept()
    buf = bytearray(4 << 20)
    total = 0
    t0 = time.monotonic()
    while True:
        n = conn.recv_into(buf)
        if not n:
            break
        total += n
    dt = time.monotonic() - t0
    proc.join()
    conn.close()
    srv.close()
    return total / len(data) / dt, len(data)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _chain_config(size_px: int) -> dict[str, Any]:
    ep = {n: f"tcp://127.0.0.1:{_free_port()}" for n in ("bus_pub", "bus_sub", "link", "cmd", "ctl")}
    profile = {"width": size_px, "height": size_px, "max_frame_rate_hz": 1000.0, "readout_s": 0.0,
               "exposure_us": 100}
    return {"version": 1, "endpoints": ep, "bus": {"sndhwm": 50, "rcvhwm": 50}, "processes": {
        "broker": {"kind": "bus.broker", "endpoints": {"xsub": "bus_pub", "xpub": "bus_sub"}},
        "emu": {"kind": "hil.camera", "endpoints": {"link": "link", "control": "ctl"}, "camera": "navcam",
                "profile_file": "navcam", "profile": profile, "frame_cache": 4},
        "drv": {"kind": "drivers.camera", "endpoints": {"link": "link", "bus_pub": "bus_pub", "command": "cmd"},
                "camera": "navcam", "profile_file": "navcam", "profile": profile, "frame_rate_hz": 100.0,
                "defect_check": False},
    }}


def _chain_leg(size_px: int, duration_s: float) -> tuple[float, float, int]:
    """Frames per second on the bus, driver CPU seconds per frame, frames lost on the bus."""
    raw = _chain_config(size_px)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "camera.yaml"
        cfg.write_text(yaml.safe_dump(raw))
        procs = {}
        zctx = zmq.Context()
        sub = Subscriber(zctx, raw["endpoints"]["bus_sub"], ["frame.navcam"], rcvhwm=50)
        try:
            for name in ("broker", "emu", "drv"):
                procs[name] = subprocess.Popen([sys.executable, "-m", "fsw.app.process", str(cfg), name, "--out",
                                                tmp], cwd=REPO, stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            end = time.monotonic() + 30.0
            while time.monotonic() < end and sub.recv(200) is None:
                pass
            cpu0, n, t0 = _cpu_s(procs["drv"].pid), 0, time.monotonic()
            first = last = None
            while time.monotonic() - t0 < duration_s:
                msg = sub.recv(200)
                if msg is not None:
                    n += 1
                    c = msg.header.fields["counter"]
                    first = c if first is None else first
                    last = c
            dt = time.monotonic() - t0
            cpu = _cpu_s(procs["drv"].pid) - cpu0
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            sub.close()
            zctx.destroy(linger=0)
    lost = 0 if first is None else (last - first + 1) - n
    return n / dt, cpu / max(n, 1), lost


def bench_camera(size_px: int = 2048, duration_s: float = 10.0) -> Table:
    raw_fps, frame_bytes = _raw_leg(size_px, duration_s)
    fps, cpu_per_frame_s, lost = _chain_leg(size_px, duration_s)
    mb = frame_bytes / 1e6
    rows = [
        {"leg": "raw TCP socket, same bytes", "vs_raw": 1.0, "fps": raw_fps, "mb_s": raw_fps * mb,
         "cpu_ms_frame": None, "lost": 0},
        {"leg": "emulator -> driver -> bus", "vs_raw": ratio(fps, raw_fps), "fps": fps, "mb_s": fps * mb,
         "cpu_ms_frame": cpu_per_frame_s * 1e3, "lost": lost},
    ]
    return Table(
        name="camera", title=f"Camera link, {size_px}x{size_px} 12-bit over TCP loopback",
        baseline=f"a raw TCP socket sending the same {frame_bytes} frame bytes, measured in this run",
        columns=[Column("leg", "leg"), Column("vs_raw", "vs raw", ".2f", True), Column("fps", "frames/s", ".1f"),
                 Column("mb_s", "MB/s", ".0f"), Column("cpu_ms_frame", "driver CPU ms/frame", ".2f"),
                 Column("lost", "frames lost", "d")],
        rows=rows,
        notes=["target: emulator -> bus at least 0.8 of the raw socket rate",
               "the emulator cycles 4 rendered frames (frame_cache) so sensor simulation is not measured"])
