"""``DtnClient``: the async Python client of a node's application interface (what ``dtnsend``, ``dtnrecv``,
``dtnping`` and ``dtn status`` use).

    from dtn.api.client import DtnClient

    async with DtnClient("127.0.0.1:4242") as node:          # or "unix:/run/dtn/node.sock"; token="..." off loopback
        bundle_id = await node.send("ipn:2.1", b"hello", lifetime_ms=3_600_000, reports={"delivered"})
        report = await node.wait_report(bundle_id, "delivered", timeout_s=60)   # dict, or None on timeout

        await node.register("ipn:1.1")
        delivery = await node.receive("ipn:1.1", timeout_s=30)                   # long poll; None on timeout
        if delivery is not None:
            handle(delivery.payload, delivery.file_name)
            await node.acknowledge(delivery)                                     # only then is it released

        async with node.subscribe("ipn:1.1") as deliveries:                      # WebSocket push
            async for delivery in deliveries:
                handle(delivery.payload)
                await deliveries.ack(delivery)

A delivery that is not acknowledged is offered again (to any reader) later, so applications get every bundle at
least once; acknowledge after the data is safe (``dtnrecv`` acknowledges after fsync).

Every method raises ``NodeNotRunning`` when nothing answers at the address and ``ApiError`` (with the HTTP
status and the node's message) when the node refuses the request.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import aiohttp

from dtn.errors import DtnError

from .models import (
    API_ENV,
    DEFAULT_API_ADDRESS,
    H_BUNDLE_ID,
    H_CREATION_MS,
    H_ENDPOINT,
    H_FILE_NAME,
    H_SOURCE,
    PREFIX,
    TOKEN_ENV,
    Delivery,
    decode_file_name,
)
from .sender import BundleSender

__all__ = ["ApiError", "BundleSender", "Delivery", "DtnClient", "NodeNotRunning", "default_address"]

#: How much longer than the server-side wait the client waits for an answer.
_GRACE_S = 15.0
CHUNK_BYTES = 1 << 20
#: ``receive(spool_dir=...)`` writes payloads larger than this to a file instead of memory.
SPOOL_ABOVE_BYTES = 16 * 1024 * 1024


class NodeNotRunning(DtnError):
    """Nothing answers at the API address (``dtnd`` is not running there)."""

    def __init__(self, address: str, detail: str = "") -> None:
        super().__init__(f"dtnd is not running at {address}" + (f" ({detail})" if detail else ""))
        self.address = address


class ApiError(DtnError):
    """The node refused a request; ``status`` is the HTTP status, the message the node's explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def default_address() -> str:
    """``$DTN_API`` or ``127.0.0.1:4242``."""
    return os.environ.get(API_ENV) or DEFAULT_API_ADDRESS


class DtnClient:
    """One connection pool to one node's API. Use as ``async with DtnClient(addr) as node:`` or call
    ``close()``. ``address``: ``HOST:PORT``, ``http://HOST:PORT`` or ``unix:PATH`` (default ``$DTN_API`` or
    ``127.0.0.1:4242``); ``token``: bearer token (default ``$DTN_API_TOKEN``)."""

    def __init__(self, address: str | None = None, token: str | None = None, *, connect_timeout_s: float = 5.0) -> None:
        self.address = address or default_address()
        self.token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        self._connect_timeout_s = connect_timeout_s
        if self.address.startswith("unix:"):
            self._unix_path: str | None = self.address[5:]
            self._base = "http://localhost"
        else:
            self._unix_path = None
            base = self.address if "://" in self.address else f"http://{self.address}"
            self._base = base.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    # --- plumbing ----------------------------------------------------------------------------------------------

    async def __aenter__(self) -> DtnClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector: aiohttp.BaseConnector | None = (
                aiohttp.UnixConnector(path=self._unix_path) if self._unix_path is not None else None
            )
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_s),
            )
        return self._session

    async def _request(self, method: str, path: str, *, params: Any = None, data: Any = None,
                       wait_s: float | None = None, headers: dict[str, str] | None = None,
                       ) -> tuple[int, dict[str, str], bytes]:
        status, response_headers, body = await self._exchange(method, path, params=params, data=data,
                                                               wait_s=wait_s, headers=headers)
        assert isinstance(body, bytes)
        return status, response_headers, body

    async def _exchange(self, method: str, path: str, *, params: Any = None, data: Any = None,
                        wait_s: float | None = None, headers: dict[str, str] | None = None,
                       spool_dir: Path | None = None, spool_above_bytes: int = 0,
                       progress: Callable[[int, int], None] | None = None,
                       ) -> tuple[int, dict[str, str], bytes | Path]:
        """One request; the body of the answer, or with ``spool_dir`` for an answer longer than
        ``spool_above_bytes`` the path of a new file in ``spool_dir`` holding it (the caller owns the file)."""
        timeout = aiohttp.ClientTimeout(total=None if wait_s is None else wait_s + _GRACE_S,
                                        sock_connect=self._connect_timeout_s)
        body: bytes | Path
        try:
            async with self._http().request(method, self._base + PREFIX + path, params=params, data=data,
                                            timeout=timeout, headers=headers) as response:
                length = response.content_length
                spooled = spool_dir is not None and response.status < 400 and length is not None
                if spooled and length is not None and spool_dir is not None and length > spool_above_bytes:
                    body = await _spool(response, spool_dir, length, progress)
                else:
                    body = await response.read()
                response_headers = dict(response.headers)
                status = response.status
        except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise NodeNotRunning(self.address) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise NodeNotRunning(self.address, "the node closed the connection") from exc
        except aiohttp.ClientError as exc:
            raise ApiError(0, f"{self.address}: {exc}") from exc
        if status >= 400:
            assert isinstance(body, bytes)
            try:
                message = str(json.loads(body)["error"])
            except (ValueError, KeyError, TypeError):
                message = body.decode("utf-8", "replace") or f"HTTP {status}"
            raise ApiError(status, message)
        return status, response_headers, body

    async def _json(self, method: str, path: str, *, params: Any = None, wait_s: float | None = None) -> Any:
        _, _, body = await self._request(method, path, params=params, wait_s=wait_s)
        return json.loads(body)

    # --- node information --------------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", "/status", wait_s=0)
        return result

    async def neighbours(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._json("GET", "/neighbours", wait_s=0)
        return result

    async def bundles(self, limit: int = 100) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._json("GET", "/bundles", params={"limit": limit}, wait_s=0)
        return result

    async def routes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._json("GET", "/routes", wait_s=0)
        return result

    async def plan(self) -> dict[str, Any]:
        """The node's contact plan summary (``{"loaded": false}`` without one)."""
        result: dict[str, Any] = await self._json("GET", "/plan", wait_s=0)
        return result

    async def load_plan(self, text: str, fmt: str | None = None, *, name: str | None = None) -> dict[str, Any]:
        """Replace the node's contact plan with ``text`` (``fmt``: toml, json, ion, hdtn; None: detected from
        ``name`` and the text); returns the new plan's summary. A bad plan raises ``ApiError`` (400)."""
        params = {k: v for k, v in (("format", fmt), ("name", name)) if v}
        _, _, body = await self._request("POST", "/plan", params=params, data=text.encode("utf-8"))
        result: dict[str, Any] = json.loads(body)
        return result

    async def plan_routes(self, destination: str, *, at: str | None = None, size_bytes: int = 0, count: int = 5,
                          priority: str = "standard") -> dict[str, Any]:
        """Ranked contact-graph routes from the node to ``destination`` at ``at`` (``+SECONDS``, plan seconds or
        ISO 8601 UTC; None: now)."""
        params = {"destination": destination, "size_bytes": str(size_bytes), "count": str(count),
                  "priority": priority}
        if at:
            params["at"] = at
        result: dict[str, Any] = await self._json("GET", "/plan/routes", params=params, wait_s=0)
        return result

    async def statistics(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", "/statistics", wait_s=0)
        return result

    # --- endpoints -----------------------------------------------------------------------------------------------

    async def register(self, endpoint: str, *, passive: bool = False) -> str:
        """Register ``endpoint`` on the node (active: bundles are offered at once); returns its normal form."""
        params = {"endpoint": endpoint, "passive": "true" if passive else "false"}
        doc = await self._json("POST", "/endpoints", params=params, wait_s=0)
        return str(doc["endpoint"])

    async def unregister(self, endpoint: str) -> bool:
        doc = await self._json("DELETE", "/endpoints", params={"endpoint": endpoint}, wait_s=0)
        return bool(doc["removed"])

    # --- sending -------------------------------------------------------------------------------------------------

    async def send(
        self,
        destination: str,
        payload: bytes | AsyncIterable[bytes],
        *,
        lifetime_ms: int = 86_400_000,
        reports: Iterable[str] = (),
        report_to: str | None = None,
        priority: int = 1,
        hop_limit: int | None = None,
        file_name: str | None = None,
        source: str | None = None,
        size_bytes: int | None = None,
    ) -> str:
        """Send ``payload`` (bytes, or an async iterable of chunks that is streamed) to ``destination``; returns
        the bundle ID (text) once the node has stored the bundle durably. ``reports``: any of ``received``,
        ``forwarded``, ``delivered``, ``deleted`` (sent to ``report_to``, default this node). ``size_bytes``: the
        length of a streamed payload when known (sent as Content-Length: the node then makes the fragments of a
        large payload as it arrives instead of keeping it in a temporary file first)."""
        params = send_params(destination, lifetime_ms, priority, reports, report_to=report_to, hop_limit=hop_limit,
                             file_name=file_name, source=source)
        headers = None if size_bytes is None or isinstance(payload, bytes) else {"Content-Length": str(size_bytes)}
        _, _, body = await self._request("POST", "/bundles", params=params, data=payload, headers=headers)
        return str(json.loads(body)["id"])

    async def send_many(
        self,
        destination: str,
        payloads: Sequence[bytes],
        *,
        lifetime_ms: int = 86_400_000,
        reports: Iterable[str] = (),
        report_to: str | None = None,
        priority: int = 1,
        hop_limit: int | None = None,
        source: str | None = None,
    ) -> list[str]:
        """Send one bundle per payload, with the same options, in one request (``sizes=``); returns their bundle
        IDs once the node has stored them all durably (one commit). Options as ``send``."""
        if not payloads:
            return []
        params = send_params(destination, lifetime_ms, priority, reports, report_to=report_to, hop_limit=hop_limit,
                             source=source)
        params.append(("sizes", ",".join(str(len(p)) for p in payloads)))
        _, _, body = await self._request("POST", "/bundles", params=params, data=b"".join(payloads))
        return [str(i) for i in json.loads(body)["ids"]]

    async def send_file(
        self,
        destination: str,
        path: str | os.PathLike[str],
        *,
        progress: Callable[[int, int], None] | None = None,
        file_name: str | None = None,
        **options: Any,
    ) -> str:
        """Stream the file at ``path`` as the payload; the file's base name travels as ``file_name``.
        ``progress(sent_bytes, total_bytes)`` is called as the body goes out. Other options as ``send``."""
        file_path = Path(path)
        total = file_path.stat().st_size
        return await self.send(destination, file_chunks(file_path, total, progress),
                               file_name=file_name or file_path.name, size_bytes=total, **options)

    async def wait_report(self, bundle_id: str, kind: str, timeout_s: float = 30.0) -> dict[str, Any] | None:
        """The first status report about ``bundle_id`` asserting ``kind`` (``received``, ``forwarded``,
        ``delivered``, ``deleted``) as JSON (see ``dtn.api.models.report_to_json``), or None after ``timeout_s``
        (at most 300 s per call)."""
        params = {"id": bundle_id, "kind": kind, "timeout_s": f"{timeout_s:g}"}
        status, _, body = await self._request("GET", "/reports", params=params, wait_s=timeout_s)
        if status == 204:
            return None
        result: dict[str, Any] = json.loads(body)
        return result

    # --- receiving -----------------------------------------------------------------------------------------------

    async def receive(self, endpoint: str, timeout_s: float = 30.0, *, spool_dir: Path | None = None,
                      spool_above_bytes: int = SPOOL_ABOVE_BYTES,
                      progress: Callable[[int, int], None] | None = None) -> Delivery | None:
        """Long poll: the next bundle for ``endpoint`` (registered on first use), or None after ``timeout_s``
        (at most 300 s per call). With ``spool_dir``, a payload larger than ``spool_above_bytes`` is written to a
        new file there as it arrives (``Delivery.payload_path``; ``payload`` is then empty) instead of memory,
        calling ``progress(received_bytes, total_bytes)`` as it goes."""
        params = {"endpoint": endpoint, "timeout_s": f"{timeout_s:g}"}
        status, headers, body = await self._exchange("GET", "/deliveries", params=params, wait_s=timeout_s,
                                                     spool_dir=spool_dir, spool_above_bytes=spool_above_bytes,
                                                     progress=progress)
        if status == 204:
            if isinstance(body, Path):
                body.unlink(missing_ok=True)
            return None
        return Delivery(
            bundle_id=headers[H_BUNDLE_ID],
            endpoint=headers.get(H_ENDPOINT, endpoint),
            source=headers.get(H_SOURCE, ""),
            creation_ms=int(headers.get(H_CREATION_MS, "0")),
            file_name=decode_file_name(headers.get(H_FILE_NAME)),
            payload=b"" if isinstance(body, Path) else body,
            payload_path=body if isinstance(body, Path) else None,
            payload_bytes=body.stat().st_size if isinstance(body, Path) else None,
        )

    async def acknowledge(self, delivery: Delivery | str, endpoint: str | None = None) -> bool:
        """Release a delivery (``Delivery``, or its bundle ID with ``endpoint``); durable when this returns.
        False when the node had no such unacknowledged delivery."""
        if isinstance(delivery, Delivery):
            bundle_id, endpoint = delivery.bundle_id, endpoint or delivery.endpoint
        else:
            bundle_id = delivery
        if endpoint is None:
            raise ValueError("acknowledge(bundle_id) needs the endpoint")
        try:
            await self._request("POST", "/deliveries/ack", params={"endpoint": endpoint, "id": bundle_id}, wait_s=0)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def sender(
        self,
        destination: str,
        *,
        lifetime_ms: int = 86_400_000,
        reports: Iterable[str] = (),
        report_to: str | None = None,
        priority: int = 1,
        hop_limit: int | None = None,
        source: str | None = None,
        over: Literal["websocket", "http"] = "websocket",
    ) -> BundleSender:
        """A connection for sending many bundles to ``destination`` pipelined (answered per commit):
        ``async with client.sender(dest) as s: bundle_id = await s.send(payload)``. Options as ``send``; ``over``:
        a WebSocket (one frame per payload) or one streamed HTTP request (cheaper for large payloads)."""
        params = send_params(destination, lifetime_ms, priority, reports, report_to=report_to, hop_limit=hop_limit,
                             source=source)
        return BundleSender(self, destination, params, over)

    def subscribe(self, endpoint: str, *, window: int = 1) -> Subscription:
        """WebSocket push of the deliveries for ``endpoint``: ``async with client.subscribe(ep) as sub:
        async for delivery in sub: ...; await sub.ack(delivery)``. At most ``window`` unacknowledged at once; the
        node sends deliveries that are ready together in one group (fewer frames), taken apart here."""
        return Subscription(self, endpoint, window)

    def _ws_url(self) -> str:
        return self._base + PREFIX + "/ws"


class Subscription:
    """An open WebSocket subscription (see ``DtnClient.subscribe``)."""

    def __init__(self, client: DtnClient, endpoint: str, window: int) -> None:
        self._client = client
        self.endpoint = endpoint
        self.window = window
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> Subscription:
        try:
            self._ws = await self._client._http().ws_connect(
                self._client._ws_url(),
                params={"endpoint": self.endpoint, "window": str(self.window), "group": "1"},
                max_msg_size=0,  # the node bounds a payload by its largest bundle; aiohttp's 4 MiB default would cut it
            )
        except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise NodeNotRunning(self._client.address) from exc
        except aiohttp.WSServerHandshakeError as exc:
            raise ApiError(exc.status, f"WebSocket refused: {exc.message}") from exc
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._ws is not None:
            await self._ws.close()

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self._deliveries()

    async def _next_text(self) -> dict[str, Any]:
        assert self._ws is not None
        msg = await self._ws.receive()
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            raise StopAsyncIteration
        if msg.type == aiohttp.WSMsgType.ERROR:
            raise ApiError(0, f"WebSocket error: {self._ws.exception()}")
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ApiError(0, f"unexpected WebSocket frame {msg.type!r}")
        doc: dict[str, Any] = json.loads(msg.data)
        return doc

    async def _deliveries(self) -> AsyncIterator[Delivery]:
        assert self._ws is not None
        while True:
            try:
                doc = await self._next_text()
            except StopAsyncIteration:
                return
            if doc.get("type") == "ack":
                continue
            if doc.get("type") == "error":
                raise ApiError(400, str(doc.get("error")))
            items = doc.get("items") if doc.get("type") == "deliveries" else [doc]
            if not isinstance(items, list) or not items:
                raise ApiError(0, f"WebSocket: a delivery group without items: {doc}")
            sizes = [int(item.get("size_bytes", -1)) for item in items]
            payload = await self._payload(str(items[0].get("id")), sum(sizes))
            offset = 0
            for item, size in zip(items, sizes, strict=True):
                yield Delivery(
                    bundle_id=str(item["id"]),
                    endpoint=str(item["endpoint"]),
                    source=str(item["source"]),
                    creation_ms=int(item["creation_ms"]),
                    file_name=item.get("file_name"),
                    payload=payload if len(items) == 1 else payload[offset:offset + size],
                )
                offset += size

    async def _payload(self, first_id: str, size: int) -> bytes:
        """The binary frames that follow a delivery (or a group): one, or several adding up to ``size``."""
        assert self._ws is not None
        frames: list[bytes] = []
        received = 0
        while not frames or received < size:
            data = await self._ws.receive()
            if data.type == aiohttp.WSMsgType.ERROR:
                raise ApiError(0, f"WebSocket error: {self._ws.exception()}")
            if data.type != aiohttp.WSMsgType.BINARY:
                raise ApiError(0, f"WebSocket: expected the payload of {first_id}, got {data.type!r}")
            frames.append(data.data)
            received += len(data.data)
        if received != size:
            raise ApiError(0, f"WebSocket: {received} payload bytes for {first_id}, announced {size}")
        return frames[0] if len(frames) == 1 else b"".join(frames)

    async def ack(self, delivery: Delivery | str) -> None:
        """Acknowledge a delivery; the node answers asynchronously (the next delivery follows the ack)."""
        assert self._ws is not None
        bundle_id = delivery.bundle_id if isinstance(delivery, Delivery) else delivery
        await self._ws.send_str(json.dumps({"type": "ack", "id": bundle_id}))

    async def ack_many(self, deliveries: Sequence[Delivery | str]) -> None:
        """Acknowledge several deliveries in one frame (at most 1024; the node releases them with one commit)."""
        assert self._ws is not None
        if deliveries:
            ids = [d.bundle_id if isinstance(d, Delivery) else d for d in deliveries]
            await self._ws.send_str(json.dumps({"type": "ack", "ids": ids}))


def send_params(destination: str, lifetime_ms: int, priority: int, reports: Iterable[str], **optional: object
                ) -> list[tuple[str, str]]:
    """The query of a send request (``POST /v1/bundles``, ``/v1/ws/send``); ``optional`` values of None are left
    out."""
    params: list[tuple[str, str]] = [("destination", destination), ("lifetime_ms", str(lifetime_ms)),
                                     ("priority", str(priority))]
    kinds = sorted(set(reports))
    if kinds:
        params.append(("report", ",".join(kinds)))
    params.extend((key, str(value)) for key, value in optional.items() if value is not None)
    return params


async def _spool(response: aiohttp.ClientResponse, directory: Path, length: int,
                 progress: Callable[[int, int], None] | None = None) -> Path:
    """Write a response body of ``length`` bytes to a new hidden file in ``directory``; removed on any error."""
    directory.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=".dtn-", suffix=".part", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            received = 0
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                out.write(chunk)
                received += len(chunk)
                if progress is not None:
                    progress(received, length)
            if received != length:
                raise ApiError(0, f"the node sent {received} of {length} bytes before the connection ended")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


async def file_chunks(path: Path, total: int, progress: Callable[[int, int], None] | None) -> AsyncIterator[bytes]:
    """The file's bytes in 1 MiB chunks, reporting progress."""
    sent = 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(CHUNK_BYTES)
            if not chunk:
                break
            sent += len(chunk)
            if progress is not None:
                progress(sent, total)
            yield chunk
