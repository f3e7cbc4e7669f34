"""Each RFC 9171 §4 rule the decoder enforces, broken one at a time, and the encoder's own checks."""

from __future__ import annotations

import pytest

from dtn.bundle.blocks import BundleAge, CanonicalBlock, HopCount, PreviousNode, PrimaryBlock, payload_block
from dtn.bundle.bundle import Bundle
from dtn.bundle.codec import decode_bundle, encode_block, encode_bundle, encode_primary
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import NULL_EID, IpnEid
from dtn.bundle.flags import BlockFlag, BlockType, BundleFlag
from dtn.bundle.reasons import StatusReason
from dtn.errors import DecodeError, EncodeError

T0 = 789004800000


def primary(flags: int = 0, *, source: object = None, created: int = T0, crc: CrcType = CrcType.CRC32C,
            offset: int | None = None, total: int | None = None) -> PrimaryBlock:  # fmt: skip
    return PrimaryBlock(
        BundleFlag(flags), crc, IpnEid(2, 1), source if source is not None else IpnEid(1, 1),  # type: ignore[arg-type]
        IpnEid(1, 0), created, 0, 3_600_000, offset, total,
    )  # fmt: skip


def raw(p: PrimaryBlock, *blocks: CanonicalBlock, outer: bytes = b"\x9f", end: bytes = b"\xff") -> bytes:
    """Encode without the encoder's checks, to build invalid bundles."""
    return outer + encode_primary(p) + b"".join(encode_block(b) for b in blocks) + end


PAYLOAD = payload_block(b"hello", crc_type=CrcType.CRC16_X25)


def rejected(data: bytes, match: str, reason: StatusReason = StatusReason.BLOCK_UNINTELLIGIBLE) -> None:
    with pytest.raises(DecodeError, match=match) as info:
        decode_bundle(data)
    assert info.value.reason == reason


def test_valid_baseline() -> None:
    b = decode_bundle(raw(primary(), PAYLOAD))
    assert bytes(b.payload) == b"hello"


def test_payload_must_be_last_numbered_1_and_unique() -> None:
    age = BundleAge(5).block(2)
    rejected(raw(primary(), PAYLOAD, age), "last block is not the payload")
    rejected(raw(primary(), CanonicalBlock(1, 3, BlockFlag(0), CrcType.NONE, b"x")), "payload block number")
    rejected(raw(primary(), CanonicalBlock(1, 2, BlockFlag(0), CrcType.NONE, b"x"), PAYLOAD), "more than one payload")
    rejected(
        raw(primary()),
        "no payload block|a primary and a payload",
    )
    rejected(b"\x81" + encode_primary(primary()), "needs a primary and a payload")


def test_block_numbers_unique_and_not_zero() -> None:
    rejected(raw(primary(), BundleAge(1).block(2), HopCount(3, 0).block(2), PAYLOAD), "not unique")
    rejected(raw(primary(), BundleAge(1).block(0), PAYLOAD), "not unique")
    rejected(raw(primary(), CanonicalBlock(192, 1, BlockFlag(0), CrcType.NONE, b""), PAYLOAD), "not unique")


def test_at_most_one_of_each_rfc9171_extension_block() -> None:
    for a, b in [
        (BundleAge(1).block(2), BundleAge(2).block(3)),
        (HopCount(3, 0).block(2), HopCount(3, 1).block(3)),
        (PreviousNode(IpnEid(4, 0)).block(2), PreviousNode(IpnEid(5, 0)).block(3)),
    ]:
        rejected(raw(primary(), a, b, PAYLOAD), "more than one")


def test_bundle_age_required_when_creation_time_is_zero() -> None:
    rejected(raw(primary(created=0), PAYLOAD), "bundle age")
    rejected(raw(primary(created=0), HopCount(3, 0).block(2), PAYLOAD), "bundle age")
    assert decode_bundle(raw(primary(created=0), BundleAge(0).block(2), PAYLOAD)).bundle_age_ms == 0
    assert decode_bundle(raw(primary(created=0), PAYLOAD), require_bundle_age=False)


def test_malformed_typed_block_data() -> None:
    rejected(raw(primary(), CanonicalBlock(7, 2, BlockFlag(0), CrcType.NONE, b"\x41\x00"), PAYLOAD), "unsigned")
    rejected(raw(primary(), CanonicalBlock(7, 2, BlockFlag(0), CrcType.NONE, b"\x01\x02"), PAYLOAD), "trailing")
    rejected(raw(primary(), CanonicalBlock(10, 2, BlockFlag(0), CrcType.NONE, b"\x83\x01\x02\x03"), PAYLOAD), "hop")
    rejected(raw(primary(), HopCount(0, 0).block(2), PAYLOAD), "hop limit")
    rejected(raw(primary(), HopCount(256, 0).block(2), PAYLOAD), "hop limit")
    rejected(raw(primary(), CanonicalBlock(6, 2, BlockFlag(0), CrcType.NONE, b"\x82\x07\x00"), PAYLOAD), "scheme")
    rejected(raw(primary(), CanonicalBlock(0, 2, BlockFlag(0), CrcType.NONE, b""), PAYLOAD), "reserved block type")


def test_hop_count_exceeded_is_not_a_decode_error() -> None:
    b = decode_bundle(raw(primary(), HopCount(2, 3).block(2), PAYLOAD))
    assert b.hop_count is not None and b.hop_count.exceeded


def test_crc_values_and_lengths_are_checked() -> None:
    data = bytearray(raw(primary(), PAYLOAD))
    data[-2] ^= 0x40  # payload CRC
    rejected(bytes(data), "block 1 CRC mismatch")
    data = bytearray(raw(primary(), PAYLOAD))
    data[5] ^= 0x01  # inside the primary block
    with pytest.raises(DecodeError):
        decode_bundle(bytes(data))
    good = raw(primary(), PAYLOAD)
    block = encode_block(PAYLOAD)
    assert block[-3] == 0x42
    wrong_len = good.replace(block, block[:-3] + b"\x44\x00" + block[-2:])
    rejected(wrong_len, "CRC must be 2 bytes")
    rejected(good.replace(block, block.replace(b"\x86\x01\x01\x00\x01", b"\x86\x01\x01\x00\x03")), "CRC type 3")
    rejected(good.replace(block, block.replace(b"\x86\x01\x01\x00\x01", b"\x86\x01\x01\x00\x00")), "5 or 6|6 items")


def test_primary_item_counts_and_version() -> None:
    p = encode_primary(primary(crc=CrcType.NONE))
    assert p[0] == 0x88
    rejected(b"\x9f" + b"\x89" + p[1:] + b"\x00" + encode_block(PAYLOAD) + b"\xff", "9 items, expected 8")
    rejected(b"\x9f" + b"\x88\x06" + p[2:] + encode_block(PAYLOAD) + b"\xff", "version 6")
    frag = encode_primary(primary(crc=CrcType.NONE) if False else primary(1, crc=CrcType.NONE, offset=0, total=9))
    assert frag[0] == 0x8A
    rejected(b"\x9f" + b"\x88" + frag[1:] + encode_block(PAYLOAD) + b"\xff", "expected 10")
    rejected(raw(primary(1, crc=CrcType.NONE, offset=7, total=9), PAYLOAD), "exceeds the total ADU length")
    rejected(b"\x9f\x87" + p[1:] + b"\xff", "8 to 11 items")


def test_eid_schemes() -> None:
    p = encode_primary(primary(crc=CrcType.NONE))
    dst = b"\x82\x02\x82\x02\x01"
    assert dst in p
    rejected(b"\x9f" + p.replace(dst, b"\x82\x09\x82\x02\x01", 1) + encode_block(PAYLOAD) + b"\xff",
             "scheme code 9", StatusReason.DEST_EID_UNINTELLIGIBLE)  # fmt: skip
    rejected(b"\x9f" + p.replace(dst, b"\x82\x01\x67//a b/x", 1) + encode_block(PAYLOAD) + b"\xff",
             "dtn EID", StatusReason.DEST_EID_UNINTELLIGIBLE)  # fmt: skip
    src = b"\x82\x02\x82\x01\x01"
    rejected(b"\x9f" + p.replace(src, b"\x82\x02\x81\x01\x01", 1) + encode_block(PAYLOAD) + b"\xff", "2 or 3")


def test_admin_record_must_not_request_reports_except_ion_bibe() -> None:
    flags = BundleFlag.ADMIN_RECORD | BundleFlag.REPORT_DELIVERY
    rejected(raw(primary(flags), PAYLOAD), "administrative record requests status reports")
    assert decode_bundle(raw(primary(flags | BundleFlag.ION_BIBE), PAYLOAD)).is_admin_record
    reporting = payload_block(b"x", flags=BlockFlag.REPORT_IF_UNPROCESSABLE)
    rejected(raw(primary(BundleFlag.ADMIN_RECORD), reporting), "requests a status report")


def test_anonymous_source_rules() -> None:
    for null in (NULL_EID, IpnEid(0, 0)):
        rejected(raw(primary(0, source=null), PAYLOAD), "must not fragment")
        rejected(raw(primary(BundleFlag.MUST_NOT_FRAGMENT | BundleFlag.REPORT_RECEPTION, source=null), PAYLOAD),
                 "requests status reports")  # fmt: skip
        assert decode_bundle(raw(primary(BundleFlag.MUST_NOT_FRAGMENT, source=null), PAYLOAD)).primary.source.is_null


def test_cbor_strictness() -> None:
    good = raw(primary(), PAYLOAD)
    block = encode_block(payload_block(b"hello"))
    base = raw(primary(), payload_block(b"hello"))
    assert base.endswith(block + b"\xff")
    # Indefinite-length byte string as block data.
    rejected(base.replace(block, b"\x85\x01\x01\x00\x00\x5f\x45hello\xff"), "indefinite-length string")
    # Other tags than 24.
    rejected(base.replace(block, b"\x85\x01\x01\x00\x00\xd8\x19\x45hello"), "expected a byte string")
    # Indefinite-length block array.
    rejected(base.replace(block, b"\x9f\x01\x01\x00\x00\x45hello\xff"), "indefinite-length array")
    # Not an array at all / trailing bytes / missing break.
    rejected(b"\xa1\x01\x02", "not a BPv7 bundle")
    rejected(good + b"\x00", "trailing bytes")
    rejected(good[:-1], "no break")
    # Reserved additional information.
    rejected(base.replace(block, b"\x85\x1c"), "malformed CBOR head")


def test_non_shortest_integers_are_accepted_and_kept_exactly() -> None:
    block = encode_block(payload_block(b"hello"))
    base = raw(primary(crc=CrcType.NONE), payload_block(b"hello"))
    lenient = base.replace(block, b"\x85\x18\x01\x01\x00\x00\x45hello")
    b = decode_bundle(lenient)
    assert b.payload_block.block_type == 1
    assert encode_bundle(b) == lenient


def test_size_and_block_caps() -> None:
    data = raw(primary(), BundleAge(1).block(2), HopCount(4, 0).block(3), PAYLOAD)
    with pytest.raises(DecodeError) as info:
        decode_bundle(data, max_bytes=len(data) - 1)
    assert info.value.reason == StatusReason.DEPLETED_STORAGE
    rejected_blocks = pytest.raises(DecodeError, match="more than 2 canonical blocks")
    with rejected_blocks:
        decode_bundle(data, max_blocks=2)
    assert decode_bundle(data, max_bytes=len(data), max_blocks=3)
    # A declared string length far beyond the input is refused before anything is allocated.
    huge = b"\x9f" + encode_primary(primary()) + b"\x85\x01\x01\x00\x00\x5b\x00\x00\x01\x00\x00\x00\x00\x00"
    rejected(huge, "runs past the end")


def test_encoder_refuses_invalid_bundles() -> None:
    with pytest.raises(EncodeError, match="last block"):
        encode_bundle(Bundle(primary(), (PAYLOAD, BundleAge(1).block(2))))
    with pytest.raises(EncodeError):
        encode_bundle(Bundle(primary(BundleFlag.IS_FRAGMENT), (PAYLOAD,)))
    with pytest.raises(EncodeError):
        encode_bundle(Bundle(primary(), (CanonicalBlock(1, 1, BlockFlag(0), CrcType.NONE, b""),) * 2))
    with pytest.raises(EncodeError):
        encode_bundle(Bundle(primary(created=1 << 64), (PAYLOAD,)))


def test_unknown_flags_and_block_types_survive() -> None:
    unknown = CanonicalBlock(
        200, 5, BlockFlag(0x80 | BlockFlag.DELETE_BUNDLE_IF_UNPROCESSABLE), CrcType.CRC32C, b"\x01"
    )
    p = primary(int(BundleFlag.STATUS_TIME_REQUESTED) | 0x10 | (1 << 40))
    data = encode_bundle(Bundle(p, (unknown, PAYLOAD)))
    b = decode_bundle(data)
    assert int(b.primary.flags) == int(p.flags)
    carried = b.block(200)
    assert carried is not None and carried.flags & BlockFlag.DELETE_BUNDLE_IF_UNPROCESSABLE
    assert int(carried.flags) == 0x84 and not carried.is_known_type
    assert encode_bundle(b) == data


def test_forwarding_keeps_primary_bytes_and_recomputes_only_touched_crc() -> None:
    data = raw(primary(), PreviousNode(IpnEid(3, 0)).block(2, crc_type=CrcType.CRC16_X25),
               HopCount(5, 1).block(3, crc_type=CrcType.CRC32C), BundleAge(10).block(4), PAYLOAD)  # fmt: skip
    b = decode_bundle(data)
    f = b.with_hop_count_incremented().with_bundle_age_added(90).with_previous_node(IpnEid(7, 0))
    out = encode_bundle(f)
    assert out.startswith(b"\x9f" + bytes(b.primary.image or b""))
    assert out.endswith(encode_block(PAYLOAD) + b"\xff")
    g = decode_bundle(out)
    assert (g.hop_count, g.bundle_age_ms, g.previous_node) == (HopCount(5, 2), 100, IpnEid(7, 0))
    assert [x.number for x in g.blocks] == [2, 3, 4, 1]
    assert g.block(BlockType.HOP_COUNT).crc_type == CrcType.CRC32C  # type: ignore[union-attr]
    assert g.with_previous_node(None).previous_node is None
    assert b.with_previous_node(IpnEid(3, 0), crc_type=CrcType.CRC16_X25).block(6) == b.block(6)
    # Without extension blocks the helpers add them (with a fresh block number) or leave the bundle alone.
    plain = decode_bundle(raw(primary(), PAYLOAD))
    assert plain.with_hop_count_incremented() is plain and plain.with_bundle_age_added(5) is plain
    added = plain.with_previous_node(IpnEid(3, 0)).with_hop_count(9)
    assert [x.number for x in added.blocks] == [2, 3, 1]
    assert decode_bundle(encode_bundle(added)).hop_count == HopCount(9, 0)
