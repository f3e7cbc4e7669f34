"""The two BPv7 CRCs (RFC 9171 §4.2.1): CRC-16/X.25 and CRC-32C, both reflected, init and xorout all-ones.

Both run at C speed: CRC-32C through the ``crc32c`` package; CRC-16/X.25 through ``binascii.crc_hqx`` (the
non-reflected CCITT polynomial 0x1021) applied to bit-reversed bytes, whose result is bit-reversed back. A
reflected CRC equals the non-reflected one over reflected input with a reflected result, and the all-ones
init and xorout are their own reflections.
"""

from __future__ import annotations

import binascii
from enum import IntEnum

import crc32c as _crc32c


class CrcType(IntEnum):
    NONE = 0
    CRC16_X25 = 1
    CRC32C = 2


def _reverse_bits8(value: int) -> int:
    return int(f"{value:08b}"[::-1], 2)


_REVERSED_BYTES = bytes(_reverse_bits8(i) for i in range(256))


def crc16_x25(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X.25 (a.k.a. IBM-SDLC, ISO-HDLC); check value ``crc16_x25(b"123456789") == 0x906E``."""
    reflected = bytes(data).translate(_REVERSED_BYTES)
    raw = binascii.crc_hqx(reflected, 0xFFFF)
    return int(f"{raw:016b}"[::-1], 2) ^ 0xFFFF


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C (Castagnoli); check value ``crc32c(b"123456789") == 0xE3069283``."""
    return int(_crc32c.crc32c(data))


def crc_length(crc_type: CrcType | int) -> int:
    """Number of CRC value bytes on the wire for a CRC type (0, 2 or 4)."""
    return (0, 2, 4)[crc_type]


def compute_crc(crc_type: CrcType | int, data: bytes | bytearray | memoryview) -> bytes:
    """CRC value bytes (big-endian) of ``data``, which must already hold zeroed CRC value bytes."""
    if crc_type == CrcType.CRC16_X25:
        return crc16_x25(data).to_bytes(2, "big")
    if crc_type == CrcType.CRC32C:
        return crc32c(data).to_bytes(4, "big")
    return b""
