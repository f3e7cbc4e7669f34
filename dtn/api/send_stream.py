"""Sending over one HTTP request (``POST /v1/bundles/stream?destination=EID&...``): the streaming twin of
``/v1/ws/send`` for clients that speak plain HTTP, and the cheaper of the two for large payloads (no WebSocket
masking to undo, one copy fewer on each side).

The request body is any number of payloads, each preceded by its length in ``LENGTH_BYTES`` bytes (unsigned, big
endian), sent chunked as the application produces them. The response (``application/x-ndjson``) starts at once and
streams one JSON line per answer while the body is still coming: the answers of ``/v1/ws/send``, one per payload,
in order (``{"type": "sent", "ids": [...]}`` per commit, ``{"type": "refused", "error": "..."}``). A length above
the node's largest bundle, or a body that ends inside a length or a payload, ends the stream with ``{"type":
"error", "error": "..."}`` after the answers of the payloads before it; nothing after it is read. Options are the
query parameters of ``POST /v1/bundles``. As on the WebSocket, payloads read before the application went away
are still stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import StreamReader, web

from dtn.node import Node

from .send_pipeline import SendPipeline

#: Bytes of the length that precedes each payload in the request body.
LENGTH_BYTES = 8
CONTENT_TYPE = "application/x-ndjson"


class NodeStopping(Exception):
    """Set on the body of the streams still open when the API stops (``stop_streams``)."""


async def serve_send_stream(request: web.Request, node: Node, destination: str, options: dict[str, Any],
                            max_payload_bytes: int, streams: set[StreamReader]) -> web.StreamResponse:
    """Serve one streamed sending request until its body ends (or breaks the framing); ``streams``: the server's
    open streams (ended by ``stop_streams`` when it stops)."""
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
    await response.prepare(request)

    async def answer(doc: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write(json.dumps(doc).encode() + b"\n")

    pipeline = SendPipeline(node, destination, options, answer, "dtn-api-send-stream")
    streams.add(request.content)
    try:
        error = await _read_payloads(request, pipeline, max_payload_bytes)
    except NodeStopping:
        error = "the node is stopping"
    finally:
        streams.discard(request.content)
        await pipeline.finish()
    if error is not None:
        await answer({"type": "error", "error": error})
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    return response


async def _read_payloads(request: web.Request, pipeline: SendPipeline, max_payload_bytes: int) -> str | None:
    """Hand every payload of the body to ``pipeline``; what broke the framing, or None at a clean end."""
    content = request.content
    while True:
        try:
            head = await content.readexactly(LENGTH_BYTES)
        except asyncio.IncompleteReadError as exc:
            return f"the body ended inside a payload's length ({len(exc.partial)} of {LENGTH_BYTES} bytes)" \
                if exc.partial else None
        size = int.from_bytes(head, "big")
        if size > max_payload_bytes:
            return f"a payload of {size} bytes exceeds this node's limit of {max_payload_bytes} bytes"
        try:
            payload = await content.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            return f"the body ended after {len(exc.partial)} of the {size} bytes of a payload"
        await pipeline.put(payload)


def stop_streams(streams: set[StreamReader]) -> None:
    """End the reading of every open stream: what arrived is stored and answered, then the stream says why."""
    for body in list(streams):
        body.set_exception(NodeStopping())
