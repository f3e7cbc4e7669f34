"""The streaming codec (dtn.bundle.stream): decode_head, PayloadCrcCheck and encode_bundle_stream agree with
decode_bundle and encode_bundle on every generated bundle, every vector and every malformed input."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtn.bundle.blocks import CanonicalBlock, PrimaryBlock
from dtn.bundle.bundle import Bundle
from dtn.bundle.cbor import head
from dtn.bundle.codec import decode_bundle, encode_bundle, encode_primary
from dtn.bundle.crc import CrcType, block_crc
from dtn.bundle.eid import IpnEid
from dtn.bundle.flags import BlockFlag, BundleFlag
from dtn.bundle.reasons import StatusReason
from dtn.bundle.stream import (
    BundleHead,
    BundleStreamEncoder,
    NeedMoreData,
    PayloadCrcCheck,
    decode_head,
    encode_bundle_stream,
    encoded_head,
    encoded_length,
)
from dtn.errors import DecodeError, DtnError, EncodeError
from tests.bundle.strategies import bundles
from tests.vector_data import VECTOR_ENTRIES


def with_payload(bundle: Bundle, payload: bytes) -> Bundle:
    return bundle.with_block_replaced(bundle.payload_block.with_data(payload))


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL_BUNDLES = bundles(fragment=None, max_payload=300)
BIG_AND_EMPTY = st.one_of(
    bundles(fragment=None, max_payload=0),
    bundles(fragment=None, min_payload=24, max_payload=24),
    bundles(fragment=None, min_payload=256, max_payload=256),
    st.tuples(bundles(fragment=False, max_payload=0, max_extensions=1), st.integers(65536, 70000)).map(
        lambda drawn: with_payload(drawn[0], bytes(range(256)) * (drawn[1] // 256) + b"\x01" * (drawn[1] % 256))
    ),
)
BUNDLE_VECTORS = [bytes.fromhex(v["hex"]) for v in VECTOR_ENTRIES]


def stream_decode(data: bytes, *, require_bundle_age: bool = True, chunk: int = 7) -> BundleHead:
    """Decode ``data`` as a node streaming it from a file would: the head, then the payload in pieces."""
    h = decode_head(data, bundle_length=len(data), require_bundle_age=require_bundle_age)
    check = PayloadCrcCheck(h)
    for start in range(h.payload_offset, h.payload_end, chunk):
        check.update(data[start : min(start + chunk, h.payload_end)])
    check.verify(data[h.payload_end :])
    return h


def outcome(decode: object, data: bytes, **kwargs: object) -> str | StatusReason:
    try:
        decode(data, **kwargs)  # type: ignore[operator]
    except DecodeError as exc:
        return exc.reason
    return "accepted"


def assert_agrees(data: bytes, **kwargs: object) -> None:
    """The streaming decode accepts exactly what decode_bundle accepts, and rejects with the same reason."""
    assert outcome(stream_decode, data, **kwargs) == outcome(decode_bundle, data, **kwargs)


def assert_head_matches(h: BundleHead, data: bytes, decoded: Bundle) -> None:
    assert h.bundle.primary == decoded.primary
    assert h.bundle.primary.image is not None and decoded.primary.image is not None
    assert bytes(h.bundle.primary.image) == bytes(decoded.primary.image)
    assert h.bundle.blocks[:-1] == decoded.blocks[:-1]
    for ours, theirs in zip(h.bundle.blocks[:-1], decoded.blocks[:-1], strict=True):
        assert ours.image is not None and theirs.image is not None
        assert bytes(ours.image) == bytes(theirs.image)
    payload = h.payload_block
    assert payload == decoded.payload_block.with_data(b"")
    assert bytes(payload.data) == b"" and payload.image is None
    assert (payload.number, payload.flags, payload.crc_type) == (
        1,
        decoded.payload_block.flags,
        decoded.payload_block.crc_type,
    )
    assert data[h.payload_offset : h.payload_end] == bytes(decoded.payload)
    assert h.payload_length == len(decoded.payload)
    assert h.encoded_length == len(data)
    assert h.trailer_length == len(data) - h.payload_end
    assert h.id == decoded.id
    image = decoded.payload_block.image
    assert image is not None
    crc_item = (0, 3, 5)[int(payload.crc_type)]
    assert (
        bytes(image) == h.payload_block_head + bytes(decoded.payload) + data[h.payload_end : h.payload_end + crc_item]
    )
    assert data[h.payload_offset - len(h.payload_block_head) : h.payload_offset] == h.payload_block_head


# --- decode_head ---------------------------------------------------------------------------------------------


@FAST
@given(st.one_of(ALL_BUNDLES, BIG_AND_EMPTY))
def test_decode_head_agrees_with_decode_bundle(bundle: Bundle) -> None:
    data = encode_bundle(bundle)
    decoded = decode_bundle(data)
    h = decode_head(data)
    assert_head_matches(h, data, decoded)
    # Bytes past the payload's start do not matter, nor the kind of buffer they come in.
    for prefix in (data[: h.payload_offset], data[: h.payload_offset + 1], bytearray(data), memoryview(data)):
        assert decode_head(prefix) == h
    # The head keeps no reference to the caller's buffer: its images are the head's bytes only.
    for image in (h.bundle.primary.image, *(b.image for b in h.bundle.blocks[:-1])):
        assert isinstance(image, memoryview)
        assert isinstance(image.obj, bytes) and len(image.obj) == h.payload_offset
    assert decode_head(data, bundle_length=len(data)) == h
    # Re-encoding the head gives back the bytes before the payload data.
    assert encoded_head(h.bundle, h.payload_length) == data[: h.payload_offset]
    assert encoded_length(h.bundle, h.payload_length) == len(data)


@FAST
@given(ALL_BUNDLES)
def test_every_short_prefix_needs_more_data(bundle: Bundle) -> None:
    data = encode_bundle(bundle)
    payload_offset = decode_head(data).payload_offset
    for cut in range(payload_offset):
        for bundle_length in (None, len(data)):
            with pytest.raises(NeedMoreData) as info:
                decode_head(data[:cut], bundle_length=bundle_length)
            assert cut < info.value.needed_bytes <= payload_offset
    # A reader that reads what it is told needs few rounds and ends with the same head.
    have, rounds = 0, 0
    while True:
        try:
            h = decode_head(data[:have])
            break
        except NeedMoreData as need:
            have = need.needed_bytes
            rounds += 1
    assert h == decode_head(data) and rounds <= payload_offset


def test_need_more_data_is_not_a_decode_error() -> None:
    exc = NeedMoreData(10)
    assert isinstance(exc, DtnError) and not isinstance(exc, DecodeError)
    assert exc.needed_bytes == 10
    with pytest.raises(NeedMoreData) as info:
        decode_head(b"")
    assert info.value.needed_bytes >= 1


@pytest.mark.parametrize("require_bundle_age", [True, False])
@pytest.mark.parametrize("index", range(len(BUNDLE_VECTORS)))
def test_vectors(index: int, require_bundle_age: bool) -> None:
    data = BUNDLE_VECTORS[index]
    assert_agrees(data, require_bundle_age=require_bundle_age)
    try:
        decoded = decode_bundle(data, require_bundle_age=require_bundle_age)
    except DecodeError:
        return
    assert_head_matches(decode_head(data, require_bundle_age=require_bundle_age), data, decoded)


def test_some_vectors_are_bundles() -> None:
    accepted = sum(outcome(decode_bundle, data, require_bundle_age=False) == "accepted" for data in BUNDLE_VECTORS)
    assert accepted >= 10


# --- malformed input: the same verdict and reason as decode_bundle --------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bundles(fragment=None, max_payload=40), st.data())
def test_mutated_bundles_get_the_same_verdict(bundle: Bundle, data: st.DataObject) -> None:
    encoded = bytearray(encode_bundle(bundle))
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(encoded) - 1))
        encoded[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    for candidate in (bytes(encoded), bytes(encoded[:cut]), bytes(encoded) + b"\x00", bytes(encoded) + b"\xff"):
        assert_agrees(candidate)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_get_the_same_verdict(data: bytes) -> None:
    for candidate in (data, b"\x9f" + data, b"\x9f\x89\x07" + data, b"\x82\x88\x07" + data):
        assert_agrees(candidate)
        try:
            decode_head(candidate)
        except (NeedMoreData, DecodeError):
            pass


def _primary(**changes: object) -> PrimaryBlock:
    fields: dict[str, object] = dict(
        flags=BundleFlag(0),
        crc_type=CrcType.CRC32C,
        destination=IpnEid(2, 1),
        source=IpnEid(1, 1),
        report_to=IpnEid(1, 1),
        creation_ms=789004800000,
        sequence=0,
        lifetime_ms=3600_000,
    )
    fields.update(changes)
    return PrimaryBlock(**fields)  # type: ignore[arg-type]


def _simple(payload: bytes = b"hello", crc: CrcType = CrcType.CRC32C) -> bytes:
    return encode_bundle(Bundle(_primary(), (CanonicalBlock(1, 1, BlockFlag(0), crc, payload),)))


def test_malformed_heads() -> None:
    good = _simple()
    h = decode_head(good)
    primary_end = 1 + len(h.bundle.primary.image or b"")
    cases = {
        "unknown destination scheme": good[:5] + b"\x82\x05\x00" + good[10:],  # reason 5
        "not an array": b"\x00" + good[1:],
        "primary CRC": good[: primary_end - 1] + bytes([good[primary_end - 1] ^ 1]) + good[primary_end:],
        "two payload blocks": good[:-1] + good[primary_end:],
        "payload block number 2": good[:primary_end] + b"\x86\x01\x02" + good[primary_end + 3 :],
        "payload data not a byte string": good[:primary_end] + b"\x86\x01\x01\x00\x02\x65" + good[primary_end + 6 :],
        "payload CRC type 3": good[:primary_end] + b"\x86\x01\x01\x00\x03" + good[primary_end + 5 :],
        "no payload block": good[:primary_end] + b"\xff",
        "definite outer array of one": b"\x81" + good[1:primary_end],
        "definite array, payload not last": b"\x83" + good[1:-1] + good[primary_end:-1],
        "payload runs past the end": good[: h.payload_offset - 1] + b"\x58\xff" + good[h.payload_offset :],
    }
    reasons = {}
    for name, data in cases.items():
        with pytest.raises(DecodeError) as info:
            decode_bundle(data)
        reasons[name] = info.value.reason
        assert_agrees(data)
    assert reasons["unknown destination scheme"] == StatusReason.DEST_EID_UNINTELLIGIBLE
    assert reasons["not an array"] == StatusReason.BLOCK_UNINTELLIGIBLE
    # A definite-length outer array of three blocks whose payload block is last decodes like the indefinite one.
    definite = b"\x82" + good[1:-1]
    assert decode_head(definite).trailer_length == 5
    assert_agrees(definite)


def test_limits() -> None:
    good = _simple(b"x" * 1000)
    with pytest.raises(DecodeError) as info:
        decode_head(good, max_bytes=500)
    assert info.value.reason == StatusReason.DEPLETED_STORAGE
    with pytest.raises(DecodeError) as info:
        decode_head(good[:10], bundle_length=len(good), max_bytes=500)
    assert info.value.reason == StatusReason.DEPLETED_STORAGE
    assert decode_head(good, max_bytes=len(good)).encoded_length == len(good)
    with pytest.raises(DecodeError, match="trailing"):
        decode_head(good + b"\x00", bundle_length=len(good) + 1)
    with pytest.raises(DecodeError, match="truncated"):
        decode_head(good[:-1], bundle_length=len(good) - 1)
    with pytest.raises(DecodeError, match="truncated"):
        decode_head(good[:20], bundle_length=20)
    many = Bundle(
        _primary(),
        tuple(CanonicalBlock(192, n, BlockFlag(0), CrcType.NONE, b"") for n in range(2, 6))
        + (CanonicalBlock(1, 1, BlockFlag(0), CrcType.NONE, b""),),
    )
    with pytest.raises(DecodeError, match="more than 4"):
        decode_head(encode_bundle(many), max_blocks=4)
    assert len(decode_head(encode_bundle(many), max_blocks=5).bundle.blocks) == 5


def test_fragment_extent_uses_the_payload_length() -> None:
    primary = _primary(flags=BundleFlag.IS_FRAGMENT, fragment_offset=8, total_adu_length=10)
    bundle = Bundle(primary, (CanonicalBlock(1, 1, BlockFlag(0), CrcType.NONE, b"abc"),))
    data = b"\x9f" + encode_primary(primary) + b"\x85\x01\x01\x00\x00\x43abc\xff"  # offset 8 + 3 > 10
    with pytest.raises(DecodeError, match="exceeds the total ADU length"):
        decode_head(data)
    with pytest.raises(EncodeError, match="exceeds the total ADU length"):
        encode_bundle_stream(bundle.with_block_replaced(bundle.payload_block.with_data(b"")), 3, [b"abc"])
    ok = decode_head(data[:-5] + b"\x42ab\xff")
    assert ok.id.payload_length == 2 and ok.id.fragment_offset == 8


# --- PayloadCrcCheck -----------------------------------------------------------------------------------------


def chunkings(length: int) -> st.SearchStrategy[list[int]]:
    """Sorted cut points in [0, length]."""
    return st.lists(st.integers(0, length), max_size=8).map(sorted)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@FAST
@given(st.one_of(ALL_BUNDLES, BIG_AND_EMPTY), st.data())
def test_crc_check_accepts_every_valid_bundle(bundle: Bundle, data: st.DataObject) -> None:
    encoded = encode_bundle(bundle)
    h = decode_head(encoded)
    payload = encoded[h.payload_offset : h.payload_end]
    check = PayloadCrcCheck(h)
    for piece in split(payload, data.draw(chunkings(len(payload)))):
        check.update(memoryview(piece) if len(piece) % 2 else piece)
    assert check.received_bytes == len(payload)
    check.verify(encoded[h.payload_end :])


def test_crc_check_fed_byte_by_byte() -> None:
    for crc in CrcType:
        encoded = _simple(bytes(range(200)), crc)
        h = decode_head(encoded)
        check = PayloadCrcCheck(h)
        for i in range(h.payload_offset, h.payload_end):
            check.update(encoded[i : i + 1])
        check.verify(encoded[h.payload_end :])


@FAST
@given(
    bundles(fragment=None, min_payload=1, max_payload=120, crc=st.sampled_from([CrcType.CRC16_X25, CrcType.CRC32C])),
    st.data(),
)
def test_crc_check_rejects_any_flipped_bit(bundle: Bundle, data: st.DataObject) -> None:
    encoded = encode_bundle(bundle)
    h = decode_head(encoded)
    assume_crc = int(h.payload_block.crc_type)
    if not assume_crc:
        return
    index = data.draw(st.integers(h.payload_offset, len(encoded) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(encoded)
    flipped[index] ^= 1 << bit
    check = PayloadCrcCheck(h)
    check.update(bytes(flipped[h.payload_offset : h.payload_end]))
    with pytest.raises(DecodeError) as info:
        check.verify(bytes(flipped[h.payload_end :]))
    assert info.value.reason == StatusReason.BLOCK_UNINTELLIGIBLE
    with pytest.raises(DecodeError):
        decode_bundle(bytes(flipped))


def test_crc_check_rejects_wrong_amounts_and_trailers() -> None:
    encoded = _simple(b"hello", CrcType.CRC16_X25)
    h = decode_head(encoded)
    assert h.trailer_length == 4
    check = PayloadCrcCheck(h)
    check.update(b"hell")
    with pytest.raises(DecodeError, match="truncated"):
        check.verify(encoded[h.payload_end :])
    with pytest.raises(DecodeError, match="more than the 5 bytes"):
        check.update(b"o!")
    check = PayloadCrcCheck(h)
    check.update(b"hello")
    trailer = encoded[h.payload_end :]
    for bad in (trailer[:-1], trailer + b"\xff", b"\x43" + trailer[1:], trailer[:-1] + b"\x00"):
        with pytest.raises(DecodeError):
            check.verify(bad)
    with pytest.raises(DecodeError, match="CRC mismatch"):
        check.verify(trailer[:1] + bytes([trailer[1] ^ 0x80]) + trailer[2:])
    check.verify(trailer)
    nocrc = _simple(b"hello", CrcType.NONE)
    h = decode_head(nocrc)
    check = PayloadCrcCheck(h)
    check.update(b"hello")
    with pytest.raises(DecodeError, match="no break"):
        check.verify(b"\x00")
    check.verify(b"\xff")


# --- encode_bundle_stream ------------------------------------------------------------------------------------


@FAST
@given(st.one_of(ALL_BUNDLES, BIG_AND_EMPTY), st.data())
def test_stream_encoding_equals_encode_bundle(bundle: Bundle, data: st.DataObject) -> None:
    payload = bytes(bundle.payload)
    expected = encode_bundle(bundle)
    chunks: list[bytes | memoryview] = [
        memoryview(piece) if i % 2 else piece
        for i, piece in enumerate(split(payload, data.draw(chunkings(len(payload)))))
    ]
    template = with_payload(bundle, b"")
    out = list(encode_bundle_stream(template, len(payload), chunks))
    assert b"".join(out) == expected
    assert isinstance(out[0], bytes) and out[0] == encoded_head(template, len(payload))
    passed = [c for c in chunks if len(c)]
    assert len(out) == len(passed) + 2 and all(a is b for a, b in zip(out[1:-1], passed, strict=True))
    assert encoded_length(template, len(payload)) == len(expected)
    # A received bundle's images are re-emitted as they came; its own payload data is ignored.
    received = decode_bundle(expected)
    relayed = received.with_previous_node(IpnEid(9, 0))
    assert b"".join(encode_bundle_stream(relayed, len(payload), chunks)) == encode_bundle(relayed)
    h = decode_head(expected)
    assert b"".join(encode_bundle_stream(h.bundle, h.payload_length, [payload])) == expected


@given(st.one_of(ALL_BUNDLES, BIG_AND_EMPTY), st.data())
def test_driven_encoder_equals_encode_bundle(bundle: Bundle, data: st.DataObject) -> None:
    payload = bytes(bundle.payload)
    encoder = BundleStreamEncoder(with_payload(bundle, b""), len(payload))
    out = [encoder.head]
    for piece in split(payload, data.draw(chunkings(len(payload)))):
        out.append(encoder.payload(piece))
    out.append(encoder.end())
    assert b"".join(out) == encode_bundle(bundle)


def test_driven_encoder_checks_the_amount() -> None:
    template = decode_head(_simple(b"hello")).bundle
    short = BundleStreamEncoder(template, 5)
    short.payload(b"hell")
    with pytest.raises(ValueError, match="hold 4 bytes, 5 were announced"):
        short.end()
    long = BundleStreamEncoder(template, 5)
    with pytest.raises(ValueError, match="more than the 5 bytes"):
        long.payload(b"hello!")
    with pytest.raises(EncodeError):
        BundleStreamEncoder(Bundle(_primary(), ()), 5)


def test_stream_encoding_checks_the_amount() -> None:
    template = decode_head(_simple(b"hello")).bundle
    with pytest.raises(ValueError, match="hold 4 bytes, 5 were announced"):
        list(encode_bundle_stream(template, 5, [b"hel", b"l"]))
    with pytest.raises(ValueError, match="more than the 5 bytes"):
        list(encode_bundle_stream(template, 5, [b"hel", b"lo!"]))
    with pytest.raises(EncodeError):  # at the call, not at the first iteration
        encode_bundle_stream(Bundle(_primary(), ()), 5, [b"hello"])


def test_one_gib_stream_in_small_memory() -> None:
    size_mib = 1024
    buffer = bytes(range(256)) * 4096  # 1 MiB, reused for every chunk
    template = Bundle(_primary(), (CanonicalBlock(1, 1, BlockFlag(0), CrcType.CRC32C, b""),))

    def chunks() -> Iterator[memoryview]:
        view = memoryview(buffer)
        for _ in range(size_mib):
            yield view

    tracemalloc.start()
    try:
        pieces = encode_bundle_stream(template, size_mib << 20, chunks())
        first = next(pieces)
        assert isinstance(first, bytes)
        h = decode_head(first, bundle_length=len(first) + (size_mib << 20) + 6)
        check = PayloadCrcCheck(h)
        last: bytes | bytearray | memoryview = b""
        total = 0
        for piece in pieces:
            if last:
                check.update(last)
                total += len(last)
            last = piece
        check.verify(last)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == h.payload_length == size_mib << 20
    assert h.trailer_length == 6
    assert peak < 8 << 20
    # The same CRC as encode_bundle computes over the whole bundle (checked on a 1 MiB payload).
    small = with_payload(template, buffer)
    assert b"".join(encode_bundle_stream(template, len(buffer), [buffer])) == encode_bundle(small)
    assert head(2, size_mib << 20) in first


def test_tag_24_and_long_heads_as_received() -> None:
    """Tag 24 around block data and non-shortest heads are accepted as decode_bundle accepts them; the payload
    CRC covers the payload block's bytes as received."""
    primary = encode_primary(_primary())
    age_head = b"\x86\x07\x02\x00\x01\xd8\x18\x41"
    age = age_head + b"\x00\x42" + block_crc(1, age_head, b"\x00", b"\x42")
    payload_head = b"\x86\x01\x01\x00\x02\xd8\x18\x59\x00\x05"
    payload = payload_head + b"hello\x44" + block_crc(2, payload_head, b"hello", b"\x44")
    data = b"\x9f" + primary + age + payload + b"\xff"
    decoded = decode_bundle(data)
    h = decode_head(data)
    assert_head_matches(h, data, decoded)
    assert h.payload_block_head == payload_head
    stream_decode(data)
    for cut in range(h.payload_offset):
        with pytest.raises(NeedMoreData) as info:
            decode_head(data[:cut])
        assert cut < info.value.needed_bytes <= h.payload_offset
    # Re-encoded, the payload block is canonical again (and its CRC recomputed); the age block kept as it came.
    out = b"".join(encode_bundle_stream(h.bundle, h.payload_length, [b"hel", b"lo"]))
    assert out == encode_bundle(with_payload(decoded, b"hello"))
    assert age in out and payload_head not in out
    for index in range(len(data)):
        for value in (0x00, 0x18, 0x40, 0xD8, 0xFF, data[index] ^ 1):
            assert_agrees(data[:index] + bytes([value]) + data[index + 1 :])
