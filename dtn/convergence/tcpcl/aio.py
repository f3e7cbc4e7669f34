"""The asyncio adapter for TCPCLv4: sockets, TLS and timers around the sans-I/O ``TcpclSession``.

``TcpclConvergenceLayer`` implements ``dtn.convergence.base.ConvergenceLayer`` (scheme ``tcpcl``). Each TCP
connection is one ``TcpclLink`` (an ``asyncio.BufferedProtocol`` and a ``Link``). Backpressure both ways:
segments are produced only while the transport's write buffer is below its high-water mark, and the socket is
not read while too many received bundles wait for the node (``BundleSink.bundle_received``) to commit them.

Hot path: the socket receives straight into the session parser's reused buffer, a bundle is copied once (into
the ``bytes`` the node gets), large payloads are written from the sender's bundle without joining, and the
writes of one turn of the event loop are coalesced (the first goes out at once).

Large bundles: when the sink is a ``SpoolingSink`` (it has ``open_spool``), a transfer above the session's
``spool_above_bytes`` is written segment by segment to the sink's ``BundleSpool`` and handed over with
``spooled_bundle_received``; ``TcpclLink.send_stream`` sends a bundle given as chunks (read from a file).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from dtn.convergence.base import BundleSink, BundleSpool, LinkLimits, Outcome, RefuseReason, SendResult
from dtn.convergence.tcpcl.messages import DEFAULT_PORT, SessTermReason
from dtn.convergence.tcpcl.session import (
    Event,
    MessageRejected,
    Role,
    SessionConfig,
    SessionEnded,
    SessionUp,
    StartTls,
    TcpclSession,
    TransferAborted,
    TransferAcked,
    TransferData,
    TransferFailed,
    TransferReceived,
    TransferRefused,
    TransferStreamed,
    TransferTooLarge,
)
from dtn.convergence.tcpcl.tls import node_ids_from_certificate
from dtn.errors import ConfigError, LocalProtocolError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TcpclConfig:
    """Adapter settings. TLS is offered (CAN_TLS) when both contexts are given; see ``dtn.convergence.tcpcl.tls``."""

    session: SessionConfig = field(default_factory=SessionConfig)
    ssl_server: ssl.SSLContext | None = None
    ssl_client: ssl.SSLContext | None = None
    connect_timeout_s: float = 30.0
    close_timeout_s: float = 10.0
    # 0: the session's next segments are written only once asyncio's buffer is empty, so a large segment goes
    # from the bundle to the socket (asyncio copies what the socket does not take at once into its buffer)
    write_high_water_bytes: int = 0
    tls_handshake_timeout_s: float = 30.0
    linger_s: float = 2.0  # after our FIN, how long we drain the peer's bytes before closing anyway


def parse_address(address: str) -> tuple[str, int]:
    """``tcpcl://host:port`` (port defaults to 4556) → (host, port)."""
    parts = urlsplit(address if "://" in address else f"tcpcl://{address}")
    if parts.scheme != "tcpcl" or not parts.hostname:
        raise ConfigError(f"not a tcpcl address: {address!r} (expected tcpcl://host:port)")
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad port in {address!r}") from exc
    return parts.hostname, port if port is not None else DEFAULT_PORT


class TcpclLink(asyncio.BufferedProtocol):
    """One TCP connection carrying one TCPCLv4 session.

    Received bytes land directly in the session parser's buffer (``get_buffer``/``buffer_updated``); a
    bundle's bytes are copied once, into the ``bytes`` handed to the node. Large segment payloads are written
    from the caller's bundle without joining them to their headers."""

    def __init__(self, cl: TcpclConvergenceLayer, role: Role) -> None:
        self._cl = cl
        self._loop = asyncio.get_running_loop()
        cfg = cl.config
        can_tls = cfg.ssl_client is not None and cfg.ssl_server is not None
        scfg = cfg.session
        if can_tls != scfg.can_tls:
            scfg = replace(scfg, can_tls=can_tls)
        if scfg.spool_above_bytes is not None and not hasattr(cl.sink, "open_spool"):
            scfg = replace(scfg, spool_above_bytes=None)  # the sink takes whole bundles only
        self.session = TcpclSession(role, scfg, cl.node_id)
        self._transport: asyncio.Transport | None = None
        self._peer = "?"
        self._up: asyncio.Future[None] = self._loop.create_future()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._sends: dict[int, asyncio.Future[SendResult]] = {}
        self._slot = asyncio.Event()
        self._slot.set()
        self._writing_paused = False
        self._reading_paused = False
        self._pump_scheduled = False
        self._tls_busy = False
        self._early: list[bytes] = []
        self._scratch: memoryview | None = None  # where bytes go that the session must not see
        self._lingering = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._announced = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._deliveries: dict[int, asyncio.Task[None]] = {}  # received bundles the node is deciding on
        self._spools: dict[int, BundleSpool] = {}  # large incoming transfers being written (spool_above_bytes)
        self.end_reason: SessionEnded | None = None

    # ------------------------------------------------------------------------------------------ Link

    @property
    def link_id(self) -> str:
        return f"tcpcl://{self._peer}"

    @property
    def peer_node_id(self) -> str | None:
        params = self.session.parameters
        return params.peer_node_id if params else None

    @property
    def limits(self) -> LinkLimits:
        params = self.session.parameters
        return LinkLimits(max_bundle_bytes=params.transfer_mtu if params else None)

    @property
    def is_up(self) -> bool:
        return self.session.established

    @property
    def tls(self) -> bool:
        return self.session.tls

    async def send(self, data: bytes | memoryview) -> SendResult:
        """Send one bundle; returns once the peer acknowledged the whole of it, refused it, or the link broke."""
        return await self._transfer(lambda now: self.session.start_transfer(data, now))

    async def send_stream(self, length: int, chunks: Iterable[bytes | bytearray | memoryview]) -> SendResult:
        """Send one bundle of ``length`` bytes given as ``chunks`` (read as segments go out: memory holds about
        the transport's high-water mark of it); as ``send`` otherwise."""
        return await self._transfer(lambda now: self.session.start_transfer_stream(length, chunks, now))

    async def _transfer(self, start: Callable[[float], int]) -> SendResult:
        """Wait for room for one more transfer, ``start`` it (returns its transfer ID) and wait for its outcome."""
        while not self.session.can_start_transfer:
            if not self.session.established:
                return SendResult(Outcome.FAILED, detail=f"session {self.session.state.value}")
            self._slot.clear()
            await self._slot.wait()
        try:
            tid = start(self._loop.time())
        except TransferTooLarge as exc:
            return SendResult(Outcome.REFUSED, RefuseReason.NOT_ACCEPTABLE, str(exc))
        except (LocalProtocolError, ValueError) as exc:
            return SendResult(Outcome.FAILED, detail=str(exc))
        future: asyncio.Future[SendResult] = self._loop.create_future()
        self._sends[tid] = future
        self._pump_soon()
        return await future

    async def close(self) -> None:
        """SESS_TERM, wait (bounded) for the reply and for transfers under way, then FIN."""
        if not self._closed.done():
            self.session.terminate(SessTermReason.UNKNOWN, self._loop.time())
            self._pump()
            try:
                async with asyncio.timeout(self._cl.config.close_timeout_s):
                    await asyncio.shield(self._closed)
            except TimeoutError:
                if self._transport is not None:
                    self._transport.close()
        for task in [*self._tasks, *self._deliveries.values()]:
            task.cancel()

    async def wait_up(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            await asyncio.shield(self._up)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    # ------------------------------------------------------------------------------------------ Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self._transport is not None:
            return  # start_tls hands us the TLS transport again; nothing to start
        self._transport = transport
        transport.set_write_buffer_limits(high=self._cl.config.write_high_water_bytes)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._peer = f"{peer[0]}:{peer[1]}"
        self._cl._links.add(self)
        self.session.start(self._loop.time())
        self._pump()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._lingering or self._tls_busy:
            if self._scratch is None:
                self._scratch = memoryview(bytearray(64 * 1024))
            return self._scratch
        return self.session.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        if self._lingering:
            return  # the session is over; discard until the peer's FIN
        if self._tls_busy:  # decrypted bytes can arrive before start_tls() returns to us
            assert self._scratch is not None
            self._early.append(bytes(self._scratch[:nbytes]))
            return
        self.session.buffer_updated(nbytes, self._loop.time())
        self._pump()

    def data_received(self, data: bytes) -> None:
        """Bytes from the peer by copy (``asyncio.Protocol`` style); the loop uses ``get_buffer`` instead."""
        if self._lingering:
            return
        if self._tls_busy:
            self._early.append(bytes(data))
            return
        self.session.receive_data(data, self._loop.time())
        self._pump()

    def eof_received(self) -> bool | None:
        if self._lingering:
            return None  # the transport closes itself
        self.session.receive_data(b"", self._loop.time())
        self._pump()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._tls_busy:
            return  # the plaintext transport is being wrapped; the TLS transport carries on
        self.session.connection_lost(self._loop.time(), str(exc) if exc else "connection closed")
        self._pump()
        self._finish()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._pump()

    # ------------------------------------------------------------------------------------------ internals

    def _pump(self) -> None:
        """Write what the session has (while the transport takes it), hand out events, re-arm the timer."""
        session = self.session
        transport = self._transport
        while True:
            if transport is not None and not self._tls_busy and not transport.is_closing():
                while not self._writing_paused:
                    parts = session.data_to_send_parts()
                    if not parts:
                        break
                    for part in parts:
                        transport.write(part)
            event = session.next_event()
            if event is None:
                break
            self._on_event(event)
        if transport is not None and not self._tls_busy:
            window = session.receive_window_open or session.closed
            if window and self._reading_paused:
                self._reading_paused = False
                transport.resume_reading()
            elif not window and not self._reading_paused:
                self._reading_paused = True
                transport.pause_reading()
        if session.closed:
            if transport is not None and not self._tls_busy and not transport.is_closing():
                self._shut_down(transport)
            self._cancel_timer()
        else:
            self._arm_timer()
        if session.can_start_transfer or not session.established:
            self._slot.set()

    def _pump_soon(self) -> None:
        """``_pump`` now if nothing was pumped this way yet in this turn of the loop (no added latency), and
        once more after the callbacks ready now have run: the segments of the other bundles sent (and the acks
        of the other bundles the node decided) in the same turn go out together, in one write."""
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_soon(self._scheduled_pump)
            self._pump()

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        self._pump()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, TransferReceived):
            # one task per bundle: the node commits bundles concurrently (group commit)
            self._deliveries[event.transfer_id] = self._loop.create_task(self._deliver(event))
        elif isinstance(event, TransferData):
            self._spool_data(event)
        elif isinstance(event, TransferStreamed):
            spool = self._spools.pop(event.transfer_id, None)
            if spool is None:  # refused while it arrived; the session already sent XFER_REFUSE
                self.session.finish_transfer(event.transfer_id, RefuseReason.NOT_ACCEPTABLE, self._loop.time())
            else:
                task = self._loop.create_task(self._deliver_spooled(event.transfer_id, spool, event.length))
                self._deliveries[event.transfer_id] = task
        elif isinstance(event, TransferAborted):
            spool = self._spools.pop(event.transfer_id, None)
            if spool is not None:
                spool.discard()
        elif isinstance(event, TransferAcked):
            self._resolve(event.transfer_id, SendResult(Outcome.ACKNOWLEDGED))
        elif isinstance(event, TransferRefused):
            self._resolve(event.transfer_id, SendResult(Outcome.REFUSED, event.reason))
        elif isinstance(event, TransferFailed):
            self._resolve(event.transfer_id, SendResult(Outcome.FAILED, detail=event.detail))
        elif isinstance(event, SessionUp):
            if not self._up.done():
                self._up.set_result(None)
            self._announced = True
            self._cl.sink.link_up(self)
        elif isinstance(event, StartTls):
            self._start_tls(event.server_side)
        elif isinstance(event, MessageRejected):
            log.info("%s: peer rejected message type %#x (reason %d)", self.link_id, event.rejected_type,
                     event.reason)
        elif isinstance(event, SessionEnded):
            self.end_reason = event
            if event.detail:
                log.info("%s: session ended: %s", self.link_id, event.detail)

    def _resolve(self, tid: int, result: SendResult) -> None:
        future = self._sends.pop(tid, None)
        if future is not None and not future.done():
            future.set_result(result)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, event: TransferReceived) -> None:
        try:
            reason = await self._cl.sink.bundle_received(self, event.data)
        except Exception:  # the node failed to take it: the sender must not count it delivered
            log.exception("%s: bundle_received failed", self.link_id)
            reason = RefuseReason.NO_RESOURCES
        finally:
            self._deliveries.pop(event.transfer_id, None)
        self.session.finish_transfer(event.transfer_id, reason, self._loop.time())
        self._pump_soon()

    def _spool_data(self, event: TransferData) -> None:
        """Write a piece of a large incoming transfer to its spool (opened by the sink at the first piece)."""
        tid = event.transfer_id
        spool = self._spools.get(tid)
        reason: RefuseReason | None = None
        if spool is None:
            if event.offset != 0:
                return  # the rest of a transfer refused while it arrived
            opened = self._cl.sink.open_spool(self)  # type: ignore[attr-defined]
            if isinstance(opened, RefuseReason):
                reason = opened
            else:
                spool = self._spools[tid] = opened
        if spool is not None:
            try:
                reason = spool.write(event.data)
            except Exception:
                log.exception("%s: writing a received bundle failed", self.link_id)
                reason = RefuseReason.NO_RESOURCES
            if reason is not None:
                del self._spools[tid]
                spool.discard()
        if reason is not None:
            self.session.refuse_transfer(tid, reason, self._loop.time())

    async def _deliver_spooled(self, tid: int, spool: BundleSpool, length: int) -> None:
        try:
            reason = await self._cl.sink.spooled_bundle_received(self, spool, length)  # type: ignore[attr-defined]
        except Exception:
            log.exception("%s: spooled_bundle_received failed", self.link_id)
            spool.discard()
            reason = RefuseReason.NO_RESOURCES
        finally:
            self._deliveries.pop(tid, None)
        self.session.finish_transfer(tid, reason, self._loop.time())
        self._pump_soon()

    def _start_tls(self, server_side: bool) -> None:
        cfg = self._cl.config
        context = cfg.ssl_server if server_side else cfg.ssl_client
        assert context is not None and self._transport is not None
        self._transport.pause_reading()  # the next bytes are TLS records: not for the plaintext session
        self._tls_busy = True
        self._spawn(self._run_tls(context, server_side))

    async def _run_tls(self, context: ssl.SSLContext, server_side: bool) -> None:
        transport = self._transport
        assert transport is not None
        try:
            tls_transport = await self._loop.start_tls(
                transport, self, context, server_side=server_side,
                ssl_handshake_timeout=self._cl.config.tls_handshake_timeout_s)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            log.info("%s: TLS handshake failed: %s", self.link_id, exc)
            self._tls_busy = False
            transport.close()
            self.session.connection_lost(self._loop.time(), f"TLS handshake failed: {exc}")
            self._pump()
            self._finish()
            return
        assert tls_transport is not None
        self._tls_busy = False
        self._transport = tls_transport
        ssl_object = tls_transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        ids = node_ids_from_certificate(der) if der else None
        if self.session.closed:
            tls_transport.close()
            return
        self.session.tls_started(self._loop.time(), ids)
        early, self._early = self._early, []
        for data in early:
            self.session.receive_data(data, self._loop.time())
        self._pump()

    def _shut_down(self, transport: asyncio.Transport) -> None:
        """FIN, never RST: half-close, then read and discard (bounded in time) until the peer closes too.

        Closing a socket with unread bytes makes the kernel send RST, which may destroy our last messages
        (SESS_TERM) before the peer reads them."""
        if self._lingering:
            return
        if not transport.can_write_eof():  # TLS: close() sends close_notify
            transport.close()
            return
        self._lingering = True
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._loop.call_later(self._cl.config.linger_s, transport.close)

    def _arm_timer(self) -> None:
        deadline = self.session.next_deadline()
        if deadline is None:
            self._cancel_timer()
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= deadline:
            return  # an earlier wake-up is already set; it re-arms for the later deadline
        self._cancel_timer()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self._loop.time()
        deadline = self.session.next_deadline()
        if deadline is not None and deadline <= now:
            self.session.handle_timer(now)
        self._pump()

    def _finish(self) -> None:
        self._cancel_timer()
        for spool in self._spools.values():
            spool.discard()
        self._spools.clear()
        for tid in list(self._sends):
            self._resolve(tid, SendResult(Outcome.FAILED, detail="connection closed"))
        if not self._up.done():
            self._up.set_exception(ConnectionError(
                f"TCPCL session with {self._peer} failed: "
                f"{self.end_reason.detail if self.end_reason else 'connection closed'}"))
            self._up.exception()  # mark retrieved
        if not self._closed.done():
            self._closed.set_result(None)
        self._slot.set()
        self._cl._links.discard(self)
        if self._announced:
            self._announced = False
            reason = self.end_reason
            text = "connection closed"
            if reason is not None and reason.reason is not None:
                text = f"{reason.reason.name.lower()}{' by peer' if reason.by_peer else ''}"
            elif reason is not None and reason.detail:
                text = reason.detail
            self._cl.sink.link_down(self, text)


class TcpclConvergenceLayer:
    """TCPCLv4 for one node: listens, connects, and hands received bundles to the sink."""

    scheme = "tcpcl"

    def __init__(self, node_id: str, sink: BundleSink, config: TcpclConfig | None = None) -> None:
        self.node_id = node_id
        self.sink = sink
        self.config = config or TcpclConfig()
        self._servers: list[asyncio.Server] = []
        self._links: set[TcpclLink] = set()

    @property
    def links(self) -> frozenset[TcpclLink]:
        return frozenset(self._links)

    async def listen(self, address: str) -> str:
        host, port = parse_address(address)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: TcpclLink(self, Role.PASSIVE), host, port)
        self._servers.append(server)
        sock = server.sockets[0].getsockname()
        bound_host = f"[{sock[0]}]" if ":" in sock[0] else sock[0]
        return f"tcpcl://{bound_host}:{sock[1]}"

    async def connect(self, address: str, *, peer_node_id: str | None = None) -> TcpclLink:
        host, port = parse_address(address)
        loop = asyncio.get_running_loop()
        timeout = self.config.connect_timeout_s
        async with asyncio.timeout(timeout):  # not wait_for: in 3.11 it can swallow a cancellation
            _, link = await loop.create_connection(lambda: TcpclLink(self, Role.ACTIVE), host, port)
        try:
            await link.wait_up(timeout)
        except TimeoutError:
            await link.close()
            raise ConnectionError(f"TCPCL session with {address} not established in {timeout} s") from None
        if peer_node_id is not None and link.peer_node_id != peer_node_id:
            log.info("%s announced node ID %s, expected %s", address, link.peer_node_id, peer_node_id)
        return link

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        await asyncio.gather(*(link.close() for link in list(self._links)), return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
