"""SIGKILL of the middle node of a line while 1,000 bundles cross it: after a restart every bundle reaches the
application exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from dtn.api.client import DtnClient

from .procs import eventually, line_of_nodes

BUNDLES = 1000


@pytest.mark.slow
async def test_sigkill_of_the_relay_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    nodes = line_of_nodes(tmp_path, "tcpcl")
    for node in nodes:
        await asyncio.to_thread(node.start)
    sender, relay, receiver = nodes
    received: list[bytes] = []
    try:
        async with DtnClient(sender.api) as one, DtnClient(receiver.api) as three:
            await three.register("ipn:3.1")

            async def collect() -> None:
                async with three.subscribe("ipn:3.1", window=16) as deliveries:
                    async for delivery in deliveries:
                        received.append(delivery.payload)
                        await deliveries.ack(delivery)

            collector = asyncio.create_task(collect())
            slots = asyncio.Semaphore(32)

            async def send(i: int) -> str:
                async with slots:
                    return await one.send("ipn:3.1", f"bundle {i:04d}".encode())

            sending = asyncio.gather(*(send(i) for i in range(BUNDLES)))
            await eventually(lambda: len(received) >= 50, 60, "the first bundles across")
            relay.kill()
            at_kill = len(received)
            print(f"relay killed after {at_kill} deliveries")
            ids = await sending  # the sender keeps accepting while the relay is down
            assert len(set(ids)) == BUNDLES
            await asyncio.to_thread(relay.start)
            await eventually(lambda: len(received) >= BUNDLES, 120, f"{BUNDLES} bundles delivered")
            # nothing more arrives: no duplicate is on its way (wait for the sender's and relay's stores to empty)
            async with DtnClient(relay.api) as two:
                await eventually(lambda: _all_empty([one, two, three]), 60, "every store empty")
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)
    finally:
        for node in nodes:
            if node.running:
                assert node.terminate() == 0, node.log()
    assert at_kill < BUNDLES, "the relay was killed after everything had crossed"
    counts = Counter(received)
    assert [p for p, n in counts.items() if n > 1] == []
    assert sorted(counts) == [f"bundle {i:04d}".encode() for i in range(BUNDLES)]


async def _all_empty(clients: list[DtnClient]) -> bool:
    for client in clients:
        if await client.bundles(limit=1):
            return False
    return True
