"""``POST /v1/bundles/stream`` on the wire: payloads each after an 8-byte length, however the body is cut into
chunks; NDJSON answers in order; a broken framing ends the stream with an error after the answers of the payloads
before it. A real node with a SQLite store on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp

from dtn.api.models import PREFIX
from dtn.api.send_stream import CONTENT_TYPE, LENGTH_BYTES

from .conftest import Served, subscribed

PAYLOADS = [b"first", b"", b"third payload"]


def framed(payloads: list[bytes]) -> bytes:
    return b"".join(len(p).to_bytes(LENGTH_BYTES, "big") + p for p in payloads)


async def chunks(body: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for end in [*cuts, len(body)]:
        if end > start:
            yield body[start:end]
        start = max(start, end)


async def stream(api: Served, body: AsyncIterator[bytes], destination: str = "ipn:1.5") -> list[dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.post(
        f"http://{api.server.address}{PREFIX}/bundles/stream", params={"destination": destination}, data=body,
    ) as response:
        assert response.status == 200 and response.content_type == CONTENT_TYPE
        return [json.loads(line) for line in (await response.read()).splitlines()]


def sent_ids(answers: list[dict[str, object]]) -> list[str]:
    return [str(i) for a in answers if a["type"] == "sent" for i in a["ids"]]  # type: ignore[attr-defined]


async def payloads_delivered(api: Served, ids: list[str], endpoint: str = "ipn:1.5") -> list[bytes]:
    got = await subscribed(api.client, endpoint, len(ids))
    return [got[i] for i in ids]


async def test_payloads_arrive_whole_however_the_body_is_cut(api: Served) -> None:
    body = framed(PAYLOADS)
    cuttings = [[], list(range(1, len(body))), *([offset] for offset in range(1, len(body)))]  # whole, bytes, halves
    ids: list[str] = []
    for cuts in cuttings:
        answers = await stream(api, chunks(body, cuts))
        assert all(a["type"] == "sent" for a in answers), answers
        ids += sent_ids(answers)
    assert len(set(ids)) == len(ids) == len(PAYLOADS) * len(cuttings)
    assert await payloads_delivered(api, ids) == PAYLOADS * len(cuttings)


async def test_a_length_over_the_limit_ends_the_stream_after_the_payloads_before_it(api: Served) -> None:
    body = framed(PAYLOADS[:1]) + (1 << 62).to_bytes(LENGTH_BYTES, "big") + framed([b"never read"])
    answers = await stream(api, chunks(body, []), destination="ipn:1.6")
    assert [a["type"] for a in answers] == ["sent", "error"]
    assert "exceeds this node's limit" in str(answers[-1]["error"])
    assert await payloads_delivered(api, sent_ids(answers), "ipn:1.6") == PAYLOADS[:1]
    assert (await api.client.statistics())["created"] == 1


async def test_a_body_that_ends_inside_a_payload_or_a_length_says_so(api: Served) -> None:
    body = framed(PAYLOADS[:1])
    for cut, what in [(len(body) - 2, "of the 5 bytes of a payload"), (3, "inside a payload's length")]:
        answers = await stream(api, chunks(body[:cut], []))
        assert answers[-1]["type"] == "error" and what in str(answers[-1]["error"]), answers
        assert sent_ids(answers) == []
    answers = await stream(api, chunks(body + body[:LENGTH_BYTES + 2], []))
    assert [a["type"] for a in answers] == ["sent", "error"]  # the whole payload before the cut is stored


async def test_bad_options_are_refused_before_the_stream_starts(api: Served) -> None:
    async with aiohttp.ClientSession() as http, http.post(
        f"http://{api.server.address}{PREFIX}/bundles/stream", params={"destination": "nowhere"}, data=b"",
    ) as response:
        assert response.status == 400 and "error" in await response.json()


async def test_the_client_sends_small_and_large_payloads_over_one_stream(api: Served) -> None:
    sizes = [0, 1, 65_535, 65_536, 200_000]
    payloads = [bytes([n]) * size for n, size in enumerate(sizes)]
    async with api.client.sender("ipn:1.8", over="http") as sender:
        ids = await sender.send_all(payloads)
    assert await payloads_delivered(api, ids, "ipn:1.8") == payloads
