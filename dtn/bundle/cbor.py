"""Strict, low-level CBOR (RFC 8949) head reading and writing for the bundle hot path.

Only what BPv7 blocks need: unsigned integers, definite-length byte and text strings, definite-length
arrays, the indefinite outer bundle array and its break, and tag 24 in front of block data. Readers work
on ``bytes``-like buffers with explicit positions and never allocate from a declared length before checking
it against the bytes that remain; every failure is a ``DecodeError`` (reason 8, block unintelligible).
Writers always emit shortest-form heads (RFC 8949 §4.2.1 core deterministic encoding).
"""

from __future__ import annotations

from dtn.errors import DecodeError

MAJOR_UINT = 0
MAJOR_NINT = 1
MAJOR_BSTR = 2
MAJOR_TSTR = 3
MAJOR_ARRAY = 4
MAJOR_MAP = 5
MAJOR_TAG = 6
MAJOR_SIMPLE = 7

#: Returned as the argument of an indefinite-length head (additional information 31).
INDEFINITE = -1

INDEFINITE_ARRAY = b"\x9f"
BREAK = b"\xff"
TAG_ENCODED_CBOR = 24

_MAJOR_NAMES = ("uint", "negative int", "byte string", "text string", "array", "map", "tag", "simple/float")

# Precomputed one- and two-byte heads for every major type (immutable).
_SMALL_HEADS: tuple[tuple[bytes, ...], ...] = tuple(
    tuple(bytes((major << 5 | v,)) if v < 24 else bytes((major << 5 | 24, v)) for v in range(256)) for major in range(8)
)


def head(major: int, value: int) -> bytes:
    """Shortest-form head of ``major`` with argument ``value`` (0 <= value < 2**64)."""
    if value < 256:
        if value < 0:
            raise ValueError(f"CBOR argument must be non-negative, got {value}")
        return _SMALL_HEADS[major][value]
    if value < 0x10000:
        return bytes((major << 5 | 25,)) + value.to_bytes(2, "big")
    if value < 0x1_0000_0000:
        return bytes((major << 5 | 26,)) + value.to_bytes(4, "big")
    if value < 0x1_0000_0000_0000_0000:
        return bytes((major << 5 | 27,)) + value.to_bytes(8, "big")
    raise ValueError(f"CBOR argument exceeds 64 bits: {value}")


def encode_uint(value: int) -> bytes:
    return head(MAJOR_UINT, value)


def encode_bstr(data: bytes | bytearray | memoryview) -> bytes:
    return head(MAJOR_BSTR, len(data)) + bytes(data)


def encode_tstr(text: str) -> bytes:
    raw = text.encode("utf-8")
    return head(MAJOR_TSTR, len(raw)) + raw


def head_length(value: int) -> int:
    """Number of bytes of the shortest head whose argument is ``value``."""
    if value < 24:
        return 1
    if value < 0x100:
        return 2
    if value < 0x10000:
        return 3
    if value < 0x1_0000_0000:
        return 5
    return 9


def _fail(message: str) -> DecodeError:
    return DecodeError(message)


def read_head(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read one head at ``pos``: ``(major, argument, next_pos)``; argument ``INDEFINITE`` for info 31.

    Non-shortest arguments are accepted (RFC 9171 lets a receiver accept them; the caller keeps the
    received bytes, so nothing is normalised silently). Reserved additional information 28-30 is rejected.
    """
    if pos >= end:
        raise _fail(f"truncated CBOR: expected an item at offset {pos}")
    initial = buf[pos]
    major = initial >> 5
    info = initial & 0x1F
    if info < 24:
        return major, info, pos + 1
    if info == 24:
        if pos + 2 > end:
            raise _fail(f"truncated CBOR head at offset {pos}")
        return major, buf[pos + 1], pos + 2
    if info == 25:
        if pos + 3 > end:
            raise _fail(f"truncated CBOR head at offset {pos}")
        return major, buf[pos + 1] << 8 | buf[pos + 2], pos + 3
    if info == 26:
        if pos + 5 > end:
            raise _fail(f"truncated CBOR head at offset {pos}")
        return major, int.from_bytes(buf[pos + 1 : pos + 5], "big"), pos + 5
    if info == 27:
        if pos + 9 > end:
            raise _fail(f"truncated CBOR head at offset {pos}")
        return major, int.from_bytes(buf[pos + 1 : pos + 9], "big"), pos + 9
    if info == 31 and major in (MAJOR_BSTR, MAJOR_TSTR, MAJOR_ARRAY, MAJOR_MAP, MAJOR_SIMPLE):
        return major, INDEFINITE, pos + 1
    raise _fail(f"malformed CBOR head 0x{initial:02x} at offset {pos}")


def read_uint(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """An unsigned integer: ``(value, next_pos)``."""
    if pos < end:  # fast paths: shortest-form unsigned integers
        initial = buf[pos]
        if initial < 24:
            return initial, pos + 1
        if initial == 0x1A and pos + 5 <= end:
            return int.from_bytes(buf[pos + 1 : pos + 5], "big"), pos + 5
        if initial == 0x1B and pos + 9 <= end:
            return int.from_bytes(buf[pos + 1 : pos + 9], "big"), pos + 9
        if initial == 0x18 and pos + 2 <= end:
            return buf[pos + 1], pos + 2
        if initial == 0x19 and pos + 3 <= end:
            return buf[pos + 1] << 8 | buf[pos + 2], pos + 3
    major, value, nxt = read_head(buf, pos, end)
    if major != MAJOR_UINT or value < 0:
        raise _fail(f"{what}: expected an unsigned integer, got a {_MAJOR_NAMES[major]} at offset {pos}")
    return value, nxt


def read_array_head(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """A definite-length array head: ``(item_count, next_pos)``."""
    major, count, nxt = read_head(buf, pos, end)
    if major != MAJOR_ARRAY:
        raise _fail(f"{what}: expected an array, got a {_MAJOR_NAMES[major]} at offset {pos}")
    if count == INDEFINITE:
        raise _fail(f"{what}: indefinite-length array not allowed here (offset {pos})")
    return count, nxt


def read_string(buf: bytes, pos: int, end: int, major_expected: int, what: str) -> tuple[int, int]:
    """A definite-length byte or text string: ``(start, stop)`` of its content; the caller slices."""
    major, length, nxt = read_head(buf, pos, end)
    if major != major_expected:
        raise _fail(f"{what}: expected a {_MAJOR_NAMES[major_expected]}, got a {_MAJOR_NAMES[major]} at offset {pos}")
    if length == INDEFINITE:
        raise _fail(f"{what}: indefinite-length string not allowed (offset {pos})")
    if length > end - nxt:
        raise _fail(f"{what}: string of {length} bytes at offset {pos} runs past the end of its container")
    return nxt, nxt + length


def read_tstr(buf: bytes, pos: int, end: int, what: str) -> tuple[str, int]:
    start, stop = read_string(buf, pos, end, MAJOR_TSTR, what)
    try:
        return bytes(buf[start:stop]).decode("utf-8"), stop
    except UnicodeDecodeError as exc:
        raise _fail(f"{what}: text string is not valid UTF-8") from exc
