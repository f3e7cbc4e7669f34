"""Sending over a WebSocket (``GET /v1/ws/send?destination=EID&...``): an application that sends many bundles
keeps one connection open and writes one binary frame per payload, without waiting for each answer.

Every payload gets exactly one answer, in the order the payloads came: the node answers ``{"type": "sent",
"ids": [ID, ...]}`` for the payloads stored by one commit (all those that arrived while the previous commit ran:
the group grows with the load), and ``{"type": "refused", "error": "..."}`` for a payload it cannot take (over
the bundle limit, store full). Options (destination, lifetime, reports, ...) are the query parameters of
``POST /v1/bundles`` and hold for the whole connection. The node reads no further while ``MAX_WAITING`` payloads
(or ``MAX_WAITING_BYTES``) wait for their commit, so a fast sender is slowed by TCP, not by the node's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from typing import Any

from aiohttp import WSMsgType, web

from dtn.bundle.ids import BundleId
from dtn.errors import DtnError, StoreFull
from dtn.node import BatchStopped, Node

#: Payloads (and their bytes) read and waiting for a commit before the node stops reading the socket.
MAX_WAITING = 1024
MAX_WAITING_BYTES = 64 * 1024 * 1024


async def serve_send_socket(request: web.Request, node: Node, destination: str, options: dict[str, Any],
                            max_payload_bytes: int,
                            sockets: weakref.WeakSet[web.WebSocketResponse]) -> web.WebSocketResponse:
    """Serve one sending application on ``request``'s WebSocket until it closes; ``sockets``: the server's open
    sockets (closed when it stops)."""
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=max_payload_bytes + 1)
    await ws.prepare(request)
    sockets.add(ws)
    waiting: list[bytes] = []
    waiting_bytes = 0
    arrived = asyncio.Event()
    room = asyncio.Event()
    room.set()
    reading = True

    async def answer(doc: dict[str, Any]) -> None:
        if not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps(doc))

    groups: asyncio.Queue[tuple[list[bytes], asyncio.Task[list[BundleId]]] | None] = asyncio.Queue()

    async def store() -> None:
        """Hand each group of waiting payloads to the node as soon as it is there: a group is stored while the
        commit of the one before runs (the answers still go out in order)."""
        nonlocal waiting_bytes
        while reading or waiting:
            if not waiting:
                arrived.clear()
                await arrived.wait()
                continue
            group = waiting[:]
            del waiting[:]
            waiting_bytes = 0
            room.set()
            task = asyncio.create_task(node.send_many(destination, list(group), **options))
            await groups.put((group, task))
            await asyncio.sleep(0)  # let the group reach the agent before the next one is taken
        await groups.put(None)

    async def answer_all() -> None:
        while (item := await groups.get()) is not None:
            group, task = item
            while group:
                stored: list[BundleId]
                error: Exception | None
                try:
                    ids = await asyncio.shield(task)
                except BatchStopped as exc:
                    stored, error = exc.stored, exc.error
                except (DtnError, ValueError) as exc:
                    stored, error = [], exc
                else:
                    stored, error = ids, None
                if stored:
                    await answer({"type": "sent", "ids": [str(i) for i in stored]})
                del group[: len(stored)]
                if error is not None:
                    kind = "store full" if isinstance(error, StoreFull) else "refused"
                    await answer({"type": "refused", "error": f"{kind}: {error}"})
                    del group[:1]
                    if group:  # the payloads after the refused one are stored now (rare: only after a refusal)
                        task = asyncio.create_task(node.send_many(destination, list(group), **options))

    storer = asyncio.create_task(store(), name="dtn-api-ws-send")
    answerer = asyncio.create_task(answer_all(), name="dtn-api-ws-send-answers")
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                waiting.append(msg.data)
                waiting_bytes += len(msg.data)
                arrived.set()
                if len(waiting) >= MAX_WAITING or waiting_bytes >= MAX_WAITING_BYTES:
                    room.clear()
                    await room.wait()
            elif msg.type == WSMsgType.TEXT:
                await answer({"type": "error", "error": "send payloads as binary frames (one bundle each)"})
    finally:
        reading = False  # what arrived is still stored (and answered, if the socket is open) before the end
        arrived.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(storer)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(answerer)
    return ws
