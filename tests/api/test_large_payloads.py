"""Payloads larger than the node's fragment size: sent as fragments made at the source while the body streams in,
reassembled at the destination into the store piece by piece, and delivered from the store in pieces (HTTP long
poll into a spool file, WebSocket in several frames). Real nodes, SQLite stores, TCPCLv4 on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from dtn.api.client import ApiError
from dtn.bundle.ids import BundleId

from .conftest import Served, free_port, serve, shut

PIECE = 64 * 1024  # the smallest fragment size a configuration may ask for


async def two_nodes(tmp_path: Path) -> tuple[Served, Served]:
    ports = [free_port(), free_port()]
    a = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": PIECE,
                               "listen": [f"tcpcl://127.0.0.1:{ports[0]}"],
                               "neighbour": [{"node_id": "ipn:2", "url": f"tcpcl://127.0.0.1:{ports[1]}"}]})
    b = await serve(tmp_path, {"node_id": "ipn:2", "data_dir": "n2", "fragment_payload_bytes": PIECE,
                               "listen": [f"tcpcl://127.0.0.1:{ports[1]}"]})
    return a, b


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Served, Served]]:
    a, b = await two_nodes(tmp_path)
    yield a, b
    await shut(a)
    await shut(b)


async def test_a_file_sent_in_fragments_arrives_whole_in_a_spool_file(
    pair: tuple[Served, Served], tmp_path: Path
) -> None:
    a, b = pair
    data = random.Random(5).randbytes(10 * PIECE + 12_345)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    await b.client.register("ipn:2.1")
    bundle_id = await a.client.send_file("ipn:2.1", source, reports={"delivered"})
    assert not BundleId.parse(bundle_id).is_fragment
    spool = tmp_path / "spool"
    delivery = await b.client.receive("ipn:2.1", timeout_s=30, spool_dir=spool, spool_above_bytes=PIECE)
    assert delivery is not None and delivery.bundle_id == bundle_id and delivery.file_name == "big.bin"
    assert delivery.payload == b"" and delivery.payload_path is not None and delivery.size_bytes == len(data)
    assert delivery.payload_path.parent == spool and delivery.payload_path.read_bytes() == data
    assert await b.client.acknowledge(delivery)
    assert await a.client.wait_report(bundle_id, "delivered", timeout_s=30) is not None
    statistics = await b.client.statistics()
    assert statistics["reassembled"] == 1
    assert await b.client.bundles() == [] and await a.client.bundles() == []


async def test_a_body_without_length_is_spilled_then_fragmented_and_pushed_over_a_websocket(
    pair: tuple[Served, Served],
) -> None:
    a, b = pair
    data = random.Random(6).randbytes(5 * PIECE + 1)

    async def chunks() -> AsyncIterator[bytes]:  # chunked transfer encoding: no Content-Length
        for start in range(0, len(data), 10_000):
            yield data[start : start + 10_000]

    async with b.client.subscribe("ipn:2.7") as deliveries:
        bundle_id = await a.client.send("ipn:2.7", chunks())
        async for delivery in deliveries:
            assert delivery.bundle_id == bundle_id and delivery.payload == data
            await deliveries.ack(delivery)
            break


async def test_raw_http_delivery_of_a_large_payload_streams_from_the_store(pair: tuple[Served, Served]) -> None:
    a, b = pair
    data = bytes(range(256)) * (3 * PIECE // 256) + b"tail"
    await b.client.register("ipn:2.3")
    await a.client.send("ipn:2.3", data, file_name="raw.bin")
    base = f"http://{b.server.address}/v1"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/deliveries", params={"endpoint": "ipn:2.3", "timeout_s": "30"}) as response:
            assert response.status == 200
            assert response.content_length == len(data)
            assert await response.read() == data


async def test_a_body_that_breaks_off_leaves_nothing_stored(tmp_path: Path) -> None:
    lone = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": PIECE})
    try:
        host, port = lone.server.address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        head = f"POST /v1/bundles?destination=ipn:2.1 HTTP/1.1\r\nHost: x\r\nContent-Length: {8 * PIECE}\r\n\r\n"
        writer.write(head.encode() + b"\x01" * (3 * PIECE + 7))
        await writer.drain()
        async with asyncio.timeout(30):  # no route to ipn:2: the fragments wait in the store
            while len(await lone.client.bundles()) < 3:
                await asyncio.sleep(0.01)
        writer.close()  # the body breaks off after 3 of its 8 pieces
        await writer.wait_closed()
        async with asyncio.timeout(30):  # the fragments stored so far are deleted (transmission canceled)
            while await lone.client.bundles():
                await asyncio.sleep(0.01)
        statistics = await lone.client.statistics()
        assert statistics["deleted_by_reason"] == {"transmission_canceled": 3}
        del reader
    finally:
        await shut(lone)


async def test_a_body_without_length_beyond_the_store_quota_is_refused_and_not_kept(tmp_path: Path) -> None:
    lone = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": PIECE,
                                  "store": {"quota_bytes": 3 * PIECE}})
    sent = 0

    async def endless() -> AsyncIterator[bytes]:  # no Content-Length, and more than the store could hold
        nonlocal sent
        while sent < 64 * PIECE:
            sent += PIECE
            yield b"\x02" * PIECE

    try:
        with pytest.raises(ApiError) as refused:
            await lone.client.send("ipn:2.1", endless())
        assert refused.value.status == 507 and "store can still take" in str(refused.value)
        assert await lone.client.bundles() == []
    finally:
        await shut(lone)


async def test_a_store_that_fills_up_midway_keeps_no_fragment_of_the_payload(tmp_path: Path) -> None:
    lone = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": PIECE,
                                  "store": {"quota_bytes": 3 * PIECE}})
    source = tmp_path / "eight-pieces.bin"
    source.write_bytes(b"\x03" * (8 * PIECE))
    try:
        with pytest.raises(ApiError) as refused:
            await lone.client.send_file("ipn:2.1", source)  # Content-Length known: fragments stored as it arrives
        assert refused.value.status == 507
        assert await lone.client.bundles() == []
        assert (await lone.client.statistics())["deleted_by_reason"] == {"transmission_canceled": 2}
    finally:
        await shut(lone)
