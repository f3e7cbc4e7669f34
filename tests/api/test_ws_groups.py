"""WebSocket deliveries in groups (``group=1``): deliveries that are ready together go out as one text frame and
one binary frame, within the window; payloads kept in the store still go out alone, in several frames. Real node,
SQLite store, real WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import aiohttp

from dtn.api.models import PREFIX

from .conftest import Served, serve, shut

PIECE = 64 * 1024  # the smallest fragment size a configuration may ask for


async def _frame(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), 10)


async def _group(ws: aiohttp.ClientWebSocketResponse, confirmed: list[str]) -> list[tuple[dict[str, Any], bytes]]:
    """One delivery or one group: (item, payload) each; the confirmations of acks on the way go to ``confirmed``."""
    while True:
        head = await _frame(ws)
        assert head.type == aiohttp.WSMsgType.TEXT, head
        doc = json.loads(head.data)
        if doc["type"] != "ack":
            break
        assert all(doc["ok"]), doc
        confirmed += doc["ids"]
    items = doc["items"] if doc["type"] == "deliveries" else [doc]
    assert doc["type"] in ("deliveries", "delivery") and (doc["type"] == "delivery") == (len(items) == 1)
    total = sum(item["size_bytes"] for item in items)
    data = b""
    while not data and total == 0 or len(data) < total:
        body = await _frame(ws)
        assert body.type == aiohttp.WSMsgType.BINARY, body
        data += body.data
        if total == 0:
            break
    assert len(data) == total
    out, offset = [], 0
    for item in items:
        out.append((item, data[offset : offset + item["size_bytes"]]))
        offset += item["size_bytes"]
    return out


async def test_ready_deliveries_go_out_in_groups_within_the_window(api: Served) -> None:
    payloads = [f"bundle {i}".encode() * i for i in range(8)]  # the first is empty
    sent = [await api.client.send("ipn:1.5", p) for p in payloads]
    url = f"{api.client._base}{PREFIX}/ws"
    async with aiohttp.ClientSession() as http, http.ws_connect(
        url, params={"endpoint": "ipn:1.5", "window": "3", "group": "1"}
    ) as ws:
        confirmed: list[str] = []
        first = await _group(ws, confirmed)
        assert [item["id"] for item, _ in first] == sent[:3], "a group takes what is ready, up to the window"
        assert [data for _, data in first] == payloads[:3]
        await ws.send_str(json.dumps({"type": "ack", "ids": sent[:3]}))
        received = []
        while len(received) < 5:
            group = await _group(ws, confirmed)
            assert len(group) <= 3
            received += group
            await ws.send_str(json.dumps({"type": "ack", "ids": [item["id"] for item, _ in group]}))
        assert [item["id"] for item, _ in received] == sent[3:]
        assert [data for _, data in received] == payloads[3:]
        assert all(item["endpoint"] == "ipn:1.5" and item["source"] == "ipn:1.0" for item, _ in received)
        while len(confirmed) < len(sent):
            msg = json.loads((await _frame(ws)).data)
            assert msg["type"] == "ack" and all(msg["ok"]), msg
            confirmed += msg["ids"]
        assert confirmed == sent
    assert await api.client.bundles() == []


async def test_the_client_takes_groups_apart_and_large_payloads_come_alone(tmp_path: Path) -> None:
    """Small payloads in groups, the large one (reassembled into the store) alone, each intact."""
    node = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "fragment_payload_bytes": PIECE})
    try:
        large = random.Random(3).randbytes(3 * PIECE + 5)
        payloads = [b"a" * 10, b"", large, b"c" * 1000, b"d"]
        await node.client.register("ipn:1.9")
        sent = [await node.client.send("ipn:1.9", p) for p in payloads]
        got = []
        async with node.client.subscribe("ipn:1.9", window=8) as deliveries:
            async for delivery in deliveries:
                got.append((delivery.bundle_id, delivery.payload))
                if len(got) == len(sent):
                    await deliveries.ack_many(sent)
                    break
        # the large one is reassembled off the event loop: it may come after the small ones sent after it
        assert len(got) == len(sent) and dict(got) == dict(zip(sent, payloads, strict=True))
    finally:
        await shut(node)
