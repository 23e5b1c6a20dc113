"""Forward erasure coding of a CFDP file: RaptorQ (RFC 6330) symbols as file segments. No I/O.

Why: at 20 % loss a 1.3 MB product of ~330 segments needs 4-5 NAK round trips
of 2.6 s (1.29 s one-way light time) before its last segment arrives, so pure
ARQ cannot complete most products inside a 12 s pass (docs/downlink.md). With
coding, the lander sends the product's K source symbols and R repair symbols;
the ground rebuilds the product from any K (rarely K+1 or K+2) of them, one
light time after the last symbol left, and NAKs only for a rare shortfall.

The *coded file* F of a product P is the concatenation of RaptorQ packets
(``raptorq`` 2.0, systematic: source symbols first, in order, then repair;
deterministic): each packet is a 4-byte payload id (source block number 0,
encoding symbol id = its index in F) and a ``T``-byte symbol. ``T + 4`` is
exactly one CFDP file data segment, so a lost PDU is a lost symbol and the
receiver's lost-segment ranges stay symbol-aligned. F travels as an ordinary
CFDP class 2 file (its CRC-32 checked against the EOF's); its destination
file name carries what the receiver needs, P's length, T and R
(:class:`Coding`, :func:`split_name`).

Here: the coding parameters and their name codec, :func:`encode`, the
redundancy rule (:func:`repair_for`, :func:`resend_for`), a receiver-side
:class:`SymbolDecoder` fed (offset, bytes) chunks, and the sender's running
:class:`LossEstimate`. Bad input raises :class:`FecError` only (the library
panics on malformed packets, so every packet is checked before it is fed).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

import raptorq

from framework.errors import ProtocolError

__all__ = ["Coding", "FecError", "LossEstimate", "SymbolDecoder", "coding_for", "encode", "extract",
           "repair_for", "resend_for", "split_name", "symbol_size", "crc32_of",
           "PAYLOAD_ID_LEN", "SYMBOL_ALIGN", "MAX_SOURCE_SYMBOLS", "DECODE_TARGET", "LATE_TARGET", "RESEND_TARGET"]

PAYLOAD_ID_LEN = 4
"""RFC 6330 FEC payload id: source block number (1 byte), encoding symbol id (3 bytes)."""
SYMBOL_ALIGN = 8
"""raptorq's default symbol alignment: a symbol size is a multiple of it."""
MAX_SOURCE_SYMBOLS = 16384
"""Larger products go uncoded (one source block holds at most 56403 symbols; decoding memory grows with K)."""
MAX_REPAIR_FACTOR = 3
"""Repair symbols are at most this many times the source symbols (the loss estimate is capped below)."""
MAX_LOSS = 0.6
DECODE_TARGET = 0.8
"""The redundancy rule: the smallest R for which K + 1 of K + R symbols arrive with this probability."""
LATE_TARGET = 0.95
"""The same for a product whose shortfall could not be made up before the window closes (its EOF leaves
less than a round trip before the close): a NAK round trip would come too late."""
RESEND_TARGET = 0.97
"""After the EOF: resend enough symbols that the deficit arrives with this probability (each miss costs a
round trip)."""
DECODE_MARGIN = 1
"""Symbols beyond K a decode is planned for (RaptorQ fails with K symbols about 1 % of the time, with K+1
about 0.01 %)."""
_TAG = ".rq"
_NAME = re.compile(r"^(?P<plain>.+)\.rq(?P<length>[0-9]{1,12})-(?P<symbol>[0-9]{1,6})-(?P<repair>[0-9]{1,7})$")
_MAX_SYMBOL = 65528


class FecError(ProtocolError):
    """Coded-transfer parameters, a coded file name or a symbol that cannot be right."""


@dataclass(frozen=True)
class Coding:
    """How a product of ``length`` bytes is coded: ``symbol`` bytes a symbol (T), ``repair`` repair symbols (R)."""

    length: int
    symbol: int
    repair: int

    def __post_init__(self) -> None:
        if not (0 < self.length and SYMBOL_ALIGN <= self.symbol <= _MAX_SYMBOL and self.symbol % SYMBOL_ALIGN == 0
                and 0 <= self.repair):
            raise FecError(f"coding of {self.length} bytes, symbol {self.symbol}, repair {self.repair} is not valid")
        if self.source > MAX_SOURCE_SYMBOLS or self.repair > MAX_REPAIR_FACTOR * self.source + 16:
            raise FecError(f"coding of {self.source} source and {self.repair} repair symbols is out of bounds")

    @property
    def source(self) -> int:
        """K: the source symbols (the product, the last one zero-padded)."""
        return -(-self.length // self.symbol)

    @property
    def packets(self) -> int:
        """K + R: the symbols (segments) in the coded file."""
        return self.source + self.repair

    @property
    def packet_len(self) -> int:
        """One packet, one CFDP file data segment: T + 4."""
        return self.symbol + PAYLOAD_ID_LEN

    @property
    def coded_size(self) -> int:
        return self.packets * self.packet_len

    @property
    def suffix(self) -> str:
        """What the coded file's name carries after the plain name: ``.rq<length>-<T>-<R>``."""
        return f"{_TAG}{self.length}-{self.symbol}-{self.repair}"

    def product_bytes(self, index: int) -> int:
        """Product bytes in symbol ``index`` (0 for a repair symbol)."""
        if index >= self.source or index < 0:
            return 0
        return min(self.symbol, self.length - index * self.symbol)


def symbol_size(segment_len: int) -> int:
    """The largest symbol size T whose packet fits a ``segment_len``-byte file data segment."""
    t = (segment_len - PAYLOAD_ID_LEN) // SYMBOL_ALIGN * SYMBOL_ALIGN
    if t < SYMBOL_ALIGN:
        raise FecError(f"a {segment_len}-byte segment cannot carry a coded symbol")
    return min(t, _MAX_SYMBOL)


def coding_for(length: int, segment_len: int, loss: float, target: float = DECODE_TARGET) -> Coding | None:
    """The coding of a ``length``-byte product over ``segment_len``-byte segments at estimated ``loss``
    (:func:`repair_for` at ``target``); None if it is not coded (empty, or too many symbols). K is the fewest
    symbols the segment allows, T the smallest aligned size that holds the product in K (a 16.8 kB thumbnail:
    5 symbols of 3360 bytes, not of 4072 with a fifth of padding); each symbol still fills one segment,
    the transaction's segments being T + 4 bytes."""
    t = symbol_size(segment_len)
    k = -(-length // t)
    if length <= 0 or k > MAX_SOURCE_SYMBOLS:
        return None
    per = -(-length // k)
    t = max(SYMBOL_ALIGN, -(-per // SYMBOL_ALIGN) * SYMBOL_ALIGN)  # as little padding as K symbols allow
    return Coding(length, t, repair_for(k, loss, target))


def encode(data: bytes, coding: Coding) -> bytes:
    """The coded file F of ``data``: its K + R RaptorQ packets, concatenated (deterministic)."""
    if len(data) != coding.length:
        raise FecError(f"{len(data)} bytes to code, the coding says {coding.length}")
    packets = raptorq.Encoder.with_defaults(bytes(data), coding.symbol).get_encoded_packets(coding.repair)
    if len(packets) != coding.packets or any(len(p) != coding.packet_len for p in packets):
        raise FecError("the encoder did not give one source block of K + R whole packets")  # huge products
    return b"".join(packets)


def extract(coded: bytes, coding: Coding) -> bytes:
    """The product in a complete coded file: its source symbols, the padding cut (the code is systematic)."""
    if len(coded) != coding.coded_size:
        raise FecError(f"coded file of {len(coded)} bytes, the coding says {coding.coded_size}")
    n, t = coding.packet_len, coding.symbol
    return b"".join(coded[i * n + PAYLOAD_ID_LEN:i * n + PAYLOAD_ID_LEN + t]
                    for i in range(coding.source))[:coding.length]


def crc32_of(data: bytes) -> bytes:
    """The CFDP CRC-32 file checksum (ISO-HDLC, as cfdp-py computes it), big-endian."""
    return zlib.crc32(data).to_bytes(4, "big")


def _log_binom_pmf(n: int, k: int, q: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(q) + (n - k) * math.log1p(-q)


def _at_least(n: int, need: int, q: float) -> float:
    """P(Binomial(n, q) >= need)."""
    if need <= 0:
        return 1.0
    if need > n:
        return 0.0
    if q >= 1.0:
        return 1.0
    if q <= 0.0:
        return 0.0
    return min(1.0, sum(math.exp(_log_binom_pmf(n, k, q)) for k in range(need, n + 1)))


def _smallest(lo: int, hi: int, ok: "callable") -> int:  # type: ignore[valid-type]
    """The smallest x in [lo, hi] with ok(x) (ok monotone); hi if none."""
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def repair_for(k: int, loss: float, target: float = DECODE_TARGET) -> int:
    """R: the smallest number of repair symbols (at least 1) for which K + 1 of K + R symbols arrive with
    probability ``target`` at independent loss ``loss`` (capped at MAX_LOSS)."""
    p = min(max(loss, 0.0), MAX_LOSS)
    cap = MAX_REPAIR_FACTOR * k + 16
    if p <= 0.0:
        return 1
    return max(1, _smallest(1, cap, lambda r: _at_least(k + r, k + DECODE_MARGIN, 1 - p) >= target))


def resend_for(deficit: int, loss: float, available: int, target: float = RESEND_TARGET) -> int:
    """How many symbols to resend (at most ``available``) so that ``deficit`` of them arrive with
    probability ``target`` at loss ``loss``."""
    if deficit <= 0 or available <= 0:
        return 0
    q = 1 - min(max(loss, 0.0), MAX_LOSS)
    return _smallest(deficit, max(deficit, available), lambda n: _at_least(n, deficit, q) >= target)


def split_name(name: str) -> tuple[str, Coding | None]:
    """A destination file name split into the plain name and its coding (None: not coded).
    FecError if it carries a coding suffix that cannot be right."""
    if _TAG not in name:
        return name, None
    m = _NAME.match(name)
    if m is None:
        if re.search(r"\.rq[0-9]", name):
            raise FecError(f"file name {name!r} has a malformed coding suffix")
        return name, None
    return m["plain"], Coding(int(m["length"]), int(m["symbol"]), int(m["repair"]))


class SymbolDecoder:
    """The receiving end of one coded file: fed the file data as it arrives, it rebuilds the product.

    Each chunk must be whole packets at their places in F (offset and length multiples of T + 4, inside
    the file, each payload id naming its own index in block 0): anything else raises FecError and is
    not fed to the library. :attr:`product` is the decoded product once enough symbols arrived."""

    def __init__(self, coding: Coding) -> None:
        self.coding = coding
        self.held: set[int] = set()
        self.product: bytes | None = None
        self.failed = False  # the decode was found wrong (its coded file's CRC did not match): fed no more
        self._decoder = raptorq.Decoder.with_defaults(coding.length, coding.symbol)

    def add(self, offset: int, data: bytes) -> int:
        """Take file data at ``offset``; return the product bytes in the symbols that were new."""
        c = self.coding
        n = c.packet_len
        if offset < 0 or offset % n or len(data) % n or offset + len(data) > c.coded_size:
            raise FecError(f"file data at {offset}+{len(data)} is not whole {n}-byte symbols inside the "
                           f"{c.coded_size}-byte coded file")
        new = 0
        for i in range(len(data) // n):
            index = offset // n + i
            packet = bytes(data[i * n:(i + 1) * n])
            if packet[0] != 0 or int.from_bytes(packet[1:4], "big") != index:
                raise FecError(f"symbol at index {index} carries payload id {packet[:4].hex()}")
            if index in self.held:
                continue
            self.held.add(index)
            new += c.product_bytes(index)
            if self.product is None and not self.failed:
                got = self._decoder.decode(packet)
                if got is not None:
                    self.product = bytes(got)
        return new

    def coded(self) -> bytes:
        """F rebuilt from the decoded product (call only once :attr:`product` is set)."""
        assert self.product is not None
        return encode(self.product, self.coding)


class LossEstimate:
    """The sender's running estimate of the link's segment loss, from the ground's NAKs.

    Evidence comes as (missing, seen) symbol counts: NAKs say which segments of a transaction's scope
    are missing; a transaction that ended without any NAK says none of its segments was. Each piece
    moves the estimate towards its own ratio with weight seen / (seen + ``memory``): a product's few
    hundred symbols move it most of the way, a thumbnail's few a little."""

    def __init__(self, initial: float, memory: float = 200.0) -> None:
        self.value = min(max(initial, 0.0), MAX_LOSS)
        self.memory = memory

    def observe(self, missing: int, seen: int) -> None:
        if seen <= 0:
            return
        ratio = min(max(missing / seen, 0.0), 1.0)
        self.value = min(MAX_LOSS, self.value + seen / (seen + self.memory) * (ratio - self.value))
