"""``BundleSender``: many bundles sent pipelined over one connection, a WebSocket (``GET /v1/ws/send``) or one
streamed HTTP request (``POST /v1/bundles/stream``, ``over="http"``: cheaper for large payloads).

    async with DtnClient() as node, node.sender("ipn:2.1", lifetime_ms=3_600_000) as sender:
        ids = await asyncio.gather(*(sender.send(p) for p in payloads))   # each: the bundle ID once stored

``send`` returns once the node has stored that bundle durably, like ``DtnClient.send``; any number of sends may
be outstanding at once (the node stores those that arrive together with one commit). A payload the node refuses
raises ``ApiError`` from its own ``send`` only. A payload's buffer may be reused once its ``send`` returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from .models import PREFIX
from .send_stream import CONTENT_TYPE, LENGTH_BYTES

if TYPE_CHECKING:
    from .client import DtnClient

Payload = bytes | bytearray | memoryview
#: Payloads handed to an HTTP sending stream and not yet written (``send`` waits beyond).
STREAM_QUEUE_PAYLOADS = 16
#: Payloads shorter than this go into the HTTP body joined to their length (one chunk); longer ones after it.
JOIN_BELOW_BYTES = 64 * 1024
#: How long closing waits for the node to end an HTTP sending stream.
CLOSE_TIMEOUT_S = 30.0


class BundleSender:
    """An open sending connection (see ``DtnClient.sender``)."""

    def __init__(self, client: DtnClient, destination: str, params: list[tuple[str, str]],
                 over: Literal["websocket", "http"] = "websocket") -> None:
        if over not in ("websocket", "http"):
            raise ValueError(f"over: {over!r} is neither 'websocket' nor 'http'")
        self._client = client
        self.destination = destination
        self.over = over
        self._params = params
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._queue: asyncio.Queue[Payload | None] | None = None  # over HTTP: payloads for the request body
        self._answers: deque[asyncio.Future[str]] = deque()  # one per payload sent, in order
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._closed_error: Exception | None = None

    async def __aenter__(self) -> BundleSender:
        from .client import ApiError, NodeNotRunning

        if self.over == "http":
            await self._client.status()  # NodeNotRunning now; the request itself starts with the first payload
            self._queue = asyncio.Queue(STREAM_QUEUE_PAYLOADS)
            self._reader = asyncio.create_task(self._stream(), name=f"dtn-sender {self.destination}")
            return self
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
        if self._queue is not None and self._reader is not None and not self._reader.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._queue.put(None)  # the body ends; the node ends its answers
                    await asyncio.shield(self._reader)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def send(self, payload: Payload) -> str:
        """Send one payload as one bundle; returns its bundle ID once the node stored it durably."""
        from .client import ApiError

        if (self._ws is None and self._queue is None) or self._closed_error is not None:
            raise self._closed_error or ApiError(0, "the sender is not open (use 'async with client.sender(...)')")
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        async with self._lock:  # the answers come in the order the payloads went out
            self._answers.append(answer)
            if self._ws is not None:
                # aiohttp takes any bytes-like object here (its annotation says bytes); masking copies it anyway
                await self._ws.send_bytes(payload)  # type: ignore[arg-type]
            else:
                assert self._queue is not None and self._reader is not None
                if not self._queue.full():
                    self._queue.put_nowait(payload)
                else:  # wait for room, or for the end of the stream (whose error settles this answer too)
                    put = asyncio.ensure_future(self._queue.put(payload))
                    await asyncio.wait((put, self._reader), return_when=asyncio.FIRST_COMPLETED)
                    if not put.done():
                        put.cancel()
        return await answer

    async def send_all(self, payloads: Iterable[Payload]) -> list[str]:
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
                stop = self._on_answer(json.loads(msg.data))
                if stop is not None:
                    error = stop
                    break
        except (aiohttp.ClientError, ValueError, KeyError) as exc:
            error = ApiError(0, f"sending WebSocket: {exc}")
        self._close_with(error)

    async def _stream(self) -> None:
        """The HTTP sending request: its body is fed from the queue, its answers read as they come."""
        from .client import ApiError, NodeNotRunning

        error: Exception = ApiError(0, "the node ended the sending stream")
        try:
            async with self._client._http().post(
                self._client._base + PREFIX + "/bundles/stream", params=self._params, data=self._body(),
                headers={"Content-Type": "application/octet-stream", "Accept": CONTENT_TYPE},
            ) as response:
                if response.status != 200:
                    text = (await response.text()).strip()
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        text = str(json.loads(text)["error"])
                    error = ApiError(response.status, text)
                    return
                async for line in response.content:
                    if not line.strip():
                        continue
                    stop = self._on_answer(json.loads(line))
                    if stop is not None:
                        error = stop
                        return
        except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError):
            error = NodeNotRunning(self._client.address)
        except (aiohttp.ClientError, ConnectionError, ValueError, KeyError) as exc:
            error = ApiError(0, f"sending stream: {exc}")
        finally:
            self._close_with(error)

    async def _body(self) -> AsyncIterator[bytes | bytearray | memoryview]:
        assert self._queue is not None
        while (payload := await self._queue.get()) is not None:
            head = len(payload).to_bytes(LENGTH_BYTES, "big")
            if len(payload) < JOIN_BELOW_BYTES:
                yield head + payload  # one chunk on the wire
            else:
                yield head
                yield payload  # not copied here (aiohttp frames each chunk)

    def _on_answer(self, doc: dict[str, Any]) -> Exception | None:
        """Settle the answers ``doc`` gives; the error that ends the connection, if it says so."""
        from .client import ApiError

        kind = doc.get("type")
        if kind == "sent":
            for bundle_id in doc["ids"]:
                self._settle(str(bundle_id), None)
        elif kind == "refused":
            status = 507 if str(doc.get("error", "")).startswith("store full") else 400
            self._settle(None, ApiError(status, str(doc.get("error"))))
        elif kind == "error":
            return ApiError(400, str(doc.get("error")))
        return None

    def _close_with(self, error: Exception) -> None:
        """The connection is over: every answer still due fails with ``error``, and so does every later send."""
        self._closed_error = error
        while self._answers:
            self._settle(None, error)
        if self._queue is not None:
            while not self._queue.empty():  # nothing will write them now; free the queue's room
                self._queue.get_nowait()

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
