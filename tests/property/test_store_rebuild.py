"""Whatever the store held, a lost or damaged index is rebuilt from the payload files to the same items.

For any mix of products (any kind, grade, priority) and telemetry segments, some re-encoded (a later
generation), the rebuilt index has every item with its kind, class (as if nobody had requested it),
grade, size and generation, the send order agrees, and transaction numbers only go up.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.crc import pixels_crc32c
from fsw.downlink.store import ProductStore
from fsw.imaging.codecs import codec_tag, encode_pixels
from fsw.imaging.product import Product, encode_product, product_id
from link.tlm_segments import SEGMENT_ID_PREFIX, encode_segment
from link.tmtc import encode_event

ITEMS = st.lists(st.tuples(st.sampled_from(["thumbnail", "full", "roi", "preview", "lossy", "tlm", "evt",
                                            "tlm_playback"]),
                           st.floats(0, 1), st.booleans(), st.booleans()),
                 min_size=1, max_size=6)


def payload(i: int, kind: str, score: float, confirmation: bool) -> tuple[str, bytes]:
    if kind in ("tlm", "evt", "tlm_playback"):
        return f"{SEGMENT_ID_PREFIX[kind]}-{i}", encode_segment([encode_event(0x20, i, float(i), 1, "info", {"n": i})])
    pixels = np.full((4, 6), i, dtype=np.uint8)
    p = Product(id=product_id("navcam", i, kind), kind=kind, camera="navcam", counter=i, t_capture=float(i),
                codec="png", shape=pixels.shape, dtype="uint8", bit_depth=8, payload=encode_pixels("png", pixels),
                crc32c=pixels_crc32c(pixels), meta={"priority": "confirmation"} if confirmation else {},
                grades={"score": score})
    return p.id, encode_product(p)


@settings(max_examples=25, deadline=None)
@given(items=ITEMS, damage=st.sampled_from(["garbage", "missing"]))
def test_a_rebuilt_index_holds_the_same_items_in_the_same_order(items: list, damage: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        store = ProductStore(root, clock=iter(range(1, 10_000)).__next__)
        for i, (kind, score, confirmation, reencode) in enumerate(items):
            pid, data = payload(i, kind, score, confirmation)
            store.add(pid, kind, data, score=score if kind not in ("tlm", "evt", "tlm_playback") else 0.0,
                      codec=codec_tag("png") if kind not in ("tlm", "evt", "tlm_playback") else "",
                      priority="confirmation" if confirmation and kind not in ("tlm", "evt", "tlm_playback") else "")
            if reencode:
                assert store.replace_payload(pid, data, store.get(pid).codec)
        before = {p.id: (p.kind, p.cls, round(p.score, 9), p.size, p.gen) for p in store.items()}
        classes_in_order = [store.get(pid).cls for pid in store.ids()]
        seq = store.reserve_transaction_seqs(3) + 3
        store.close()
        index = root / "index.sqlite"
        if damage == "garbage":
            index.write_bytes(b"\xff" * 8192)
        else:
            index.unlink()
        store = ProductStore(root)
        assert store.ready and store.rebuilt is not None and store.rebuilt.rows == len(items)
        after = {p.id: (p.kind, p.cls, round(p.score, 9), p.size, p.gen) for p in store.items()}
        assert after == before
        assert [store.get(pid).cls for pid in store.ids()] == classes_in_order
        assert store.next_transaction_seq() >= seq
        store.close()
