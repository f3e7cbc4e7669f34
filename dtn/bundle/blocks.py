"""The blocks of a bundle (RFC 9171 §4.3): the primary block, canonical blocks and the typed data of the
three RFC 9171 extension blocks (Previous Node, Bundle Age, Hop Count).

Blocks are immutable values. A decoded block remembers the exact bytes it arrived as in ``image`` (not
part of equality): the encoder re-emits them unchanged, so CRCs and BPSec signatures over those bytes stay
valid and the primary block is never re-encoded. A block built (or ``dataclasses.replace``-d) locally has
no image and is encoded deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dtn.bundle.cbor import (
    MAJOR_ARRAY,
    encode_uint,
    read_array_head,
    read_uint,
)
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import U64_MAX, Eid, encode_eid, read_eid
from dtn.bundle.flags import NO_BLOCK_FLAGS, BlockFlag, BlockType, BundleFlag
from dtn.errors import DecodeError, InvalidEid

BlockData = bytes | memoryview

#: Block number of the payload block (RFC 9171 §4.3.3) and of the implicit primary block.
PAYLOAD_BLOCK_NUMBER = 1
PRIMARY_BLOCK_NUMBER = 0


@dataclass(frozen=True, slots=True)
class PrimaryBlock:
    """The primary block (RFC 9171 §4.3.1). ``fragment_offset``/``total_adu_length`` are set iff fragment."""

    flags: BundleFlag
    crc_type: CrcType
    destination: Eid
    source: Eid
    report_to: Eid
    creation_ms: int
    sequence: int
    lifetime_ms: int
    fragment_offset: int | None = None
    total_adu_length: int | None = None
    #: The exact received encoding of this block, or None when built locally.
    image: BlockData | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def is_fragment(self) -> bool:
        return bool(self.flags & BundleFlag.IS_FRAGMENT)

    @property
    def is_admin_record(self) -> bool:
        return bool(self.flags & BundleFlag.ADMIN_RECORD)


@dataclass(frozen=True, slots=True)
class CanonicalBlock:
    """A canonical block (RFC 9171 §4.3.2); ``data`` is the block-type-specific data (the bstr content)."""

    block_type: int
    number: int
    flags: BlockFlag
    crc_type: CrcType
    data: BlockData
    #: The exact received encoding of this block, or None when built locally.
    image: BlockData | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def is_payload(self) -> bool:
        return self.block_type == BlockType.PAYLOAD

    @property
    def is_known_type(self) -> bool:
        """True for the block types this package processes (payload, 6, 7, 10) or carries knowingly (BPSec)."""
        return self.block_type in _KNOWN

    def with_flags(self, flags: BlockFlag) -> CanonicalBlock:
        """The same block with other processing flags (and therefore a recomputed CRC on encode)."""
        return CanonicalBlock(self.block_type, self.number, flags, self.crc_type, self.data)

    def with_data(self, data: BlockData) -> CanonicalBlock:
        """The same block with new block-type-specific data (and therefore a recomputed CRC on encode)."""
        return CanonicalBlock(self.block_type, self.number, self.flags, self.crc_type, data)


_KNOWN = frozenset(int(t) for t in BlockType)


def payload_block(
    data: BlockData, *, flags: BlockFlag = NO_BLOCK_FLAGS, crc_type: CrcType = CrcType.NONE
) -> CanonicalBlock:
    return CanonicalBlock(BlockType.PAYLOAD, PAYLOAD_BLOCK_NUMBER, flags, crc_type, data)


# --- typed block-type-specific data ------------------------------------------------------------------------


def _exactly_one_item_end(pos: int, end: int, what: str) -> None:
    if pos != end:
        raise DecodeError(f"{what}: {end - pos} trailing bytes after the CBOR item in the block data")


@dataclass(frozen=True, slots=True)
class PreviousNode:
    """Previous Node block data (RFC 9171 §4.4.1): the node ID of the forwarder."""

    node: Eid

    def to_data(self) -> bytes:
        return encode_eid(self.node)

    @classmethod
    def from_data(cls, data: BlockData) -> PreviousNode:
        buf = data if isinstance(data, bytes) else bytes(data)
        try:
            eid, pos = read_eid(buf, 0, len(buf), "previous node block")
        except InvalidEid as exc:
            raise DecodeError(f"previous node block: {exc}") from exc
        _exactly_one_item_end(pos, len(buf), "previous node block")
        return cls(eid)

    def block(
        self, number: int, *, flags: BlockFlag = NO_BLOCK_FLAGS, crc_type: CrcType = CrcType.NONE
    ) -> CanonicalBlock:
        return CanonicalBlock(BlockType.PREVIOUS_NODE, number, flags, crc_type, self.to_data())


@dataclass(frozen=True, slots=True)
class BundleAge:
    """Bundle Age block data (RFC 9171 §4.4.2): milliseconds since creation, as of the last forwarding."""

    age_ms: int

    def to_data(self) -> bytes:
        return encode_uint(self.age_ms)

    @classmethod
    def from_data(cls, data: BlockData) -> BundleAge:
        buf = data if isinstance(data, bytes) else bytes(data)
        age, pos = read_uint(buf, 0, len(buf), "bundle age block")
        _exactly_one_item_end(pos, len(buf), "bundle age block")
        return cls(age)

    def block(
        self, number: int, *, flags: BlockFlag = NO_BLOCK_FLAGS, crc_type: CrcType = CrcType.NONE
    ) -> CanonicalBlock:
        return CanonicalBlock(BlockType.BUNDLE_AGE, number, flags, crc_type, self.to_data())


@dataclass(frozen=True, slots=True)
class HopCount:
    """Hop Count block data (RFC 9171 §4.4.3): ``[hop_limit, hop_count]``."""

    limit: int
    count: int

    @property
    def exceeded(self) -> bool:
        """True when the bundle must be deleted with reason 9 (hop limit exceeded)."""
        return self.count > self.limit

    def incremented(self) -> HopCount:
        """Count + 1, saturating at 2**64 - 1 (far past any limit: the bundle is deleted anyway)."""
        return HopCount(self.limit, min(self.count + 1, U64_MAX))

    def to_data(self) -> bytes:
        return bytes((MAJOR_ARRAY << 5 | 2,)) + encode_uint(self.limit) + encode_uint(self.count)

    @classmethod
    def from_data(cls, data: BlockData) -> HopCount:
        buf = data if isinstance(data, bytes) else bytes(data)
        end = len(buf)
        n, pos = read_array_head(buf, 0, end, "hop count block")
        if n != 2:
            raise DecodeError(f"hop count block: expected [hop_limit, hop_count], got {n} items")
        limit, pos = read_uint(buf, pos, end, "hop limit")
        count, pos = read_uint(buf, pos, end, "hop count")
        _exactly_one_item_end(pos, end, "hop count block")
        if not 1 <= limit <= 255:
            raise DecodeError(f"hop count block: hop limit must be 1..255, got {limit}")
        return cls(limit, count)

    def block(
        self, number: int, *, flags: BlockFlag = NO_BLOCK_FLAGS, crc_type: CrcType = CrcType.NONE
    ) -> CanonicalBlock:
        return CanonicalBlock(BlockType.HOP_COUNT, number, flags, crc_type, self.to_data())
