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


_CHUNK = 1 << 16


def _crc16_state(data: bytes | bytearray | memoryview, state: int) -> int:
    """Advance the non-reflected CCITT state over ``data`` bit-reversed, in bounded chunks."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    for start in range(0, len(view), _CHUNK):
        state = binascii.crc_hqx(bytes(view[start : start + _CHUNK]).translate(_REVERSED_BYTES), state)
    return state


def _crc16_finish(state: int) -> int:
    return (_REVERSED_BYTES[state & 0xFF] << 8 | _REVERSED_BYTES[state >> 8]) ^ 0xFFFF


def crc16_x25(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X.25 (a.k.a. IBM-SDLC, ISO-HDLC); check value ``crc16_x25(b"123456789") == 0x906E``."""
    return _crc16_finish(_crc16_state(data, 0xFFFF))


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
        state = 0xFFFF
        for part in parts:
            state = _crc16_state(part, state)
        return _crc16_finish(binascii.crc_hqx(_ZEROS[1], state)).to_bytes(2, "big")
    return b""
