"""``BundleSender``: many bundles sent over one WebSocket (``GET /v1/ws/send``), pipelined.

    async with DtnClient() as node, node.sender("ipn:2.1", lifetime_ms=3_600_000) as sender:
        ids = await asyncio.gather(*(sender.send(p) for p in payloads))   # each: the bundle ID once stored

``send`` returns once the node has stored that bundle durably, like ``DtnClient.send``; any number of sends may
be outstanding at once (the node stores those that arrive together with one commit). A payload the node refuses
raises ``ApiError`` from its own ``send`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp

from .models import PREFIX

if TYPE_CHECKING:
    from .client import DtnClient


class BundleSender:
    """An open sending WebSocket (see ``DtnClient.sender``)."""

    def __init__(self, client: DtnClient, destination: str, params: list[tuple[str, str]]) -> None:
        self._client = client
        self.destination = destination
        self._params = params
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._answers: deque[asyncio.Future[str]] = deque()  # one per payload sent, in order
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._closed_error: Exception | None = None

    async def __aenter__(self) -> BundleSender:
        from .client import ApiError, NodeNotRunning

        try:
            self._ws = await self._client._http().ws_connect(
                self._client._base + PREFIX + "/ws/send", params=self._params, max_msg_size=0
            )
        except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise NodeNotRunning(self._client.address) from exc
        except aiohttp.WSServerHandshakeError as exc:
            raise ApiError(exc.status, f"WebSocket refused: {exc.message}") from exc
        self._reader = asyncio.create_task(self._read(), name=f"dtn-sender {self.destination}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        """Wait for the answers still due (the node stores what it received), then close."""
        if self._answers and exc_type is None:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._answers, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def send(self, payload: bytes | bytearray | memoryview) -> str:
        """Send one payload as one bundle; returns its bundle ID once the node stored it durably."""
        from .client import ApiError

        if self._ws is None or self._closed_error is not None:
            raise self._closed_error or ApiError(0, "the sender is not open (use 'async with client.sender(...)')")
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        async with self._lock:  # the answers come in the order the frames went out
            self._answers.append(answer)
            # aiohttp takes any bytes-like object here (its annotation says bytes); masking copies it anyway
            await self._ws.send_bytes(payload)  # type: ignore[arg-type]
        return await answer

    async def send_all(self, payloads: Iterable[bytes]) -> list[str]:
        """Send several payloads without waiting between them; their bundle IDs in order."""
        return list(await asyncio.gather(*(self.send(p) for p in payloads)))

    async def _read(self) -> None:
        from .client import ApiError

        assert self._ws is not None
        error: Exception = ApiError(0, "the node closed the sending WebSocket")
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                doc: dict[str, Any] = json.loads(msg.data)
                kind = doc.get("type")
                if kind == "sent":
                    for bundle_id in doc["ids"]:
                        self._settle(str(bundle_id), None)
                elif kind == "refused":
                    status = 507 if str(doc.get("error", "")).startswith("store full") else 400
                    self._settle(None, ApiError(status, str(doc.get("error"))))
                elif kind == "error":
                    error = ApiError(400, str(doc.get("error")))
                    break
        except (aiohttp.ClientError, ValueError, KeyError) as exc:
            error = ApiError(0, f"sending WebSocket: {exc}")
        self._closed_error = error
        while self._answers:
            self._settle(None, error)

    def _settle(self, bundle_id: str | None, error: Exception | None) -> None:
        if not self._answers:
            return
        answer = self._answers.popleft()
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            assert bundle_id is not None
            answer.set_result(bundle_id)
