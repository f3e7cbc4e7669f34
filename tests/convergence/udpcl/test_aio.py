"""The UDP CL on real sockets on 127.0.0.1: one bundle per datagram, limits, keepalives, garbage, pacing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncio_dgram
import pytest

from dtn.convergence.base import LinkLimits, Outcome, RefuseReason
from dtn.convergence.udpcl.aio import UdpConvergenceLayer, UdpLink
from dtn.convergence.udpcl.framing import KEEPALIVE, MAX_UDP_PAYLOAD_IPV4
from dtn.errors import ConfigError
from tests.convergence.udpcl.support import G1, G2, VECTORS, RecordingSink, cbor_array_of_size


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[UdpConvergenceLayer, RecordingSink, str]]:
    sink = RecordingSink()
    cl = UdpConvergenceLayer(sink)
    address = await cl.listen("udp://127.0.0.1:0")
    yield cl, sink, address
    await cl.close()


@pytest.fixture
async def sender() -> AsyncIterator[tuple[UdpConvergenceLayer, RecordingSink]]:
    sink = RecordingSink()
    cl = UdpConvergenceLayer(sink)
    yield cl, sink
    await cl.close()


Receiver = tuple[UdpConvergenceLayer, RecordingSink, str]
Sender = tuple[UdpConvergenceLayer, RecordingSink]


async def test_listen_binds_loopback_and_resolves_port_zero(receiver: Receiver) -> None:
    cl, _, address = receiver
    assert address.startswith("udp://127.0.0.1:") and not address.endswith(":0")
    second = await cl.listen("udp://:0")  # no host: loopback, never the wildcard
    assert second.startswith("udp://127.0.0.1:")
    assert cl.listening_addresses == [address, second]


SIZES = [1, 2, 23, 24, 26, 51, 255, 256, 1024, 1472, 8192, 65_535 - 28 - 1, MAX_UDP_PAYLOAD_IPV4]


async def test_bundles_from_1_byte_to_65507_bytes_arrive_intact(receiver: Receiver, sender: Sender) -> None:
    rx, rx_sink, address = receiver
    tx, tx_sink = sender
    link = await tx.connect(address, peer_node_id="ipn:2.0")
    assert link.peer_node_id == "ipn:2.0" and link.is_up
    assert link.limits.max_bundle_bytes == MAX_UDP_PAYLOAD_IPV4
    assert tx_sink.ups == [link]
    payloads = [cbor_array_of_size(size, tag=i) for i, size in enumerate(SIZES)] + [G1, G2]
    for data in payloads:
        result = await link.send(data)
        assert result.outcome is Outcome.ACKNOWLEDGED, result
        in_link, got = await rx_sink.next()
        assert got == data
        assert isinstance(in_link, UdpLink)
        assert in_link.peer_address == link.local_address  # the receive-side link is the sender's address
        assert in_link.peer_node_id is None
    assert rx.stats.bundles_received == rx.stats.datagrams_received == len(payloads)
    assert rx.stats.bytes_received == tx.stats.bytes_sent == sum(map(len, payloads))
    assert tx.stats.datagrams_sent == len(payloads)


async def test_oversize_bundle_is_refused_with_the_reason(receiver: Receiver, sender: Sender) -> None:
    rx, rx_sink, address = receiver
    tx, _ = sender
    link = await tx.connect(address)
    result = await link.send(cbor_array_of_size(MAX_UDP_PAYLOAD_IPV4 + 1))
    assert result.outcome is Outcome.FAILED and not result.ok
    assert result.reason is RefuseReason.NOT_ACCEPTABLE
    assert "65508" in result.detail and "65507" in result.detail and "fragment" in result.detail
    assert tx.stats.send_refused == 1 and tx.stats.datagrams_sent == 0
    assert (await link.send(G1)).ok  # the link still works, and nothing else went out before G1
    assert (await rx_sink.next())[1] == G1
    assert rx.stats.datagrams_received == 1


async def test_configured_maximum_is_enforced(receiver: Receiver, sender: Sender) -> None:
    _, rx_sink, address = receiver
    tx, _ = sender
    link = await tx.connect(address, limits=LinkLimits(max_bundle_bytes=1000))
    assert link.limits.max_bundle_bytes == 1000
    refused = await link.send(cbor_array_of_size(1001))
    assert refused.outcome is Outcome.FAILED and "1000" in refused.detail
    assert (await link.send(cbor_array_of_size(1000))).ok
    assert len((await rx_sink.next())[1]) == 1000


async def test_maximum_above_the_ipv4_ceiling_is_a_config_error(receiver: Receiver, sender: Sender) -> None:
    _, _, address = receiver
    tx, _ = sender
    with pytest.raises(ConfigError, match="65507"):
        await tx.connect(address, limits=LinkLimits(max_bundle_bytes=65_527))
    with pytest.raises(ConfigError):
        UdpConvergenceLayer(RecordingSink(), max_bundle_bytes=70_000)


async def test_keepalives_are_ignored_and_never_sent(receiver: Receiver, sender: Sender) -> None:
    rx, rx_sink, address = receiver
    tx, _ = sender
    raw = await asyncio_dgram.connect(("127.0.0.1", int(address.rsplit(":", 1)[1])))
    try:
        await raw.send(KEEPALIVE)
        await raw.send(KEEPALIVE)
        await raw.send(G1)
        assert (await rx_sink.next())[1] == G1
    finally:
        raw.close()
    assert rx.stats.keepalives_received == 2 and rx.stats.bundles_received == 1 and rx.stats.malformed == 0
    link = await tx.connect(address)
    refused = await link.send(KEEPALIVE)
    assert refused.outcome is Outcome.FAILED and refused.reason is RefuseReason.NOT_ACCEPTABLE
    assert "not an encoded BPv7 bundle" in refused.detail
    assert tx.stats.datagrams_sent == 0


async def test_garbage_is_counted_and_the_cl_keeps_working(receiver: Receiver) -> None:
    rx, rx_sink, address = receiver
    raw = await asyncio_dgram.connect(("127.0.0.1", int(address.rsplit(":", 1)[1])))
    garbage = [b"hello", G1[:-1], G1 + b"\x00", b"\xff" * 100, b"\x9b" + b"\xff" * 8]
    ignored = [VECTORS["udpcl-advert"], b"\x06\x00\x01", b"\x00" * 12, b"\x16\xfe\xfd\x00"]
    try:
        for data in garbage + ignored:
            await raw.send(data)
        await raw.send(G2)
        link, got = await rx_sink.next()
    finally:
        raw.close()
    assert got == G2
    stats = await rx.wait_stats(lambda s: s.datagrams_received == len(garbage) + len(ignored) + 1)
    assert stats.malformed == len(garbage)
    assert stats.ignored == len(ignored)
    assert stats.bundles_received == 1 and stats.bundles_accepted == 1
    assert rx_sink.received.empty()


async def test_sink_refusals_and_errors_are_counted_not_fatal(receiver: Receiver, sender: Sender) -> None:
    rx, rx_sink, address = receiver
    tx, _ = sender
    link = await tx.connect(address)
    rx_sink.refuse_with = RefuseReason.COMPLETED
    assert (await link.send(G1)).ok  # nothing comes back on UDP: the sender's outcome is "it left"
    await rx_sink.next()
    rx_sink.refuse_with = None
    rx_sink.fail_with = RuntimeError("store on fire")
    assert (await link.send(G2)).ok
    await rx_sink.next()
    rx_sink.fail_with = None
    assert (await link.send(G1)).ok
    await rx_sink.next()
    stats = await rx.wait_stats(lambda s: s.bundles_accepted == 1)
    assert stats.refused_by_sink == 1 and stats.sink_errors == 1


async def test_reply_on_the_receive_side_link_reaches_the_sender(receiver: Receiver, sender: Sender) -> None:
    _, rx_sink, address = receiver
    tx, tx_sink = sender
    out_link = await tx.connect(address)
    assert (await out_link.send(G1)).ok
    in_link, _ = await rx_sink.next()
    assert (await in_link.send(G2)).ok
    reply_link, data = await tx_sink.next()
    assert data == G2 and reply_link is out_link


async def test_receive_queue_is_bounded(sender: Sender) -> None:
    hold = asyncio.Event()
    sink = RecordingSink(hold=hold)
    rx = UdpConvergenceLayer(sink, receive_queue_size=2)
    try:
        address = await rx.listen("udp://127.0.0.1:0")
        tx, _ = sender
        link = await tx.connect(address)
        for i in range(20):
            assert (await link.send(cbor_array_of_size(100, tag=i))).ok
        stats = await rx.wait_stats(lambda s: s.bundles_received == 20)
        # at most the queue (2) plus the one the stalled sink holds survive; the rest are dropped, counted
        assert 17 <= stats.dropped_queue_full <= 18
        hold.set()
        kept = 20 - stats.dropped_queue_full
        await rx.wait_stats(lambda s: s.bundles_accepted == kept)
        first, _ = await sink.next()
        assert sink.received.qsize() == kept - 1
    finally:
        await rx.close()


async def test_paced_link_keeps_order_and_reports_its_rate(receiver: Receiver) -> None:
    _, rx_sink, address = receiver
    tx = UdpConvergenceLayer(RecordingSink(), burst_bytes=1000)
    try:
        link = await tx.connect(address, limits=LinkLimits(rate_bytes_per_s=1_000_000.0))
        assert link.limits.rate_bytes_per_s == 1_000_000.0
        payloads = [cbor_array_of_size(1000, tag=i) for i in range(30)]
        loop = asyncio.get_running_loop()
        start = loop.time()
        results = await asyncio.gather(*(link.send(p) for p in payloads))  # 29 kB beyond the burst at 1 MB/s
        assert loop.time() - start >= 0.029  # the pacing delays happened (a lower bound, not a speed test)
        assert all(r.ok for r in results)
        received = [(await rx_sink.next())[1] for _ in payloads]
        assert received == payloads
        link.set_rate(None)
        assert link.limits.rate_bytes_per_s is None and link.limits.max_bundle_bytes == MAX_UDP_PAYLOAD_IPV4
        link.set_rate(1000.0)
        assert link.limits.rate_bytes_per_s == 1000.0
    finally:
        await tx.close()


async def test_a_closed_receive_side_link_is_replaced(receiver: Receiver, sender: Sender) -> None:
    _, rx_sink, address = receiver
    tx, _ = sender
    link = await tx.connect(address)
    assert (await link.send(G1)).ok
    first, _ = await rx_sink.next()
    await first.close()
    assert not first.is_up and rx_sink.downs == []  # no link events for receive-side links
    assert (await link.send(G2)).ok
    second, _ = await rx_sink.next()
    assert second is not first and second.is_up
    assert isinstance(second, UdpLink) and isinstance(first, UdpLink)
    assert second.peer_address == first.peer_address


async def test_link_up_and_down_events(receiver: Receiver, sender: Sender) -> None:
    _, _, address = receiver
    tx, tx_sink = sender
    first = await tx.connect(address, peer_node_id="ipn:2.0")
    second = await tx.connect(address)
    assert tx_sink.ups == [first, second] and first.link_id != second.link_id
    await first.close()
    assert tx_sink.downs == [(first, "closed locally")]
    assert not first.is_up and second.is_up
    after = await first.send(G1)
    assert after.outcome is Outcome.FAILED and "closed" in after.detail
    await first.close()  # idempotent
    assert len(tx_sink.downs) == 1
    await tx.close()
    assert [link for link, _ in tx_sink.downs] == [first, second]
    with pytest.raises(ConnectionError):
        await tx.connect(address)


async def test_sending_to_a_port_nobody_listens_on_never_raises(sender: Sender) -> None:
    tx, _ = sender
    probe = await asyncio_dgram.bind(("127.0.0.1", 0))
    port = probe.sockname[1]
    probe.close()
    link = await tx.connect(f"udp://127.0.0.1:{port}")
    outcomes = [(await link.send(G1)).outcome for _ in range(5)]
    # loss is silent; an ICMP "port unreachable" may surface as FAILED on a later datagram
    assert outcomes[0] is Outcome.ACKNOWLEDGED
    assert set(outcomes) <= {Outcome.ACKNOWLEDGED, Outcome.FAILED}
    assert tx.stats.datagrams_sent + tx.stats.send_failed == 5
