"""Fragmentation and reassembly: vectors, rules, and random orders with duplicates and overlaps."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtn.bundle.blocks import BundleAge, CanonicalBlock, HopCount, PrimaryBlock, payload_block
from dtn.bundle.bundle import Bundle
from dtn.bundle.codec import decode_bundle, encode_bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import IpnEid
from dtn.bundle.flags import BlockFlag, BundleFlag
from dtn.bundle.fragment import (
    FragmentationError,
    MustNotFragment,
    Reassembler,
    ReassemblyError,
    encoded_size,
    fragment,
    reassemble,
)
from tests.bundle.strategies import bundles
from tests.vector_data import VECTORS


def renumbered(b: Bundle, sequence: int, offset: int | None = None, total: int | None = None) -> Bundle:
    """The same bundle under another creation sequence number (so another BundleId)."""
    p = b.primary
    primary = PrimaryBlock(p.flags, p.crc_type, p.destination, p.source, p.report_to, p.creation_ms, sequence,
                           p.lifetime_ms, offset, total)  # fmt: skip
    return Bundle(primary, b.blocks)


def make(payload: bytes, flags: int = 0, *extensions: CanonicalBlock) -> Bundle:
    p = PrimaryBlock(BundleFlag(flags), CrcType.CRC16_X25, IpnEid(2, 1), IpnEid(1, 1), IpnEid(1, 0),
                     789004800000, 8, 3_600_000)  # fmt: skip
    return Bundle(p, (*extensions, payload_block(payload, crc_type=CrcType.CRC32C)))


def test_vector_fragments_reassemble_to_hello_world() -> None:
    f1 = decode_bundle(VECTORS["gen-fragment-1"])
    f2 = decode_bundle(VECTORS["gen-fragment-2"])
    whole = reassemble([f2, f1])
    assert bytes(whole.payload) == b"hello world"
    assert not whole.is_fragment and whole.primary.fragment_offset is None
    assert whole.id.whole() == f1.id.whole() == whole.id
    # Splitting the whole again at the size of the first vector gives its bytes back as the first fragment.
    pieces = fragment(whole, len(VECTORS["gen-fragment-1"]))
    assert encode_bundle(pieces[0]) == VECTORS["gen-fragment-1"]
    assert all(len(encode_bundle(p)) <= len(VECTORS["gen-fragment-1"]) for p in pieces)
    assert encode_bundle(reassemble(pieces)) == encode_bundle(whole)


def test_fits_already() -> None:
    b = make(b"abc")
    assert fragment(b, encoded_size(b)) == [b]
    assert encoded_size(b) == len(encode_bundle(b))


def test_must_not_fragment_and_too_small() -> None:
    b = make(b"x" * 100, BundleFlag.MUST_NOT_FRAGMENT)
    with pytest.raises(MustNotFragment):
        fragment(b, 60)
    with pytest.raises(FragmentationError, match="no room"):
        fragment(make(b"x" * 100), 20)


def test_extension_blocks_only_in_first_unless_replicated() -> None:
    replicated = CanonicalBlock(193, 5, BlockFlag.REPLICATE_IN_EVERY_FRAGMENT, CrcType.NONE, b"\x01")
    b = make(b"y" * 300, 0, HopCount(10, 1).block(2), BundleAge(7).block(3), replicated)
    pieces = fragment(b, 120)
    assert len(pieces) > 2
    assert [x.number for x in pieces[0].blocks] == [2, 3, 5, 1]
    for p in pieces[1:]:
        assert [x.number for x in p.blocks] == [5, 1]
    for p in pieces:
        assert len(encode_bundle(p)) <= 120
        assert p.primary.total_adu_length == 300
    assert encode_bundle(reassemble(reversed(pieces))) == encode_bundle(b)


def test_fragments_of_fragments_keep_offsets_relative_to_the_adu() -> None:
    b = make(bytes(range(256)) * 4)
    first = fragment(b, 600)
    assert len(first) == 2
    second = [q for p in first for q in fragment(p, 200)]
    offsets = [p.primary.fragment_offset for p in second]
    assert offsets == sorted(offsets) and offsets[0] == 0
    for p in second:
        off = p.primary.fragment_offset or 0
        assert bytes(p.payload) == bytes(b.payload)[off : off + len(p.payload)]
        assert p.primary.total_adu_length == 1024
    mixed = second + first[:1]  # overlapping extents from two fragmentations
    random.Random(3).shuffle(mixed)
    assert encode_bundle(reassemble(mixed)) == encode_bundle(b)


def test_reassembler_returns_each_bundle_once_and_reports_missing() -> None:
    b = make(b"z" * 500)
    pieces = [decode_bundle(encode_bundle(p)) for p in fragment(b, 150)]
    r = Reassembler()
    assert r.add(pieces[0]) is None
    key = pieces[0].id.whole()
    assert r.pending() == [key]
    assert r.missing(key) and r.missing(key)[0][0] == len(pieces[0].payload)
    results = [r.add(p) for p in pieces[1:]]
    assert results[:-1] == [None] * (len(pieces) - 2)
    assert results[-1] is not None and encode_bundle(results[-1]) == encode_bundle(b)
    assert r.pending() == []
    assert r.add(b) is b  # not a fragment
    with pytest.raises(ReassemblyError, match="incomplete"):
        reassemble(pieces[1:])
    other = make(b"q" * 500)
    other = renumbered(other, 9)
    with pytest.raises(ReassemblyError, match="different bundles"):
        reassemble([*pieces, *fragment(other, 150)])


def test_reassembler_bounds() -> None:
    b = make(b"z" * 500)
    pieces = fragment(b, 150)
    with pytest.raises(ReassemblyError, match="limit"):
        Reassembler(max_adu_bytes=100).add(pieces[0])
    r = Reassembler(max_pending=1)
    r.add(pieces[0])
    other = fragment(make(b"w" * 500, BundleFlag.STATUS_TIME_REQUESTED), 150)[0]
    other = renumbered(other, 99, 0, 500)
    r.add(other)
    assert r.pending() == [other.id.whole()]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bundles(fragment=False, min_payload=60, max_payload=600, anonymous=False), st.integers(0, 200), st.randoms())
def test_fragment_reassemble_round_trip(bundle: Bundle, slack: int, rnd: random.Random) -> None:
    if bundle.primary.flags & BundleFlag.MUST_NOT_FRAGMENT:
        with pytest.raises(MustNotFragment):
            fragment(bundle, encoded_size(bundle) - 1)
        return
    original = encode_bundle(bundle)
    fixed = encoded_size(bundle) - len(bundle.payload)
    limit = max(fixed + 30, len(original) - 1 - slack)
    assert limit < len(original)
    try:
        pieces = fragment(bundle, limit)
    except FragmentationError:
        return  # the replicated blocks leave no room at this size
    assert len(pieces) >= 2
    wire = [encode_bundle(p) for p in pieces]
    assert all(len(w) <= limit for w in wire)
    decoded = [decode_bundle(w) for w in wire]
    received = decoded + rnd.sample(decoded, k=min(2, len(decoded)))  # duplicates
    rnd.shuffle(received)
    assert encode_bundle(reassemble(received)) == original
