"""Transfers larger than memory, sans-I/O: incoming ones streamed as TransferData events (spool_above_bytes),
outgoing ones produced from a chunk iterator (start_transfer_stream) with the same bytes on the wire."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtn.convergence.base import RefuseReason
from dtn.convergence.tcpcl.messages import XferRefuse, XferSegment, transfer_length_item
from dtn.convergence.tcpcl.session import (
    SessionConfig,
    SessionEnded,
    TcpclSession,
    TransferAborted,
    TransferAcked,
    TransferData,
    TransferFailed,
    TransferReceived,
    TransferRefused,
    TransferStreamed,
)

from .helpers import Pair, make_pair

SPOOL = 100
RECEIVER = SessionConfig(spool_above_bytes=SPOOL)


def sender(mtu: int) -> SessionConfig:
    return SessionConfig(max_segment_bytes=mtu)


def streamed(events: list[object], tid: int) -> bytes:
    """The data of transfer ``tid``'s TransferData events, checking they come in order without gaps."""
    out = bytearray()
    for event in events:
        if isinstance(event, TransferData) and event.transfer_id == tid:
            assert event.offset == len(out)
            out += event.data
    return bytes(out)


def finish_streamed(pair: Pair) -> None:
    for event in list(pair.events_b):
        if isinstance(event, TransferStreamed):
            pair.b.finish_transfer(event.transfer_id, None, pair.now)
    pair.pump()


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_a_large_transfer_is_streamed_not_gathered(chunk: int | None) -> None:
    pair = make_pair(sender(64), RECEIVER, chunk=chunk)
    data = os.urandom(1000)
    tid = pair.a.start_transfer(data, pair.now)
    pair.pump()
    assert not any(isinstance(e, TransferReceived) for e in pair.events_b)
    assert [e for e in pair.events_b if isinstance(e, TransferStreamed)] == [TransferStreamed(tid, 1000)]
    assert streamed(pair.events_b, tid) == data
    assert pair.b.rx_gathered_high_water_bytes <= SPOOL
    assert not any(isinstance(e, TransferAcked) for e in pair.events_a)  # not before the node decides
    finish_streamed(pair)
    assert TransferAcked(tid) in pair.events_a


def test_a_small_transfer_is_still_gathered() -> None:
    pair = make_pair(sender(16), RECEIVER)
    tid = pair.a.start_transfer(b"x" * SPOOL, pair.now)
    pair.pump()
    assert TransferReceived(tid, b"x" * SPOOL) in pair.events_b
    assert not any(isinstance(e, TransferData | TransferStreamed) for e in pair.events_b)
    assert TransferAcked(tid) in pair.events_a


def test_a_one_segment_transfer_above_the_threshold_is_streamed() -> None:
    pair = make_pair(None, RECEIVER)
    tid = pair.a.start_transfer(b"y" * 500, pair.now)
    pair.pump()
    assert streamed(pair.events_b, tid) == b"y" * 500
    assert TransferStreamed(tid, 500) in pair.events_b


def test_split_at_every_offset() -> None:
    data = bytes(range(256)) + b"tail"
    reference = make_pair(sender(64), RECEIVER)
    reference.a.start_transfer(data, 0.0)
    wire = reference.a.data_to_send()
    for cut in range(len(wire) + 1):
        pair = make_pair(sender(64), RECEIVER)
        for part in (wire[:cut], wire[cut:]):
            if part:
                pair.b.receive_data(part, 0.0)
        pair._drain_events()
        assert streamed(pair.events_b, 0) == data, cut
        assert TransferStreamed(0, len(data)) in pair.events_b


def test_without_a_length_extension_the_gathered_bytes_are_handed_out_once_above_the_threshold() -> None:
    pair = make_pair(None, RECEIVER)
    b = pair.b
    pieces = [os.urandom(40) for _ in range(5)]
    for i, piece in enumerate(pieces):
        flags = (2 if i == 0 else 0) | (1 if i == len(pieces) - 1 else 0)
        b.receive_data(XferSegment(flags, 3, piece).to_bytes(), 0.0)
    pair._drain_events()
    data_events = [e for e in pair.events_b if isinstance(e, TransferData)]
    # the third segment takes it past 100: the 80 bytes gathered go out at once, then each segment
    assert [(e.offset, len(e.data)) for e in data_events] == [(0, 80), (80, 40), (120, 40), (160, 40)]
    assert streamed(pair.events_b, 3) == b"".join(pieces)
    assert TransferStreamed(3, 200) in pair.events_b
    assert b.rx_gathered_high_water_bytes <= SPOOL


def test_an_abandoned_streamed_transfer_is_aborted() -> None:
    pair = make_pair(None, RECEIVER)
    b = pair.b
    b.receive_data(XferSegment(2, 0, b"a" * 60, (transfer_length_item(400),)).to_bytes(), 0.0)
    b.receive_data(XferSegment(0, 0, b"a" * 60).to_bytes(), 0.0)
    b.receive_data(XferSegment(3, 1, b"b" * 10).to_bytes(), 0.0)  # a new transfer starts: 0 is abandoned
    pair._drain_events()
    assert any(isinstance(e, TransferAborted) and e.transfer_id == 0 for e in pair.events_b)
    assert TransferReceived(1, b"b" * 10) in pair.events_b


def test_a_streamed_transfer_cut_by_the_connection_is_aborted_before_the_session_ends() -> None:
    pair = make_pair(None, RECEIVER)
    b = pair.b
    b.receive_data(XferSegment(2, 0, b"a" * 60, (transfer_length_item(400),)).to_bytes(), 0.0)
    b.receive_data(b"", 0.0)
    pair._drain_events()
    kinds = [type(e) for e in pair.events_b if isinstance(e, TransferAborted | SessionEnded)]
    assert kinds == [TransferAborted, SessionEnded]


def test_a_streamed_transfer_above_its_announced_length_is_refused_and_aborted() -> None:
    pair = make_pair(None, RECEIVER)
    b = pair.b
    b.receive_data(XferSegment(2, 0, b"a" * 60, (transfer_length_item(150),)).to_bytes(), 0.0)
    b.receive_data(XferSegment(0, 0, b"a" * 100).to_bytes(), 0.0)
    pair._drain_events()
    assert any(isinstance(e, TransferAborted) for e in pair.events_b)
    assert XferRefuse(RefuseReason.NOT_ACCEPTABLE, 0).to_bytes() in b.data_to_send()


def test_the_node_refuses_a_streamed_transfer_while_it_arrives() -> None:
    pair = make_pair(sender(64), RECEIVER, chunk=64)
    pair.auto_accept = False
    tid = pair.a.start_transfer(os.urandom(2000), pair.now)
    # deliver the first segments only, then refuse
    wire = pair.a.data_to_send()
    pair.b.receive_data(wire[:300], 0.0)
    pair._drain_events()
    assert any(isinstance(e, TransferData) for e in pair.events_b)
    pair.b.refuse_transfer(tid, RefuseReason.NO_RESOURCES, 0.0)
    before = len(pair.events_b)
    pair.b.receive_data(wire[300:], 0.0)
    pair.pump()
    assert not any(isinstance(e, TransferData | TransferStreamed) for e in pair.events_b[before:])
    assert TransferRefused(tid, RefuseReason.NO_RESOURCES) in pair.events_a
    assert pair.a.established and pair.b.established


# --- outgoing ---------------------------------------------------------------------------------------------


def chunked(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    pos, i = 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        yield data[pos : pos + size]
        pos += size
        i += 1


def wire_of(pair: Pair) -> bytes:
    out = bytearray()
    while data := pair.a.data_to_send():
        out += data
    return bytes(out)


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=3000),
    mtu=st.integers(1, 700),
    sizes=st.lists(st.integers(0, 900), min_size=1, max_size=5).filter(any),
    batch=st.integers(1, 2000),
)
def test_a_streamed_transmission_puts_the_same_bytes_on_the_wire(
    data: bytes, mtu: int, sizes: list[int], batch: int
) -> None:
    config = SessionConfig(max_segment_bytes=mtu, output_batch_bytes=batch)
    whole = make_pair(config)
    whole.a.start_transfer(data, 0.0)
    stream = make_pair(config)
    stream.a.start_transfer_stream(len(data), chunked(data, sizes), 0.0)
    assert wire_of(stream) == wire_of(whole)


def test_a_streamed_transmission_is_acknowledged_and_received_whole() -> None:
    pair = make_pair(sender(100))
    data = os.urandom(5000)
    tid = pair.a.start_transfer_stream(len(data), chunked(data, [333, 1, 1000]), 0.0)
    pair.pump()
    assert TransferReceived(tid, data) in pair.events_b
    assert TransferAcked(tid) in pair.events_a


def test_chunks_are_pulled_only_as_segments_are_produced() -> None:
    pair = make_pair(SessionConfig(max_segment_bytes=100, output_batch_bytes=1000))
    pulled = 0

    def source() -> Iterator[bytes]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield b"z" * 100

    pair.a.start_transfer_stream(100_000, source(), 0.0)
    pair.a.data_to_send()
    assert pulled <= 11  # about one output batch, not the whole bundle


def failing(after: int) -> Iterator[bytes]:
    yield b"q" * after
    raise OSError("disk gone")


@pytest.mark.parametrize("source", [failing(150), iter([b"q" * 150])], ids=["error", "short"])
def test_a_failing_source_terminates_the_session(source: Iterator[bytes]) -> None:
    pair = make_pair(sender(100))
    tid = pair.a.start_transfer_stream(1000, source, 0.0)
    pair.pump()
    assert pair.a.closed
    assert any(isinstance(e, TransferFailed) and e.transfer_id == tid for e in pair.events_a)
    assert not any(isinstance(e, TransferReceived) for e in pair.events_b)


def test_a_streamed_transfer_larger_than_the_peers_mru_is_refused_at_once() -> None:
    pair = make_pair(None, SessionConfig(transfer_mru=1000))
    from dtn.convergence.tcpcl.session import TransferTooLarge

    with pytest.raises(TransferTooLarge):
        pair.a.start_transfer_stream(1001, iter([b"x" * 1001]), 0.0)
    assert isinstance(pair.a, TcpclSession)
