"""Sending over a WebSocket (``GET /v1/ws/send?destination=EID&...``): an application that sends many bundles
keeps one connection open and writes one binary frame per payload, without waiting for each answer.

Every payload gets exactly one answer, in the order the payloads came (``dtn.api.send_pipeline``): ``{"type":
"sent", "ids": [ID, ...]}`` for the payloads stored by one commit (all those that arrived while the previous commit
ran: the group grows with the load), and ``{"type": "refused", "error": "..."}`` for a payload it cannot take (over
the bundle limit, store full). Options (destination, lifetime, reports, ...) are the query parameters of
``POST /v1/bundles`` and hold for the whole connection. The node stops reading while too many payloads wait for
their commit, so a fast sender is slowed by TCP, not by the node's memory.
"""

from __future__ import annotations

import contextlib
import json
import weakref
from typing import Any

from aiohttp import WSMsgType, web

from dtn.node import Node

from .send_pipeline import SendPipeline


async def serve_send_socket(request: web.Request, node: Node, destination: str, options: dict[str, Any],
                            max_payload_bytes: int,
                            sockets: weakref.WeakSet[web.WebSocketResponse]) -> web.WebSocketResponse:
    """Serve one sending application on ``request``'s WebSocket until it closes; ``sockets``: the server's open
    sockets (closed when it stops)."""
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=max_payload_bytes + 1)
    await ws.prepare(request)
    sockets.add(ws)

    async def answer(doc: dict[str, Any]) -> None:
        if not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps(doc))

    pipeline = SendPipeline(node, destination, options, answer, "dtn-api-ws-send")
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await pipeline.put(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await answer({"type": "error", "error": "send payloads as binary frames (one bundle each)"})
    finally:
        await pipeline.finish()
    return ws
