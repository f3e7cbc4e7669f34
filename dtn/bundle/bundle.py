"""A bundle (RFC 9171 §4.1): the primary block and the canonical blocks, payload block last.

``Bundle`` is an immutable value. The forwarding helpers (``with_previous_node``, ``with_hop_count_incremented``,
``with_bundle_age_added``) return a new bundle in which only the touched block loses its received image (so
only its CRC is recomputed on encode); the primary block and every other block keep their exact bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dtn.bundle.blocks import (
    PAYLOAD_BLOCK_NUMBER,
    BlockData,
    BundleAge,
    CanonicalBlock,
    HopCount,
    PreviousNode,
    PrimaryBlock,
)
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import U64_MAX, Eid
from dtn.bundle.flags import NO_BLOCK_FLAGS, BlockFlag, BlockType
from dtn.bundle.ids import BundleId


@dataclass(frozen=True, slots=True)
class Bundle:
    """A bundle: ``blocks`` are the canonical blocks in wire order, the payload block last."""

    primary: PrimaryBlock
    blocks: tuple[CanonicalBlock, ...]

    # --- identity and content ---------------------------------------------------------------------------

    @property
    def id(self) -> BundleId:
        p = self.primary
        if p.fragment_offset is not None:
            return BundleId(str(p.source), p.creation_ms, p.sequence, p.fragment_offset, len(self.payload))
        return BundleId(str(p.source), p.creation_ms, p.sequence)

    @property
    def payload_block(self) -> CanonicalBlock:
        return self.blocks[-1]

    @property
    def payload(self) -> BlockData:
        """The payload (the ADU, or this fragment's part of it); a memoryview into the input when decoded."""
        return self.blocks[-1].data

    @property
    def is_fragment(self) -> bool:
        return self.primary.is_fragment

    @property
    def is_admin_record(self) -> bool:
        return self.primary.is_admin_record

    @property
    def extension_blocks(self) -> tuple[CanonicalBlock, ...]:
        return self.blocks[:-1]

    def block(self, block_type: int) -> CanonicalBlock | None:
        """The first block of ``block_type`` (e.g. ``BlockType.HOP_COUNT``), or None."""
        for b in self.blocks:
            if b.block_type == block_type:
                return b
        return None

    def block_by_number(self, number: int) -> CanonicalBlock | None:
        for b in self.blocks:
            if b.number == number:
                return b
        return None

    @property
    def previous_node(self) -> Eid | None:
        b = self.block(BlockType.PREVIOUS_NODE)
        return None if b is None else PreviousNode.from_data(b.data).node

    @property
    def bundle_age_ms(self) -> int | None:
        b = self.block(BlockType.BUNDLE_AGE)
        return None if b is None else BundleAge.from_data(b.data).age_ms

    @property
    def hop_count(self) -> HopCount | None:
        b = self.block(BlockType.HOP_COUNT)
        return None if b is None else HopCount.from_data(b.data)

    def next_block_number(self) -> int:
        """The smallest unused block number >= 2 above every number in use."""
        return max((b.number for b in self.blocks), default=PAYLOAD_BLOCK_NUMBER) + 1

    # --- copy-with helpers for forwarding (RFC 9171 §5.4 step 4) ------------------------------------------

    def with_block_replaced(self, new: CanonicalBlock) -> Bundle:
        """Replace the block with ``new.number`` (keeping its position)."""
        blocks = tuple(new if b.number == new.number else b for b in self.blocks)
        return Bundle(self.primary, blocks)

    def with_extension_block(self, new: CanonicalBlock) -> Bundle:
        """Insert an extension block just before the payload block."""
        return Bundle(self.primary, (*self.blocks[:-1], new, self.blocks[-1]))

    def without_block(self, number: int) -> Bundle:
        if number == PAYLOAD_BLOCK_NUMBER:
            raise ValueError("the payload block cannot be removed")
        return Bundle(self.primary, tuple(b for b in self.blocks if b.number != number))

    def with_previous_node(
        self,
        node: Eid | None,
        *,
        flags: BlockFlag = NO_BLOCK_FLAGS,
        crc_type: CrcType = CrcType.NONE,
    ) -> Bundle:
        """Remove any Previous Node block and, unless ``node`` is None, insert one naming ``node``.

        The new block keeps the old block's number and position when there was one.
        """
        old = self.block(BlockType.PREVIOUS_NODE)
        if node is None:
            return self if old is None else self.without_block(old.number)
        if old is not None:
            return self.with_block_replaced(PreviousNode(node).block(old.number, flags=flags, crc_type=crc_type))
        new = PreviousNode(node).block(self.next_block_number(), flags=flags, crc_type=crc_type)
        return self.with_extension_block(new)

    def with_hop_count_incremented(self) -> Bundle:
        """Hop count + 1 (unchanged bundle when it has no Hop Count block). Check ``hop_count.exceeded``."""
        old = self.block(BlockType.HOP_COUNT)
        if old is None:
            return self
        return self.with_block_replaced(old.with_data(HopCount.from_data(old.data).incremented().to_data()))

    def with_bundle_age_added(self, elapsed_ms: int) -> Bundle:
        """Add ``elapsed_ms`` to the Bundle Age block (unchanged bundle when it has none); saturates at 2**64-1."""
        if elapsed_ms < 0:
            raise ValueError(f"elapsed time must be >= 0, got {elapsed_ms}")
        old = self.block(BlockType.BUNDLE_AGE)
        if old is None:
            return self
        age = min(BundleAge.from_data(old.data).age_ms + elapsed_ms, U64_MAX)  # saturates, never overflows
        return self.with_block_replaced(old.with_data(BundleAge(age).to_data()))

    def with_hop_count(
        self, limit: int, count: int = 0, *, flags: BlockFlag = NO_BLOCK_FLAGS, crc_type: CrcType = CrcType.NONE
    ) -> Bundle:
        """Set (replace or add) the Hop Count block."""
        old = self.block(BlockType.HOP_COUNT)
        if old is not None:
            return self.with_block_replaced(HopCount(limit, count).block(old.number, flags=flags, crc_type=crc_type))
        new = HopCount(limit, count).block(self.next_block_number(), flags=flags, crc_type=crc_type)
        return self.with_extension_block(new)

    def with_bundle_age(
        self, age_ms: int, *, flags: BlockFlag = NO_BLOCK_FLAGS, crc_type: CrcType = CrcType.NONE
    ) -> Bundle:
        """Set (replace or add) the Bundle Age block."""
        old = self.block(BlockType.BUNDLE_AGE)
        if old is not None:
            return self.with_block_replaced(BundleAge(age_ms).block(old.number, flags=flags, crc_type=crc_type))
        new = BundleAge(age_ms).block(self.next_block_number(), flags=flags, crc_type=crc_type)
        return self.with_extension_block(new)
