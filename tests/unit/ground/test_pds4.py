"""PDS4 labels of full frames: valid against the shipped PDS4 core schema (lxml, offline), and read back
by pds4_tools to the very pixels written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pds4_tools
import pytest
from lxml import etree

from fsw.imaging.product import Product
from ground.pds4 import INFORMATION_MODEL_VERSION, NAMESPACE, schema_path, write_pds4


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(schema_path())))


def frame(dtype: type, shape: tuple[int, int], seed: int) -> tuple[Product, np.ndarray]:
    top = 4096 if dtype is np.uint16 else 256
    pixels = np.random.default_rng(seed).integers(0, top, size=shape, dtype=dtype)
    p = Product(id=f"navcam-{seed:08d}-full", kind="full", camera="navcam", counter=seed, t_capture=1.7e9 + seed,
                codec="jpegls", shape=shape, dtype=np.dtype(dtype).name, bit_depth=12 if top == 4096 else 8,
                payload=b"", crc32c=0x1234ABCD)
    return p, pixels


@pytest.mark.parametrize("dtype,data_type", [(np.uint16, "UnsignedMSB2"), (np.uint8, "UnsignedByte")])
def test_a_full_frame_label_is_valid_pds4_and_reads_back_to_the_same_pixels(
        tmp_path: Path, schema: etree.XMLSchema, dtype: type, data_type: str) -> None:
    p, pixels = frame(dtype, (37, 53), 7)  # not square: lines and samples cannot be swapped unnoticed
    label = write_pds4(p, pixels, tmp_path, 1.7e9)
    doc = etree.parse(str(label))
    assert schema.validate(doc), schema.error_log
    ns = {"pds": NAMESPACE}
    assert doc.findtext(".//pds:data_type", namespaces=ns) == data_type
    assert doc.findtext(".//pds:information_model_version", namespaces=ns) == INFORMATION_MODEL_VERSION
    img = tmp_path / f"{p.id}.img"
    assert doc.findtext(".//pds:md5_checksum", namespaces=ns) == hashlib.md5(img.read_bytes()).hexdigest()
    got = pds4_tools.read(str(label), quiet=True)[0].data
    assert got.shape == pixels.shape and np.array_equal(np.asarray(got), pixels)


def test_the_schema_refuses_a_label_that_breaks_it(tmp_path: Path, schema: etree.XMLSchema) -> None:
    p, pixels = frame(np.uint16, (8, 8), 3)
    doc = etree.parse(str(write_pds4(p, pixels, tmp_path, 1.7e9)))
    assert schema.validate(doc)
    axes = doc.find(f".//{{{NAMESPACE}}}axes")
    axes.getparent().remove(axes)  # an Array_2D_Image must say how many axes it has
    assert not schema.validate(doc)


def test_a_frame_that_is_not_2d_gets_no_label(tmp_path: Path) -> None:
    p, pixels = frame(np.uint16, (4, 4), 1)
    with pytest.raises(ValueError, match="2-D"):
        write_pds4(p, np.zeros((2, 2, 3), np.uint16), tmp_path, 0.0)
