"""Hypothesis strategies for EIDs, blocks and bundles, for every test that needs valid bundles.

``bundles()`` draws bundles that obey every RFC 9171 §4 rule the decoder checks, so that
``decode_bundle(encode_bundle(b)) == b``; its keyword arguments narrow what is drawn (admin records, fragments,
CRC types, payload sizes).
"""

from __future__ import annotations

import dataclasses

from hypothesis import strategies as st

from dtn.bundle.blocks import BundleAge, CanonicalBlock, HopCount, PreviousNode, PrimaryBlock
from dtn.bundle.bundle import Bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import NULL_EID, DtnEid, Eid, IpnEid
from dtn.bundle.flags import REPORT_REQUEST_FLAGS, BlockFlag, BlockType, BundleFlag

U32 = 0xFFFF_FFFF
U64 = (1 << 64) - 1

crc_types = st.sampled_from(list(CrcType))

# Numbers that exercise every CBOR head length.
_numbers = st.one_of(st.integers(0, 23), st.integers(24, 255), st.integers(256, 0xFFFF), st.integers(0x10000, U32))
uints = st.one_of(_numbers, st.integers(U32 + 1, U64))

_node_name = st.from_regex(r"[a-z0-9][a-z0-9.\-]{0,15}", fullmatch=True)
_demux = st.from_regex(r"[\x21-\x7e]{0,20}", fullmatch=True)


def ipn_eids(*, allocator: bool = True) -> st.SearchStrategy[IpnEid]:
    """ipn EIDs incl. RFC 9758 allocators (3-element input form) and LocalNode; never the null EID."""
    alloc = st.one_of(st.just(0), _numbers) if allocator else st.just(0)
    return st.builds(IpnEid, _numbers, _numbers, alloc).filter(lambda e: not e.is_null)


def dtn_eids() -> st.SearchStrategy[DtnEid]:
    """``dtn://node/demux`` EIDs (not dtn:none)."""
    return st.builds(lambda n, d: DtnEid(f"//{n}/{d}"), _node_name, _demux)


def eids() -> st.SearchStrategy[Eid]:
    """Any non-null EID."""
    return st.one_of(ipn_eids(), dtn_eids())


def node_ids() -> st.SearchStrategy[Eid]:
    return st.one_of(
        ipn_eids().map(lambda e: e.node_id()),
        _node_name.map(lambda n: DtnEid(f"//{n}/")),
    )


def bundle_flag_words(*, admin: bool | None = None, fragment: bool = False) -> st.SearchStrategy[BundleFlag]:
    """Flag words incl. reserved/unassigned bits, never IS_FRAGMENT unless ``fragment``."""
    base = st.integers(0, (1 << 21) - 1) | st.integers(0, U64)

    def shape(value: int) -> BundleFlag:
        value &= ~int(BundleFlag.IS_FRAGMENT | BundleFlag.ADMIN_RECORD)
        if fragment:
            value |= int(BundleFlag.IS_FRAGMENT)
            value &= ~int(BundleFlag.MUST_NOT_FRAGMENT)
        return BundleFlag(value)

    words = base.map(shape)
    if admin is None:
        return st.one_of(words, words.map(lambda f: _as_admin(f)))
    return words.map(_as_admin) if admin else words


def _as_admin(flags: BundleFlag) -> BundleFlag:
    value = (int(flags) | int(BundleFlag.ADMIN_RECORD)) & ~int(BundleFlag.ION_BIBE)
    return BundleFlag(value & ~int(REPORT_REQUEST_FLAGS))


block_flag_words = st.integers(0, 0xFF).map(BlockFlag) | st.integers(0, U64).map(BlockFlag)


@st.composite
def primary_blocks(
    draw: st.DrawFn,
    *,
    admin: bool | None = None,
    fragment: bool | None = False,
    crc: st.SearchStrategy[CrcType] = crc_types,
    anonymous: bool | None = None,
    adu_length: int | None = None,
) -> PrimaryBlock:
    is_fragment = draw(st.booleans()) if fragment is None else fragment
    flags = draw(bundle_flag_words(admin=admin, fragment=is_fragment))
    is_anonymous = draw(st.booleans()) if anonymous is None else anonymous
    source: Eid = draw(eids())
    if is_anonymous:
        source = draw(st.sampled_from([NULL_EID, IpnEid(0, 0)]))
        flags = BundleFlag((int(flags) | int(BundleFlag.MUST_NOT_FRAGMENT)) & ~int(REPORT_REQUEST_FLAGS))
        if is_fragment:  # an anonymous bundle must not be fragmented, so it never is one
            flags = BundleFlag(int(flags) & ~int(BundleFlag.IS_FRAGMENT))
            is_fragment = False
    offset = total = None
    if is_fragment:
        total = draw(st.integers(1, U64)) if adu_length is None else adu_length
        offset = draw(st.integers(0, total - 1))
    return PrimaryBlock(
        flags,
        draw(crc),
        draw(eids()),
        source,
        draw(st.one_of(eids(), st.just(NULL_EID))),
        draw(uints),
        draw(uints),
        draw(uints),
        offset,
        total,
    )


@st.composite
def extension_blocks(draw: st.DrawFn, *, number: int, block_type: int | None = None) -> CanonicalBlock:
    """One extension block numbered ``number``: Previous Node, Bundle Age, Hop Count or an opaque type."""
    kind = draw(
        st.sampled_from([BlockType.PREVIOUS_NODE, BlockType.BUNDLE_AGE, BlockType.HOP_COUNT, None])
        if block_type is None
        else st.just(block_type)
    )
    flags = draw(block_flag_words)
    crc = draw(crc_types)
    if kind == BlockType.PREVIOUS_NODE:
        return PreviousNode(draw(node_ids())).block(number, flags=flags, crc_type=crc)
    if kind == BlockType.BUNDLE_AGE:
        return BundleAge(draw(uints)).block(number, flags=flags, crc_type=crc)
    if kind == BlockType.HOP_COUNT:
        return HopCount(draw(st.integers(1, 255)), draw(uints)).block(number, flags=flags, crc_type=crc)
    opaque_type = draw(st.sampled_from([BlockType.BIB, BlockType.BCB, 13, 192, 193, 255, 1000]))
    data = draw(st.binary(max_size=40))
    return CanonicalBlock(int(opaque_type), number, flags, crc, data)


@st.composite
def bundles(
    draw: st.DrawFn,
    *,
    admin: bool | None = None,
    fragment: bool | None = False,
    max_payload: int = 300,
    min_payload: int = 0,
    max_extensions: int = 4,
    crc: st.SearchStrategy[CrcType] = crc_types,
    anonymous: bool | None = None,
) -> Bundle:
    """Valid bundles: every block kind, EID kind, CRC type, flag word; payload block last (#1)."""
    payload = draw(st.binary(min_size=min_payload, max_size=max_payload))
    is_fragment = draw(st.booleans()) if fragment is None else fragment
    adu_length = None
    primary = draw(
        primary_blocks(admin=admin, fragment=is_fragment, crc=crc, anonymous=anonymous, adu_length=adu_length)
    )
    if primary.fragment_offset is not None and primary.total_adu_length is not None:
        # Make the fragment's extent fit in the ADU.
        total = max(primary.total_adu_length, len(payload))
        offset = min(primary.fragment_offset, total - len(payload))
        primary = dataclasses.replace(primary, fragment_offset=offset, total_adu_length=total)
    numbers = draw(st.lists(st.integers(2, 2**20), unique=True, max_size=max_extensions))
    kinds_used: set[int] = set()
    blocks: list[CanonicalBlock] = []
    for number in numbers:
        block = draw(extension_blocks(number=number))
        if block.block_type in (6, 7, 10):
            if block.block_type in kinds_used:
                continue
            kinds_used.add(block.block_type)
        blocks.append(block)
    if primary.creation_ms == 0 and 7 not in kinds_used:
        blocks.append(draw(extension_blocks(number=max(numbers, default=1) + 1, block_type=BlockType.BUNDLE_AGE)))
    if primary.is_admin_record or primary.source.is_null:
        # RFC 9171 §4.2.4: no "report if unprocessable" in admin-record or anonymous bundles.
        clear = ~int(BlockFlag.REPORT_IF_UNPROCESSABLE)
        blocks = [b.with_flags(BlockFlag(int(b.flags) & clear)) for b in blocks]
    payload_flags = draw(block_flag_words)
    if primary.is_admin_record or primary.source.is_null:
        payload_flags = BlockFlag(int(payload_flags) & ~int(BlockFlag.REPORT_IF_UNPROCESSABLE))
    payload_block = CanonicalBlock(BlockType.PAYLOAD, 1, payload_flags, draw(crc), payload)
    return Bundle(primary, (*blocks, payload_block))
