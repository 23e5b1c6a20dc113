"""PDS4 labels for full frames: the raw pixel file and a ``Product_Observational`` label describing it.

Each full frame written at the ground (:mod:`ground.images` writes its PNG) also gets ``<id>.img``, the
pixels as they are in memory order, row after row, big-endian (``UnsignedMSB2`` for 16-bit frames,
``UnsignedByte`` for 8-bit ones), and ``<id>.xml``, a PDS4 label (information model 1.26.0.0, the
schema shipped in ``ground/pds4_schema/``) whose ``Array_2D_Image`` says how to read that file: lines
then samples, last index fastest. The label's ``File`` states the size and MD5 of the pixel file; the
frame's CRC-32C (the lander's, checked at the ground) is in its comment. PDS4 readers
(``pds4_tools``) read the same pixels back from the pair.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from fsw.imaging.product import Product
from link.filestore import fsync_dir

__all__ = ["write_pds4", "label_xml", "NAMESPACE", "INFORMATION_MODEL_VERSION", "SCHEMA_FILE", "schema_path"]

NAMESPACE = "http://pds.nasa.gov/pds4/pds/v1"
INFORMATION_MODEL_VERSION = "1.26.0.0"
SCHEMA_FILE = "PDS4_PDS_1Q00.xsd"
_SCHEMA_URL = f"https://pds.nasa.gov/pds4/pds/v1/{SCHEMA_FILE}"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_DATA_TYPES = {np.dtype(">u2"): "UnsignedMSB2", np.dtype("u1"): "UnsignedByte"}
LID_PREFIX = "urn:nasa:pds:lunar_pdh:ground_frames"


def schema_path() -> Path:
    """The PDS4 core schema shipped with the package."""
    return Path(__file__).with_name("pds4_schema") / SCHEMA_FILE


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lid_part(text: str) -> str:
    """A LID component: lower case letters, digits, ``-``, ``_`` and ``.`` only."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text.lower())


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{NAMESPACE}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def label_xml(p: Product, lines: int, samples: int, data_type: str, img_name: str, img_bytes: int, md5: str,
              created: float) -> bytes:
    """The label of one frame's pixel file (``lines`` x ``samples`` elements of ``data_type``)."""
    ET.register_namespace("", NAMESPACE)
    ET.register_namespace("xsi", _XSI)
    root = ET.Element(f"{{{NAMESPACE}}}Product_Observational",
                      {f"{{{_XSI}}}schemaLocation": f"{NAMESPACE} {_SCHEMA_URL}"})
    ident = _sub(root, "Identification_Area")
    _sub(ident, "logical_identifier", f"{LID_PREFIX}:{_lid_part(p.id)}")
    _sub(ident, "version_id", "1.0")
    _sub(ident, "title", f"{p.camera} frame {p.counter}, full resolution, {p.bit_depth}-bit")
    _sub(ident, "information_model_version", INFORMATION_MODEL_VERSION)
    _sub(ident, "product_class", "Product_Observational")
    obs = _sub(root, "Observation_Area")
    times = _sub(obs, "Time_Coordinates")
    _sub(times, "start_date_time", _iso(p.t_capture))
    _sub(times, "stop_date_time", _iso(p.t_capture))
    inv = _sub(obs, "Investigation_Area")
    _sub(inv, "name", "lunar-pdh")
    _sub(inv, "type", "Mission")
    ref = _sub(inv, "Internal_Reference")
    _sub(ref, "lid_reference", "urn:nasa:pds:context:investigation:mission.lunar_pdh")
    _sub(ref, "reference_type", "data_to_investigation")
    system = _sub(_sub(obs, "Observing_System"), "Observing_System_Component")
    _sub(system, "name", p.camera)
    _sub(system, "type", "Instrument")
    target = _sub(obs, "Target_Identification")
    _sub(target, "name", "Moon")
    _sub(target, "type", "Satellite")
    area = _sub(root, "File_Area_Observational")
    f = _sub(area, "File")
    _sub(f, "file_name", img_name)
    _sub(f, "creation_date_time", _iso(created))
    _sub(f, "file_size", str(img_bytes), unit="byte")
    _sub(f, "md5_checksum", md5)
    _sub(f, "comment", f"product {p.id}; codec {p.codec}; pixels CRC-32C {p.crc32c:#010x} (checked at the ground); "
                       f"bit depth {p.bit_depth}")
    arr = _sub(area, "Array_2D_Image")
    _sub(arr, "local_identifier", "image")
    _sub(arr, "offset", "0", unit="byte")
    _sub(arr, "axes", "2")
    _sub(arr, "axis_index_order", "Last Index Fastest")
    _sub(_sub(arr, "Element_Array"), "data_type", data_type)
    for i, (name, n) in enumerate((("Line", lines), ("Sample", samples)), start=1):
        ax = _sub(arr, "Axis_Array")
        _sub(ax, "axis_name", name)
        _sub(ax, "elements", str(n))
        _sub(ax, "sequence_number", str(i))
    ET.indent(root, space=" ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False) \
        + b"\n"


def _write_durable(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_pds4(p: Product, pixels: np.ndarray, out_dir: Path, created: float) -> Path:
    """Write ``<id>.img`` (big-endian pixels) and ``<id>.xml`` (its label) in ``out_dir``; the label's path.
    ``pixels``: the frame's 2-D uint8 or uint16 pixels as checked at the ground."""
    if pixels.ndim != 2:
        raise ValueError(f"{p.id}: a PDS4 Array_2D_Image needs 2-D pixels, got shape {pixels.shape}")
    data = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder(">") if pixels.itemsize > 1 else pixels.dtype)
    data_type = _DATA_TYPES.get(data.dtype)
    if data_type is None:
        raise ValueError(f"{p.id}: no PDS4 data type for {pixels.dtype} pixels")
    raw = data.tobytes()
    img, label = out_dir / f"{p.id}.img", out_dir / f"{p.id}.xml"
    _write_durable(img, raw)
    _write_durable(label, label_xml(p, pixels.shape[0], pixels.shape[1], data_type, img.name, len(raw),
                                    hashlib.md5(raw).hexdigest(), created))
    fsync_dir(out_dir)
    return label
