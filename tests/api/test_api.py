"""The application interface against a real node: real aiohttp server on 127.0.0.1, real SQLite store."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import aiohttp
import pytest

from dtn.api.client import ApiError, DtnClient, NodeNotRunning
from dtn.api.server import ROUTES

from .conftest import Served, free_port, serve, shut


async def test_information_routes(api: Served) -> None:
    status = await api.client.status()
    assert status["node_id"] == "ipn:1.0"
    assert status["bundles_stored"] == 0
    assert await api.client.neighbours() == []
    assert await api.client.bundles() == []
    assert await api.client.routes() == []
    stats = await api.client.statistics()
    assert isinstance(stats, dict) and "commits" in stats


async def test_send_receive_acknowledge_and_delivery_report(api: Served) -> None:
    client = api.client
    assert await client.register("ipn:1.5") == "ipn:1.5"
    assert "ipn:1.5" in await client._json("GET", "/endpoints")
    bundle_id = await client.send("ipn:1.5", b"hello, dtn", reports={"delivered"}, file_name="greeting.txt",
                                  lifetime_ms=60_000)
    assert bundle_id.startswith("ipn:1.0/")
    stored = await client.bundles()
    assert [b["id"] for b in stored] == [bundle_id]
    delivery = await client.receive("ipn:1.5", timeout_s=5)
    assert delivery is not None
    assert (delivery.bundle_id, delivery.payload, delivery.file_name) == (bundle_id, b"hello, dtn", "greeting.txt")
    assert delivery.source == "ipn:1.0" and delivery.endpoint == "ipn:1.5" and delivery.creation_ms > 0
    assert await client.acknowledge(delivery) is True
    assert await client.acknowledge(delivery) is False  # already released
    report = await client.wait_report(bundle_id, "delivered", timeout_s=5)
    assert report is not None and report["delivered"]["asserted"] and report["subject"] == bundle_id
    assert report["reason"] == "no_info"
    assert await client.bundles() == []
    assert await client.unregister("ipn:1.5") is True
    assert await client.unregister("ipn:1.5") is False


async def test_long_poll_times_out_with_nothing(api: Served) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await api.client.receive("ipn:1.9", timeout_s=0.2) is None
    assert loop.time() - started >= 0.2
    assert await api.client.wait_report("ipn:1.0/1/0", "delivered", timeout_s=0.1) is None


async def test_long_poll_wakes_when_a_bundle_arrives(api: Served) -> None:
    waiting = asyncio.create_task(api.client.receive("ipn:1.2", timeout_s=20))
    await api.client.register("ipn:1.2")
    bundle_id = await api.client.send("ipn:1.2", b"x" * 1000)
    delivery = await asyncio.wait_for(waiting, 10)
    assert delivery is not None and delivery.bundle_id == bundle_id and delivery.payload == b"x" * 1000


async def test_streamed_file_send_with_progress(api: Served, tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    seen: list[tuple[int, int]] = []
    bundle_id = await api.client.send_file("ipn:1.3", path, progress=lambda sent, total: seen.append((sent, total)))
    assert seen[-1] == (len(data), len(data)) and len(seen) == 4
    delivery = await api.client.receive("ipn:1.3", timeout_s=5)
    assert delivery is not None and delivery.bundle_id == bundle_id
    assert delivery.payload == data and delivery.file_name == "big.bin"


async def test_bad_requests_are_refused_with_a_message(api: Served) -> None:
    with pytest.raises(ApiError) as bad_eid:
        await api.client.send("not-an-eid", b"x")
    assert bad_eid.value.status == 400
    with pytest.raises(ApiError) as bad_report:
        await api.client.send("ipn:1.1", b"x", reports={"eaten"})
    assert bad_report.value.status == 400 and "eaten" in str(bad_report.value)
    with pytest.raises(ApiError) as bad_id:
        await api.client.acknowledge("garbage", "ipn:1.1")
    assert bad_id.value.status == 400
    with pytest.raises(ApiError) as bad_kind:
        await api.client.wait_report("ipn:1.0/1/0", "eaten", timeout_s=0)
    assert bad_kind.value.status == 400
    with pytest.raises(ApiError) as bad_wait:
        await api.client.receive("ipn:1.1", timeout_s=10_000)
    assert bad_wait.value.status == 400
    with pytest.raises(ApiError) as bad_lifetime:
        await api.client.send("ipn:1.1", b"x", lifetime_ms=0)
    assert bad_lifetime.value.status == 400


async def test_websocket_push_with_acknowledgements(api: Served) -> None:
    sent = [await api.client.send("ipn:1.4", f"bundle {i}".encode()) for i in range(3)]
    received = []
    async with api.client.subscribe("ipn:1.4") as subscription:
        async for delivery in subscription:
            received.append((delivery.bundle_id, delivery.payload))
            await subscription.ack(delivery)
            if len(received) == 3:
                break
    assert received == [(bundle_id, f"bundle {i}".encode()) for i, bundle_id in enumerate(sent)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await api.client.bundles():  # the last ack is answered after the iteration stopped
        assert loop.time() < deadline, "acknowledged bundles still stored"
        await asyncio.sleep(0.02)


async def test_websocket_carries_payloads_larger_than_aiohttps_default_frame_limit(api: Served) -> None:
    payload = bytes(range(256)) * (5 * 4096)  # 5 MiB
    sent = await api.client.send("ipn:1.8", payload)
    async with api.client.subscribe("ipn:1.8") as subscription:
        async for delivery in subscription:
            assert delivery.bundle_id == sent and delivery.payload == payload
            await subscription.ack(delivery)
            break
        else:
            raise AssertionError("the subscription ended without the 5 MiB delivery")


async def test_unacknowledged_bundle_is_delivered_again_after_a_restart(tmp_path: Path) -> None:
    raw: dict[str, object] = {"node_id": "ipn:1", "data_dir": "n1"}
    first = await serve(tmp_path, raw)
    bundle_id = await first.client.send("ipn:1.6", b"keep me")
    delivery = await first.client.receive("ipn:1.6", timeout_s=5)
    assert delivery is not None and delivery.bundle_id == bundle_id
    await shut(first)  # never acknowledged
    second = await serve(tmp_path, raw)
    try:
        again = await second.client.receive("ipn:1.6", timeout_s=5)
        assert again is not None and (again.bundle_id, again.payload) == (bundle_id, b"keep me")
        assert await second.client.acknowledge(again)
    finally:
        await shut(second)


async def test_token_is_required_when_configured(tmp_path: Path) -> None:
    served = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1"}, token="s3cret")
    try:
        assert (await served.client.status())["node_id"] == "ipn:1.0"
        async with DtnClient(served.server.address, token="") as anonymous:
            with pytest.raises(ApiError) as refused:
                await anonymous.status()
            assert refused.value.status == 401
            with pytest.raises(ApiError):
                async with anonymous.subscribe("ipn:1.1"):
                    pass
        async with DtnClient(served.server.address, token="wrong") as wrong:
            with pytest.raises(ApiError) as refused_wrong:
                await wrong.send("ipn:1.1", b"x")
            assert refused_wrong.value.status == 401
        assert await served.client.bundles() == []
    finally:
        await shut(served)


async def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    served = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1"}, bind=f"unix:{path}")
    try:
        assert served.server.address == f"unix:{path}"
        bundle_id = await served.client.send("ipn:1.1", b"over a unix socket")
        delivery = await served.client.receive("ipn:1.1", timeout_s=5)
        assert delivery is not None and delivery.bundle_id == bundle_id
    finally:
        await shut(served)
    assert not path.exists()


async def test_not_running() -> None:
    async with DtnClient(f"127.0.0.1:{free_port()}") as client:
        with pytest.raises(NodeNotRunning, match="dtnd is not running at 127.0.0.1:"):
            await client.status()


async def test_two_nodes_over_tcpcl(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    a = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "listen": [f"tcpcl://127.0.0.1:{ports[0]}"],
                               "neighbour": [{"node_id": "ipn:2", "url": f"tcpcl://127.0.0.1:{ports[1]}"}]})
    b = await serve(tmp_path, {"node_id": "ipn:2", "data_dir": "n2", "listen": [f"tcpcl://127.0.0.1:{ports[1]}"]})
    try:
        await b.client.register("ipn:2.1")
        bundle_id = await a.client.send("ipn:2.1", b"across", reports={"received", "delivered"})
        delivery = await b.client.receive("ipn:2.1", timeout_s=10)
        assert delivery is not None and (delivery.bundle_id, delivery.payload) == (bundle_id, b"across")
        assert await b.client.acknowledge(delivery)
        received = await a.client.wait_report(bundle_id, "received", timeout_s=10)
        delivered = await a.client.wait_report(bundle_id, "delivered", timeout_s=10)
        assert received is not None and delivered is not None
        neighbours = await a.client.neighbours()
        assert [(n["node_id"], n["up"]) for n in neighbours] == [("ipn:2.0", True)]
    finally:
        await shut(a)
        await shut(b)


async def test_raw_http_shapes(api: Served) -> None:
    """What a non-Python application sees: plain HTTP."""
    base = f"http://{api.server.address}/v1"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/bundles", params={"destination": "ipn:1.8", "file_name": "r\u00e9sum\u00e9.pdf"},
                             data=b"%PDF") as response:
            assert response.status == 201
            bundle_id = (await response.json())["id"]
        async with http.get(f"{base}/deliveries", params={"endpoint": "ipn:1.8", "timeout_s": "5"}) as response:
            assert response.status == 200
            assert response.headers["Dtn-Bundle-Id"] == bundle_id
            assert response.headers["Dtn-File-Name"] == "r%C3%A9sum%C3%A9.pdf"
            assert await response.read() == b"%PDF"
        async with http.post(f"{base}/deliveries/ack", params={"endpoint": "ipn:1.8", "id": bundle_id}) as response:
            assert response.status == 200
        async with http.get(f"{base}/deliveries", params={"endpoint": "ipn:1.8", "timeout_s": "0"}) as response:
            assert response.status == 204
        async with http.get(f"{base}/nowhere") as response:
            assert response.status == 404


def test_openapi_file_documents_every_route() -> None:
    text = (Path(__file__).resolve().parents[2] / "dtn" / "api" / "openapi.yaml").read_text(encoding="utf-8")
    documented = set(re.findall(r"^  (/v1/\S+):$", text, flags=re.MULTILINE))
    assert {path for _, path, _ in ROUTES} == documented
    for method, path, _ in ROUTES:
        section = text.split(f"\n  {path}:\n", 1)[1].split("\n  /v1/", 1)[0]
        assert f"\n    {method.lower()}:" in "\n" + section, (method, path)
