"""Payload integrity on board: the start-up scrub, the check before sending, corrupt payloads, ground refusals. No sockets.

Every payload's CRC-32C went into the index when it was stored. :meth:`Integrity.scrub_step` reads
the payloads back a bounded slice per turn after start-up (bounded in bytes read and in files opened,
:mod:`fsw.downlink.scrub`); :meth:`Integrity.fit_to_send` reads one whole payload back just before its
transaction starts. A
payload whose CRC differs is *corrupt*, unless it is a product that still decodes to pixels matching
its own pixel CRC (then the index's CRC was the damaged part and is written again). A corrupt payload
is reported (``product_corrupt``, with both CRCs and who found it), taken off the store (the ground
would refuse it: nothing can deliver those bytes), and made again where that is possible: a full
frame or an ROI by MAKE_ROI over its region from the frame the imaging core still holds (the request
goes through the SEND_REGION path, so imaging's answer comes back as ``region_request_done`` or
``region_request_failed``); any other kind cannot be re-made, and the event says so.

A payload the index has no CRC for (an index rebuilt from the payloads, or written before it kept
CRCs) must prove itself first: a product by decoding to pixels that match its own CRC, a segment by
decoding; then its CRC is recorded.

A product the ground refuses (its Finished PDU says filestore rejection or file checksum failure,
:mod:`ground.station`) is checked again here: corrupt on board, it goes the corrupt way. Otherwise it
is kept (``product_refused``): if it decodes on board, the fault was the ground's or the link's and it
goes again after a back-off that grows with each refusal; if it does not (made wrong, or rotted before
its CRC was recorded), it stays on board as ``refused``, is not sent again unless an operator requests
it (SEND_PRODUCT), and a full frame is asked of imaging again.
"""

from __future__ import annotations

from typing import Any, Callable

from framework.errors import ProductError, ProtocolError
from framework.reporters import EventReporter
from fsw.downlink.payload import file_crc32c
from fsw.downlink.scrub import Scrub
from fsw.downlink.store import ProductStore, StoredProduct
from fsw.imaging.product import PRODUCT_KINDS, decode_product
from link.tlm_segments import decode_segment

__all__ = ["Integrity", "REFUSAL_CONDITIONS", "SCRUB_BYTES_PER_STEP", "SCRUB_FILES_PER_STEP", "refusal_backoff_s"]

REFUSAL_CONDITIONS = ("FILESTORE_REJECTION", "FILE_CHECKSUM_FAILURE")
"""CFDP condition codes of a Finished PDU by which the ground refuses a file it received whole."""
SCRUB_BYTES_PER_STEP = 8 << 20
"""Payload bytes the scrub reads per turn of the loop (a few milliseconds of reading and CRC)."""
SCRUB_FILES_PER_STEP = 256
"""Payloads the scrub opens per turn of the loop (a few milliseconds of open, read, close): over many small
payloads the byte bound alone would open thousands in one turn (10^5 payloads of ~700 bytes: ~11,000)."""
REFUSAL_BACKOFF_S = (2.0, 10.0, 60.0, 300.0)
"""Wait before a refused product goes again, by how many times the ground has refused it."""


def refusal_backoff_s(refusals: int) -> float:
    return REFUSAL_BACKOFF_S[min(max(refusals, 1), len(REFUSAL_BACKOFF_S)) - 1]


class Integrity:
    """``abort(id, reason)`` ends an item's transaction if one is in flight; ``remake(args)`` asks the
    imaging core for MAKE_ROI and returns what became of the request, in words."""

    def __init__(self, store: ProductStore, events: EventReporter, log: Any,
                 abort: Callable[[str, str], Any], remake: Callable[[dict[str, Any]], str]) -> None:
        self.store = store
        self.events = events
        self.log = log
        self.abort = abort
        self.remake = remake
        self.scrub: Scrub | None = None
        self.refusals: dict[str, int] = {}
        self.c = {"products_corrupt": 0, "products_refused": 0}
        self._scrub_corrupt = 0
        self._scrub_baselined = 0

    # -- the start-up scrub --------------------------------------------------------------------
    def start_scrub(self) -> None:
        """Check every stored payload, in sending order (called when the store opens or reopens)."""
        if self.scrub is not None:
            self.scrub.close()
        self.scrub = Scrub(self.store.items())
        self._scrub_corrupt = self._scrub_baselined = 0

    def scrub_step(self, budget_bytes: int = SCRUB_BYTES_PER_STEP, max_files: int = SCRUB_FILES_PER_STEP) -> None:
        """One turn's slice of the scrub: it ends at ``budget_bytes`` read or ``max_files`` opened, whichever
        comes first, so neither large payloads nor many small ones hold up the loop."""
        s = self.scrub
        if s is None or s.done:
            return
        for checked in s.step(budget_bytes, max_files):
            if checked.found is None:
                self.log.warning("payload_unreadable", id=checked.item.id, reason=checked.error)
                continue
            self.judge(checked.item, checked.found, "scrub")
        if s.done:
            self.events.emit("scrub_done", {"checked": s.checked, "bytes": s.bytes, "corrupt": self._scrub_corrupt,
                                            "crc_recorded": self._scrub_baselined})

    def scrub_figures(self) -> dict[str, int]:
        s = self.scrub
        return {"scrub_checked": s.checked if s else 0, "scrub_pending": s.pending if s else 0}

    # -- checks --------------------------------------------------------------------------------
    def fit_to_send(self, item: StoredProduct) -> bool:
        """Read the payload back just before it is sent; False if it is corrupt (and dealt with).
        OSError if it cannot be read (the caller decides)."""
        return self.judge(item, file_crc32c(item.path), "before_send")

    def judge(self, item: StoredProduct, found: int, found_by: str) -> bool:
        """Compare a CRC read back with the index's; True if the payload is intact."""
        current = self.store.get(item.id)
        if current is None or current.gen != item.gen:
            return True  # confirmed or re-encoded meanwhile: not this payload any more
        if current.crc32c is None:  # a rebuilt index, or an item stored before the index kept CRCs
            if not self._decodes(current):
                self.corrupt(current, found, found_by)
                return False
            self.store.set_crc(item.id, item.gen, found)  # from now on, this is its CRC
            self._scrub_baselined += found_by == "scrub"
            return True
        if found == current.crc32c:
            return True
        if self._decodes(current):
            self.store.set_crc(item.id, item.gen, found)
            self.log.warning("index_crc_repaired", id=item.id, crc32c_index=current.crc32c, crc32c_payload=found)
            return True
        self.corrupt(current, found, found_by)
        return False

    def corrupt(self, item: StoredProduct, found: int, found_by: str) -> None:
        """Report a corrupt payload, take it off the store, ask for it to be made again if it can be."""
        args = self.store.remake_of(item.id)
        self.abort(item.id, "payload corrupt")
        self.store.drop(item.id)
        self.c["products_corrupt"] += 1
        self._scrub_corrupt += found_by == "scrub"
        self.refusals.pop(item.id, None)
        remake = self.remake(args) if args is not None else f"not possible: no command makes a {item.kind} again"
        self.events.emit("product_corrupt", {"id": item.id, "product_kind": item.kind, "bytes": item.size,
                                             "crc32c_stored": item.crc32c, "crc32c_found": found,
                                             "found_by": found_by, "remake": remake})

    def refused(self, product_id: str, transaction: int, reason: str) -> float | None:
        """The ground refused the item's file. Corrupt on board: dealt with, None. Intact: kept, reported,
        and the back-off before it goes again is returned."""
        item = self.store.get(product_id)
        if item is None:
            return None
        try:
            intact = self.judge(item, file_crc32c(item.path), "ground_refusal")
        except OSError as exc:
            self.log.warning("payload_unreadable", id=product_id, reason=str(exc))
            intact = True  # not provably corrupt: keep it
        if not intact:
            return None
        n = self.refusals[product_id] = self.refusals.get(product_id, 0) + 1
        self.c["products_refused"] += 1
        fields = {"id": product_id, "transaction": transaction, "reason": reason, "refusals": n, "kept": True}
        if "FILESTORE_REJECTION" in reason and not self._decodes(item):
            # made wrong, or rotted before the index knew its CRC: the ground will never take these bytes
            self.store.set_state(product_id, "refused")
            args = self.store.remake_of(product_id)
            remake = self.remake(args) if args is not None and item.kind == "full" else "not possible"
            self.events.emit("product_refused", {**fields, "sent_again": False, "remake": remake,
                                                 "why": "it does not decode to its own CRC on board either: kept, "
                                                        "not sent again unless requested"})
            return None
        backoff = refusal_backoff_s(n)
        self.events.emit("product_refused", {**fields, "sent_again": True, "retry_in_s": backoff})
        return backoff

    @staticmethod
    def _decodes(item: StoredProduct) -> bool:
        """The payload proves itself: a product decodes to pixels matching its own CRC-32C, a telemetry
        segment decodes. (Only a product can prove its bytes are the ones made.)"""
        try:
            data = item.path.read_bytes()
            if item.kind in PRODUCT_KINDS:
                decode_product(data)
            else:
                decode_segment(data)
        except (ProductError, ProtocolError, OSError):
            return False
        return True
