"""Unfragmented bundles larger than the in-memory threshold over TCPCLv4: received into a file as they arrive,
forwarded from the file, delivered from the store. Real SQLite stores, real sockets on 127.0.0.1.

The threshold is ``fragment_payload_bytes`` of the receiving node (256 KiB here); the sender uses 0 (never
fragment), so each payload crosses as ONE bundle of about three times the threshold."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dtn.agent.heads import read_head
from dtn.bundle.eid import parse_eid
from dtn.convergence.tcpcl.messages import (
    ContactHeader,
    SessInit,
    encode_segment_header,
    transfer_length_item,
)
from dtn.node import Node, StoredPayload
from dtn.storage.base import Constraint
from dtn.storage.payloads import TEMP_PREFIX

from .test_node import free_port, start, wait_for

THRESHOLD = 256 * 1024
PAYLOAD_BYTES = 3 * THRESHOLD + 12_345


def tcpcl_links(node: Node) -> list[object]:
    cl = node.cls.get("tcpcl")
    return list(cl.links) if cl is not None else []  # type: ignore[attr-defined]


def gathered_high_water(node: Node) -> int:
    return max((link.session.rx_gathered_high_water_bytes for link in tcpcl_links(node)), default=0)  # type: ignore[attr-defined]


def temp_files(node: Node) -> list[str]:
    """Unfinished files (spool files among them)."""
    directory = node.store.payload_dir  # type: ignore[union-attr]
    return [n for n in os.listdir(directory) if n.startswith(TEMP_PREFIX)]


async def payload_of(node: Node, endpoint: str) -> tuple[bytes, object]:
    delivery = await node.next_delivery(endpoint, timeout_s=20)
    assert delivery is not None
    assert isinstance(delivery.payload, StoredPayload)  # large: streamed from the store, never loaded whole
    data = b"".join(delivery.payload.chunks())
    return data, delivery.bundle_id


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[list[Node]]:
    port = free_port()
    receiver = await start(tmp_path, {"node_id": "ipn:2", "data_dir": "n2", "fragment_payload_bytes": THRESHOLD,
                                      "listen": [f"tcpcl://127.0.0.1:{port}"]})
    sender = await start(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": 0,
                                    "neighbour": [{"node_id": "ipn:2", "url": f"tcpcl://127.0.0.1:{port}"}]})
    try:
        yield [sender, receiver]
    finally:
        await sender.stop()
        await receiver.stop()


async def test_a_bundle_larger_than_the_threshold_arrives_whole_through_a_file(pair: list[Node]) -> None:
    sender, receiver = pair
    receiver.register("ipn:2.1")
    payload = os.urandom(PAYLOAD_BYTES)
    bundle_id = await sender.send("ipn:2.1", payload, file_name="big.bin")
    data, delivered_id = await payload_of(receiver, "ipn:2.1")
    assert data == payload and delivered_id == bundle_id
    assert receiver.spooled_transfers == 1
    assert gathered_high_water(receiver) <= THRESHOLD  # the big transfer was never gathered in memory
    assert await receiver.acknowledge("ipn:2.1", bundle_id)
    await wait_for(lambda: sender.status()["bundles_stored"] == 0 and receiver.status()["bundles_stored"] == 0)
    assert temp_files(receiver) == []


async def test_a_relay_receives_to_a_file_and_forwards_from_it(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(2)]
    nodes = [
        await start(tmp_path, {"node_id": "ipn:3", "data_dir": "n3", "fragment_payload_bytes": THRESHOLD,
                               "listen": [f"tcpcl://127.0.0.1:{ports[1]}"],
                               "route": [{"destination": "ipn:1.*", "via": "ipn:2"}]}),
        await start(tmp_path, {"node_id": "ipn:2", "data_dir": "n2", "fragment_payload_bytes": THRESHOLD,
                               "listen": [f"tcpcl://127.0.0.1:{ports[0]}"],
                               "neighbour": [{"node_id": "ipn:3", "url": f"tcpcl://127.0.0.1:{ports[1]}"}]}),
        await start(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": 0,
                               "neighbour": [{"node_id": "ipn:2", "url": f"tcpcl://127.0.0.1:{ports[0]}"}],
                               "route": [{"destination": "ipn:3.*", "via": "ipn:2"}]}),
    ]
    last, relay, first = nodes
    try:
        last.register("ipn:3.1")
        await wait_for(lambda: "ipn:3.0" in relay.status()["links_up"])
        payload = os.urandom(PAYLOAD_BYTES)
        bundle_id = await first.send("ipn:3.1", payload, hop_limit=5, reports=frozenset({"delivered"}))
        data, _ = await payload_of(last, "ipn:3.1")
        assert data == payload
        assert relay.spooled_transfers == 1 and last.spooled_transfers == 1
        assert gathered_high_water(relay) <= THRESHOLD and gathered_high_water(last) <= THRESHOLD
        head = read_head(last.store, bundle_id)  # type: ignore[arg-type]
        assert head is not None
        assert head.bundle.previous_node == parse_eid("ipn:2.0")  # the relay rewrote the head for its hop
        hop = head.bundle.hop_count
        assert hop is not None and hop.count == 2
        assert await last.acknowledge("ipn:3.1", bundle_id)
        report = await first.wait_report(bundle_id, "delivered", timeout_s=10)
        assert report is not None
        await wait_for(lambda: relay.status()["bundles_stored"] == 0)
        assert temp_files(relay) == [] and temp_files(last) == []
    finally:
        for node in nodes:
            await node.stop()


async def test_a_transfer_cut_midway_leaves_no_file_and_no_row(tmp_path: Path) -> None:
    port = free_port()
    receiver = await start(tmp_path, {"node_id": "ipn:2", "data_dir": "n2", "fragment_payload_bytes": THRESHOLD,
                                      "listen": [f"tcpcl://127.0.0.1:{port}"]})
    try:
        sender = await start(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": 0})
        try:
            # a valid bundle, sent by hand below so that the transfer can be cut where we like
            bundle_id = await sender.send("ipn:2.1", os.urandom(PAYLOAD_BYTES))
            raw = sender.store.raw(bundle_id)  # type: ignore[union-attr]
        finally:
            await sender.stop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(ContactHeader().to_bytes() + SessInit(0, 1 << 20, 1 << 32, "ipn:1.0").to_bytes())
        await reader.readexactly(6)  # the peer's contact header
        cut = 2 * THRESHOLD
        writer.write(encode_segment_header(2, 0, cut, (transfer_length_item(len(raw)),)) + raw[:cut])
        await writer.drain()
        await wait_for(lambda: len(temp_files(receiver)) == 1)  # spooled to a file as it arrives
        writer.transport.abort()  # the connection breaks mid-transfer
        await wait_for(lambda: temp_files(receiver) == [] and not tcpcl_links(receiver))
        assert receiver.status()["bundles_stored"] == 0
        assert not receiver.store.is_known(bundle_id)  # type: ignore[union-attr]
        assert receiver.spooled_transfers == 1
    finally:
        await receiver.stop()


async def test_a_bundle_that_does_not_fit_the_quota_is_refused_and_the_sender_keeps_it(tmp_path: Path) -> None:
    port = free_port()
    receiver = await start(tmp_path, {"node_id": "ipn:2", "data_dir": "n2", "fragment_payload_bytes": THRESHOLD,
                                      "listen": [f"tcpcl://127.0.0.1:{port}"], "store": {"quota_bytes": 2 * THRESHOLD}})
    sender = await start(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": 0,
                                    "neighbour": [{"node_id": "ipn:2", "url": f"tcpcl://127.0.0.1:{port}"}]})
    try:
        bundle_id = await sender.send("ipn:2.1", os.urandom(PAYLOAD_BYTES))
        agent = sender.agent
        assert agent is not None
        await wait_for(lambda: agent.stats.transmit_failures >= 1)
        meta = sender.store.get(bundle_id)  # type: ignore[union-attr]
        assert meta is not None and meta.constraints & Constraint.FORWARD_PENDING
        assert receiver.status()["bundles_stored"] == 0 and temp_files(receiver) == []
        assert not receiver.store.is_known(bundle_id)  # type: ignore[union-attr]
    finally:
        await sender.stop()
        await receiver.stop()
