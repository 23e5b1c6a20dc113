"""CRC-32C helpers shared by every end: the CRC of an array's pixels, and joining the CRCs of adjacent pieces.

``pixels_crc32c(a)`` is the CRC-32C of an array's pixels in C order, little-endian: the camera
emulator's manifest, the camera link, the bus header, the product and the ground all state a
frame's pixels by this one value.

``crc32c_combine(crc_a, crc_b, len_b)`` is the CRC-32C of ``a + b`` given
only the CRC-32C of ``a``, the CRC-32C of ``b`` (each computed from a fresh
start) and the length of ``b``. The camera link needs two CRCs of a frame,
the message CRC (header, metadata and pixels) and the pixel CRC (the bus
header, the emulator's manifest); combining lets both come out of one pass
over the pixel bytes.

The arithmetic is in GF(2)[x] modulo the Castagnoli polynomial, in the
bit-reflected representation the CRC itself uses (the constant 1 is bit 31).
Appending ``n`` bytes to ``a`` multiplies its register by ``x**(8n)``; the
pre- and post-inversion of CRC-32C cancel in the XOR with ``crc_b``. The
operator ``x**(8n) mod P`` costs a few hundred big-integer steps and is
cached per length (a camera sends the same frame size again and again).
"""

from __future__ import annotations

from functools import lru_cache

import crc32c
import numpy as np

__all__ = ["pixels_crc32c", "crc32c_combine"]

def pixels_crc32c(pixels: np.ndarray) -> int:
    """CRC-32C of an array's pixels in C order, little-endian."""
    a = np.ascontiguousarray(pixels)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return crc32c.crc32c(memoryview(a).cast("B"))


_POLY_REFLECTED = 0x82F63B78  # Castagnoli, reflected
_ONE = 1 << 31  # x**0 in the reflected representation


def _mul_mod_p(a: int, b: int) -> int:
    """a * b modulo the polynomial, both reflected."""
    product = 0
    bit = _ONE
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ _POLY_REFLECTED if b & 1 else b >> 1
    return product


def _x_pow_2k_table() -> list[int]:
    """x**(2**k) mod P for k = 0..63: enough for any length below 2**60 bytes."""
    table = [_ONE >> 1]  # x**1
    for _ in range(63):
        table.append(_mul_mod_p(table[-1], table[-1]))
    return table


_X_POW_2K = _x_pow_2k_table()


@lru_cache(maxsize=64)
def _shift_operator(n_bytes: int) -> int:
    """x**(8 * n_bytes) mod P: the effect on the CRC register of appending n_bytes bytes."""
    result = _ONE
    k = 3  # 8 = 2**3 bits per byte
    n = n_bytes
    while n:
        if n & 1:
            result = _mul_mod_p(_X_POW_2K[k], result)
        n >>= 1
        k += 1
    return result


def crc32c_combine(crc_a: int, crc_b: int, len_b: int) -> int:
    """CRC-32C of the concatenation a + b, from crc32c(a), crc32c(b) and len(b)."""
    if not 0 <= len_b < 1 << 60:
        raise ValueError(f"len_b={len_b} is not in 0..2**60")
    if len_b == 0:
        return crc_a
    return _mul_mod_p(_shift_operator(len_b), crc_a) ^ crc_b
