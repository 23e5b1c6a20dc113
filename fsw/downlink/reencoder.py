"""Background re-encoding of waiting lossless products in a separate, low-priority process.

The send loop never waits for it: :meth:`Reencoder.offer` hands one stored
product's path to the worker process (spawned, ``os.nice``'d) and
:meth:`Reencoder.poll` collects the result when it is ready. The worker runs
:func:`fsw.imaging.reencode.reencode` (bit-exact or nothing); the service then
swaps the payload with :meth:`~fsw.downlink.store.ProductStore.replace_payload`,
which refuses if the product went in flight meanwhile.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsw.imaging.codecs import codec_tag

__all__ = ["Reencoder", "Result", "REENCODE_KINDS"]

REENCODE_KINDS = ("full", "roi", "preview")


@dataclass(frozen=True)
class Result:
    id: str
    gen: int
    data: bytes | None  # None: not smaller, or not a lossless product
    old_bytes: int
    error: str = ""


def _worker(conn: Any, codec: str, params: dict[str, Any], nice: int) -> None:
    try:
        os.nice(nice)
    except OSError:
        pass
    from framework.errors import PdhError
    from fsw.imaging.reencode import reencode

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        pid, gen, path = job
        try:
            raw = Path(path).read_bytes()
            got = reencode(raw, codec, params)
            conn.send(Result(pid, gen, got.data if got else None, len(raw)))
        except (PdhError, OSError, ValueError) as exc:
            conn.send(Result(pid, gen, None, 0, f"{type(exc).__name__}: {exc}"))


class Reencoder:
    def __init__(self, codec: str, params: dict[str, Any], nice: int) -> None:
        self.codec = codec
        self.params = dict(params)
        self.tag = codec_tag(codec, params)  # what the store records once a product is re-encoded
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker, args=(child, codec, self.params, nice), daemon=True,
                                 name="downlink-reencode")
        self._proc.start()
        child.close()
        self.busy: tuple[str, int] | None = None
        self.c = {"reencoded": 0, "reencode_bytes_saved": 0, "reencode_failed": 0, "reencode_not_smaller": 0}

    def offer(self, product_id: str, gen: int, path: Path) -> bool:
        if self.busy is not None or not self._proc.is_alive():
            return False
        self._conn.send((product_id, gen, str(path)))
        self.busy = (product_id, gen)
        return True

    def poll(self) -> Result | None:
        if self.busy is None or not self._conn.poll():
            return None
        try:
            result: Result = self._conn.recv()
        except (EOFError, OSError):
            self.busy = None
            return None
        self.busy = None
        return result

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            if self._proc.is_alive():
                self._proc.terminate()
            self._proc.join(2)
