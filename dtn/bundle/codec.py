"""The BPv7 bundle codec (RFC 9171 §4): strict, total decoding and deterministic encoding.

``decode_bundle`` checks every rule of §4 a receiver must check and raises only ``DecodeError`` (with the
status-report reason to send back) for any input, at a cost linear in the input and bounded by the caller's
caps. Block data and the payload are memoryview slices of the input (no copy); every block keeps its exact
received bytes as ``image`` so that ``encode_bundle`` re-emits unmodified blocks byte for byte.

``encode_bundle`` emits the indefinite-length outer array (``0x9f … 0xff``, which HDTN requires),
shortest-form heads, never tag 24, and recomputes the CRC of every block without an image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from crc32c import crc32c as _crc32c

from dtn.bundle.blocks import (
    PAYLOAD_BLOCK_NUMBER,
    BlockData,
    BundleAge,
    CanonicalBlock,
    HopCount,
    PreviousNode,
    PrimaryBlock,
)
from dtn.bundle.bundle import Bundle
from dtn.bundle.cbor import (
    MAJOR_ARRAY,
    MAJOR_BSTR,
    encode_uint,
    head,
    read_array_head,
    read_head,
    read_string,
    read_uint,
)
from dtn.bundle.crc import CrcType, block_crc
from dtn.bundle.eid import encode_eid, read_eid
from dtn.bundle.flags import REPORT_REQUEST_FLAGS, BlockFlag, BlockType, BundleFlag, block_flags, bundle_flags
from dtn.bundle.reasons import StatusReason
from dtn.errors import DecodeError, EncodeError, InvalidEid
from dtn.parts import coalesce

BPV7_VERSION = 7
#: Default cap on an encoded bundle's size (bytes); callers pass their own (e.g. the CL's transfer MRU).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Default cap on the number of canonical blocks in a bundle.
DEFAULT_MAX_BLOCKS = 64

_CRC_TYPES = (CrcType.NONE, CrcType.CRC16_X25, CrcType.CRC32C)
_CRC_LENGTHS = (0, 2, 4)
_CRC_HEADS = (b"", b"\x42", b"\x44")
_ZERO4 = b"\x00\x00\x00\x00"
_SMALL_UINTS = (b"\x00", b"\x01", b"\x02")
#: Block data at least this long is a part of its own in ``encode_bundle_parts`` (smaller parts are joined).
OWN_PART_BYTES = 64 * 1024
# Array head and version of a primary block, by (fragment ? 2 : 0) + (CRC ? 1 : 0).
_PRIMARY_STARTS = (b"\x88\x07", b"\x89\x07", b"\x8a\x07", b"\x8b\x07")
# Plain-int copies of the flags and types the checks test (IntFlag/IntEnum operators are slow).
_PAYLOAD = int(BlockType.PAYLOAD)
_BUNDLE_AGE = int(BlockType.BUNDLE_AGE)
_IS_FRAGMENT = int(BundleFlag.IS_FRAGMENT)
_ADMIN = int(BundleFlag.ADMIN_RECORD)
_ION_BIBE = int(BundleFlag.ION_BIBE)
_MUST_NOT_FRAGMENT = int(BundleFlag.MUST_NOT_FRAGMENT)
_REPORTS = int(REPORT_REQUEST_FLAGS)
_TYPED: dict[int, Callable[[BlockData], object]] = {
    BlockType.PREVIOUS_NODE: PreviousNode.from_data,
    BlockType.BUNDLE_AGE: BundleAge.from_data,
    BlockType.HOP_COUNT: HopCount.from_data,
}


# The decoder fills the frozen, slotted blocks through their slot descriptors: the generated __init__ of a
# frozen dataclass costs a generic object.__setattr__ per field, a third of the decode time of a small bundle.
def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[object, object], None], ...]:
    declared = tuple(f.name for f in dataclasses.fields(cls))
    if declared != names:  # pragma: no cover - guards against a field added without updating the decoder
        raise RuntimeError(f"{cls.__name__} fields changed: {declared}")
    return tuple(cls.__dict__[name].__set__ for name in names)


_new = object.__new__
(_p_flags, _p_crc, _p_dst, _p_src, _p_rpt, _p_created, _p_seq, _p_life, _p_off, _p_total, _p_image) = _slot_setters(
    PrimaryBlock,
    (
        "flags",
        "crc_type",
        "destination",
        "source",
        "report_to",
        "creation_ms",
        "sequence",
        "lifetime_ms",
        "fragment_offset",
        "total_adu_length",
        "image",
    ),
)
(_c_type, _c_number, _c_flags, _c_crc, _c_data, _c_image) = _slot_setters(
    CanonicalBlock, ("block_type", "number", "flags", "crc_type", "data", "image")
)


# --- decoding ----------------------------------------------------------------------------------------------


def decode_bundle(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_blocks: int = DEFAULT_MAX_BLOCKS,
    require_bundle_age: bool = True,
) -> Bundle:
    """Decode and fully validate one bundle occupying all of ``data`` (no trailing bytes).

    ``require_bundle_age=False`` relaxes one rule (RFC 9171 §4.4.2: a bundle whose creation time is 0 must
    carry a Bundle Age block), which the RFC 9173 Appendix A example bundles break.

    Raises ``DecodeError`` only: reason 8 (block unintelligible) for malformed CBOR, wrong item counts,
    CRC mismatches and broken §4 rules; reason 5 for an unintelligible destination EID; reason 4 (depleted
    storage) when ``data`` exceeds ``max_bytes``.
    """
    try:
        return _decode(data, max_bytes, max_blocks, require_bundle_age)
    except DecodeError:
        raise
    except (InvalidEid, ValueError, TypeError, IndexError, OverflowError) as exc:  # pragma: no cover - safety net
        raise DecodeError(f"malformed bundle: {exc}") from exc


def _decode(data: bytes | bytearray | memoryview, max_bytes: int, max_blocks: int, require_bundle_age: bool) -> Bundle:
    if isinstance(data, bytes):
        buf = data
        mv = memoryview(data)
    else:
        mv = memoryview(data).cast("B")
        if not mv.readonly:
            mv = mv.toreadonly()
        buf = mv  # type: ignore[assignment]
    end = len(mv)
    if end > max_bytes:
        raise DecodeError(f"bundle of {end} bytes exceeds the {max_bytes}-byte limit", StatusReason.DEPLETED_STORAGE)
    if end < 2:
        raise DecodeError("truncated bundle: fewer than 2 bytes")
    first = buf[0]
    if first == 0x9F:
        definite = -1
        pos = 1
    elif first >> 5 == MAJOR_ARRAY:
        _, definite, pos = read_head(buf, 0, end)
        if definite < 2:
            raise DecodeError(f"a bundle needs a primary and a payload block, the outer array has {definite}")
    else:
        raise DecodeError(f"not a BPv7 bundle: first byte 0x{first:02x} is not a CBOR array head")

    primary, pos = _decode_primary(buf, mv, pos, end)
    blocks: list[CanonicalBlock] = []
    append = blocks.append
    remaining = definite - 1
    while True:
        if definite < 0:
            if pos >= end:
                raise DecodeError("truncated bundle: no break (0xff) after the last block")
            if buf[pos] == 0xFF:
                pos += 1
                break
        elif remaining == 0:
            break
        if len(blocks) >= max_blocks:
            raise DecodeError(f"bundle has more than {max_blocks} canonical blocks")
        block, pos = _decode_canonical(buf, mv, pos, end)
        append(block)
        remaining -= 1
    if pos != end:
        raise DecodeError(f"{end - pos} trailing bytes after the end of the bundle")
    problem = _check(primary, blocks, require_bundle_age)
    if problem is not None:
        raise DecodeError(problem[0], problem[1])
    return Bundle(primary, tuple(blocks))


def _decode_primary(buf: bytes, mv: memoryview, pos: int, end: int) -> tuple[PrimaryBlock, int]:
    start = pos
    if pos + 2 <= end and 0x88 <= buf[pos] <= 0x8B and buf[pos + 1] == BPV7_VERSION:
        n = buf[pos] - 0x80
        pos += 2
    else:
        n, pos = read_array_head(buf, pos, end, "primary block")
        if not 8 <= n <= 11:
            raise DecodeError(f"primary block must have 8 to 11 items, has {n}")
        version, pos = read_uint(buf, pos, end, "version")
        if version != BPV7_VERSION:
            raise DecodeError(f"bundle protocol version {version}, expected 7")
    flags, pos = read_uint(buf, pos, end, "bundle processing control flags")
    crc_type, pos = read_uint(buf, pos, end, "primary block CRC type")
    if crc_type > 2:
        raise DecodeError(f"primary block CRC type {crc_type} unknown (0 none, 1 CRC-16, 2 CRC-32C)")
    is_fragment = flags & 1
    expected = 8 + (2 if is_fragment else 0) + (1 if crc_type else 0)
    if n != expected:
        raise DecodeError(
            f"primary block has {n} items, expected {expected} for "
            f"{'a fragment' if is_fragment else 'a non-fragment'} with CRC type {crc_type}"
        )
    try:
        destination, pos = read_eid(buf, pos, end, "destination EID")
    except InvalidEid as exc:
        raise DecodeError(str(exc), StatusReason.DEST_EID_UNINTELLIGIBLE) from exc
    try:
        # Source and report-to are often the same bytes: decode once.
        src_start = pos
        source, pos = read_eid(buf, pos, end, "source node ID")
        src_len = pos - src_start
        if buf[pos : pos + src_len] == buf[src_start:pos]:
            report_to = source
            pos += src_len
        else:
            report_to, pos = read_eid(buf, pos, end, "report-to EID")
    except InvalidEid as exc:
        raise DecodeError(str(exc)) from exc
    if pos < end and buf[pos] == 0x82:
        pos += 1
    else:
        count, pos = read_array_head(buf, pos, end, "creation timestamp")
        if count != 2:
            raise DecodeError(f"creation timestamp must be [time, sequence], got {count} items")
    creation_ms, pos = read_uint(buf, pos, end, "creation time")
    sequence, pos = read_uint(buf, pos, end, "sequence number")
    lifetime_ms, pos = read_uint(buf, pos, end, "lifetime")
    offset: int | None = None
    total: int | None = None
    if is_fragment:
        offset, pos = read_uint(buf, pos, end, "fragment offset")
        total, pos = read_uint(buf, pos, end, "total ADU length")
    if crc_type:
        pos = _verify_crc(buf, mv, start, pos, end, crc_type, "primary block")
    primary = _new(PrimaryBlock)
    _p_flags(primary, bundle_flags(flags))
    _p_crc(primary, _CRC_TYPES[crc_type])
    _p_dst(primary, destination)
    _p_src(primary, source)
    _p_rpt(primary, report_to)
    _p_created(primary, creation_ms)
    _p_seq(primary, sequence)
    _p_life(primary, lifetime_ms)
    _p_off(primary, offset)
    _p_total(primary, total)
    _p_image(primary, mv[start:pos])
    return primary, pos


def _verify_crc(buf: bytes, mv: memoryview, start: int, pos: int, end: int, crc_type: int, what: str) -> int:
    """Check the CRC item at ``pos`` of the block starting at ``start``; returns the block's end."""
    length = 4 if crc_type == 2 else 2
    if pos < end and buf[pos] == 0x40 | length:
        value_start = pos + 1
        value_end = value_start + length
        if value_end > end:
            raise DecodeError(f"{what}: truncated CRC")
    else:
        value_start, value_end = read_string(buf, pos, end, MAJOR_BSTR, f"{what} CRC")
        if value_end - value_start != length:
            raise DecodeError(
                f"{what} CRC must be {length} bytes for CRC type {crc_type}, got {value_end - value_start}"
            )
        raise DecodeError(f"{what} CRC byte-string head is not in shortest form")
    if crc_type == 2:
        computed = _crc32c(_ZERO4, _crc32c(mv[start:value_start]))
    else:
        computed = int.from_bytes(block_crc(1, mv[start:value_start]), "big")
    if computed != int.from_bytes(buf[value_start:value_end], "big"):
        raise DecodeError(f"{what} CRC mismatch")
    return value_end


def _decode_canonical(buf: bytes, mv: memoryview, pos: int, end: int) -> tuple[CanonicalBlock, int]:
    start = pos
    initial = buf[pos] if pos + 5 < end else -1
    if (
        ((initial == 0x86 and 0 < buf[pos + 4] < 3) or (initial == 0x85 and buf[pos + 4] == 0))
        and buf[pos + 1] < 24
        and buf[pos + 2] < 24
        and buf[pos + 3] < 24
        and buf[pos + 5] != 0xD8
    ):
        # Fast path (the common case): nothing to check before the data, type, number and flags in one byte.
        block_type = buf[pos + 1]
        number = buf[pos + 2]
        flags = buf[pos + 3]
        crc_type = buf[pos + 4]
        pos += 5
    else:
        block_type, number, flags, crc_type, pos = _decode_block_head(buf, pos, end)
    data_start, data_end = read_string(buf, pos, end, MAJOR_BSTR, f"block {number} data")
    pos = data_end
    if crc_type:
        pos = _verify_crc(buf, mv, start, pos, end, crc_type, f"block {number}")
    block = _new(CanonicalBlock)
    _c_type(block, block_type)
    _c_number(block, number)
    _c_flags(block, block_flags(flags))
    _c_crc(block, _CRC_TYPES[crc_type])
    _c_data(block, mv[data_start:data_end])
    _c_image(block, mv[start:pos])
    return block, pos


def _decode_block_head(buf: bytes, pos: int, end: int) -> tuple[int, int, int, int, int]:
    """The items of the canonical block at ``pos`` before its data, checked:
    ``(block_type, number, flags, crc_type, data_pos)``, ``data_pos`` at the data's byte-string head (after
    any tag 24). Shared by ``_decode_canonical`` and the streaming decoder (``dtn.bundle.stream``)."""
    initial = buf[pos] if pos < end else -1
    if initial == 0x85 or initial == 0x86:
        n = initial - 0x80
        pos += 1
    else:
        n, pos = read_array_head(buf, pos, end, "canonical block")
        if n != 5 and n != 6:
            raise DecodeError(f"canonical block must have 5 or 6 items, has {n}")
    # Fast path: type, number, flags and CRC type each in one byte (the common case).
    if pos + 4 <= end and buf[pos] < 24 and buf[pos + 1] < 24 and buf[pos + 2] < 24 and buf[pos + 3] < 24:
        block_type = buf[pos]
        number = buf[pos + 1]
        flags = buf[pos + 2]
        crc_type = buf[pos + 3]
        pos += 4
    else:
        block_type, pos = read_uint(buf, pos, end, "block type code")
        number, pos = read_uint(buf, pos, end, "block number")
        flags, pos = read_uint(buf, pos, end, "block processing control flags")
        crc_type, pos = read_uint(buf, pos, end, "block CRC type")
    if crc_type > 2:
        raise DecodeError(f"block {number}: CRC type {crc_type} unknown (0 none, 1 CRC-16, 2 CRC-32C)")
    if (n == 6) != (crc_type != 0):
        raise DecodeError(f"block {number} has {n} items, expected {6 if crc_type else 5} for CRC type {crc_type}")
    if pos + 1 < end and buf[pos] == 0xD8 and buf[pos + 1] == 24:
        pos += 2  # tag 24 (encoded CBOR data item) around the block data: accepted, never emitted
    return block_type, number, flags, crc_type, pos


def _whole(data: bytes | bytearray | memoryview) -> tuple[bytes, memoryview]:
    mv = memoryview(data).cast("B")
    return (data if isinstance(data, bytes) else bytes(mv)), mv


def decode_primary(data: bytes | bytearray | memoryview) -> PrimaryBlock:
    """Decode a lone primary block (CRC verified) occupying all of ``data``."""
    buf, mv = _whole(data)
    try:
        primary, pos = _decode_primary(buf, mv, 0, len(buf))
    except (InvalidEid, ValueError, IndexError) as exc:  # pragma: no cover - safety net
        raise DecodeError(f"malformed primary block: {exc}") from exc
    if pos != len(buf):
        raise DecodeError(f"{len(buf) - pos} trailing bytes after the primary block")
    return primary


def decode_block(data: bytes | bytearray | memoryview) -> CanonicalBlock:
    """Decode a lone canonical block (CRC verified, typed data of blocks 6, 7 and 10 checked)."""
    buf, mv = _whole(data)
    try:
        block, pos = _decode_canonical(buf, mv, 0, len(buf))
    except (InvalidEid, ValueError, IndexError) as exc:  # pragma: no cover - safety net
        raise DecodeError(f"malformed block: {exc}") from exc
    if pos != len(buf):
        raise DecodeError(f"{len(buf) - pos} trailing bytes after the block")
    parse = _TYPED.get(block.block_type)
    if parse is not None:
        parse(block.data)
    return block


# --- the §4 rules, shared by the decoder and the encoder ---------------------------------------------------


def _check(
    primary: PrimaryBlock,
    blocks: list[CanonicalBlock] | tuple[CanonicalBlock, ...],
    require_bundle_age: bool = True,
    payload_length: int | None = None,
) -> tuple[str, StatusReason] | None:
    """The first broken RFC 9171 §4 rule as ``(message, reason)``, or None when the bundle is valid.

    ``payload_length`` stands in for the length of the payload block's data when that data is not at hand
    (the streaming codec, ``dtn.bundle.stream``)."""
    if not blocks:
        return "bundle has no payload block", StatusReason.BLOCK_UNINTELLIGIBLE
    last = blocks[-1]
    if last.block_type != _PAYLOAD:
        return "the last block is not the payload block", StatusReason.BLOCK_UNINTELLIGIBLE
    if last.number != PAYLOAD_BLOCK_NUMBER:
        return f"payload block number is {last.number}, must be 1", StatusReason.BLOCK_UNINTELLIGIBLE
    flags = int(primary.flags)
    if len(blocks) > 1:
        numbers = {PAYLOAD_BLOCK_NUMBER}
        seen_types: set[int] = set()
        for b in blocks[:-1]:
            bt = b.block_type
            if bt == _PAYLOAD:
                return "more than one payload block", StatusReason.BLOCK_UNINTELLIGIBLE
            if bt == 0:
                return f"block {b.number} has the reserved block type 0", StatusReason.BLOCK_UNINTELLIGIBLE
            if b.number in numbers or b.number == 0:
                return f"block number {b.number} is not unique (or is 0)", StatusReason.BLOCK_UNINTELLIGIBLE
            numbers.add(b.number)
            parse = _TYPED.get(bt)
            if parse is not None:
                if bt in seen_types:
                    name = BlockType(bt).name.lower().replace("_", " ")
                    return f"more than one {name} block", StatusReason.BLOCK_UNINTELLIGIBLE
                seen_types.add(bt)
                try:
                    parse(b.data)
                except DecodeError as exc:
                    return f"block {b.number}: {exc.args[0]}", StatusReason.BLOCK_UNINTELLIGIBLE
        if require_bundle_age and primary.creation_ms == 0 and _BUNDLE_AGE not in seen_types:
            return "creation time is 0 but there is no bundle age block", StatusReason.BLOCK_UNINTELLIGIBLE
    elif require_bundle_age and primary.creation_ms == 0:
        return "creation time is 0 but there is no bundle age block", StatusReason.BLOCK_UNINTELLIGIBLE
    if flags & _IS_FRAGMENT:
        offset, total = primary.fragment_offset, primary.total_adu_length
        if offset is None or total is None:
            return "fragment without fragment offset and total ADU length", StatusReason.BLOCK_UNINTELLIGIBLE
        length = len(last.data) if payload_length is None else payload_length
        if offset + length > total:
            return (
                f"fragment [{offset}, {offset + length}) exceeds the total ADU length {total}",
                StatusReason.BLOCK_UNINTELLIGIBLE,
            )
    elif primary.fragment_offset is not None or primary.total_adu_length is not None:
        return "fragment offset given but the fragment flag is clear", StatusReason.BLOCK_UNINTELLIGIBLE
    reports = flags & _REPORTS
    admin = flags & _ADMIN
    anonymous = primary.source.is_null
    if not (reports or admin or anonymous):
        return None
    if admin and reports and not flags & _ION_BIBE:
        return "administrative record requests status reports", StatusReason.BLOCK_UNINTELLIGIBLE
    if anonymous:
        if reports:
            return "anonymous bundle (null source) requests status reports", StatusReason.BLOCK_UNINTELLIGIBLE
        if not flags & _MUST_NOT_FRAGMENT:
            return "anonymous bundle (null source) must have 'must not fragment' set", StatusReason.BLOCK_UNINTELLIGIBLE
    if (anonymous or (admin and not flags & _ION_BIBE)) and any(
        b.flags & BlockFlag.REPORT_IF_UNPROCESSABLE for b in blocks
    ):
        return (
            "a block of an administrative-record or anonymous bundle requests a status report",
            StatusReason.BLOCK_UNINTELLIGIBLE,
        )
    return None


def check_bundle(bundle: Bundle, *, require_bundle_age: bool = True) -> None:
    """Raise ``DecodeError`` if ``bundle`` breaks an RFC 9171 §4 rule (the decoder's semantic checks)."""
    problem = _check(bundle.primary, bundle.blocks, require_bundle_age)
    if problem is not None:
        raise DecodeError(problem[0], problem[1])


# --- encoding ----------------------------------------------------------------------------------------------


def encode_primary(primary: PrimaryBlock) -> bytes:
    """The deterministic encoding of a primary block, with its CRC (ignores any received image)."""
    try:
        crc_type = int(primary.crc_type)
        flags = int(primary.flags)
        if not 0 <= crc_type <= 2:
            raise EncodeError(f"unknown CRC type {crc_type}")
        is_fragment = flags & 1
        offset, total = primary.fragment_offset, primary.total_adu_length
        if is_fragment:
            if offset is None or total is None:
                raise EncodeError("a fragment needs fragment_offset and total_adu_length")
            tail = encode_uint(offset) + encode_uint(total) + _CRC_HEADS[crc_type]
        elif offset is not None or total is not None:
            raise EncodeError("fragment_offset/total_adu_length given but flags lack IS_FRAGMENT")
        else:
            tail = _CRC_HEADS[crc_type]
        body = b"".join(
            (
                _PRIMARY_STARTS[(2 if is_fragment else 0) + (1 if crc_type else 0)],
                encode_uint(flags),
                _SMALL_UINTS[crc_type],
                encode_eid(primary.destination),
                encode_eid(primary.source),
                encode_eid(primary.report_to),
                b"\x82",
                encode_uint(primary.creation_ms),
                encode_uint(primary.sequence),
                encode_uint(primary.lifetime_ms),
                tail,
            )
        )
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise EncodeError(f"primary block cannot be encoded: {exc}") from exc
    if crc_type == 2:
        return body + (_crc32c(_ZERO4, _crc32c(body))).to_bytes(4, "big")
    if crc_type:
        return body + block_crc(crc_type, body)
    return body


def _canonical_parts(block: CanonicalBlock) -> list[BlockData]:
    data = block.data
    try:
        crc_type = int(block.crc_type)
        if not 0 <= crc_type <= 2:
            raise EncodeError(f"block {block.number}: unknown CRC type {crc_type}")
        bt, num, fl = block.block_type, block.number, int(block.flags)
        if bt < 24 and num < 24 and fl < 24:
            hdr = bytes((0x86 if crc_type else 0x85, bt, num, fl, crc_type)) + head(MAJOR_BSTR, len(data))
        else:
            hdr = b"".join(
                (
                    b"\x86" if crc_type else b"\x85",
                    encode_uint(bt),
                    encode_uint(num),
                    encode_uint(fl),
                    _SMALL_UINTS[crc_type],
                    head(MAJOR_BSTR, len(data)),
                )
            )
    except (ValueError, TypeError, AttributeError) as exc:
        raise EncodeError(f"block {block.number} cannot be encoded: {exc}") from exc
    if not crc_type:
        return [hdr, data]
    if crc_type == 2:
        value = _crc32c(b"\x44\x00\x00\x00\x00", _crc32c(data, _crc32c(hdr)))
        return [hdr, data, b"\x44" + value.to_bytes(4, "big")]
    return [hdr, data, b"\x42", block_crc(crc_type, hdr, data, b"\x42")]


def _canonical_head(block: CanonicalBlock, data_length: int) -> bytes:
    """The encoding of ``block`` up to its data, for ``data_length`` bytes of data (for the streaming encoder,
    ``dtn.bundle.stream``): the encoding with empty data, up to its one-byte empty byte-string head."""
    hdr = _canonical_parts(block.with_data(b""))[0]
    try:
        return bytes(hdr[:-1]) + head(MAJOR_BSTR, data_length)
    except ValueError as exc:
        raise EncodeError(f"block {block.number} cannot be encoded: {exc}") from exc


def encode_block(block: CanonicalBlock) -> bytes:
    """The deterministic encoding of a canonical block, with its CRC (ignores any received image)."""
    return b"".join(_canonical_parts(block))


def encode_bundle(bundle: Bundle) -> bytes:
    """Encode a bundle: received block images are re-emitted as they came, other blocks encoded afresh.

    Raises ``EncodeError`` when the bundle breaks a §4 rule or a field cannot be encoded. The Bundle Age
    rule (creation time 0 needs an age block) is left to the bundle's builder, so that bundles decoded
    with ``require_bundle_age=False`` re-encode.
    """
    return b"".join(_bundle_parts(bundle))


def encode_bundle_parts(bundle: Bundle) -> list[BlockData]:
    """``encode_bundle``'s bytes as a few parts, in order: a block's data (or received image) of at least
    ``OWN_PART_BYTES`` is a part of its own, the very object the bundle holds (not copied), and the parts between
    are joined (``dtn.parts.coalesce``). For writing a large bundle to a file or a socket without joining it
    first; the bundle's buffers must not change until the parts are written."""
    return coalesce(_bundle_parts(bundle), OWN_PART_BYTES)


def _bundle_parts(bundle: Bundle) -> list[BlockData]:
    primary = bundle.primary
    blocks = bundle.blocks
    problem = _check(primary, blocks, False)
    if problem is not None:
        raise EncodeError(problem[0])
    image = primary.image
    parts: list[BlockData] = [b"\x9f", image if image is not None else encode_primary(primary)]
    for block in blocks:
        image = block.image
        if image is not None:
            parts.append(image)
        else:
            parts.extend(_canonical_parts(block))
    parts.append(b"\xff")
    return parts
