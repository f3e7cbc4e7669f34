"""Whole nodes in one process: real SQLite stores and real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dtn.config import config_from_dict
from dtn.node import Node


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start(tmp: Path, raw: dict[str, object]) -> Node:
    node = Node(config_from_dict(raw, base_dir=tmp))
    await node.start()
    return node


async def wait_for(predicate: object, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def line(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[list[Node]]:
    scheme = getattr(request, "param", "tcpcl")
    kind = socket.SOCK_STREAM if scheme == "tcpcl" else socket.SOCK_DGRAM
    ports = [free_port(kind) for _ in range(3)]
    url = [f"{scheme}://127.0.0.1:{p}" for p in ports]
    nodes = [
        await start(
            tmp_path,
            {
                "node_id": "ipn:1",
                "data_dir": "n1",
                "listen": [url[0]],
                "neighbour": [{"node_id": "ipn:2", "url": url[1]}],
                "route": [{"destination": "ipn:3.*", "via": "ipn:2"}],
            },
        ),
        await start(
            tmp_path,
            {
                "node_id": "ipn:2",
                "data_dir": "n2",
                "listen": [url[1]],
                "neighbour": [{"node_id": "ipn:3", "url": url[2]}]
                + ([{"node_id": "ipn:1", "url": url[0]}] if scheme == "udp" else []),
            },
        ),
        await start(
            tmp_path,
            {
                "node_id": "ipn:3",
                "data_dir": "n3",
                "listen": [url[2]],
                "route": [{"destination": "ipn:1.*", "via": "ipn:2"}],
            }
            | ({"neighbour": [{"node_id": "ipn:2", "url": url[1]}]} if scheme == "udp" else {}),
        ),
    ]
    try:
        yield nodes
    finally:
        for node in nodes:
            await node.stop()


@pytest.mark.parametrize("line", ["tcpcl", "udp"], indirect=True)
async def test_three_nodes_in_a_line(line: list[Node]) -> None:
    first, relay, last = line
    last.register("ipn:3.1")
    await wait_for(lambda: "ipn:2.0" in first.status()["links_up"] and "ipn:3.0" in relay.status()["links_up"])
    bundle_id = await first.send("ipn:3.1", b"across the line", file_name="note.txt", reports=frozenset({"delivered"}))
    delivery = await last.next_delivery("ipn:3.1", timeout_s=10)
    assert delivery is not None
    assert delivery.payload == b"across the line" and delivery.file_name == "note.txt"
    assert delivery.bundle_id == bundle_id and delivery.source == "ipn:1.0"
    assert await last.acknowledge("ipn:3.1", delivery.bundle_id)
    report = await first.wait_report(bundle_id, "delivered", timeout_s=10)
    assert report is not None and report.delivered.asserted
    await wait_for(lambda: all(n.status()["bundles_stored"] == 0 for n in line))
    stats = json.loads(json.dumps(relay.statistics()))
    assert stats["forwarded"] >= 1 and stats["commits"] >= 1
    scheme = "tcpcl" if "tcpcl" in relay.cls else "udp"
    if scheme == "udp":
        assert stats["udp_cl"]["bundles_received"] >= 1


async def test_a_node_resumes_stored_bundles_after_restart(tmp_path: Path) -> None:
    port = free_port()
    raw = {
        "node_id": "ipn:1",
        "data_dir": "n1",
        "neighbour": [{"node_id": "ipn:2", "url": f"tcpcl://127.0.0.1:{port}"}],
    }
    sender = await start(tmp_path, raw)
    await sender.send("ipn:2.1", b"kept across a restart")
    assert sender.status()["bundles_stored"] == 1
    await sender.stop()
    receiver = await start(tmp_path, {"node_id": "ipn:2", "data_dir": "n2", "listen": [f"tcpcl://127.0.0.1:{port}"]})
    sender = await start(tmp_path, raw)
    try:
        delivery = await receiver.next_delivery("ipn:2.1", timeout_s=10)
        assert delivery is not None and delivery.payload == b"kept across a restart"
        await receiver.acknowledge("ipn:2.1", delivery.bundle_id)
        await wait_for(lambda: sender.status()["bundles_stored"] == 0)
    finally:
        await sender.stop()
        await receiver.stop()


async def test_senders_wait_while_queued_transmissions_exceed_the_budget(
    line: list[Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the smallest budget every bundle waits for the one before it to leave, and all of them still arrive
    (bounded memory without a deadlock); concurrent acknowledgements share commits."""
    import dtn.node

    monkeypatch.setattr(dtn.node, "MAX_QUEUED_TRANSMIT_BYTES", 0)
    first, relay, last = line
    last.register("ipn:3.1")
    await wait_for(lambda: "ipn:2.0" in first.status()["links_up"] and "ipn:3.0" in relay.status()["links_up"])
    payloads = [bytes([n]) * 20_000 for n in range(12)]
    sent = await asyncio.wait_for(asyncio.gather(*(first.send("ipn:3.1", p) for p in payloads)), 30)
    assert first._queued_transmit_bytes >= 0 and relay._queued_transmit_bytes >= 0
    received = {}
    while len(received) < len(sent):
        delivery = await last.next_delivery("ipn:3.1", timeout_s=10)
        assert delivery is not None
        received[delivery.bundle_id] = delivery.payload
    assert received == dict(zip(sent, payloads, strict=True))
    commits = last.commits
    assert await last.acknowledge_many("ipn:3.1", list(received)) == [True] * len(received)
    assert last.commits - commits == 1
    await wait_for(lambda: all(n.status()["bundles_stored"] == 0 for n in line))
    assert first._queued_transmit_bytes == 0 and relay._queued_transmit_bytes == 0


async def test_a_bundle_that_expires_while_waiting_is_not_delivered(tmp_path: Path) -> None:
    """Deliveries come from the bundles the node just received when it still has them: never after deletion."""
    node = await start(tmp_path, {"node_id": "ipn:1", "data_dir": "n1"})
    try:
        node.register("ipn:1.5")
        kept = await node.send("ipn:1.5", b"kept")
        await node.send("ipn:1.5", b"short-lived", lifetime_ms=300)
        await wait_for(lambda: node.status()["bundles_stored"] == 1)  # the short-lived one expired
        first = await node.next_delivery("ipn:1.5", timeout_s=5)
        assert first is not None and first.bundle_id == kept and bytes(first.payload) == b"kept"
        assert await node.next_delivery("ipn:1.5", timeout_s=0.3) is None
        assert await node.acknowledge("ipn:1.5", kept)
        assert node._delivery_cache == {} and node._delivery_cache_bytes == 0
    finally:
        await node.stop()


async def test_two_nodes_sending_to_each_other_with_full_queues_do_not_wait_forever(
    line: list[Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dtn.node

    monkeypatch.setattr(dtn.node, "MAX_QUEUED_TRANSMIT_BYTES", 0)
    monkeypatch.setattr(dtn.node, "RECEIVE_BACKPRESSURE_S", 0.05)
    first, relay, _ = line
    first.register("ipn:1.1")
    relay.register("ipn:2.1")
    await wait_for(lambda: "ipn:2.0" in first.status()["links_up"] and "ipn:1.0" in relay.status()["links_up"])
    payloads = [bytes([n]) * 30_000 for n in range(8)]
    sends = [first.send("ipn:2.1", p) for p in payloads] + [relay.send("ipn:1.1", p) for p in payloads]
    await asyncio.wait_for(asyncio.gather(*sends), 30)
    for node, endpoint in ((first, "ipn:1.1"), (relay, "ipn:2.1")):
        got = []
        for _ in payloads:
            delivery = await node.next_delivery(endpoint, timeout_s=10)
            assert delivery is not None
            got.append(bytes(delivery.payload))
            assert await node.acknowledge(endpoint, delivery.bundle_id)
        assert sorted(got) == sorted(payloads)
