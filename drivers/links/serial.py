"""Serial device links: pyserial on the driver's side, a paced pseudo-terminal on the emulator's.

The emulator plays the device end of an RS-422 line: :class:`PtyLine` opens a
pseudo-terminal pair (``os.openpty``), puts it in raw mode, points a symlink
at the terminal the driver should open, and writes bytes no faster than the
baud rate allows (8N1: ten bit times a byte), so a frame takes the time it
takes on the line. A hang-up closes the pair and opens a new one behind the
same symlink. :class:`SerialLink` is the driver's end, through pyserial.
Only byte moving lives here; framing belongs to each device's protocol.
"""

from __future__ import annotations

import os
import tty
from collections import deque
from pathlib import Path
from typing import Callable, Sequence

import serial

from drivers.links.tcp import Buffer, as_views

__all__ = ["SerialLink", "PtyLine", "Pacer", "BITS_PER_BYTE"]

BITS_PER_BYTE = 10  # start bit, 8 data bits, stop bit


class Pacer:
    """A token bucket at ``baud`` / 10 bytes per second with a small burst allowance."""

    def __init__(self, baud: float, now: float, burst_s: float = 0.002) -> None:
        self.bytes_per_s = baud / BITS_PER_BYTE
        self.burst = max(16.0, self.bytes_per_s * burst_s)
        self.tokens = 0.0
        self.t = now

    def allowance(self, now: float) -> int:
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.bytes_per_s)
        self.t = now
        return int(self.tokens)

    def spend(self, n: int) -> None:
        self.tokens -= n

    def wait_s(self, n: int = 1) -> float:
        """Seconds until ``n`` bytes (at most a burst) may go."""
        return max(0.0, (min(n, self.burst) - self.tokens) / self.bytes_per_s)


class PtyLine:
    """The device end of an emulated serial line: a raw pty pair, paced writes, hang-up and reopen."""

    def __init__(self, link_path: Path, baud: float, now: float) -> None:
        self.link_path = link_path
        self.baud = baud
        self.pacer = Pacer(baud, now)
        self._queue: deque[tuple[memoryview, Callable[[], None] | None]] = deque()
        self.bytes_sent = 0
        self.master = -1
        self.slave = -1
        self.open()

    def open(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line editing, no CR/LF translation: binary clean
        os.set_blocking(self.master, False)
        self.link_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link_path.with_name(self.link_path.name + ".new")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(os.ttyname(self.slave), tmp)
        os.replace(tmp, self.link_path)  # atomic: the driver never sees a missing link

    def fileno(self) -> int:
        return self.master

    def hang_up(self) -> int:
        """Close the pair (the driver's reads fail) and open a new one; return the buffers dropped."""
        dropped = self.clear()
        os.close(self.master)
        os.close(self.slave)
        self.open()
        return dropped

    def read(self) -> bytes:
        try:
            return os.read(self.master, 65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:  # EIO: no one has the terminal open
            return b""

    def push(self, data: Buffer | Sequence[Buffer], on_sent: Callable[[], None] | None = None) -> None:
        """Queue one message (a buffer, or its pieces: joined here, the line is slow); on_sent after its last byte."""
        views = as_views(data)
        self._queue.append((views[0] if len(views) == 1 else memoryview(b"".join(views)), on_sent))

    def pending(self) -> int:
        return len(self._queue)

    def pump(self, now: float) -> None:
        """Write what the line rate allows now."""
        allowed = self.pacer.allowance(now)
        while self._queue and allowed > 0:
            view, on_sent = self._queue[0]
            try:
                n = os.write(self.master, view[:allowed])
            except (BlockingIOError, InterruptedError):
                return
            self.pacer.spend(n)
            allowed -= n
            self.bytes_sent += n
            if n < len(view):
                self._queue[0] = (view[n:], on_sent)
                return
            self._queue.popleft()
            if on_sent is not None:
                on_sent()

    def wait_s(self) -> float:
        return self.pacer.wait_s(len(self._queue[0][0])) if self._queue else 1.0

    def clear(self) -> int:
        n = len(self._queue)
        self._queue.clear()
        return n

    def close(self) -> None:
        self.clear()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.link_path.unlink()
        except OSError:
            pass


class SerialLink:
    """The driver's end of a serial device link (pyserial), same interface as TcpLink."""

    kind = "serial"

    def __init__(self, path: str, baud: int) -> None:
        self.path, self.baud = path, int(baud)
        self.port: serial.Serial | None = None

    def open(self) -> None:
        """Open the device in raw 8N1 at the baud rate; raises OSError if it is not there."""
        try:
            self.port = serial.Serial(self.path, baudrate=self.baud, bytesize=8, parity="N", stopbits=1,
                                      timeout=0, write_timeout=0.5, exclusive=True)
        except serial.SerialException as exc:
            raise OSError(str(exc)) from None

    def fileno(self) -> int:
        assert self.port is not None
        return self.port.fileno()

    def read_into(self, buf: bytearray | memoryview) -> int:
        """Bytes read into the start of ``buf`` (no copy); 0 means the line hung up; -1 nothing now."""
        assert self.port is not None
        try:
            return os.readv(self.port.fileno(), [buf])
        except (BlockingIOError, InterruptedError):
            return -1

    def send(self, data: bytes) -> None:
        assert self.port is not None
        try:
            self.port.write(data)
        except serial.SerialException as exc:
            raise OSError(str(exc)) from None

    def close(self) -> None:
        if self.port is not None:
            try:
                self.port.close()
            except (OSError, serial.SerialException):
                pass
            self.port = None

    def describe(self) -> dict[str, object]:
        return {"interface": "serial", "device": self.path, "baud": self.baud}
