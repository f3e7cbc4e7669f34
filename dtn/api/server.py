"""The application interface of a node: HTTP + WebSocket on aiohttp.

Bound to ``127.0.0.1:4242`` by default, or to a Unix socket (``unix:PATH``). When the node's configuration has
an API token (required off loopback), every request must carry ``Authorization: Bearer TOKEN``.

Routes (all under ``/v1``; errors are ``{"error": "..."}`` with a 4xx/5xx status):

    GET    /v1/status                      node status (JSON)
    GET    /v1/neighbours                  configured and connected neighbours
    GET    /v1/bundles?limit=N             bundles in the store
    GET    /v1/routes                      routing table (best contact-graph route per plan node, static rules)
    GET    /v1/plan                        the contact plan loaded and the contacts followed with neighbours
    POST   /v1/plan?format=F&name=N        body = plan text (toml, json, ion, hdtn; default: detected): replace it
    GET    /v1/plan/routes?destination=EID&at=T&size_bytes=B&count=N&priority=P   ranked CGR routes
    GET    /v1/statistics                  counters
    GET    /v1/endpoints                   registered endpoints
    POST   /v1/endpoints?endpoint=EID[&passive=true]    register
    DELETE /v1/endpoints?endpoint=EID      unregister
    POST   /v1/bundles?destination=EID&... body = payload; 201 {"id": ...} once the bundle is stored durably
                      ...&sizes=N,N,...     a batch: the body is the payloads one after the other, one bundle
                                            each (same options); 201 {"ids": [...]} after one commit
                                            A payload larger than the node's fragment_payload_bytes (16 MiB)
                                            is stored and forwarded as fragments made at the source while the
                                            body streams in; 201 {"id", "fragments": N} once all are stored
    GET    /v1/deliveries?endpoint=EID&timeout_s=S     long poll: 200 payload + Dtn-* headers, 204 on timeout
    POST   /v1/deliveries/ack?endpoint=EID&id=ID       acknowledge a delivery (durable when answered)
    GET    /v1/reports?id=ID&kind=KIND&timeout_s=S     wait for a status report: 200 JSON, 204 on timeout
    GET    /v1/ws?endpoint=EID[&window=N][&group=1]    WebSocket push of deliveries (see ``_websocket``)
    GET    /v1/ws/send?destination=EID&...             WebSocket sending: one binary frame per bundle, answered
                                                       in order, per commit (see ``dtn.api.ws_send``)
    POST   /v1/bundles/stream?destination=EID&...      the same over one HTTP request: body = payloads, each after
                                                       its 8-byte length; NDJSON answers streamed back
                                                       (see ``dtn.api.send_stream``)
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import os
import socket
import stat
import tempfile
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import StreamReader, WSCloseCode, WSMsgType, web

from dtn.bundle.eid import parse_eid
from dtn.bundle.ids import BundleId
from dtn.errors import DtnError, InvalidEid, StoreError, StoreFull
from dtn.node import BatchStopped, Delivery, Node, StoredPayload
from dtn.routing.plan_files import FORMATS

from .models import (
    H_BUNDLE_ID,
    H_CREATION_MS,
    H_ENDPOINT,
    H_FILE_NAME,
    H_SOURCE,
    PREFIX,
    PRIORITIES,
    REPORT_KINDS,
    encode_file_name,
    report_to_json,
    split_bind,
)
from .send_stream import serve_send_stream, stop_streams
from .ws_send import serve_send_socket

log = logging.getLogger("dtn.api")

#: Longest long poll / report wait a request may ask for.
MAX_WAIT_S = 300.0
DEFAULT_WAIT_S = 30.0
#: Largest contact plan accepted by POST /v1/plan (bytes of text).
MAX_PLAN_BYTES = 64 * 1024 * 1024
#: Largest WebSocket window (deliveries pushed and not yet acknowledged).
MAX_WINDOW = 64
READ_CHUNK_BYTES = 1 << 20
PRESIZED_BODY_MIN_BYTES = 64 << 10  # a body with a Content-Length above this is read into one buffer
#: Payloads in one batch submission (``POST /v1/bundles?sizes=...``), and their bytes together, at most.
MAX_BATCH = 1024
#: With ``group=1``, deliveries ready together go out as one group while their payloads total less than this.
MAX_GROUP_BYTES = 1 << 20
MAX_BATCH_BYTES = 64 * 1024 * 1024

NODE_KEY = web.AppKey("node", Node)
TOKEN_KEY = web.AppKey("token", str)
#: The open WebSockets, closed (1001, going away) when the server stops instead of waiting for their clients.
SOCKETS_KEY = web.AppKey("sockets", weakref.WeakSet[web.WebSocketResponse])
STREAMS_KEY = web.AppKey("streams", set[StreamReader])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[TOKEN_KEY]
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _error(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)")
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, str(exc))
    except StoreFull as exc:
        return _error(507, str(exc))
    except StoreError as exc:
        return _error(503, str(exc))
    except (InvalidEid, ValueError) as exc:
        return _error(400, str(exc))
    except DtnError as exc:
        return _error(500, str(exc))
    except web.HTTPException:
        raise
    except Exception as exc:  # a bug: answer in JSON, keep serving, log the traceback
        log.exception("API %s %s failed", request.method, request.path)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")


# --- query helpers -----------------------------------------------------------------------------------------------


def _param(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if value is None or value == "":
        raise ApiError(400, f"query parameter {name!r} is required")
    return value


def _int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"{name}: expected an integer, got {text!r}") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name}: {value} is outside {low}..{high}")
    return value


def _wait_param(request: web.Request) -> float:
    text = request.query.get("timeout_s")
    if text is None or text == "":
        return DEFAULT_WAIT_S
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, f"timeout_s: expected seconds, got {text!r}") from None
    if not 0 <= value <= MAX_WAIT_S:
        raise ApiError(400, f"timeout_s: {value} is outside 0..{MAX_WAIT_S:g}")
    return value


def _bool_param(request: web.Request, name: str) -> bool:
    text = request.query.get(name, "").lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise ApiError(400, f"{name}: expected true or false, got {text!r}")


def _endpoint(request: web.Request) -> str:
    return str(parse_eid(_param(request, "endpoint")))


def _bundle_id(text: str) -> BundleId:
    try:
        return BundleId.parse(text)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def _reports(request: web.Request) -> frozenset[str]:
    kinds: set[str] = set()
    for value in request.query.getall("report", []):
        kinds.update(k.strip().lower() for k in value.split(",") if k.strip())
    unknown = kinds - set(REPORT_KINDS)
    if unknown:
        raise ApiError(400, f"report: unknown kind(s) {', '.join(sorted(unknown))}; choose from "
                            f"{', '.join(REPORT_KINDS)}")
    return frozenset(kinds)


def _priority(request: web.Request) -> int:
    text = request.query.get("priority", "1").lower()
    if text in PRIORITIES:
        return PRIORITIES[text]
    if text in ("0", "1", "2"):
        return int(text)
    raise ApiError(400, f"priority: expected 0, 1, 2 or bulk, normal, expedited; got {text!r}")


def max_payload_bytes(node: Node) -> int:
    agent = node.agent
    return agent.config.max_bundle_bytes if agent is not None else 64 * 1024 * 1024


# --- handlers ----------------------------------------------------------------------------------------------------


async def _status(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE_KEY].status())


async def _neighbours(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE_KEY].neighbours())


async def _bundles(request: web.Request) -> web.Response:
    limit = _int_param(request, "limit", 100, 1, 100_000)
    assert limit is not None
    return web.json_response(request.app[NODE_KEY].bundles(limit))


async def _routes(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE_KEY].routes())


async def _plan(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE_KEY].plan_summary())


async def _load_plan(request: web.Request) -> web.Response:
    """Replace the node's contact plan with the request body; 400 names the line and field of a bad plan."""
    fmt = request.query.get("format") or None
    if fmt is not None and fmt not in FORMATS:
        raise ApiError(400, f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    name = request.query.get("name") or "<api>"
    if request.content_length is not None and request.content_length > MAX_PLAN_BYTES:
        raise ApiError(413, f"a plan of {request.content_length} bytes exceeds the limit of {MAX_PLAN_BYTES}")
    body = await request.content.read(MAX_PLAN_BYTES + 1)
    if len(body) > MAX_PLAN_BYTES:
        raise ApiError(413, f"the plan exceeds the limit of {MAX_PLAN_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the plan must be UTF-8 text") from None
    node = request.app[NODE_KEY]
    node.load_plan(text, fmt, source=name)
    return web.json_response(node.plan_summary())


async def _plan_routes(request: web.Request) -> web.Response:
    size = _int_param(request, "size_bytes", 0, 0, (1 << 63) - 1)
    count = _int_param(request, "count", 5, 1, 100)
    assert size is not None and count is not None
    doc = request.app[NODE_KEY].plan_routes(
        _param(request, "destination"),
        at=request.query.get("at") or None,
        size_bytes=size,
        count=count,
        priority=request.query.get("priority", "standard"),
    )
    return web.json_response(doc)


async def _statistics(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE_KEY].statistics())


async def _endpoints(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE_KEY].status().get("registrations", []))


async def _register(request: web.Request) -> web.Response:
    endpoint = _endpoint(request)
    passive = _bool_param(request, "passive")
    request.app[NODE_KEY].register(endpoint, passive=passive)
    return web.json_response({"endpoint": endpoint, "passive": passive})


async def _unregister(request: web.Request) -> web.Response:
    endpoint = _endpoint(request)
    return web.json_response({"endpoint": endpoint, "removed": request.app[NODE_KEY].unregister(endpoint)})


def _send_options(request: web.Request) -> tuple[str, dict[str, Any]]:
    """The destination and the options of ``Node.send_many`` given by a send request's query."""
    destination = str(parse_eid(_param(request, "destination")))
    lifetime_ms = _int_param(request, "lifetime_ms", 86_400_000, 1, (1 << 63) - 1)
    assert lifetime_ms is not None
    return destination, {
        "source": request.query.get("source") or None,
        "report_to": request.query.get("report_to") or None,
        "lifetime_ms": lifetime_ms,
        "hop_limit": _int_param(request, "hop_limit", None, 1, 255),
        "priority": _priority(request),
        "reports": _reports(request),
        "file_name": request.query.get("file_name") or None,
    }


async def _ws_send(request: web.Request) -> web.WebSocketResponse:
    """Bundles sent over a WebSocket, one binary frame each (see ``dtn.api.ws_send``)."""
    node = request.app[NODE_KEY]
    destination, options = _send_options(request)
    return await serve_send_socket(request, node, destination, options, max_payload_bytes(node),
                                   request.app[SOCKETS_KEY])


async def _send_stream(request: web.Request) -> web.StreamResponse:
    """Bundles sent over one HTTP request, each payload after its length (see ``dtn.api.send_stream``)."""
    node = request.app[NODE_KEY]
    destination, options = _send_options(request)
    return await serve_send_stream(request, node, destination, options, max_payload_bytes(node),
                                   request.app[STREAMS_KEY])


async def _send(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    destination, options = _send_options(request)
    limit = max_payload_bytes(node)
    piece_bytes = node.config.fragment_payload_bytes
    expected = request.content_length
    if piece_bytes and "sizes" not in request.query:
        # One payload; beyond piece_bytes it goes out as fragments made here, read from the body as it comes.
        if expected is not None and expected > piece_bytes:
            return await _send_streamed(node, destination, expected,
                                        request.content.iter_chunked(READ_CHUNK_BYTES), options)
        if expected is None:
            head = await _read_body(request, piece_bytes, spill_dir=node.config.data_dir,
                                    spill_limit=_room_in_store(node))
            if isinstance(head, SpilledBody):
                with head:
                    return await _send_streamed(node, destination, head.size_bytes, head.chunks(), options)
            return await _send_payloads(node, destination, [head], options, batch=False)
        body = await _read_body(request, limit)
        assert not isinstance(body, SpilledBody)
        return await _send_payloads(node, destination, [body], options, batch=False)
    if "sizes" not in request.query:
        # No fragmentation here: beyond what the node holds in memory, one bundle written to a file as it comes.
        in_memory = node.in_memory_bundle_bytes
        if expected is not None and expected > in_memory:
            return await _send_streamed(node, destination, expected,
                                        request.content.iter_chunked(READ_CHUNK_BYTES), options)
        if expected is None:
            body = await _read_body(request, in_memory, spill_dir=node.config.data_dir,
                                    spill_limit=_room_in_store(node), spill_max_bytes=node.config.max_bundle_bytes)
            if isinstance(body, SpilledBody):
                with body:
                    return await _send_streamed(node, destination, body.size_bytes, body.chunks(), options)
            return await _send_payloads(node, destination, [body], options, batch=False)
    if expected is not None and expected > limit:
        raise ApiError(413, f"payload of {expected} bytes exceeds this node's limit of {limit}")
    sizes = _sizes(request, limit)
    body = await _read_body(request, limit if sizes is None else sum(sizes))
    assert not isinstance(body, SpilledBody)
    if sizes is None:
        return await _send_payloads(node, destination, [body], options, batch=False)
    if len(body) != sum(sizes):
        raise ApiError(400, f"sizes add up to {sum(sizes)} bytes but the body has {len(body)}")
    view, offsets = memoryview(body), itertools.accumulate(sizes, initial=0)
    payloads = [view[start : start + size] for start, size in zip(offsets, sizes, strict=False)]
    return await _send_payloads(node, destination, payloads, options, batch=True)


async def _send_payloads(
    node: Node, destination: str, payloads: Sequence[bytes | memoryview], options: dict[str, Any], *, batch: bool
) -> web.Response:
    """One bundle per payload, stored with one commit (shielded: a client that goes away does not interrupt
    it)."""
    try:
        bundle_ids = await asyncio.shield(node.send_many(destination, list(payloads), **options))
    except BatchStopped as exc:
        status = 507 if isinstance(exc.error, StoreFull) else 413 if "exceeds" in str(exc.error) else 400
        return web.json_response({"error": str(exc), "ids": [str(i) for i in exc.stored]}, status=status)
    except ValueError as exc:
        if "exceeds" in str(exc):
            raise ApiError(413, str(exc)) from None
        raise
    size = sum(len(p) for p in payloads)
    if batch:
        return web.json_response({"ids": [str(i) for i in bundle_ids], "destination": destination,
                                  "size_bytes": size}, status=201)
    return web.json_response({"id": str(bundle_ids[0]), "destination": destination, "size_bytes": size},
                             status=201)


async def _send_streamed(
    node: Node, destination: str, total_bytes: int, chunks: AsyncIterable[bytes], options: dict[str, Any]
) -> web.Response:
    """A payload larger than the node holds in memory, stored as the body arrives: as fragments made here, or as
    one bundle written to a file by a node that does not fragment. If the body breaks off, nothing is kept
    (stored fragments are deleted) and nothing is acknowledged."""
    try:
        bundle_id = await node.send_stream(destination, total_bytes, chunks, **options)
    except ValueError as exc:
        raise ApiError(413 if "exceeds" in str(exc) else 400, str(exc)) from None
    except StoreFull as exc:
        raise ApiError(507, str(exc)) from None
    answer: dict[str, Any] = {"id": str(bundle_id), "destination": destination, "size_bytes": total_bytes}
    if node.config.fragment_payload_bytes:
        answer["fragments"] = -(-total_bytes // node.config.fragment_payload_bytes)
    return web.json_response(answer, status=201)


def _sizes(request: web.Request, limit: int) -> list[int] | None:
    """The payload sizes of a batch (``sizes=N,N,...``), or None for one payload."""
    text = request.query.get("sizes")
    if text is None or text == "":
        return None
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ApiError(400, f"sizes: expected comma-separated byte counts, got {text[:80]!r}") from None
    if not 1 <= len(sizes) <= MAX_BATCH:
        raise ApiError(400, f"sizes: a batch holds 1 to {MAX_BATCH} payloads, got {len(sizes)}")
    if min(sizes) < 0:
        raise ApiError(400, "sizes: a payload size cannot be negative")
    if max(sizes) > limit:
        raise ApiError(413, f"payload of {max(sizes)} bytes exceeds this node's limit of {limit}")
    if sum(sizes) > MAX_BATCH_BYTES:
        raise ApiError(413, f"a batch of {sum(sizes)} bytes exceeds the limit of {MAX_BATCH_BYTES}")
    return sizes


class SpilledBody:
    """A request body without a Content-Length that outgrew memory: kept in an unnamed temporary file."""

    def __init__(self, file: BinaryIO, size_bytes: int) -> None:
        self.file = file
        self.size_bytes = size_bytes

    def __enter__(self) -> SpilledBody:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.file.close()

    async def chunks(self) -> AsyncIterator[bytes]:
        self.file.seek(0)
        while chunk := self.file.read(READ_CHUNK_BYTES):
            yield chunk


def _room_in_store(node: Node) -> int | None:
    """Bytes the store can still take under its quota (None: no quota)."""
    store = node.store
    if store is None or store.quota_bytes is None:
        return None
    return max(0, store.quota_bytes - store.bytes_used)


async def _read_body(
    request: web.Request,
    limit: int,
    *,
    spill_dir: Path | None = None,
    spill_limit: int | None = None,
    spill_max_bytes: int | None = None,
) -> bytes | memoryview | SpilledBody:
    """The request body, read in chunks: into one buffer of the announced length (no second copy), else
    joined; ``ApiError(413)`` beyond ``limit``, unless ``spill_dir`` is given: a body beyond ``limit`` then
    goes on into a temporary file there (unnamed: it disappears when closed or when the process dies), up to
    ``spill_limit`` bytes (``ApiError(507)`` beyond: the store could not take it anyway) and ``spill_max_bytes``
    (``ApiError(413)`` beyond: larger than the node takes)."""
    expected = request.content_length
    if expected is not None and PRESIZED_BODY_MIN_BYTES < expected <= limit:
        buffer = bytearray(expected)
        size = 0
        # the pieces as the HTTP parser fed them: read(n) would first join the ones waiting (a second copy)
        async for chunk, _ in request.content.iter_chunks():
            if not chunk:
                continue  # the end of an HTTP chunk (chunked encoding with a Content-Length is not expected)
            if size + len(chunk) > expected:
                raise ApiError(400, f"the body is longer than its Content-Length of {expected} bytes")
            buffer[size : size + len(chunk)] = chunk
            size += len(chunk)
        if size != expected:
            raise ApiError(400, f"the body ended after {size} of its {expected} bytes")
        return memoryview(buffer)
    chunks: list[bytes] = []
    size = 0
    spilled: BinaryIO | None = None
    try:
        async for chunk in request.content.iter_chunked(READ_CHUNK_BYTES):
            size += len(chunk)
            if spill_max_bytes is not None and size > spill_max_bytes:
                raise ApiError(413, f"payload exceeds this node's limit of {spill_max_bytes} bytes")
            if spill_limit is not None and size > spill_limit:
                raise ApiError(507, f"the payload exceeds the {spill_limit} bytes the store can still take")
            if spilled is not None:
                spilled.write(chunk)
                continue
            chunks.append(chunk)
            if size > limit:
                if spill_dir is None:
                    raise ApiError(413, f"payload exceeds this node's limit of {limit} bytes")
                spill_dir.mkdir(parents=True, exist_ok=True)
                spilled = tempfile.TemporaryFile(dir=spill_dir)
                for kept in chunks:
                    spilled.write(kept)
                chunks.clear()
    except BaseException:
        if spilled is not None:
            spilled.close()
        raise
    if spilled is not None:
        spilled.flush()
        return SpilledBody(spilled, size)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _deliveries(request: web.Request) -> web.StreamResponse:
    endpoint = _endpoint(request)
    wait_s = _wait_param(request)
    delivery = await request.app[NODE_KEY].next_delivery(endpoint, wait_s)
    if delivery is None:
        return web.Response(status=204)
    headers = {
        H_BUNDLE_ID: str(delivery.bundle_id),
        H_ENDPOINT: delivery.endpoint,
        H_SOURCE: delivery.source,
        H_CREATION_MS: str(delivery.creation_ms),
    }
    if delivery.file_name is not None:
        headers[H_FILE_NAME] = encode_file_name(delivery.file_name)
    payload = delivery.payload
    if len(payload) <= READ_CHUNK_BYTES and not isinstance(payload, StoredPayload):
        return web.Response(body=payload, headers=headers, content_type="application/octet-stream")
    # A large payload goes out in pieces, each once the socket took the one before: the transport never holds
    # a second copy of it; a payload left in the store is read piece by piece.
    response = web.StreamResponse(headers=headers)
    response.content_type = "application/octet-stream"
    response.content_length = len(payload)
    await response.prepare(request)
    for piece in payload_pieces(payload):
        await response.write(piece)
    await response.write_eof()
    return response


def payload_pieces(payload: bytes | memoryview | StoredPayload) -> Iterator[bytes | memoryview]:
    """A delivery's payload in pieces of at most ``READ_CHUNK_BYTES``."""
    if isinstance(payload, StoredPayload):
        yield from payload.chunks(READ_CHUNK_BYTES)
        return
    view = memoryview(payload)
    for start in range(0, len(view), READ_CHUNK_BYTES):
        yield view[start : start + READ_CHUNK_BYTES]


async def _ack(request: web.Request) -> web.Response:
    endpoint = _endpoint(request)
    bundle_id = _bundle_id(_param(request, "id"))
    done = await asyncio.shield(request.app[NODE_KEY].acknowledge(endpoint, bundle_id))
    if not done:
        raise ApiError(404, f"no unacknowledged delivery of {bundle_id} to {endpoint}")
    return web.json_response({"id": str(bundle_id), "endpoint": endpoint, "acknowledged": True})


async def _report(request: web.Request) -> web.Response:
    bundle_id = _bundle_id(_param(request, "id"))
    kind = _param(request, "kind").lower()
    if kind not in REPORT_KINDS:
        raise ApiError(400, f"kind: {kind!r} is not one of {', '.join(REPORT_KINDS)}")
    report = await request.app[NODE_KEY].wait_report(bundle_id, kind, _wait_param(request))
    if report is None:
        return web.Response(status=204)
    return web.json_response(report_to_json(report))


def _delivery_doc(delivery: Delivery) -> dict[str, Any]:
    return {
        "type": "delivery",
        "id": str(delivery.bundle_id),
        "endpoint": delivery.endpoint,
        "source": delivery.source,
        "creation_ms": delivery.creation_ms,
        "file_name": delivery.file_name,
        "size_bytes": len(delivery.payload),
    }


async def _websocket(request: web.Request) -> web.WebSocketResponse:
    """Deliveries pushed over a WebSocket.

    For each delivery the server sends a text frame ``{"type": "delivery", "id", "endpoint", "source",
    "creation_ms", "file_name", "size_bytes"}`` followed by the payload: one binary frame, or for a large payload
    kept in the store several, ``size_bytes`` together (a reader joins frames until it has them all). The client
    acknowledges with ``{"type": "ack", "id": ID}``; the server answers ``{"type": "ack", "id", "ok"}`` once the
    release is durable (the acks that arrive together share one commit). Several deliveries can be acknowledged
    in one frame, ``{"type": "ack", "ids": [ID, ...]}``, answered by one frame ``{"type": "ack", "ids": [...],
    "ok": [...]}``. At most ``window`` deliveries (default 1) are outstanding; unacknowledged ones are offered
    again later (to this or another reader) when the connection closes.

    With ``group=1``, deliveries that are ready together (up to the free window, payloads totalling up to
    ``MAX_GROUP_BYTES``) go out as one text frame ``{"type": "deliveries", "items": [DELIVERY, ...]}`` (each item
    as the ``delivery`` frame above) and one binary frame holding their payloads one after another, each
    ``size_bytes`` long; a single delivery, and a payload kept in the store, still go out as above."""
    node = request.app[NODE_KEY]
    endpoint = _endpoint(request)
    window = _int_param(request, "window", 1, 1, MAX_WINDOW)
    assert window is not None
    group = _bool_param(request, "group")
    node.register(endpoint)
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    request.app[SOCKETS_KEY].add(ws)
    slots = asyncio.Semaphore(window)
    outstanding: set[BundleId] = set()

    async def take() -> Delivery:
        while True:  # skip our own unacknowledged delivery when its lease ends and it is offered again
            delivery = await node.next_delivery(endpoint, None)
            if delivery is not None and delivery.bundle_id not in outstanding:
                return delivery

    async def send_one(delivery: Delivery) -> None:
        await ws.send_str(json.dumps(_delivery_doc(delivery)))
        if isinstance(delivery.payload, StoredPayload):  # several frames, each read when it is sent
            for piece in payload_pieces(delivery.payload):
                await ws.send_bytes(piece)  # type: ignore[arg-type]  # aiohttp takes any bytes-like
        else:
            await ws.send_bytes(delivery.payload)  # type: ignore[arg-type]

    async def push() -> None:
        held: Delivery | None = None  # taken for a group it did not fit: the next to go
        while True:
            await slots.acquire()
            first = held or await take()
            held = None
            outstanding.add(first.bundle_id)
            items = [first]
            size = len(first.payload)
            grouping = group and not isinstance(first.payload, StoredPayload)
            while grouping and size < MAX_GROUP_BYTES and len(items) < MAX_WINDOW and not slots.locked():
                more = await node.next_delivery(endpoint, 0)  # only what is ready now
                if more is None or more.bundle_id in outstanding:
                    break
                if isinstance(more.payload, StoredPayload):
                    held = more  # leased to this socket: given back with the others if it closes first
                    outstanding.add(more.bundle_id)
                    break
                await slots.acquire()  # free: only this task takes slots
                outstanding.add(more.bundle_id)
                items.append(more)
                size += len(more.payload)
            if len(items) == 1:
                await send_one(first)
                continue
            await ws.send_str(json.dumps({"type": "deliveries", "items": [_delivery_doc(d) for d in items]}))
            await ws.send_bytes(b"".join(d.payload for d in items))  # type: ignore[misc]  # bytes-like payloads

    acks: list[tuple[list[BundleId], bool]] = []  # (ids, answered in one frame) per ack frame
    acks_ready = asyncio.Event()
    reading = True

    async def confirm() -> None:
        """Acknowledge every ack that is ready in one commit, then confirm each (durable by then)."""
        while reading or acks:
            if not acks:
                acks_ready.clear()
                await acks_ready.wait()
                continue
            frames = acks[:]
            del acks[:]
            batch = [bundle_id for ids, _ in frames for bundle_id in ids]
            answers = await asyncio.shield(node.release_deliveries(endpoint, batch))
            await asyncio.shield(node.committed())
            replies = iter(answers)
            try:
                for ids, grouped in frames:
                    oks = [next(replies) for _ in ids]
                    if ws.closed:
                        continue
                    if grouped:
                        await ws.send_str(json.dumps({"type": "ack", "ids": [str(i) for i in ids], "ok": oks}))
                    else:
                        await ws.send_str(json.dumps({"type": "ack", "id": str(ids[0]), "ok": oks[0]}))
            except (ConnectionError, RuntimeError):
                pass  # the application went away; its acknowledgements stand

    pusher = asyncio.create_task(push(), name=f"dtn-api-ws {endpoint}")
    confirmer = asyncio.create_task(confirm(), name=f"dtn-api-ws-ack {endpoint}")
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                doc = json.loads(msg.data)
                if doc.get("type") != "ack":
                    raise ValueError(f"unknown message type {doc.get('type')!r}")
                if "ids" in doc:
                    if not isinstance(doc["ids"], list) or not 1 <= len(doc["ids"]) <= MAX_BATCH:
                        raise ValueError(f"ids: expected a list of 1 to {MAX_BATCH} bundle IDs")
                    ack = ([BundleId.parse(str(i)) for i in doc["ids"]], True)
                else:
                    ack = ([BundleId.parse(str(doc["id"]))], False)
            except (ValueError, KeyError, AttributeError) as exc:
                await ws.send_str(json.dumps({"type": "error", "error": f"bad message: {exc}"}))
                continue
            for bundle_id in ack[0]:
                if bundle_id in outstanding:  # the application has it: the next delivery may go out now
                    outstanding.discard(bundle_id)
                    slots.release()
            acks.append(ack)
            acks_ready.set()
    finally:
        pusher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pusher
        reading = False  # the acks received are still acknowledged (and committed) before the handler ends
        acks_ready.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(confirmer)
        node.return_deliveries(endpoint, list(outstanding))  # unacknowledged: to the next reader at once
    return ws


#: Every route the API serves: (method, path, handler). ``dtn/api/openapi.yaml`` documents each one.
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", f"{PREFIX}/status", _status),
    ("GET", f"{PREFIX}/neighbours", _neighbours),
    ("GET", f"{PREFIX}/bundles", _bundles),
    ("POST", f"{PREFIX}/bundles", _send),
    ("GET", f"{PREFIX}/routes", _routes),
    ("GET", f"{PREFIX}/plan", _plan),
    ("POST", f"{PREFIX}/plan", _load_plan),
    ("GET", f"{PREFIX}/plan/routes", _plan_routes),
    ("GET", f"{PREFIX}/statistics", _statistics),
    ("GET", f"{PREFIX}/endpoints", _endpoints),
    ("POST", f"{PREFIX}/endpoints", _register),
    ("DELETE", f"{PREFIX}/endpoints", _unregister),
    ("GET", f"{PREFIX}/deliveries", _deliveries),
    ("POST", f"{PREFIX}/deliveries/ack", _ack),
    ("GET", f"{PREFIX}/reports", _report),
    ("GET", f"{PREFIX}/ws", _websocket),
    ("GET", f"{PREFIX}/ws/send", _ws_send),
    ("POST", f"{PREFIX}/bundles/stream", _send_stream),
)


def build_app(node: Node, *, token: str = "") -> web.Application:
    """The aiohttp application serving ``node``; ``token`` (if any) is required as a bearer token."""
    app = web.Application(middlewares=[_guard])
    app[NODE_KEY] = node
    app[TOKEN_KEY] = token
    app[SOCKETS_KEY] = weakref.WeakSet()
    app[STREAMS_KEY] = set()
    app.on_shutdown.append(_close_sockets)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    return app


async def _close_sockets(app: web.Application) -> None:
    stop_streams(app[STREAMS_KEY])
    sockets: weakref.WeakSet[web.WebSocketResponse] = app[SOCKETS_KEY]
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the node is stopping")


class ApiServer:
    """Serves a node's API on ``bind`` (``HOST:PORT``, port 0 picks a free one, or ``unix:PATH``)."""

    def __init__(self, node: Node, bind: str, *, token: str = "") -> None:
        self.node = node
        self.bind = bind
        self.token = token
        self.address = bind
        self._runner: web.AppRunner | None = None
        self._unix_path: Path | None = None

    async def start(self) -> str:
        """Start listening; returns the address bound (the port filled in)."""
        runner = web.AppRunner(build_app(self.node, token=self.token), handler_cancellation=True,
                               access_log=None)
        await runner.setup()
        self._runner = runner
        try:
            if self.bind.startswith("unix:"):
                path = Path(self.bind[5:])
                _remove_stale_socket(path)
                site: web.BaseSite = web.UnixSite(runner, str(path))
                await site.start()
                os.chmod(path, 0o660)
                self._unix_path = path
                self.address = self.bind
            else:
                host, port = split_bind(self.bind)
                site = web.TCPSite(runner, host, port)
                await site.start()
                bound = runner.addresses[0]
                shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
                self.address = f"{shown}:{bound[1]}"
        except BaseException:
            await runner.cleanup()
            self._runner = None
            raise
        log.info("API listening on %s", self.address)
        return self.address

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._unix_path is not None:
            with contextlib.suppress(OSError):
                self._unix_path.unlink()
            self._unix_path = None


def _remove_stale_socket(path: Path) -> None:
    """A socket file left by a node that died is removed; one that a live process answers on is left alone."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
    else:
        raise OSError(f"{path}: another process is serving on this socket")
    finally:
        probe.close()
