"""The zero-copy paths: bytes landing in the parser's buffer (get_buffer/buffer_updated) and payloads written
from the caller's bundle (data_to_send_parts) give exactly what the copying paths give, with bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtn.convergence.tcpcl.messages import (
    Message,
    MessageParser,
    MessageTooLarge,
    ParserLimits,
    SegmentView,
    XferAck,
    XferSegment,
    encode_segment_header,
)
from dtn.convergence.tcpcl.session import (
    SessionConfig,
    TransferAcked,
    TransferReceived,
)

from .helpers import deliver_in_place, make_pair, vector
from .test_messages import GOLDEN

SESSION_NAMES = [n for n in GOLDEN if n.startswith("session-A")]
STREAM = b"".join(vector(n) for n in SESSION_NAMES)
EXPECTED = [GOLDEN[n] for n in SESSION_NAMES]


def parse_in_place(parser: MessageParser, chunks: list[bytes]) -> list[Message]:
    """Write each chunk into ``get_buffer``'s space (in as many pieces as the space requires) and parse."""
    out: list[Message] = []
    for chunk in chunks:
        while chunk:
            space = parser.get_buffer(-1)
            assert len(space) > 0
            n = min(len(space), len(chunk))
            space[:n] = chunk[:n]
            parser.buffer_updated(n)
            chunk = chunk[n:]
            while (m := parser.next_message()) is not None:
                out.append(m)
    return out


def test_in_place_stream_split_at_every_offset_and_byte_by_byte() -> None:
    for cut in range(len(STREAM) + 1):
        assert parse_in_place(MessageParser(), [STREAM[:cut], STREAM[cut:]]) == EXPECTED
    parser = MessageParser()
    assert parse_in_place(parser, [STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED
    assert parser.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=12), st.data())
def test_in_place_and_fed_give_the_same_messages(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(XferSegment(0x03, i, p).to_bytes() + XferAck(0x01, i, len(p)).to_bytes()
                      for i, p in enumerate(payloads))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    fed = MessageParser()
    expected: list[Message] = []
    for chunk in chunks:
        fed.feed(chunk)
        while (m := fed.next_message()) is not None:
            expected.append(m)
    assert parse_in_place(MessageParser(), chunks) == expected
    assert [m.data for m in expected if isinstance(m, XferSegment)] == payloads


def test_segment_view_is_the_payload_without_a_copy() -> None:
    parser = MessageParser()
    parser.feed(XferSegment(0x03, 9, b"payload").to_bytes())
    view = parser.next_message_view()
    assert isinstance(view, SegmentView) and view.start and view.end and view.transfer_id == 9
    assert isinstance(view.data, memoryview) and bytes(view.data) == b"payload"


def test_get_buffer_grows_with_what_arrives_then_offers_the_rest_of_a_segment() -> None:
    parser = MessageParser(ParserLimits(max_segment_data=4 << 20))
    raw = XferSegment(0x03, 1, bytes(3 << 20)).to_bytes()
    parser.feed(raw[:100])
    assert parser.next_message() is None
    assert len(parser.get_buffer(-1)) < 1 << 20  # a header announcing 3 MiB commits no 3 MiB by itself
    assert len(parser._buf) < 1 << 20
    reads = 0
    for _ in range(2):  # the second segment lands in the buffer the first one grew
        fed = 0 if reads else 100
        reads = 0
        while (m := parser.next_message_view()) is None:
            space = parser.get_buffer(-1)
            n = min(len(space), len(raw) - fed)
            space[:n] = raw[fed : fed + n]
            parser.buffer_updated(n)
            fed += n
            reads += 1
        assert isinstance(m, SegmentView) and len(m.data) == 3 << 20
    assert reads <= 2  # one read for the rest of the segment once the buffer is large enough
    assert len(parser._buf) <= 2 * (len(raw) + 256 * 1024)
    with pytest.raises(ValueError):
        parser.buffer_updated(len(parser._buf) + 1)


def test_oversized_segment_is_refused_before_get_buffer_grows() -> None:
    parser = MessageParser(ParserLimits(max_segment_data=1000))
    parser.feed(encode_segment_header(0x03, 1, 10**9))
    with pytest.raises(MessageTooLarge):
        parser.next_message()
    assert len(parser._buf) < 1 << 20


def test_buffer_stays_bounded_under_a_long_pipelined_stream() -> None:
    """Many segments of the largest allowed size, in odd-sized reads: the one buffer never grows past a few
    segments' worth, however long the stream."""
    limit = 100_000
    parser = MessageParser(ParserLimits(max_segment_data=limit))
    payload = bytes(range(256)) * (limit // 256)
    message = XferSegment(0x03, 1, payload).to_bytes()
    stream = message * 60
    largest = 0
    count = 0
    pos = 0
    while pos < len(stream):
        space = parser.get_buffer(-1)
        n = min(len(space), 77_777, len(stream) - pos)
        space[:n] = stream[pos : pos + n]
        parser.buffer_updated(n)
        pos += n
        while (m := parser.next_message_view()) is not None:
            assert isinstance(m, SegmentView) and m.data == payload
            count += 1
        largest = max(largest, len(parser._buf))
    assert count == 60
    assert largest <= 2 * (len(message) + 256 * 1024)


@pytest.mark.parametrize("chunk", [None, 1, 7, 1000])
def test_session_pair_in_place_gives_the_same_events_as_copying(chunk: int | None) -> None:
    config = SessionConfig(segment_mru=1000, max_segment_bytes=1000)
    bundles = [b"", b"x", bytes(999), bytes(1000), bytes(range(256)) * 20, b"tail"]
    results = []
    for via_buffer in (False, True):
        pair = make_pair(config, config, chunk=chunk, via_buffer=via_buffer)
        for bundle in bundles:
            pair.a.start_transfer(bundle, 0.0)
        pair.pump()
        results.append((pair.events_a, pair.events_b, pair.wire_b))
        assert [e.data for e in pair.events_b if isinstance(e, TransferReceived)] == bundles
        assert [e for e in pair.events_a if isinstance(e, TransferAcked)] == [
            TransferAcked(i) for i in range(len(bundles))]
    assert results[0] == results[1]


def test_closed_session_discards_in_place_bytes() -> None:
    pair = make_pair(via_buffer=True)
    pair.b.connection_lost(0.0)
    assert pair.b.closed
    deliver_in_place(pair.b, b"\x04" * 100_000, 1.0)
    assert pair.b._parser.buffered == 0


def test_data_to_send_parts_write_large_payloads_from_the_bundle() -> None:
    config = SessionConfig(max_segment_bytes=256 * 1024, output_batch_bytes=4 << 20)
    pair, twin = make_pair(config), make_pair(config)
    bundle = bytes(range(256)) * 4096  # 1 MiB: four segments
    small = b"small bundle"
    for session in (pair.a, twin.a):
        session.start_transfer(bundle, 0.0)
        session.start_transfer(small, 0.0)
    parts = pair.a.data_to_send_parts()
    payloads = [p for p in parts if isinstance(p, memoryview)]
    assert len(payloads) == 4 and all(p.obj is bundle for p in payloads)  # views of the caller's bytes
    assert len(parts) == 9  # header, payload x 4, then the small bundle's whole segment as one part
    assert isinstance(parts[-1], bytes) and parts[-1].endswith(small)
    # joined, the parts are exactly the bytes data_to_send produces
    assert b"".join(parts) == twin.a.data_to_send()
    assert pair.a.data_to_send_parts() == [] and twin.a.data_to_send() == b""
