"""A thumbnail travels JPEG-coded but lands as a PNG: its sidecar says the file is PNG (issue 14 item 4:
it said `jpeg` for a PNG), and still says how it crossed the link."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from fsw.imaging.frame import Frame
from fsw.imaging.grades import grade_frame
from fsw.imaging.pipeline import make_thumbnail
from fsw.imaging.product import encode_product
from ground.images import write_product


def test_a_thumbnails_sidecar_names_the_png_it_sits_beside(tmp_path: Path) -> None:
    px = (np.arange(256 * 256, dtype=np.uint16).reshape(256, 256) * 7) % 4096
    frame = Frame("cam", 3, px, 12, "mono", 1000, 1.0, 20.0, 1.0e9, 0)
    thumb, _ = make_thumbnail(frame, 64, grade_frame(px, 12))
    assert thumb.codec == "jpeg"
    written = write_product(encode_product(thumb), tmp_path)
    side = json.loads(written.sidecar.read_text())
    assert side["file"] == written.png.name and side["file_format"] == "png"
    assert side["downlink_codec"] == "jpeg"
    assert cv2.imread(str(tmp_path / side["file"]), cv2.IMREAD_UNCHANGED) is not None
