"""The products' images, as the console serves them: found through the archive, read from the PNG it names.

The archive (:mod:`ground.console.archive_view`) says where the ground wrote each product's PNG;
the console only reads it. :meth:`ProductShelf.pixels` gives the pixels exactly as written,
little-endian, row-major: the full-frame viewer stretches 12- and 16-bit data itself, and the bytes
it received hash to the frame's CRC-32C (:func:`framework.crc.pixels_crc32c`).
:meth:`ProductShelf.preview` is what the gallery shows: a browser draws a 16-bit PNG by its high
byte, so a 12-bit frame (values up to 4095 of 65535) would be nearly black; the preview is an 8-bit
PNG, stretched between the 0.5 and 99.5 percentiles for deeper data and shrunk to gallery size.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ground.console.archive_view import ArchiveView

__all__ = ["ProductShelf", "Pixels", "safe_id", "stretch_8bit"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PREVIEW_WIDTH = 256
_PREVIEWS_KEPT = 256


def safe_id(pid: str) -> bool:
    """Whether ``pid`` can name a product (the ground's own rule): no path, no dot first."""
    return bool(_SAFE_ID.match(pid))


@dataclass(frozen=True)
class Pixels:
    """A product's pixels as bytes (little-endian, row-major) with what a viewer needs to draw them."""

    data: bytes
    width: int
    height: int
    bytes_per_pixel: int
    bit_depth: int


def stretch_8bit(img: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """8-bit pixels for display: 8-bit data as it is; deeper data mapped linearly from its ``low_pct``
    to its ``high_pct`` percentile onto 0..255 (a flat image maps to mid-grey)."""
    if img.dtype == np.uint8:
        return img
    lo, hi = np.percentile(img, (low_pct, high_pct))
    if hi <= lo:
        return np.full(img.shape, 128, dtype=np.uint8)
    scaled = (img.astype(np.float32) - float(lo)) * (255.0 / float(hi - lo))
    return np.clip(scaled, 0, 255).astype(np.uint8)


class ProductShelf:
    """The images of the products ``archive`` knows."""

    def __init__(self, archive: ArchiveView) -> None:
        self.archive = archive
        self._previews: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()  # the HTTP server's worker threads share the cache

    def png(self, pid: str) -> Path | None:
        """The product's PNG, or None (an unsafe id, a product the archive lacks, a file gone)."""
        return self.archive.image_path(pid) if safe_id(pid) else None

    def _read(self, pid: str) -> np.ndarray | None:
        path = self.png(pid)
        if path is None:
            return None
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None or img.ndim != 2 or img.dtype not in (np.uint8, np.uint16):
            return None
        return img

    def pixels(self, pid: str, bit_depth: int | None = None) -> Pixels | None:
        """The product's pixels as the ground wrote them (8- or 16-bit), or None if it has no image."""
        img = self._read(pid)
        if img is None:
            return None
        depth = bit_depth if isinstance(bit_depth, int) else img.dtype.itemsize * 8
        data = np.ascontiguousarray(img).astype(img.dtype.newbyteorder("<"), copy=False).tobytes()
        return Pixels(data, int(img.shape[1]), int(img.shape[0]), img.dtype.itemsize, int(depth))

    def preview(self, pid: str) -> bytes | None:
        """An 8-bit PNG of the product for the gallery (stretched if deeper, at most PREVIEW_WIDTH wide)."""
        with self._lock:
            if pid in self._previews:
                self._previews.move_to_end(pid)
                return self._previews[pid]
        img = self._read(pid)
        if img is None:
            return None
        shown = stretch_8bit(img)
        if shown.shape[1] > PREVIEW_WIDTH:
            height = max(1, round(shown.shape[0] * PREVIEW_WIDTH / shown.shape[1]))
            shown = cv2.resize(shown, (PREVIEW_WIDTH, height), interpolation=cv2.INTER_AREA)
        ok, png = cv2.imencode(".png", shown)
        if not ok:
            return None
        data = png.tobytes()
        with self._lock:
            self._previews[pid] = data
            while len(self._previews) > _PREVIEWS_KEPT:
                self._previews.popitem(last=False)
        return data
