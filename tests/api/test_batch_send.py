"""Batch submission: ``POST /v1/bundles?sizes=...`` makes one bundle per payload, stored with one commit."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from dtn.api.client import ApiError
from dtn.api.models import PREFIX

from .conftest import Served, received, serve, shut


async def test_a_batch_becomes_one_bundle_per_payload_in_one_commit(api: Served) -> None:
    payloads = [b"first", b"", bytes(range(256)) * 5000, b"last one"]
    await api.node.committed()
    commits = api.node.commits
    ids = await api.client.send_many("ipn:1.3", payloads, lifetime_ms=60_000)
    assert api.node.commits - commits == 1
    assert len(set(ids)) == 4
    got = await received(api.client, "ipn:1.3", len(payloads))
    assert got == dict(zip(ids, payloads, strict=True))
    assert await api.client.send_many("ipn:1.3", []) == []


@pytest.mark.parametrize(
    ("sizes", "body", "status"),
    [
        ("3,x", b"abc", 400),
        ("3,-1", b"abc", 400),
        ("2,2", b"abc", 400),  # the sizes do not add up to the body
        (",".join(["1"] * 1025), b"a" * 1025, 400),  # more payloads than a batch holds
    ],
)
async def test_bad_batches_are_refused_with_the_reason(api: Served, sizes: str, body: bytes, status: int) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api.client._base}{PREFIX}/bundles", params={"destination": "ipn:1.3",
                                                                             "sizes": sizes}, data=body) as resp:
            assert resp.status == status
            assert "sizes" in (await resp.json())["error"]
    assert await api.client.bundles() == []


async def test_a_batch_that_fills_the_store_keeps_the_bundles_before(tmp_path: Path) -> None:
    served = await serve(tmp_path, {"node_id": "ipn:1", "data_dir": "n1", "store": {"quota_bytes": 2500}})
    try:
        with pytest.raises(ApiError) as full:
            await served.client.send_many("ipn:1.3", [bytes(1000), bytes(1000), bytes(1000)])
        assert full.value.status == 507 and "2 bundle(s) stored" in str(full.value)
        assert len(await served.client.bundles()) == 2
    finally:
        await shut(served)
