"""A node that does not fragment at the source (``fragment_payload_bytes = 0``) sends a payload larger than it
holds in memory as ONE bundle, written to a file as the body arrives (as ION's bpsendfile sends a file); the
receiving node takes it into a file too. Real nodes, SQLite stores, TCPCLv4 on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dtn.api.client import ApiError
from dtn.bundle.ids import BundleId
from dtn.storage.payloads import TEMP_PREFIX

from .conftest import Served, free_port, serve, shut

IN_MEMORY = 16 * 1024 * 1024  # what a node with fragment_payload_bytes = 0 holds in memory at most
SIZE = IN_MEMORY + 123_457


def unfinished_files(served: Served) -> list[str]:
    directory = served.node.store.payload_dir  # type: ignore[union-attr]
    return [n for n in os.listdir(directory) if n.startswith(TEMP_PREFIX)]


async def test_one_bundle_larger_than_memory_crosses_two_nodes(tmp_path: Path) -> None:
    port = free_port()
    b = await serve(tmp_path, {"node_id": "ipn:2", "data_dir": "n2", "fragment_payload_bytes": 0,
                               "listen": [f"tcpcl://127.0.0.1:{port}"]})
    a = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": 0,
                               "neighbour": [{"node_id": "ipn:2", "url": f"tcpcl://127.0.0.1:{port}"}]})
    try:
        data = random.Random(7).randbytes(SIZE)
        source = tmp_path / "big.bin"
        source.write_bytes(data)
        await b.client.register("ipn:2.1")
        bundle_id = await a.client.send_file("ipn:2.1", source, reports={"delivered"})
        assert not BundleId.parse(bundle_id).is_fragment
        delivery = await b.client.receive("ipn:2.1", timeout_s=30, spool_dir=tmp_path / "spool",
                                          spool_above_bytes=1 << 20)
        assert delivery is not None and delivery.bundle_id == bundle_id and delivery.file_name == "big.bin"
        assert delivery.payload_path is not None and delivery.payload_path.read_bytes() == data
        assert b.node.spooled_transfers == 1, "the receiver took it into a file"
        assert await b.client.acknowledge(delivery)
        assert await a.client.wait_report(bundle_id, "delivered", timeout_s=30) is not None
        assert (await a.client.statistics())["fragments_sent"] == 0
        assert await a.client.bundles() == [] and await b.client.bundles() == []
        assert unfinished_files(a) == [] and unfinished_files(b) == []
    finally:
        await shut(a)
        await shut(b)


async def test_a_body_without_length_is_spilled_and_sent_as_one_bundle(tmp_path: Path) -> None:
    lone = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": 0})
    try:
        data = random.Random(8).randbytes(SIZE)

        async def chunks() -> AsyncIterator[bytes]:  # chunked transfer encoding: no Content-Length
            for start in range(0, len(data), 1 << 20):
                yield data[start : start + (1 << 20)]

        await lone.client.register("ipn:1.3")
        bundle_id = await lone.client.send("ipn:1.3", chunks())
        assert not BundleId.parse(bundle_id).is_fragment
        delivery = await lone.client.receive("ipn:1.3", timeout_s=30)
        assert delivery is not None and delivery.bundle_id == bundle_id and delivery.payload == data
        assert await lone.client.acknowledge(delivery)
        assert unfinished_files(lone) == []
    finally:
        await shut(lone)


async def test_over_max_bundle_bytes_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    lone = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": 0,
                                  "max_bundle_bytes": IN_MEMORY + 1024})
    try:
        with pytest.raises(ApiError) as refused:  # with a Content-Length: refused before the body is read
            await lone.client.send("ipn:2.1", b"\0" * SIZE)
        assert refused.value.status == 413 and "max_bundle_bytes" in str(refused.value)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range((SIZE >> 20) + 2):
                yield b"\1" * (1 << 20)

        with pytest.raises(ApiError) as refused:  # without: refused once it grows beyond
            await lone.client.send("ipn:2.1", chunks())
        assert refused.value.status == 413 and "limit" in str(refused.value)
        assert await lone.client.bundles() == [] and unfinished_files(lone) == []
        assert (await lone.client.status())["node_id"] == "ipn:1.0"  # still serving
    finally:
        await shut(lone)


async def test_a_body_that_breaks_off_leaves_nothing(tmp_path: Path) -> None:
    lone = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": 0})
    try:
        host, port = lone.server.address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        head = f"POST /v1/bundles?destination=ipn:2.1 HTTP/1.1\r\nHost: x\r\nContent-Length: {SIZE}\r\n\r\n"
        writer.write(head.encode() + b"\x01" * (SIZE // 2))
        await writer.drain()
        async with asyncio.timeout(30):  # the bundle is being written to a file
            while not unfinished_files(lone):
                await asyncio.sleep(0.01)
        writer.close()  # the body breaks off half way
        await writer.wait_closed()
        async with asyncio.timeout(30):
            while unfinished_files(lone):
                await asyncio.sleep(0.01)
        assert await lone.client.bundles() == []
        assert (await lone.client.statistics())["created"] == 0
        del reader
    finally:
        await shut(lone)
