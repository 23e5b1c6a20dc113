"""The products on the ground's disk, as the console shows them: cards from sidecars, pixels from PNGs.

The ground station writes ``<id>.png`` and ``<id>.json`` (:mod:`ground.images`) into its output
directory; the console only reads them. A card is what the gallery needs (id, kind, camera,
counter, capture time, grades, shape, bit depth, CRC-32C). :meth:`ProductShelf.pixels` gives a
product's pixels exactly as written, little-endian, row-major: the page stretches 12- and 16-bit
data itself, and the bytes it received hash to the frame's CRC-32C
(:func:`framework.crc.pixels_crc32c`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["ProductShelf", "Pixels", "safe_id"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CARD_KEYS = ("id", "kind", "camera", "counter", "t_capture", "codec", "shape", "dtype", "bit_depth", "crc32c",
              "grades", "product_bytes")


def safe_id(pid: str) -> bool:
    """Whether ``pid`` can name a product file (the ground's own rule): no path, no dot first."""
    return bool(_SAFE_ID.match(pid))


@dataclass(frozen=True)
class Pixels:
    """A product's pixels as bytes (little-endian, row-major) with what a viewer needs to draw them."""

    data: bytes
    width: int
    height: int
    bytes_per_pixel: int
    bit_depth: int


class ProductShelf:
    """Reads the products under ``directory`` (the ground station's output directory)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def card(self, pid: str) -> dict[str, Any] | None:
        """The gallery card of product ``pid``, or None if its sidecar is not there (yet) or unreadable."""
        if not safe_id(pid):
            return None
        try:
            side = json.loads((self.directory / f"{pid}.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(side, dict) or side.get("id") != pid:
            return None
        card = {k: side.get(k) for k in _CARD_KEYS}
        card["meta"] = {k: v for k, v in (side.get("meta") or {}).items() if k in ("region", "max_error_dn")}
        card["image"] = f"/api/products/{pid}/image"
        return card

    def cards(self) -> list[dict[str, Any]]:
        """Every product written so far (for a console started after the ground)."""
        if not self.directory.is_dir():
            return []
        found = (self.card(p.stem) for p in sorted(self.directory.glob("*.json")))
        return [c for c in found if c is not None]

    def png(self, pid: str) -> Path | None:
        path = self.directory / f"{pid}.png"
        return path if safe_id(pid) and path.is_file() else None

    def pixels(self, pid: str) -> Pixels | None:
        """The product's pixels as the ground wrote them (8- or 16-bit), or None if it has no image."""
        path = self.png(pid)
        if path is None:
            return None
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None or img.ndim != 2 or img.dtype not in (np.uint8, np.uint16):
            return None
        card = self.card(pid) or {}
        depth = card.get("bit_depth") if isinstance(card.get("bit_depth"), int) else img.dtype.itemsize * 8
        data = np.ascontiguousarray(img).astype(img.dtype.newbyteorder("<"), copy=False).tobytes()
        return Pixels(data, int(img.shape[1]), int(img.shape[0]), img.dtype.itemsize, int(depth))
