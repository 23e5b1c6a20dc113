"""SIGKILL the ground, then the lander's downlink, in the middle of one large transfer: each restart resumes
the same CFDP transaction, so the file data sent again (counted in the relay's pcap, as it went on the link)
stays well below the product's size. Restarting from zero would resend at least what had arrived before
each kill (here over 95% of the product). The product still arrives once and bit-exact."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import cv2
import dpkt
import msgpack
import numpy as np
import pytest
import yaml
import zmq
from spacepackets.cfdp import PduType
from spacepackets.cfdp.pdu import DirectiveType

from link.packets import unwrap
from link.resume import decode_segments
from framework.errors import ProtocolError
from fsw.imaging.codecs import encode_pixels
from fsw.imaging.product import Product, encode_product, product_id
from framework.crc import pixels_crc32c
from tests.conftest import Processes, link_chain_config, peek_sqlite, wait_for

pytestmark = pytest.mark.integration

RATE_BPS = 800_000


def resume_config(write_config: Any) -> Path:
    return link_chain_config(write_config, {"ack_timer_s": 0.3, "nak_timer_s": 0.3, "inactivity_s": 10.0},
                             downlink={"rate_bps": RATE_BPS},
                             relay={"rate_bps": RATE_BPS, "latency_ms": 20, "seed": 5})


def big_product() -> tuple[Product, np.ndarray, bytes]:
    pixels = np.random.default_rng(11).integers(0, 1 << 12, size=(900, 900), dtype=np.uint16)
    p = Product(id=product_id("navcam", 1, "full"), kind="full", camera="navcam", counter=1, t_capture=1000.0,
                codec="jpegls", shape=(900, 900), dtype="uint16", bit_depth=12,
                payload=encode_pixels("jpegls", pixels), crc32c=pixels_crc32c(pixels), grades={"score": 0.5})
    return p, pixels, encode_product(p)


def ground_held_bytes(out: Path) -> int:
    """Bytes the ground's journal holds (fsync'd) for its open transfer."""
    rows = peek_sqlite(out / "ground" / "ledger.sqlite",
                       "SELECT segments FROM transfers WHERE open = 1 AND segments IS NOT NULL") or []
    return max((decode_segments(bytes(r[0])).total for r in rows), default=0)


def lander_ids(out: Path) -> set[str]:
    rows = peek_sqlite(out / "store" / "index.sqlite", "SELECT id FROM items")
    return {"?"} if rows is None else {r[0] for r in rows}



def file_data_bytes_by_product(pcap: Path) -> dict[str, int]:
    """File data bytes on the link per product, over every transaction that carried it."""
    by_seq: dict[int, int] = {}
    names: dict[int, str] = {}
    with pcap.open("rb") as fh:
        for _ts, raw in dpkt.pcap.Reader(fh):
            try:
                pdu = unwrap(bytes(dpkt.ip.IP(raw).data.data)).pdu
            except ProtocolError:
                continue
            seq = pdu.transaction_seq_num.value
            if pdu.pdu_type == PduType.FILE_DATA:
                by_seq[seq] = by_seq.get(seq, 0) + len(pdu.file_data)
            elif pdu.directive_type == DirectiveType.METADATA_PDU:
                names[seq] = pdu.dest_file_name.split("-", 1)[1].rsplit(".", 1)[0]
    out: dict[str, int] = {}
    for seq, n in by_seq.items():
        out[names.get(seq, "?")] = out.get(names.get(seq, "?"), 0) + n
    return out


def log_events(out: Path, name: str, event: str) -> list[dict[str, Any]]:
    path = out / "logs" / f"{name}.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if f'"{event}"' in x]


def test_a_kill_of_each_end_mid_transfer_resumes_the_transaction_and_resends_little(
        tmp_path: Path, write_config: Any, processes: Processes) -> None:
    cfg = resume_config(write_config)
    endpoints = yaml.safe_load(cfg.read_text())["endpoints"]
    for name in ("broker", "relay", "ground", "downlink"):
        processes.start(cfg, name)
    product, pixels, data = big_product()
    size = len(product.payload)
    out = processes.out
    zctx = zmq.Context()
    push = zctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.connect(endpoints["products"])
    try:
        push.send_multipart([msgpack.packb({"id": product.id, "kind": product.kind, "score": 0.5}), data])
        assert wait_for(lambda: ground_held_bytes(out) >= 0.3 * len(data), 60, poll_s=0.05), "the transfer did not start"
        processes.stop("ground", sig=signal.SIGKILL)
        processes.start(cfg, "ground")
        assert wait_for(lambda: ground_held_bytes(out) >= 0.65 * len(data), 60, poll_s=0.05), "the transfer did not go on"
        processes.stop("downlink", sig=signal.SIGKILL)
        processes.start(cfg, "downlink")
        assert wait_for(lambda: not lander_ids(out), 90, poll_s=0.05), "the product was not confirmed"
    finally:
        push.close()
        zctx.term()
    for name in ("downlink", "ground", "relay"):
        assert processes.stop(name) == 0

    got = cv2.imread(str(out / "ground" / f"{product.id}.png"), cv2.IMREAD_UNCHANGED)
    assert got is not None and np.array_equal(got, pixels)
    assert [e["resumed"] for e in log_events(out, "ground", "ground_started")][1] == 1
    assert [e["id"] for e in log_events(out, "downlink", "transaction_resumed")] == [product.id]
    sent = file_data_bytes_by_product(out / "link" / "relay.pcap")
    assert set(sent) == {product.id}  # one transaction, resumed twice
    resent = sent[product.id] - len(data)
    assert resent < 0.4 * len(data), f"{resent} of {len(data)} bytes sent again (payload {size})"
