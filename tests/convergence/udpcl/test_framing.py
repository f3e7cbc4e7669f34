"""udpcl/framing.py: datagram classification (vectors, edge cases, properties), send limits, addresses."""

from __future__ import annotations

import ast
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtn.convergence.udpcl.framing import (
    DEFAULT_PORT,
    IGNORED_KINDS,
    KEEPALIVE,
    MAX_UDP_PAYLOAD_IPV4,
    MAX_UDP_PAYLOAD_IPV6,
    DatagramKind,
    classify_datagram,
    format_udp_address,
    max_payload_for_host,
    parse_udp_address,
    send_refusal,
)
from dtn.errors import ConfigError
from tests.convergence.udpcl.support import G1, G2, VECTORS, cbor_array_of_size

BUNDLE = DatagramKind.BUNDLE
MALFORMED = DatagramKind.MALFORMED


# -- vectors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("udpcl-unframed-bundle", BUNDLE),
        ("gen-bundle-G1-minimal", BUNDLE),
        ("gen-bundle-G2-ext", BUNDLE),
        ("udpcl-keepalive", DatagramKind.KEEPALIVE),
        ("udpcl-transfer-single", DatagramKind.EXTENSION),
        ("udpcl-transfer-seg", DatagramKind.EXTENSION),
        ("udpcl-advert", DatagramKind.EXTENSION),
        ("udpcl-peer-confirmation", DatagramKind.EXTENSION),
        ("udpcl-starttls", DatagramKind.EXTENSION),
    ],
)
def test_vectors(name: str, kind: DatagramKind) -> None:
    assert classify_datagram(VECTORS[name]).kind is kind


@pytest.mark.parametrize(
    "name",
    [
        "gen-bundle-G1-minimal",
        "gen-bundle-G2-ext",
        "gen-fragment-1",
        "gen-fragment-2",
        "gen-status-report-bundle",
        "ion-bibe-bpdu-bundle",
    ],
)
def test_every_whole_bundle_vector_is_a_bundle(name: str) -> None:
    data = VECTORS[name]
    assert classify_datagram(data).kind is BUNDLE
    assert classify_datagram(data[:-1]).kind is MALFORMED


def test_keepalive_is_exactly_four_zero_octets() -> None:
    assert classify_datagram(KEEPALIVE).kind is DatagramKind.KEEPALIVE
    assert classify_datagram(b"\x00" * 3).kind is DatagramKind.PADDING
    assert classify_datagram(b"\x00" * 5).kind is DatagramKind.PADDING
    assert classify_datagram(b"\x00\x01\x02\x03").kind is DatagramKind.PADDING


# -- malformed and ignored datagrams ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"hello", "first octet 0x68"),
        (G1[:-1], "truncated"),
        (G1[:1], "truncated"),
        (G1 + b"\x00", "1 trailing"),
        (G2 + G1, f"{len(G1)} trailing"),
        (b"\x9f\xff\xff", "trailing"),
        (b"\x81\xff", "unexpected break"),
        (b"\xff", "first octet 0xff"),
        (b"\x81\x1c", "reserved"),
        (b"\x81\x3f", "indefinite length on major type 1"),
        (b"\x81\xdf", "indefinite length on major type 6"),
        (b"\x81\xf8\x10", "simple value 16"),
        (b"\x81\x5f\x61a\xff", "bad chunk"),
        (b"\x81\x5f\x5f\xff\xff", "bad chunk"),
        (b"\x9b" + b"\xff" * 8, "truncated"),  # 2**64-1 items announced in 9 bytes
        (b"\x81\x5b" + b"\xff" * 8, "truncated"),
        (b"\x81" * 40 + b"\x00", "nested too deeply"),
        (b"\x81\xc1" * 40 + b"\x00", "nested too deeply"),
    ],
)
def test_malformed(data: bytes, words: str) -> None:
    verdict = classify_datagram(data)
    assert verdict.kind is MALFORMED
    assert words in verdict.reason


def test_too_large_datagram_is_malformed() -> None:
    data = cbor_array_of_size(2000)
    assert classify_datagram(data, max_bytes=2000).kind is BUNDLE
    verdict = classify_datagram(data, max_bytes=1999)
    assert verdict.kind is MALFORMED and "2000 bytes exceeds the limit of 1999" in verdict.reason


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x06\x10\x00", DatagramKind.BPV6),
        (b"\x16\xfe\xfd" + b"\x00" * 10, DatagramKind.DTLS),
        (b"\x2f\x00", DatagramKind.DTLS),
        (b"\xa1\x05\xf6", DatagramKind.EXTENSION),
        (b"\x00padding", DatagramKind.PADDING),
    ],
)
def test_recognised_but_ignored(data: bytes, kind: DatagramKind) -> None:
    verdict = classify_datagram(data)
    assert verdict.kind is kind and kind in IGNORED_KINDS and verdict.reason


def test_well_formed_edge_items_inside_a_bundle() -> None:
    cases = [
        b"\x80",  # empty definite array
        b"\x9f\xff",  # empty indefinite array
        b"\x82\x5f\x41a\x42bc\xff\x7f\x61x\xff",  # indefinite byte and text strings
        b"\x83\xa2\x01\x02\x03\x04\xbf\x01\x02\xff\xc2\x41\x01",  # maps, indefinite map, tagged bignum
        b"\x84\xf9\x3c\x00\xfa\x00\x00\x00\x00\xfb" + b"\x00" * 8 + b"\xf8\x20",  # floats, simple(32)
        b"\x81" * 31 + b"\x00",  # 31 levels deep is fine
    ]
    for data in cases:
        assert classify_datagram(data).kind is BUNDLE, data.hex()


# -- properties ---------------------------------------------------------------------------------------------

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=300)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.integers(0, 1000), children, max_size=4),
    max_leaves=20,
)


@st.composite
def bundle_like(draw: st.DrawFn) -> bytes:
    """A CBOR array, definite (cbor2) or indefinite (0x9f ... 0xff, as BPv7 bundles are)."""
    items = draw(st.lists(cbor_values, max_size=6))
    if draw(st.booleans()):
        return b"\x9f" + b"".join(cbor2.dumps(item) for item in items) + b"\xff"
    return bytes(cbor2.dumps(items))


@given(bundle_like())
def test_any_cbor_array_is_a_bundle(data: bytes) -> None:
    assert classify_datagram(data).kind is BUNDLE


@settings(max_examples=60)
@given(bundle_like())
def test_every_strict_prefix_is_malformed(data: bytes) -> None:
    # CBOR items are prefix-free: a cut datagram can never pass for a whole bundle
    for cut in range(1, len(data)):
        assert classify_datagram(data[:cut]).kind is MALFORMED, cut


@given(bundle_like(), st.binary(min_size=1, max_size=20))
def test_trailing_bytes_are_malformed(data: bytes, extra: bytes) -> None:
    verdict = classify_datagram(data + extra)
    assert verdict.kind is MALFORMED and "trailing" in verdict.reason


@given(st.binary(max_size=200))
def test_classification_is_total_and_follows_the_first_octet(data: bytes) -> None:
    verdict = classify_datagram(data)  # never raises
    if not data:
        assert verdict.kind is MALFORMED
    elif 0x80 <= data[0] <= 0x9F:
        assert verdict.kind in (BUNDLE, MALFORMED)
        if verdict.kind is BUNDLE:
            try:  # what we call well-formed, a real CBOR decoder reads (tag semantics aside)
                cbor2.loads(data)
            except cbor2.CBORDecodeValueError:
                pass  # e.g. tag 0 on an integer: well-formed, not valid; premature end (EOF) still fails
    elif data == KEEPALIVE:
        assert verdict.kind is DatagramKind.KEEPALIVE
    else:
        assert verdict.kind is not BUNDLE and verdict.reason


def test_g1_byte_by_byte_prefixes() -> None:
    for cut in range(len(G1)):
        assert classify_datagram(G1[:cut]).kind is MALFORMED
    assert classify_datagram(G1).kind is BUNDLE


# -- what may be sent ---------------------------------------------------------------------------------------


def test_send_limits() -> None:
    assert send_refusal(G1, MAX_UDP_PAYLOAD_IPV4) is None
    assert send_refusal(cbor_array_of_size(MAX_UDP_PAYLOAD_IPV4), MAX_UDP_PAYLOAD_IPV4) is None
    reason = send_refusal(cbor_array_of_size(MAX_UDP_PAYLOAD_IPV4 + 1), MAX_UDP_PAYLOAD_IPV4)
    assert reason is not None and "65508" in reason and "65507" in reason and "fragment" in reason
    assert send_refusal(cbor_array_of_size(1001), 1000) is not None
    assert send_refusal(cbor_array_of_size(1000), 1000) is None


@pytest.mark.parametrize("data", [KEEPALIVE, b"", b"\x00padding", VECTORS["udpcl-advert"], b"\x06\x00"])
def test_only_bundles_are_sent(data: bytes) -> None:
    assert send_refusal(data, MAX_UDP_PAYLOAD_IPV4) is not None


def test_payload_ceiling_by_family() -> None:
    assert max_payload_for_host("127.0.0.1") == MAX_UDP_PAYLOAD_IPV4 == 65_507
    assert max_payload_for_host("::1") == MAX_UDP_PAYLOAD_IPV6 == 65_527
    assert max_payload_for_host("mars-relay.example") == MAX_UDP_PAYLOAD_IPV4


# -- addresses ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("udp://127.0.0.1:4557", ("127.0.0.1", 4557)),
        ("udp://127.0.0.1", ("127.0.0.1", DEFAULT_PORT)),
        ("udp://:0", ("127.0.0.1", 0)),
        ("udp://", ("127.0.0.1", DEFAULT_PORT)),
        ("UDP://host.example:1/", ("host.example", 1)),
        ("udp://[::1]:4556", ("::1", 4556)),
        ("udp://[::1]", ("::1", 4556)),
        ("udp://0.0.0.0:4556", ("0.0.0.0", 4556)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_udp_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "tcpcl://127.0.0.1:4556",
        "127.0.0.1:4556",
        "udp://h:70000",
        "udp://h:x",
        "udp://::1:4556",
        "udp://[::1",
        "udp://h/p",
    ],
)
def test_bad_address(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_udp_address(text)


def test_format_address_round_trips() -> None:
    for host, port in [("127.0.0.1", 4556), ("::1", 1113)]:
        assert parse_udp_address(format_udp_address(host, port)) == (host, port)


def test_framing_and_pacing_are_pure() -> None:
    banned = {"asyncio", "socket", "time", "ssl", "sqlalchemy", "asyncio_dgram", "selectors"}
    here = Path(__file__).resolve().parents[3] / "dtn" / "convergence" / "udpcl"
    for name in ("framing.py", "pacing.py"):
        tree = ast.parse((here / name).read_text())
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        } | {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        }
        assert not imported & banned, (name, imported & banned)
