"""What a stored payload says about itself: its CRC-32C, its own metadata, how it could be made again. No sockets.

The index (:mod:`fsw.downlink.store`) keeps each payload's CRC-32C from the moment it was stored; the
start-up scrub and the check before sending compare the file with it (:func:`file_crc32c`, read in
chunks). Each payload carries what the index holds about it (a product, a msgpack map,
:mod:`fsw.imaging.product`: id, kind, camera, counter, grades, meta, codec; a telemetry segment,
TM packets, :mod:`link.tlm_segments`: its kind is in its id), so a lost or corrupt index can be rebuilt from the files
(:func:`describe_payload`). :func:`remake_args` says how the imaging core could make a product again
from the frame it holds (MAKE_ROI over the product's region), for a payload found corrupt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c

from framework.errors import ProductError, ProtocolError
from fsw.imaging.codecs import codec_tag
from fsw.imaging.product import PRODUCT_KINDS, Product, read_product_header
from link.tlm_segments import decode_segment, segment_kind

__all__ = ["CHUNK_BYTES", "FILE_RE", "payload_name", "PayloadInfo", "file_crc32c", "data_crc32c", "describe_payload",
           "remake_args"]

CHUNK_BYTES = 1 << 20
"""Bytes read at a time when a payload's CRC is computed."""
FILE_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,127})~(\d+)\.prod$")
"""A payload file's name: ``<id>~<generation>.prod`` (the generation counts re-encodings)."""


def payload_name(item_id: str, gen: int) -> str:
    return f"{item_id}~{gen}.prod"


@dataclass(frozen=True)
class PayloadInfo:
    """One payload file as its own bytes describe it (what a rebuilt index row holds)."""

    id: str
    gen: int
    kind: str
    score: float
    priority: str
    codec: str
    size: int
    crc32c: int
    remake: dict[str, Any] | None


def data_crc32c(data: bytes | memoryview) -> int:
    """CRC-32C of bytes in memory (a payload about to be stored)."""
    return crc32c.crc32c(memoryview(data).cast("B"))


def file_crc32c(path: Path, chunk_bytes: int = CHUNK_BYTES) -> int:
    """CRC-32C of a whole file, ``chunk_bytes`` at a time; OSError if it cannot be read."""
    crc = 0
    with open(path, "rb", buffering=0) as f:
        while block := f.read(chunk_bytes):
            crc = crc32c.crc32c(block, crc)
    return crc


def remake_args(product: Product) -> dict[str, Any] | None:
    """MAKE_ROI arguments that make ``product``'s pixels again from the frame the imaging core holds
    (a full frame is the region of the whole frame; an ROI its own region), or None for kinds no
    command re-makes (a thumbnail, a lossy or binned product)."""
    if product.kind == "full" and len(product.shape) >= 2:
        region = [0, 0, int(product.shape[1]), int(product.shape[0])]
    elif product.kind == "roi" and _is_region(product.meta.get("region")):
        region = [int(v) for v in product.meta["region"]]
    else:
        return None
    return {"camera": product.camera, "counter": product.counter, "region": region}


def _is_region(r: Any) -> bool:
    return isinstance(r, list) and len(r) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in r)


def describe_payload(path: Path, item_id: str, gen: int) -> PayloadInfo:
    """Read a payload file's own metadata. ProductError if it is neither a product of that id nor a
    telemetry segment; OSError if it cannot be read."""
    data = path.read_bytes()
    crc = data_crc32c(data)
    try:
        product = read_product_header(data)
    except ProductError as exc:
        kind = segment_kind(item_id)
        try:
            if kind is None:
                raise ProtocolError(f"{item_id!r} is no segment's id")
            decode_segment(data)
        except ProtocolError:
            raise ProductError(f"{path.name} is neither a product nor a telemetry segment: {exc}") from None
        return PayloadInfo(item_id, gen, kind, 0.0, "", "", len(data), crc, None)
    if product.id != item_id or product.kind not in PRODUCT_KINDS:
        raise ProductError(f"{path.name} holds product {product.id!r}, not {item_id!r}")
    score = product.grades.get("score")
    score = min(1.0, max(0.0, float(score))) if isinstance(score, (int, float)) and not isinstance(score, bool) \
        else 0.0
    priority = product.meta.get("priority") if isinstance(product.meta.get("priority"), str) else ""
    return PayloadInfo(item_id, gen, product.kind, score, priority, codec_tag(product.codec, product.codec_params),
                       len(data), crc, remake_args(product))
