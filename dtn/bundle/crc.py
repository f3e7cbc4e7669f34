"""The two BPv7 CRCs (RFC 9171 §4.2.1): CRC-16/X.25 and CRC-32C, both reflected, init and xorout all-ones.

Both run in compiled code: CRC-32C through the ``crc32c`` package, CRC-16/X.25 (a.k.a. CRC-16/IBM-SDLC) through
``fastcrc``. Both continue a checksum from a previous value, so a block's CRC is computed over its parts without
joining them.
"""

from __future__ import annotations

from enum import IntEnum

import crc32c as _crc32c
from fastcrc import crc16 as _crc16


class CrcType(IntEnum):
    NONE = 0
    CRC16_X25 = 1
    CRC32C = 2


def crc16_x25(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X.25 (a.k.a. IBM-SDLC, ISO-HDLC); check value ``crc16_x25(b"123456789") == 0x906E``."""
    return int(_crc16.ibm_sdlc(data))


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


_ZEROS = {1: b"\x00\x00", 2: b"\x00\x00\x00\x00"}


def block_crc(crc_type: CrcType | int, *parts: bytes | bytearray | memoryview) -> bytes:
    """CRC value bytes of a block whose encoding, up to and including the CRC byte-string head, is the
    concatenation of ``parts``.

    Computes the CRC as RFC 9171 §4.2.1 and erratum 8043 say (the value bytes zeroed, their 0x42/0x44
    head kept) without copying the parts: the zero value bytes are fed after them.
    """
    if crc_type == 2:  # CRC-32C
        value = 0
        for part in parts:
            value = _crc32c.crc32c(part, value)
        return int(_crc32c.crc32c(_ZEROS[2], value)).to_bytes(4, "big")
    if crc_type == 1:  # CRC-16/X.25
        value16: int | None = None
        for part in parts:
            value16 = _crc16.ibm_sdlc(part, value16)
        return int(_crc16.ibm_sdlc(_ZEROS[1], value16)).to_bytes(2, "big")
    return b""
