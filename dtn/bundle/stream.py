"""Bundles whose payload never sits in memory: decoding the head, checking the payload CRC in passing, and
encoding around a stream of payload chunks (sans-I/O; the caller reads and writes the bytes).

``decode_head(prefix)`` decodes an encoded bundle up to the payload block's byte-string head (the payload
data excluded), with every check of ``decode_bundle`` that does not need the payload data; a prefix too short
raises ``NeedMoreData(needed_bytes)``. ``PayloadCrcCheck`` then follows the payload data as it streams past
and checks the payload block's CRC against the bundle's trailer. ``encode_bundle_stream`` yields the encoding
of a bundle whose payload is given as chunks, the chunks themselves passed through, the CRC computed on the
way::

    head = decode_head(first_64_kib)                      # or NeedMoreData: read more, retry
    check = PayloadCrcCheck(head)
    for chunk in payload_chunks:                          # bytes payload_offset .. +payload_length
        check.update(chunk)
    check.verify(trailer)                                 # the last head.trailer_length bytes
    out = encode_bundle_stream(head.bundle.with_previous_node(me), head.payload_length, payload_chunks)

The decoding reuses the codec's own block decoders (``dtn.bundle.codec``), so both decoders accept and reject
exactly the same bytes with the same status-report reasons.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from crc32c import crc32c as _crc32c
from fastcrc import crc16 as _crc16

from dtn.bundle.blocks import CanonicalBlock
from dtn.bundle.bundle import Bundle
from dtn.bundle.cbor import INDEFINITE, MAJOR_ARRAY, MAJOR_BSTR, MAJOR_TAG, MAJOR_UINT, read_head, read_string
from dtn.bundle.codec import (
    DEFAULT_MAX_BLOCKS,
    _canonical_head,
    _canonical_parts,
    _check,
    _decode_block_head,
    _decode_canonical,
    _decode_primary,
    encode_primary,
)
from dtn.bundle.crc import CrcType
from dtn.bundle.flags import BlockType, block_flags
from dtn.bundle.ids import BundleId
from dtn.bundle.reasons import StatusReason
from dtn.errors import DecodeError, DtnError, EncodeError, InvalidEid

__all__ = [
    "BundleHead",
    "NeedMoreData",
    "PayloadCrcCheck",
    "decode_head",
    "encode_bundle_stream",
    "encoded_head",
    "encoded_length",
]

_PAYLOAD = int(BlockType.PAYLOAD)
_CRC_TYPES = (CrcType.NONE, CrcType.CRC16_X25, CrcType.CRC32C)
_CRC_ITEM_BYTES = (0, 3, 5)  # the CRC item (byte-string head + value) by CRC type
_CRC_ITEM_HEADS = (b"", b"\x42", b"\x44")
_CRC_ZEROS = (b"", b"\x00\x00", b"\x00\x00\x00\x00")
_HEAD_SIZES = (2, 3, 5, 9)  # CBOR head bytes for additional information 24..27


class NeedMoreData(DtnError):
    """The prefix ends before the payload data begins: retry with at least ``needed_bytes`` bytes."""

    def __init__(self, needed_bytes: int) -> None:
        super().__init__(f"the bundle's head needs at least {needed_bytes} bytes")
        self.needed_bytes = needed_bytes


@dataclass(frozen=True, slots=True)
class BundleHead:
    """An encoded bundle's blocks without the payload data, and where that data lies in the encoding."""

    #: The primary block and every block; the payload block's data is b"" (number, flags, CRC type kept, no
    #: image). The other blocks keep their received bytes as ``image`` (re-emitted as they came).
    bundle: Bundle
    #: Index in the encoded bundle of the payload's first data byte.
    payload_offset: int
    #: Bytes of payload data.
    payload_length: int
    #: Length of the whole encoded bundle (payload data, the payload block's CRC item, the final 0xff).
    encoded_length: int
    #: The payload block's received bytes before its data (array head … byte-string head), which its CRC covers.
    payload_block_head: bytes

    @property
    def id(self) -> BundleId:
        """The id of the whole bundle (``Bundle.id``; for a fragment with ``payload_length``)."""
        p = self.bundle.primary
        if p.fragment_offset is not None:
            return BundleId(str(p.source), p.creation_ms, p.sequence, p.fragment_offset, self.payload_length)
        return BundleId(str(p.source), p.creation_ms, p.sequence)

    @property
    def payload_block(self) -> CanonicalBlock:
        return self.bundle.blocks[-1]

    @property
    def payload_end(self) -> int:
        """Index in the encoded bundle just past the payload data (where the trailer starts)."""
        return self.payload_offset + self.payload_length

    @property
    def trailer_length(self) -> int:
        """Bytes after the payload data: the payload block's CRC item (0, 3 or 5) and 0xff (indefinite array)."""
        return self.encoded_length - self.payload_offset - self.payload_length


# --- decoding the head -------------------------------------------------------------------------------------


class _Truncated(Exception):
    """Internal: the bytes end inside an item; ``needed`` bytes (from the bundle's start) might complete it."""

    def __init__(self, needed: int, error: DecodeError | None = None) -> None:
        super().__init__(needed)
        self.needed = needed
        self.error = error


def _head_end(buf: bytes, pos: int, end: int) -> int:
    """The end of the CBOR head at ``pos``; raises ``_Truncated`` when the bytes end inside it."""
    if pos >= end:
        raise _Truncated(pos + 1)
    info = buf[pos] & 0x1F
    nxt = pos + (_HEAD_SIZES[info - 24] if 24 <= info <= 27 else 1)
    if nxt > end:
        raise _Truncated(nxt)
    return nxt


def _item_end(buf: bytes, pos: int, end: int) -> int | None:
    """The end of the (possibly nested) CBOR data item at ``pos``; None if it is not well-formed CBOR.

    Raises ``_Truncated`` when the bytes end inside the item. Used only to tell a prefix that is too short
    from a malformed one after a codec decoder has failed on the prefix.
    """
    pending = 1  # items still to read at this nesting level; -1: an indefinite-length level (ends at 0xff)
    outer: list[int] = []
    while True:
        if pending == 0:
            if not outer:
                return pos
            pending = outer.pop()
            continue
        if pos >= end:
            raise _Truncated(pos + 1)
        initial = buf[pos]
        if initial == 0xFF:
            if pending != -1:
                return None
            pos += 1
            pending = 0
            continue
        if pending > 0:
            pending -= 1
        major, info = initial >> 5, initial & 0x1F
        if info == 31:
            if major not in (MAJOR_BSTR, 3, MAJOR_ARRAY, 5):
                return None
            outer.append(pending)
            pending = -1
            pos += 1
            continue
        if 28 <= info <= 30:
            return None
        nxt = _head_end(buf, pos, end)
        _, value, nxt = read_head(buf, pos, end)
        if major == MAJOR_BSTR or major == 3:
            if value > end - nxt:
                raise _Truncated(nxt + value)
            pos = nxt + value
        elif major == MAJOR_ARRAY or major == 5 or major == MAJOR_TAG:
            outer.append(pending)
            pending = value * 2 if major == 5 else 1 if major == MAJOR_TAG else value
            pos = nxt
        else:
            pos = nxt


def _block_head_end(buf: bytes, pos: int, end: int) -> None:
    """Raise ``_Truncated`` when the bytes end in the canonical block's items before its data's head."""
    pos = _head_end(buf, pos, end)  # the array head
    for _ in range(4):  # block type, number, flags, CRC type
        if pos < end and buf[pos] >> 5 != MAJOR_UINT:
            return
        pos = _head_end(buf, pos, end)
    if pos < end and buf[pos] == 0xD8:  # perhaps tag 24
        pos = _head_end(buf, pos, end)
    _head_end(buf, pos, end)


def _raise_if_truncated(buf: bytes, pos: int, end: int, error: DecodeError) -> None:
    """After a decoder failed on the item at ``pos``: ``_Truncated`` if the prefix ends inside the item."""
    try:
        _item_end(buf, pos, end)
    except _Truncated as truncated:
        raise _Truncated(truncated.needed, error) from None
    except DecodeError:
        return


def _as_buffer(data: bytes | bytearray | memoryview) -> tuple[bytes, memoryview]:
    if isinstance(data, bytes):
        return data, memoryview(data)
    mv = memoryview(data).cast("B")
    if not mv.readonly:
        mv = mv.toreadonly()
    return mv, mv  # type: ignore[return-value]  # indexes and slices like bytes


def decode_head(
    prefix: bytes | bytearray | memoryview,
    *,
    max_blocks: int = DEFAULT_MAX_BLOCKS,
    require_bundle_age: bool = True,
    bundle_length: int | None = None,
    max_bytes: int | None = None,
) -> BundleHead:
    """Decode an encoded bundle up to its payload data from ``prefix``, the bundle's first bytes.

    Checks what ``decode_bundle`` checks except the payload data and the payload block's CRC (see
    ``PayloadCrcCheck``): the primary block and every extension block with their CRCs, and every RFC 9171 §4
    rule (the fragment's extent with ``payload_length``). Bytes of ``prefix`` past the payload data's start
    are ignored. The head keeps no reference to ``prefix``.

    ``bundle_length``, when the caller knows the whole bundle's size, makes a bundle that ends too early or has
    bytes after its end a ``DecodeError`` rather than ``NeedMoreData``; ``max_bytes`` caps the encoded length
    (reason 4, depleted storage, as ``decode_bundle``'s cap).

    Raises ``NeedMoreData`` when ``prefix`` ends before the payload data begins, ``DecodeError`` (with the
    reason ``decode_bundle`` would give) when the bytes are not a valid bundle.
    """
    buf, mv = _as_buffer(prefix)
    end = len(mv)
    if bundle_length is not None:
        if max_bytes is not None and bundle_length > max_bytes:
            raise DecodeError(
                f"bundle of {bundle_length} bytes exceeds the {max_bytes}-byte limit", StatusReason.DEPLETED_STORAGE
            )
        end = min(end, bundle_length)
    try:
        head = _decode_head(buf, mv, end, max_blocks, require_bundle_age)
    except _Truncated as truncated:
        if bundle_length is not None and truncated.needed > bundle_length:
            if truncated.error is not None and end == bundle_length:
                raise truncated.error from None
            raise DecodeError(f"truncated bundle: the head alone needs {truncated.needed} bytes") from None
        raise NeedMoreData(max(truncated.needed, end + 1)) from None
    except DecodeError:
        raise
    except (InvalidEid, ValueError, TypeError, IndexError, OverflowError) as exc:  # pragma: no cover - safety net
        raise DecodeError(f"malformed bundle: {exc}") from exc
    if head.payload_offset != len(mv) or not isinstance(prefix, bytes):
        # Decode again from a copy of just the head: the blocks' images must not pin the caller's buffer.
        copy = bytes(mv[: head.payload_offset])
        head = _decode_head(copy, memoryview(copy), len(copy), max_blocks, require_bundle_age)
    if bundle_length is not None and head.encoded_length != bundle_length:
        if head.encoded_length < bundle_length:
            raise DecodeError(f"{bundle_length - head.encoded_length} trailing bytes after the end of the bundle")
        raise DecodeError(f"truncated bundle: {bundle_length} bytes, its blocks need {head.encoded_length}")
    if max_bytes is not None and head.encoded_length > max_bytes:
        raise DecodeError(
            f"bundle of {head.encoded_length} bytes exceeds the {max_bytes}-byte limit", StatusReason.DEPLETED_STORAGE
        )
    return head


def _decode_head(buf: bytes, mv: memoryview, end: int, max_blocks: int, require_bundle_age: bool) -> BundleHead:
    if end < 1:
        raise _Truncated(1)
    first = buf[0]
    if first == 0x9F:
        definite = -1
        pos = 1
    elif first >> 5 == MAJOR_ARRAY:
        _, definite, pos = read_head(buf, 0, _head_end(buf, 0, end))
        if definite < 2:
            raise DecodeError(f"a bundle needs a primary and a payload block, the outer array has {definite}")
    else:
        raise DecodeError(f"not a BPv7 bundle: first byte 0x{first:02x} is not a CBOR array head")

    try:
        primary, pos = _decode_primary(buf, mv, pos, end)
    except DecodeError as exc:
        _raise_if_truncated(buf, pos, end, exc)
        raise
    blocks: list[CanonicalBlock] = []
    remaining = definite - 1
    while True:
        if definite < 0:
            if pos >= end:
                raise _Truncated(pos + 1)
            if buf[pos] == 0xFF:
                break  # no payload block: _check names the broken rule
        elif remaining == 0:
            break
        if len(blocks) >= max_blocks:
            raise DecodeError(f"bundle has more than {max_blocks} canonical blocks")
        start = pos
        try:
            block_type, number, flags, crc_type, pos = _decode_block_head(buf, pos, end)
        except DecodeError as exc:
            try:
                _block_head_end(buf, start, end)
            except _Truncated as truncated:
                raise _Truncated(truncated.needed, exc) from None
            raise
        if block_type == _PAYLOAD:
            if pos == end - 1 and buf[pos] == 0xD8:
                raise _Truncated(pos + 2)  # perhaps tag 24, cut off
            major, length, data_start = read_head(buf, pos, _head_end(buf, pos, end))
            if major != MAJOR_BSTR or length == INDEFINITE:
                read_string(buf, pos, end, MAJOR_BSTR, f"block {number} data")  # raises the decoder's error
                raise DecodeError(f"block {number} data: expected a byte string")  # pragma: no cover
            if remaining > 1:  # a definite-length outer array with more blocks after the payload block
                raise DecodeError("the last block is not the payload block")
            blocks.append(CanonicalBlock(block_type, number, block_flags(flags), _CRC_TYPES[crc_type], b""))
            problem = _check(primary, blocks, require_bundle_age, length)
            if problem is not None:
                raise DecodeError(problem[0], problem[1])
            trailer_length = _CRC_ITEM_BYTES[crc_type] + (1 if definite < 0 else 0)
            return BundleHead(
                Bundle(primary, tuple(blocks)),
                data_start,
                length,
                data_start + length + trailer_length,
                bytes(mv[start:data_start]),
            )
        try:
            block, pos = _decode_canonical(buf, mv, start, end)
        except DecodeError as exc:
            _raise_if_truncated(buf, start, end, exc)
            raise
        blocks.append(block)
        remaining -= 1
    problem = _check(primary, blocks, require_bundle_age)
    if problem is None:  # pragma: no cover - a bundle without a payload block always breaks a rule
        problem = ("bundle has no payload block", StatusReason.BLOCK_UNINTELLIGIBLE)
    raise DecodeError(problem[0], problem[1])


# --- the payload block's CRC, computed as the payload passes ------------------------------------------------


class _RunningCrc:
    """A block CRC (RFC 9171 §4.2.1) computed over parts fed in order; ``value()`` appends the CRC item's
    head and zeroed value bytes, as ``dtn.bundle.crc.block_crc`` does."""

    __slots__ = ("_crc_type", "_value32", "_value16")

    def __init__(self, crc_type: int) -> None:
        self._crc_type = crc_type
        self._value32 = 0
        self._value16: int | None = None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._crc_type == 2:
            self._value32 = _crc32c(data, self._value32)
        elif self._crc_type == 1:
            self._value16 = _crc16.ibm_sdlc(data, self._value16)

    def value(self) -> bytes:
        """The CRC value bytes (big-endian) of everything fed, followed by the CRC item's head."""
        tail = _CRC_ITEM_HEADS[self._crc_type] + _CRC_ZEROS[self._crc_type]
        if self._crc_type == 2:
            return int(_crc32c(tail, self._value32)).to_bytes(4, "big")
        if self._crc_type == 1:
            return int(_crc16.ibm_sdlc(tail, self._value16)).to_bytes(2, "big")
        return b""


def _byte_length(chunk: bytes | bytearray | memoryview) -> int:
    return chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)


class PayloadCrcCheck:
    """Checks the payload block's CRC of a bundle decoded with ``decode_head`` while its payload streams past.

    ``update(chunk)`` with every piece of payload data in order, then ``verify(trailer)`` with the
    ``head.trailer_length`` bytes after the payload data (the CRC item and, for the indefinite-length outer
    array, the final 0xff). Both raise ``DecodeError`` (reason 8) as ``decode_bundle`` would reject the bundle:
    more or fewer payload bytes than announced, a malformed trailer, a CRC mismatch.
    """

    __slots__ = ("_crc", "_crc_type", "_expected", "_received", "_trailer_length", "_indefinite", "_number")

    def __init__(self, head: BundleHead) -> None:
        block = head.payload_block
        self._crc_type = int(block.crc_type)
        self._number = block.number
        self._crc = _RunningCrc(self._crc_type)
        self._crc.update(head.payload_block_head)
        self._expected = head.payload_length
        self._received = 0
        self._trailer_length = head.trailer_length
        self._indefinite = head.trailer_length == _CRC_ITEM_BYTES[self._crc_type] + 1

    @property
    def received_bytes(self) -> int:
        """Payload bytes fed so far."""
        return self._received

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        """Feed the next piece of payload data."""
        self._received += _byte_length(chunk)
        if self._received > self._expected:
            raise DecodeError(
                f"block {self._number}: more than the {self._expected} bytes of data its byte-string head announces"
            )
        self._crc.update(chunk)

    def verify(self, trailer: bytes | bytearray | memoryview) -> None:
        """Check the bytes after the payload data; raises ``DecodeError`` unless the bundle ends correctly."""
        what = f"block {self._number}"
        if self._received != self._expected:
            raise DecodeError(f"truncated bundle: {what} has {self._received} of its {self._expected} data bytes")
        tail = bytes(trailer)
        if len(tail) != self._trailer_length:
            raise DecodeError(
                f"{what} must be followed by {self._trailer_length} bytes (CRC item and break), got {len(tail)}"
            )
        if self._indefinite and tail[-1] != 0xFF:
            raise DecodeError(f"no break (0xff) after the last block, found 0x{tail[-1]:02x}")
        length = _CRC_ITEM_BYTES[self._crc_type]
        if length == 0:
            return
        if tail[0] != _CRC_ITEM_HEADS[self._crc_type][0]:
            raise DecodeError(f"{what} CRC must be a {length - 1}-byte byte string for CRC type {self._crc_type}")
        if tail[1:length] != self._crc.value():
            raise DecodeError(f"{what} CRC mismatch")


# --- encoding around a stream of payload chunks -------------------------------------------------------------


def _head_parts(bundle: Bundle, payload_length: int) -> tuple[bytes, bytes]:
    """The encoding before the payload block, and the payload block's encoding before its data."""
    primary = bundle.primary
    blocks = bundle.blocks
    problem = _check(primary, blocks, False, payload_length)
    if problem is not None:
        raise EncodeError(problem[0])
    image = primary.image
    parts: list[bytes | memoryview] = [b"\x9f", image if image is not None else encode_primary(primary)]
    for block in blocks[:-1]:
        image = block.image
        if image is not None:
            parts.append(image)
        else:
            parts.extend(_canonical_parts(block))
    return b"".join(parts), _canonical_head(blocks[-1], payload_length)


def encoded_head(bundle: Bundle, payload_length: int) -> bytes:
    """The encoding of ``bundle`` with a payload of ``payload_length`` bytes, up to the payload data.

    ``bundle``'s payload data is ignored. Raises ``EncodeError`` as ``encode_bundle`` does.
    """
    before, block_head = _head_parts(bundle, payload_length)
    return before + block_head


def encoded_length(bundle: Bundle, payload_length: int) -> int:
    """The length of ``encode_bundle_stream(bundle, payload_length, …)``'s output, in bytes."""
    crc_type = int(bundle.blocks[-1].crc_type) if bundle.blocks else 0
    return len(encoded_head(bundle, payload_length)) + payload_length + _CRC_ITEM_BYTES[crc_type] + 1


def encode_bundle_stream(
    bundle: Bundle,
    payload_length: int,
    payload_chunks: Iterable[bytes | bytearray | memoryview],
) -> Iterator[bytes | bytearray | memoryview]:
    """Yield the encoding of ``bundle`` with the concatenation of ``payload_chunks`` as its payload.

    ``bundle``'s payload data is ignored (normally b""); its payload block's number, flags and CRC type are
    used. Yields the encoding up to the payload data as one bytes object, then every non-empty chunk itself (no
    copy), then the payload block's CRC item and the final 0xff as one bytes object. The bytes joined equal
    ``encode_bundle`` of the bundle with that payload.

    Raises ``EncodeError`` at once when the bundle cannot be encoded, and ``ValueError`` from the iteration
    when the chunks hold more or fewer than ``payload_length`` bytes.
    """
    return _stream(BundleStreamEncoder(bundle, payload_length), payload_chunks)


def _stream(
    encoder: BundleStreamEncoder, payload_chunks: Iterable[bytes | bytearray | memoryview]
) -> Iterator[bytes | bytearray | memoryview]:
    yield encoder.head
    for chunk in payload_chunks:
        if _byte_length(chunk):
            yield encoder.payload(chunk)
    yield encoder.end()


class BundleStreamEncoder:
    """``encode_bundle_stream`` driven by its caller, for a payload that arrives piece by piece (from a network
    body, say): write ``head``, then what ``payload(chunk)`` returns for each chunk (the chunk itself), then
    ``end()``. Raises ``EncodeError`` at once when the bundle cannot be encoded; ``payload`` and ``end`` raise
    ``ValueError`` when the chunks hold more or fewer than ``payload_length`` bytes."""

    __slots__ = ("head", "_crc", "_crc_type", "_payload_length", "_total")

    def __init__(self, bundle: Bundle, payload_length: int) -> None:
        before, block_head = _head_parts(bundle, payload_length)
        self.head = before + block_head
        self._crc_type = int(bundle.blocks[-1].crc_type)
        self._crc = _RunningCrc(self._crc_type)
        self._crc.update(block_head)
        self._payload_length = payload_length
        self._total = 0

    def payload(self, chunk: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
        self._total += _byte_length(chunk)
        if self._total > self._payload_length:
            raise ValueError(f"the payload chunks hold more than the {self._payload_length} bytes announced")
        self._crc.update(chunk)
        return chunk

    def end(self) -> bytes:
        """The payload block's CRC item and the bundle's end."""
        if self._total != self._payload_length:
            raise ValueError(f"the payload chunks hold {self._total} bytes, {self._payload_length} were announced")
        return _CRC_ITEM_HEADS[self._crc_type] + self._crc.value() + b"\xff"
