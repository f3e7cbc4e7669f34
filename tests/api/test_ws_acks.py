"""WebSocket acknowledgements: several acks that arrive together are released in one commit, each is confirmed
only once durable, and acks sent just before the application closes the socket still count."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from dtn.api.models import PREFIX
from dtn.api.server import PRESIZED_BODY_MIN_BYTES
from dtn.bundle.ids import BundleId

from .conftest import Served, received, serve, shut


async def _deliveries(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[str]:
    ids = []
    while len(ids) < count:
        head = await asyncio.wait_for(ws.receive(), 10)
        assert head.type == aiohttp.WSMsgType.TEXT, head
        doc = json.loads(head.data)
        assert doc["type"] == "delivery"
        body = await asyncio.wait_for(ws.receive(), 10)
        assert body.type == aiohttp.WSMsgType.BINARY
        ids.append(str(doc["id"]))
    return ids


async def test_acks_sent_together_share_commits_and_each_is_confirmed(api: Served) -> None:
    sent = [await api.client.send("ipn:1.5", f"bundle {i}".encode()) for i in range(8)]
    url = f"{api.client._base}{PREFIX}/ws"
    async with aiohttp.ClientSession() as http, http.ws_connect(
        url, params={"endpoint": "ipn:1.5", "window": "8"}
    ) as ws:
        ids = await _deliveries(ws, 8)
        assert ids == sent
        await api.node.committed()
        commits_before = api.node.commits
        again = ids[0]  # acknowledged twice: the second is answered ok=false
        for bundle_id in [*ids, again]:
            await ws.send_str(json.dumps({"type": "ack", "id": bundle_id}))
        confirmations = []
        while len(confirmations) < 9:
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            doc = json.loads(msg.data)
            assert doc["type"] == "ack"
            confirmations.append((doc["id"], doc["ok"]))
            # confirmed means released: the bundle is gone from the store
            assert api.node.store is not None and BundleId.parse(doc["id"]) not in api.node.store
        assert confirmations == [*((i, True) for i in ids), (again, False)]
        assert api.node.commits - commits_before < 9  # not one commit per acknowledgement
    assert await api.client.bundles() == []


async def test_acks_sent_before_closing_are_kept(tmp_path: Path) -> None:
    raw: dict[str, object] = {"node_id": "ipn:1", "data_dir": "n1"}
    served = await serve(tmp_path, raw)
    try:
        sent = [await served.client.send("ipn:1.6", f"bundle {i}".encode()) for i in range(4)]
        url = f"{served.client._base}{PREFIX}/ws"
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url, params={"endpoint": "ipn:1.6", "window": "4"})
            ids = await _deliveries(ws, 4)
            assert ids == sent
            for bundle_id in ids:
                await ws.send_str(json.dumps({"type": "ack", "id": bundle_id}))
            await ws.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while await served.client.bundles():
            assert loop.time() < deadline, "acknowledged bundles still stored after the socket closed"
            await asyncio.sleep(0.02)
    finally:
        await shut(served)
    again = await serve(tmp_path, raw)  # and the releases were durable
    try:
        assert await again.client.bundles() == []
        assert await again.client.receive("ipn:1.6", timeout_s=0.2) is None
    finally:
        await shut(again)


async def test_large_payloads_in_and_out_by_http_whole_and_streamed(api: Served, tmp_path: Path) -> None:
    """A body with a Content-Length goes into one buffer, a streamed one is joined; a long-poll delivery larger
    than a read chunk is written in pieces. Each arrives byte-identical."""
    whole = bytes(range(256)) * (12 * 1024) + b"tail"  # 3 MiB and a bit
    streamed = whole[::-1]
    source = tmp_path / "streamed.bin"
    source.write_bytes(streamed)
    first = await api.client.send("ipn:1.9", whole)
    second = await api.client.send_file("ipn:1.9", source)
    got = await received(api.client, "ipn:1.9", 2)
    assert got == {first: whole, second: streamed}


async def test_bodies_at_the_presized_threshold_and_of_1_mib_arrive_intact(api: Served) -> None:
    """Bodies with a Content-Length above ``PRESIZED_BODY_MIN_BYTES`` are read piece by piece into one buffer,
    the others joined: either side of the threshold, and at 1 MiB, each payload arrives byte-identical."""
    sizes = [PRESIZED_BODY_MIN_BYTES, PRESIZED_BODY_MIN_BYTES + 1, 1 << 20]
    payloads = [bytes((i * 7 + n) % 251 for i in range(size)) for n, size in enumerate(sizes)]
    sent = {await api.client.send("ipn:1.12", payload): payload for payload in payloads}
    got = await received(api.client, "ipn:1.12", len(payloads))
    assert got == sent


async def test_several_deliveries_acknowledged_in_one_frame(api: Served) -> None:
    sent = [await api.client.send("ipn:1.11", f"bundle {i}".encode()) for i in range(5)]
    url = f"{api.client._base}{PREFIX}/ws"
    async with aiohttp.ClientSession() as http, http.ws_connect(
        url, params={"endpoint": "ipn:1.11", "window": "5"}
    ) as ws:
        ids = await _deliveries(ws, 5)
        assert ids == sent
        await ws.send_str(json.dumps({"type": "ack", "ids": [*ids[:3], ids[0]]}))
        await ws.send_str(json.dumps({"type": "ack", "ids": "not a list"}))
        answers = []
        while len(answers) < 2:
            doc = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
            answers.append(doc)
        assert {"type": "ack", "ids": [*ids[:3], ids[0]], "ok": [True, True, True, False]} in answers
        assert any(a["type"] == "error" and "ids" in a["error"] for a in answers)
    async with api.client.subscribe("ipn:1.11", window=5) as subscription:
        rest = []
        async for delivery in subscription:
            rest.append(delivery)
            if len(rest) == 2:
                await subscription.ack_many(rest)
                break
    assert [d.bundle_id for d in rest] == ids[3:]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await api.client.bundles():
        assert loop.time() < deadline, "bundles acknowledged with ack_many still stored"
        await asyncio.sleep(0.02)
