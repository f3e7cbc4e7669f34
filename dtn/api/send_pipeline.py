"""What a pipelined sending connection does whatever its framing (``/v1/ws/send``, ``/v1/bundles/stream``).

Payloads wait in the order they came; each group that arrived while the node stored the one before is handed to
the node at once (``Node.send_many``: one commit), and every payload gets exactly one answer, in order:
``{"type": "sent", "ids": [ID, ...]}`` for the payloads stored by one commit, ``{"type": "refused", "error":
"..."}`` for a payload the node cannot take (over the bundle limit, store full). The connection reads no further
while ``MAX_WAITING`` payloads (or ``MAX_WAITING_BYTES``) wait for their commit, so a fast sender is slowed by
TCP, not by the node's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from dtn.bundle.ids import BundleId
from dtn.errors import DtnError, StoreFull
from dtn.node import BatchStopped, Node

#: Payloads (and their bytes) read and waiting for a commit before the connection stops reading.
MAX_WAITING = 1024
MAX_WAITING_BYTES = 64 * 1024 * 1024

Answer = Callable[[dict[str, Any]], Awaitable[None]]


class SendPipeline:
    """Payloads of one sending connection to ``destination`` with ``options`` (those of ``Node.send_many``);
    ``answer`` writes one answer to the application (and must not raise when it has gone)."""

    def __init__(self, node: Node, destination: str, options: dict[str, Any], answer: Answer, name: str) -> None:
        self._node = node
        self._destination = destination
        self._options = options
        self._answer = answer
        self._waiting: list[bytes] = []
        self._waiting_bytes = 0
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._reading = True
        self._groups: asyncio.Queue[tuple[list[bytes], asyncio.Task[list[BundleId]]] | None] = asyncio.Queue()
        self._storer = asyncio.create_task(self._store(), name=name)
        self._answerer = asyncio.create_task(self._answer_all(), name=f"{name}-answers")

    async def put(self, payload: bytes) -> None:
        """One more payload; waits while too many wait for their commit."""
        self._waiting.append(payload)
        self._waiting_bytes += len(payload)
        self._arrived.set()
        if len(self._waiting) >= MAX_WAITING or self._waiting_bytes >= MAX_WAITING_BYTES:
            self._room.clear()
            await self._room.wait()

    async def finish(self) -> None:
        """No more payloads: those that arrived are still stored (and answered, if the application listens)."""
        self._reading = False
        self._arrived.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(self._storer)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(self._answerer)

    async def _store(self) -> None:
        """Hand each group of waiting payloads to the node as soon as it is there: a group is stored while the
        commit of the one before runs (the answers still go out in order)."""
        while self._reading or self._waiting:
            if not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            group = self._waiting[:]
            del self._waiting[:]
            self._waiting_bytes = 0
            self._room.set()
            await self._groups.put((group, self._send(group)))
            await asyncio.sleep(0)  # let the group reach the agent before the next one is taken
        await self._groups.put(None)

    def _send(self, group: list[bytes]) -> asyncio.Task[list[BundleId]]:
        return asyncio.create_task(self._node.send_many(self._destination, list(group), **self._options))

    async def _answer_all(self) -> None:
        while (item := await self._groups.get()) is not None:
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
                    await self._answer({"type": "sent", "ids": [str(i) for i in stored]})
                del group[: len(stored)]
                if error is not None:
                    kind = "store full" if isinstance(error, StoreFull) else "refused"
                    await self._answer({"type": "refused", "error": f"{kind}: {error}"})
                    del group[:1]
                    if group:  # the payloads after the refused one are stored now (rare: only after a refusal)
                        task = self._send(group)
