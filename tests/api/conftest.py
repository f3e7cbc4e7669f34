"""A real node (SQLite store in tmp_path) with its API served by aiohttp on 127.0.0.1, a free port."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dtn.api.client import DtnClient
from dtn.api.server import ApiServer
from dtn.config import config_from_dict
from dtn.node import Node


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    node: Node
    server: ApiServer
    client: DtnClient


async def serve(tmp_path: Path, raw: dict[str, object], *, bind: str = "127.0.0.1:0", token: str = "") -> Served:
    node = Node(config_from_dict(raw, base_dir=tmp_path))
    await node.start()
    server = ApiServer(node, bind, token=token)
    address = await server.start()
    return Served(node, server, DtnClient(address, token=token))


async def shut(served: Served) -> None:
    await served.client.close()
    await served.server.stop()
    await served.node.stop()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Served]:
    served = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1"})
    yield served
    await shut(served)


async def received(client: DtnClient, endpoint: str, count: int, timeout_s: float = 10) -> dict[str, bytes]:
    """``count`` deliveries taken by long poll, each acknowledged: bundle ID -> payload."""
    got: dict[str, bytes] = {}
    for _ in range(count):
        delivery = await client.receive(endpoint, timeout_s=timeout_s)
        assert delivery is not None, f"{endpoint}: {len(got)} of {count} deliveries came"
        got[delivery.bundle_id] = delivery.payload
        assert await client.acknowledge(delivery)
    return got


async def subscribed(client: DtnClient, endpoint: str, count: int, window: int = 64) -> dict[str, bytes]:
    """``count`` deliveries taken over the WebSocket, each acknowledged: bundle ID -> payload."""
    got: dict[str, bytes] = {}
    async with client.subscribe(endpoint, window=window) as deliveries:
        async for delivery in deliveries:
            got[delivery.bundle_id] = delivery.payload
            await deliveries.ack(delivery)
            if len(got) == count:
                break
    return got
