"""The in-process link: the CL contract, refusal propagation, link events, simulated rate, latency and loss."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from dtn.convergence.base import LinkLimits, Outcome, RefuseReason
from dtn.convergence.memory import ChannelModel, MemoryConvergenceLayer, MemoryLink, MemoryNetwork
from dtn.errors import ConfigError
from tests.convergence.udpcl.support import G1, G2, RecordingSink

Pair = tuple[MemoryConvergenceLayer, RecordingSink, MemoryConvergenceLayer, RecordingSink]


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    net = MemoryNetwork()
    a_sink, b_sink = RecordingSink(), RecordingSink()
    a = net.convergence_layer(a_sink, node_id="ipn:1.0")
    b = net.convergence_layer(b_sink, node_id="ipn:2.0")
    assert await b.listen("mem://b") == "mem://b"
    yield a, a_sink, b, b_sink
    await a.close()
    await b.close()


async def test_connect_reports_link_up_on_both_sides_with_node_ids(pair: Pair) -> None:
    a, a_sink, _, b_sink = pair
    link = await a.connect("mem://b")
    assert a_sink.ups == [link] and link.is_up
    assert link.peer_node_id == "ipn:2.0"  # learnt from the listener, as a TCPCL SESS_INIT would tell it
    (far_end,) = b_sink.ups
    assert far_end.peer_node_id == "ipn:1.0" and far_end.is_up
    assert far_end.link_id != link.link_id
    configured = await a.connect("mem://b", peer_node_id="ipn:22.0")
    assert configured.peer_node_id == "ipn:22.0"


async def test_bundles_go_both_ways(pair: Pair) -> None:
    a, a_sink, _, b_sink = pair
    link = await a.connect("mem://b")
    assert (await link.send(G1)).ok
    far_end, data = await b_sink.next()
    assert data == G1 and far_end is b_sink.ups[0]
    assert (await far_end.send(memoryview(G2))).ok
    back, data = await a_sink.next()
    assert data == G2 and back is link


@pytest.mark.parametrize("reason", list(RefuseReason))
async def test_refusal_propagates_to_the_sender(pair: Pair, reason: RefuseReason) -> None:
    a, _, _, b_sink = pair
    b_sink.refuse_with = reason
    result = await (await a.connect("mem://b")).send(G1)
    assert result.outcome is Outcome.REFUSED and result.reason is reason and not result.ok
    assert reason.name in result.detail


async def test_receiver_error_is_a_failure_for_the_sender(pair: Pair) -> None:
    a, _, _, b_sink = pair
    b_sink.fail_with = RuntimeError("disk gone")
    result = await (await a.connect("mem://b")).send(G1)
    assert result.outcome is Outcome.FAILED and "disk gone" in result.detail


async def test_oversize_fails_with_the_reason(pair: Pair) -> None:
    a, _, _, b_sink = pair
    link = await a.connect("mem://b", limits=LinkLimits(max_bundle_bytes=50))
    assert link.limits.max_bundle_bytes == 50
    result = await link.send(G1)
    assert result.outcome is Outcome.FAILED and result.reason is RefuseReason.NOT_ACCEPTABLE
    assert "51 bytes" in result.detail and "fragment" in result.detail
    assert b_sink.received.empty()


async def test_close_reports_link_down_on_both_sides(pair: Pair) -> None:
    a, a_sink, _, b_sink = pair
    link = await a.connect("mem://b")
    far_end = b_sink.ups[0]
    await link.close()
    assert a_sink.downs == [(link, "closed locally")]
    assert b_sink.downs == [(far_end, "closed by peer")]
    assert not link.is_up and not far_end.is_up
    assert (await link.send(G1)).outcome is Outcome.FAILED
    assert (await far_end.send(G1)).outcome is Outcome.FAILED
    await link.close()
    assert len(a_sink.downs) == 1


async def test_closing_the_listener_closes_its_links_and_frees_the_name(pair: Pair) -> None:
    a, a_sink, b, _ = pair
    link = await a.connect("mem://b")
    await b.close()
    assert a_sink.downs == [(link, "closed by peer")]
    with pytest.raises(ConnectionRefusedError):
        await a.connect("mem://b")


async def test_bundles_in_flight_fail_when_the_link_closes(pair: Pair) -> None:
    a, _, _, b_sink = pair
    b_sink.hold = asyncio.Event()  # the receiver stalls on the first bundle
    link = await a.connect("mem://b")
    sends = [asyncio.create_task(link.send(G1)) for _ in range(3)]
    await asyncio.wait_for(b_sink.entered.wait(), 5)  # one bundle is in the sink, two are queued
    await link.close()
    results = await asyncio.wait_for(asyncio.gather(*sends), 5)
    assert [r.outcome for r in results] == [Outcome.FAILED] * 3
    assert "during delivery" in results[0].detail and "closed" in results[2].detail


async def test_addresses_and_names() -> None:
    net, other = MemoryNetwork(), MemoryNetwork()
    x = net.convergence_layer(RecordingSink())
    y = net.convergence_layer(RecordingSink())
    await x.listen("mem://x")
    with pytest.raises(OSError, match="in use"):
        await y.listen("mem://x")
    with pytest.raises(ConnectionRefusedError):
        await y.connect("mem://nobody")
    with pytest.raises(ConnectionRefusedError):  # networks are separate namespaces
        await other.convergence_layer(RecordingSink()).connect("mem://x")
    for bad in ["mem://", "udp://x", "x", "mem://a/b"]:
        with pytest.raises(ConfigError):
            await y.connect(bad)
    await x.close()
    await y.close()


async def test_latency_delays_delivery_and_the_answer() -> None:
    net = MemoryNetwork()
    a = net.convergence_layer(RecordingSink())
    b_sink = RecordingSink()
    b = net.convergence_layer(b_sink)
    await b.listen("mem://b")
    link = await a.connect("mem://b", model=ChannelModel(latency_s=0.05))
    loop = asyncio.get_running_loop()
    start = loop.time()
    results = await asyncio.gather(link.send(G1), link.send(G2))
    elapsed = loop.time() - start
    assert all(r.ok for r in results)
    assert elapsed >= 2 * 0.05  # there and back again (a lower bound, not a speed test)
    assert [(await b_sink.next())[1] for _ in range(2)] == [G1, G2]
    await a.close()
    await b.close()


async def test_rate_paces_in_order() -> None:
    net = MemoryNetwork()
    a = net.convergence_layer(RecordingSink())
    b_sink = RecordingSink()
    b = net.convergence_layer(b_sink)
    await b.listen("mem://b")
    link = await a.connect("mem://b", limits=LinkLimits(rate_bytes_per_s=51 * 100.0))
    assert link.limits.rate_bytes_per_s == 5100.0
    loop = asyncio.get_running_loop()
    start = loop.time()
    payloads = [G1[:-1] + bytes([i]) for i in range(5)]  # 5 x 51 bytes at 5100 B/s, no burst: >= 50 ms
    results = await asyncio.gather(*(link.send(p) for p in payloads))
    assert all(r.ok for r in results)
    assert loop.time() - start >= 5 * 0.01
    assert [(await b_sink.next())[1] for _ in payloads] == payloads
    await a.close()
    await b.close()


async def test_simulated_loss_is_reproducible_with_a_seeded_rng() -> None:
    def expected_losses(seed: int, n: int, p: float) -> list[bool]:
        rng = random.Random(seed)
        return [rng.random() < p for _ in range(n)]

    net = MemoryNetwork()
    a = net.convergence_layer(RecordingSink(), rng=random.Random(7))
    b_sink = RecordingSink()
    b = net.convergence_layer(b_sink)
    await b.listen("mem://b")
    link = await a.connect("mem://b", model=ChannelModel(loss=0.5))
    payloads = [G1[:-1] + bytes([i]) for i in range(40)]
    results = [await link.send(p) for p in payloads]
    lost = [r.outcome is Outcome.FAILED for r in results]
    assert lost == expected_losses(7, 40, 0.5)
    assert all("simulated loss" in r.detail for r in results if not r.ok)
    delivered = [p for p, was_lost in zip(payloads, lost, strict=True) if not was_lost]
    assert [(await b_sink.next())[1] for _ in delivered] == delivered
    assert b_sink.received.empty()
    await a.close()
    await b.close()


async def test_unacknowledged_links_report_departure_not_the_receivers_answer() -> None:
    net = MemoryNetwork()
    a = net.convergence_layer(RecordingSink())
    b_sink = RecordingSink(refuse_with=RefuseReason.NO_RESOURCES)
    b = net.convergence_layer(b_sink)
    await b.listen("mem://b")
    link = await a.connect("mem://b", model=ChannelModel(acknowledged=False, latency_s=0.01))
    assert (await link.send(G1)).ok  # like UDP: it left; the refusal never comes back
    assert (await b_sink.next())[1] == G1
    lossy = await a.connect("mem://b", model=ChannelModel(acknowledged=False, loss=1.0))
    assert (await lossy.send(G2)).ok
    assert (await link.send(G1)).ok
    assert (await b_sink.next())[1] == G1  # G2 was lost silently; G1 on the first link still arrives
    await a.close()
    await b.close()


def test_channel_model_is_validated() -> None:
    for bad in [
        {"latency_s": -1.0},
        {"latency_s": float("nan")},
        {"loss": 1.5},
        {"queue_size": 0},
        {"burst_bytes": -1},
    ]:
        with pytest.raises(ConfigError):
            ChannelModel(**bad)  # type: ignore[arg-type]


async def test_memory_link_is_a_link(pair: Pair) -> None:
    a, _, _, _ = pair
    link = await a.connect("mem://b")
    assert isinstance(link, MemoryLink)
    assert link.link_id.startswith("mem://") and link.limits == LinkLimits()
