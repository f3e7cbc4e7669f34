"""Property tests: round trips of generated bundles, and a decoder that raises only DecodeError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtn.bundle import codec
from dtn.bundle.codec import DEFAULT_MAX_BYTES, decode_bundle, encode_bundle
from dtn.bundle.flags import BlockType
from dtn.errors import DecodeError
from tests.bundle.strategies import bundles
from tests.vector_data import VECTOR_ENTRIES

VECTORS = VECTOR_ENTRIES
VALID_BUNDLES = [
    bytes.fromhex(v["hex"])
    for v in VECTORS
    if v["name"]
    in {
        "gen-bundle-G1-minimal",
        "gen-bundle-G2-ext",
        "gen-fragment-2",
        "rfc9173-A3-final-bundle",
        "ion-bibe-bpdu-bundle",
    }
]


def decode_without_safety_net(data: bytes, max_blocks: int = 64) -> None:
    """The decoder proper, without decode_bundle's last-resort conversion of stray exceptions: the fuzz tests
    show that DecodeError is raised on purpose, not by the safety net."""
    codec._decode(data, DEFAULT_MAX_BYTES, max_blocks, True)


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(bundles(fragment=None))
def test_round_trip(bundle: object) -> None:
    assert not isinstance(bundle, bytes)
    encoded = encode_bundle(bundle)  # type: ignore[arg-type]
    assert encoded[0] == 0x9F and encoded[-1] == 0xFF
    decoded = decode_bundle(encoded)
    assert decoded == bundle
    assert encode_bundle(decoded) == encoded  # received images re-emitted
    assert encode_bundle(bundle) == encoded  # deterministic  # type: ignore[arg-type]
    # Fresh copies of the decoded blocks (no images) encode to the same bytes: the encoding is canonical.
    fresh = decoded.with_block_replaced(decoded.blocks[0].with_data(bytes(decoded.blocks[0].data)))
    assert encode_bundle(fresh) == encoded


@FAST
@given(bundles(fragment=False, admin=False, anonymous=False, crc=st.just(2)))
def test_forwarding_helpers_touch_only_their_block(bundle: object) -> None:
    from dtn.bundle.bundle import Bundle
    from dtn.bundle.eid import IpnEid

    assert isinstance(bundle, Bundle)
    received = decode_bundle(encode_bundle(bundle))
    forwarded = (
        received.with_previous_node(IpnEid(9, 0))
        .with_hop_count(
            received.hop_count.limit if received.hop_count else 30,
            received.hop_count.count if received.hop_count else 0,
        )
        .with_hop_count_incremented()
        .with_bundle_age(received.bundle_age_ms or 0)
        .with_bundle_age_added(250)
    )
    assert forwarded.primary.image is received.primary.image  # never re-encoded
    out = decode_bundle(encode_bundle(forwarded))
    assert out.previous_node == IpnEid(9, 0)
    u64_max = (1 << 64) - 1  # the helpers saturate instead of overflowing
    assert out.bundle_age_ms == min((received.bundle_age_ms or 0) + 250, u64_max)
    assert out.hop_count is not None
    assert out.hop_count.count == min((received.hop_count.count if received.hop_count else 0) + 1, u64_max)
    assert bytes(out.payload) == bytes(received.payload)
    for block in received.blocks:
        if block.block_type not in (BlockType.PREVIOUS_NODE, BlockType.BUNDLE_AGE, BlockType.HOP_COUNT):
            assert out.block_by_number(block.number) == block


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    for candidate in (data, b"\x9f" + data, b"\x9f\x89\x07" + data):
        try:
            decode_without_safety_net(candidate)
        except DecodeError:
            pass


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(VALID_BUNDLES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_bundles_raise_only_decode_error(data: bytes, mutations: list[tuple[int, int]]) -> None:
    mutated = bytearray(data)
    for index, value in mutations:
        mutated[index % len(mutated)] = value
    try:
        decode_without_safety_net(bytes(mutated))
    except DecodeError:
        pass


@FAST
@given(bundles(fragment=None, max_payload=64), st.data())
def test_mutated_generated_bundles(bundle: object, data: st.DataObject) -> None:
    encoded = bytearray(encode_bundle(bundle))  # type: ignore[arg-type]
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    for candidate in (bytes(encoded), bytes(encoded[:cut]), bytes(encoded) + b"\x00"):
        try:
            decode_without_safety_net(candidate, max_blocks=8)
        except DecodeError:
            pass


def test_every_truncation_and_extension_is_rejected() -> None:
    for data in VALID_BUNDLES:
        for cut in range(len(data)):
            try:
                decode_bundle(data[:cut])
            except DecodeError:
                continue
            raise AssertionError(f"truncation at {cut} accepted")
        for extra in (b"\x00", b"\xff", data):
            try:
                decode_bundle(data + extra)
            except DecodeError as exc:
                assert "trailing" in str(exc)
                continue
            raise AssertionError("trailing bytes accepted")


@FAST
@given(
    bundles(fragment=False),
    st.sampled_from([0, 1, codec.OWN_PART_BYTES - 1, codec.OWN_PART_BYTES, codec.OWN_PART_BYTES + 7]),
    st.booleans(),
)
def test_parts_are_the_encoding_and_large_data_is_not_copied(bundle: object, size: int, received: bool) -> None:
    from dtn.bundle.bundle import Bundle

    assert isinstance(bundle, Bundle)
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    bundle = bundle.with_block_replaced(bundle.payload_block.with_data(data))
    encoded = encode_bundle(bundle)
    if received:  # block images (views of the received bytes) are parts as they are
        bundle = decode_bundle(encoded)
    parts = codec.encode_bundle_parts(bundle)
    assert b"".join(parts) == encoded
    expected = bundle.payload_block.image if received else bundle.payload
    assert expected is not None
    own = len(expected) >= codec.OWN_PART_BYTES
    assert any(part is expected for part in parts) == own, "large data is a part as it is, small data is joined"
    assert len(parts) <= (3 if own else 1), "the parts between large data are joined"
