"""Pipelined sending (``DtnClient.sender``) over a WebSocket (``/v1/ws/send``) and over one streamed HTTP request
(``/v1/bundles/stream``): one answer per payload, in order, once stored; refusals answer their own payload only. A
real node with a SQLite store on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from dtn.api.client import ApiError, DtnClient, NodeNotRunning
from dtn.api.models import PREFIX

from .conftest import Served, free_port, serve, shut, subscribed

OVER = pytest.mark.parametrize("over", ["websocket", "http"])


@OVER
async def test_pipelined_sends_each_get_their_own_bundle_id(api: Served, over: str) -> None:
    payloads = [f"payload {i}".encode() * (1 + i % 7) for i in range(300)]
    async with api.client.sender("ipn:1.5", lifetime_ms=60_000, over=over) as sender:  # type: ignore[arg-type]
        ids = await sender.send_all(payloads)
        one_more = await sender.send(b"last")
    assert len(set(ids)) == len(ids) == len(payloads)
    got = await subscribed(api.client, "ipn:1.5", len(payloads) + 1)
    assert [got[i] for i in ids] == payloads  # every answer names the bundle made of that very payload
    assert got[one_more] == b"last"
    statistics = await api.client.statistics()
    assert statistics["created"] == len(payloads) + 1


@OVER
async def test_a_refused_payload_fails_alone(tmp_path: Path, over: str) -> None:
    served = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "store": {"quota_bytes": 10_000}})
    try:
        async with served.client.sender("ipn:1.5", over=over) as sender:  # type: ignore[arg-type]
            first = await sender.send(b"a" * 4000)
            second = await sender.send(b"b" * 4000)
            with pytest.raises(ApiError) as refused:
                await sender.send(b"c" * 4000)
            assert refused.value.status == 507 and "store full" in str(refused.value)
            small = await sender.send(b"d" * 10)  # the socket goes on
        assert len({first, second, small}) == 3
    finally:
        await shut(served)


async def test_text_frames_are_answered_with_an_error_and_options_are_checked(api: Served) -> None:
    base = f"http://{api.server.address}{PREFIX}"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{base}/ws/send", params={"destination": "ipn:1.5"}) as ws:
            await ws.send_str("hello")
            doc = json.loads((await ws.receive()).data)
            assert doc["type"] == "error" and "binary" in doc["error"]
            await ws.send_bytes(b"x")
            doc = json.loads((await ws.receive()).data)
            assert doc["type"] == "sent" and len(doc["ids"]) == 1
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{base}/ws/send", params={"destination": "nowhere"})
        assert refused.value.status == 400


@OVER
async def test_a_sender_on_a_dead_node_says_so(over: str) -> None:
    async with DtnClient(f"127.0.0.1:{free_port()}") as client:
        with pytest.raises(NodeNotRunning):
            async with client.sender("ipn:1.1", over=over):  # type: ignore[arg-type]
                pass


@OVER
async def test_payloads_in_flight_when_the_node_stops_fail_with_an_error(tmp_path: Path, over: str) -> None:
    served = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1"})
    sender = served.client.sender("ipn:1.5", over=over)  # type: ignore[arg-type]
    await sender.__aenter__()
    try:
        assert await sender.send(b"before")
        await served.server.stop()
        with pytest.raises(ApiError):
            async with asyncio.timeout(30):
                while True:  # once the socket is gone, every send fails instead of waiting forever
                    await sender.send(b"after")
    finally:
        await sender.__aexit__(None, None, None)
        await served.client.close()
        await served.node.stop()
