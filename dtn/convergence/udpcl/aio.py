"""The UDP convergence layer on asyncio-dgram: one encoded bundle per datagram, paced, no acknowledgement.

What goes on the wire is exactly what ION (udpclo/udpcli), HDTN (UdpInduct/UdpOutduct) and dtn7-rs exchange:
the UDP payload is one whole BPv7 bundle, to port 4556 by default. Nothing else is ever sent (no keepalive,
padding or extension map). Received datagrams are classified by :mod:`dtn.convergence.udpcl.framing`; bundles
go through a bounded queue to ``BundleSink.bundle_received``, everything else is counted and dropped.

A UDP "link" is a peer address. ``connect()`` opens a connected socket to the peer (a stable source port per
peer, as draft-ietf-dtn-udpcl recommends) and reports ``link_up``; ``close()`` reports ``link_down``. A
listener reports what it receives with a receive-side link for the sender's address (no link events: UDP has
no session, and the sender's node ID is unknown). ``send()`` returns ACKNOWLEDGED once the datagram is handed
to the socket; a bundle that does not fit in one datagram FAILS with reason NOT_ACCEPTABLE and a detail that
says to fragment it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import asyncio_dgram
from asyncio_dgram.aio import DatagramClient, DatagramServer, DatagramStream, TransportClosed

from dtn.convergence.base import (
    BundleSink,
    ConvergenceLayer,
    LinkLimits,
    Outcome,
    RefuseReason,
    SendResult,
)
from dtn.convergence.udpcl.framing import (
    MAX_RECEIVE_DATAGRAM,
    MAX_UDP_PAYLOAD_IPV4,
    MAX_UDP_PAYLOAD_IPV6,
    DatagramKind,
    classify_datagram,
    format_udp_address,
    parse_udp_address,
    send_refusal,
)
from dtn.convergence.udpcl.pacing import TokenBucket
from dtn.errors import ConfigError

log = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(slots=True)
class UdpStats:
    """Counters of one UDP CL (all its sockets). Read them; only the CL writes them."""

    datagrams_received: int = 0
    bytes_received: int = 0
    bundles_received: int = 0  # datagrams classified as a bundle
    keepalives_received: int = 0
    ignored: int = 0  # padding, extension maps, BPv6, DTLS: recognised and dropped
    malformed: int = 0  # empty, unknown first octet, truncated, trailing bytes, too large
    dropped_queue_full: int = 0  # bundles dropped because the receive queue was full
    bundles_accepted: int = 0  # the sink took it
    refused_by_sink: int = 0  # the sink refused it (nothing goes back on UDP)
    sink_errors: int = 0  # the sink raised
    receive_errors: int = 0  # errors reported by a socket (e.g. ICMP port unreachable)
    datagrams_sent: int = 0
    bytes_sent: int = 0
    send_refused: int = 0  # not sent: too large for one datagram, or not a bundle
    send_failed: int = 0  # not sent: socket error or link closed

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _is_power_of_two(n: int) -> bool:
    return n & (n - 1) == 0


class UdpLink:
    """A peer address. Outbound links own a connected socket; receive-side links send from the listener."""

    def __init__(
        self,
        cl: UdpConvergenceLayer,
        link_id: str,
        peer: Address,
        stream: DatagramClient | DatagramServer,
        *,
        connected: bool,
        peer_node_id: str | None,
        limits: LinkLimits,
        burst_bytes: int,
    ) -> None:
        self._cl = cl
        self._link_id = link_id
        self._peer = peer
        self._stream = stream
        self._client = stream if isinstance(stream, DatagramClient) else None
        self._connected = connected
        self._peer_node_id = peer_node_id
        self._limits = limits
        self._burst_bytes = burst_bytes
        self._up = True
        self._lock = asyncio.Lock()
        self._bucket: TokenBucket | None = None
        if limits.rate_bytes_per_s is not None:
            self._bucket = TokenBucket(limits.rate_bytes_per_s, burst_bytes=burst_bytes, now=_loop_time())
        self.reader: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"UdpLink({self._link_id!r}, peer_node_id={self._peer_node_id!r}, up={self._up})"

    @property
    def link_id(self) -> str:
        return self._link_id

    @property
    def peer_node_id(self) -> str | None:
        return self._peer_node_id

    @property
    def peer_address(self) -> Address:
        """The peer's (host, port) as the socket sees it."""
        return self._peer

    @property
    def local_address(self) -> Address:
        """The (host, port) this link's datagrams leave from."""
        sockname = self._stream.sockname
        return (sockname[0], sockname[1])

    @property
    def limits(self) -> LinkLimits:
        return self._limits

    @property
    def is_up(self) -> bool:
        return self._up

    def set_rate(self, rate_bytes_per_s: float | None) -> None:
        """Pace at a new rate (bytes/s; None: no pacing), e.g. when the contact plan changes the contact."""
        now = _loop_time()
        if rate_bytes_per_s is None:
            self._bucket = None
        elif self._bucket is None:
            self._bucket = TokenBucket(rate_bytes_per_s, burst_bytes=self._burst_bytes, now=now)
        else:
            self._bucket.set_rate(rate_bytes_per_s, now)
        self._limits = LinkLimits(self._limits.max_bundle_bytes, rate_bytes_per_s)

    async def send(self, data: bytes | memoryview) -> SendResult:
        """Send one bundle as one datagram, after the pacing delay; ACKNOWLEDGED once the socket has it."""
        stats = self._cl.stats
        if not self._up:
            stats.send_failed += 1
            return SendResult(Outcome.FAILED, detail=f"link {self._link_id} is closed")
        max_bytes = self._limits.max_bundle_bytes or MAX_UDP_PAYLOAD_IPV4
        refusal = send_refusal(data, max_bytes)
        if refusal is not None:
            stats.send_refused += 1
            return SendResult(Outcome.FAILED, RefuseReason.NOT_ACCEPTABLE, refusal)
        if self._bucket is None:
            return await self._transmit(data)
        async with self._lock:  # FIFO: paced datagrams leave in the order send() was called
            delay = self._bucket.reserve(len(data), _loop_time())
            if delay > 0:
                await asyncio.sleep(delay)
            return await self._transmit(data)

    async def _transmit(self, data: bytes | memoryview) -> SendResult:
        stats = self._cl.stats
        if not self._up:
            stats.send_failed += 1
            return SendResult(Outcome.FAILED, detail=f"link {self._link_id} closed before the datagram left")
        payload = data if isinstance(data, bytes) else bytes(data)
        try:
            if self._client is not None:
                await self._client.send(payload)
            else:
                await self._stream.send(payload, self._peer)  # type: ignore[call-arg]
        except (OSError, TransportClosed) as exc:
            stats.send_failed += 1
            detail = f"sending to {format_udp_address(*self._peer)} failed: {exc!r}"
            log.info("%s", detail)
            return SendResult(Outcome.FAILED, detail=detail)
        stats.datagrams_sent += 1
        stats.bytes_sent += len(data)
        return SendResult(Outcome.ACKNOWLEDGED)

    def mark_down(self) -> bool:
        """Mark the link down; True if it was up. Closes an outbound link's own socket."""
        if not self._up:
            return False
        self._up = False
        if self._connected:
            self._stream.close()
        return True

    async def close(self) -> None:
        """Stop sending on this link (outbound: close its socket and report ``link_down``)."""
        if self.mark_down():
            self._cl.link_closed(self, "closed locally")
            if self.reader is not None:
                await asyncio.gather(self.reader, return_exceptions=True)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class UdpConvergenceLayer:
    """The ``udp`` CL: listen on ``udp://host:port`` (loopback and 4556 by default), connect to peers."""

    scheme = "udp"

    def __init__(
        self,
        sink: BundleSink,
        *,
        max_bundle_bytes: int = MAX_UDP_PAYLOAD_IPV4,
        rate_bytes_per_s: float | None = None,
        burst_bytes: int = MAX_UDP_PAYLOAD_IPV4,
        receive_queue_size: int = 256,
        max_receive_bytes: int = MAX_RECEIVE_DATAGRAM,
        max_receive_peers: int = 1024,
    ) -> None:
        if not 1 <= max_bundle_bytes <= MAX_UDP_PAYLOAD_IPV6:
            raise ConfigError(f"max_bundle_bytes must be 1..{MAX_UDP_PAYLOAD_IPV6}, not {max_bundle_bytes}")
        if rate_bytes_per_s is not None and not rate_bytes_per_s > 0:
            raise ConfigError(f"rate_bytes_per_s must be positive, not {rate_bytes_per_s}")
        if burst_bytes < 0:
            raise ConfigError(f"burst_bytes must not be negative, not {burst_bytes}")
        if receive_queue_size < 1 or max_receive_peers < 1:
            raise ConfigError("receive_queue_size and max_receive_peers must be at least 1")
        if not 1 <= max_receive_bytes <= MAX_RECEIVE_DATAGRAM:
            raise ConfigError(f"max_receive_bytes must be 1..{MAX_RECEIVE_DATAGRAM}, not {max_receive_bytes}")
        self._sink = sink
        self._max_bundle_bytes = max_bundle_bytes
        self._rate = rate_bytes_per_s
        self._burst_bytes = burst_bytes
        self._max_receive_bytes = max_receive_bytes
        self._max_receive_peers = max_receive_peers
        self.stats = UdpStats()
        self._queue: asyncio.Queue[tuple[UdpLink, bytes]] = asyncio.Queue(receive_queue_size)
        self._listeners: list[tuple[DatagramServer, asyncio.Task[None]]] = []
        self._outbound: dict[str, UdpLink] = {}
        self._inbound: OrderedDict[tuple[int, Address], UdpLink] = OrderedDict()
        self._worker: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._watchers = 0
        self._next_link = 0
        self._closed = False

    # -- public API ---------------------------------------------------------------------------------------

    @property
    def listening_addresses(self) -> list[str]:
        return [format_udp_address(*server.sockname[:2]) for server, _ in self._listeners]

    async def listen(self, address: str) -> str:
        """Bind ``udp://host:port`` (port 0: any free port) and hand received bundles to the sink."""
        self._check_open()
        host, port = parse_udp_address(address)
        server = await asyncio_dgram.bind((host, port))
        bound = format_udp_address(*server.sockname[:2])
        index = len(self._listeners)

        def inbound_link(peer: Address) -> UdpLink:
            return self._inbound_link(index, server, peer)

        reader = asyncio.create_task(self._read_loop(server, inbound_link), name=f"udpcl-listen {bound}")
        self._listeners.append((server, reader))
        self._ensure_worker()
        log.info("UDP CL listening on %s", bound)
        return bound

    async def connect(
        self, address: str, *, peer_node_id: str | None = None, limits: LinkLimits | None = None
    ) -> UdpLink:
        """A link to the peer at ``udp://host:port``; ``limits`` overrides the CL's max bundle size and rate.

        UDP has no handshake: this succeeds whether or not the peer is there (loss is silent).
        """
        self._check_open()
        host, port = parse_udp_address(address)
        try:
            stream = await asyncio_dgram.connect((host, port))
        except OSError as exc:
            raise ConnectionError(f"cannot open a UDP socket to {address}: {exc}") from exc
        peer: Address = stream.peername[:2]
        ceiling = MAX_UDP_PAYLOAD_IPV6 if stream.socket.family == socket.AF_INET6 else MAX_UDP_PAYLOAD_IPV4
        wanted = limits or LinkLimits(self._max_bundle_bytes, self._rate)
        max_bytes = wanted.max_bundle_bytes or self._max_bundle_bytes
        if max_bytes > ceiling:
            stream.close()
            raise ConfigError(f"max_bundle_bytes {max_bytes} exceeds the UDP payload ceiling {ceiling} for {address}")
        self._next_link += 1
        link = UdpLink(
            self,
            f"{format_udp_address(*peer)}/out/{self._next_link}",
            peer,
            stream,
            connected=True,
            peer_node_id=peer_node_id,
            limits=LinkLimits(max_bytes, wanted.rate_bytes_per_s),
            burst_bytes=self._burst_bytes,
        )
        link.reader = asyncio.create_task(self._read_loop(stream, lambda _peer: link), name=f"udpcl {link.link_id}")
        self._outbound[link.link_id] = link
        self._ensure_worker()
        self._sink.link_up(link)
        return link

    async def close(self) -> None:
        """Stop listening, close every link, drop what is still queued."""
        if self._closed:
            return
        self._closed = True
        for link in list(self._outbound.values()):
            await link.close()
        for link in self._inbound.values():
            link.mark_down()
        self._inbound.clear()
        for server, reader in self._listeners:
            server.close()
            await asyncio.gather(reader, return_exceptions=True)
        self._listeners.clear()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._notify()

    async def wait_stats(self, predicate: Callable[[UdpStats], bool], timeout_s: float = 5.0) -> UdpStats:
        """Wait until ``predicate(stats)`` holds (re-checked on every counter change); TimeoutError otherwise."""
        self._watchers += 1
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate(self.stats):
                    await self._changed.wait()
        finally:
            self._watchers -= 1
        return self.stats

    # -- internals ----------------------------------------------------------------------------------------

    def link_closed(self, link: UdpLink, reason: str) -> None:
        if self._outbound.pop(link.link_id, None) is not None:
            self._sink.link_down(link, reason)

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionError("the UDP CL is closed")

    def _notify(self) -> None:
        if self._watchers:
            self._changed.set()
            self._changed = asyncio.Event()

    def _ensure_worker(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._deliver_loop(), name="udpcl-deliver")

    def _inbound_link(self, index: int, server: DatagramServer, peer: Address) -> UdpLink:
        key = (index, peer)
        link = self._inbound.get(key)
        if link is not None and link.is_up:
            self._inbound.move_to_end(key)
            return link
        self._inbound.pop(key, None)  # closed by the node: the next datagram gets a fresh link
        if len(self._inbound) >= self._max_receive_peers:
            _, evicted = self._inbound.popitem(last=False)
            evicted.mark_down()
        link = UdpLink(
            self,
            f"{format_udp_address(*peer)}/in/{index}",
            peer,
            server,
            connected=False,
            peer_node_id=None,
            limits=LinkLimits(self._max_bundle_bytes, self._rate),
            burst_bytes=self._burst_bytes,
        )
        self._inbound[key] = link
        return link

    async def _read_loop(self, stream: DatagramStream, link_for: Callable[[Address], UdpLink]) -> None:
        while True:
            try:
                data, peer = await stream.recv()
            except TransportClosed:
                return
            except OSError as exc:  # an ICMP error reported on the socket: not fatal
                self.stats.receive_errors += 1
                log.debug("UDP socket error: %r", exc)
                self._notify()
                continue
            self._on_datagram(data, peer, link_for)

    def _on_datagram(self, data: bytes, peer: Any, link_for: Callable[[Address], UdpLink]) -> None:
        stats = self.stats
        stats.datagrams_received += 1
        stats.bytes_received += len(data)
        verdict = classify_datagram(data, max_bytes=self._max_receive_bytes)
        kind = verdict.kind
        if kind is DatagramKind.BUNDLE:
            stats.bundles_received += 1
            try:
                self._queue.put_nowait((link_for((peer[0], peer[1])), data))
            except asyncio.QueueFull:
                stats.dropped_queue_full += 1
                if _is_power_of_two(stats.dropped_queue_full):
                    log.warning("UDP receive queue full: %d bundles dropped so far", stats.dropped_queue_full)
        elif kind is DatagramKind.KEEPALIVE:
            stats.keepalives_received += 1
        elif kind is DatagramKind.MALFORMED:
            stats.malformed += 1
            level = logging.WARNING if _is_power_of_two(stats.malformed) else logging.DEBUG
            log.log(level, "malformed UDP datagram from %s (%d so far): %s", peer, stats.malformed, verdict.reason)
        else:
            stats.ignored += 1
            log.debug("ignored UDP datagram from %s: %s", peer, verdict.reason)
        self._notify()

    async def _deliver_loop(self) -> None:
        while True:
            link, data = await self._queue.get()
            try:
                refusal = await self._sink.bundle_received(link, data)
            except Exception:  # the node's problem, not the CL's: keep receiving
                self.stats.sink_errors += 1
                log.exception("bundle sink failed on a bundle from %s", link.link_id)
            else:
                if refusal is None:
                    self.stats.bundles_accepted += 1
                else:
                    self.stats.refused_by_sink += 1
                    log.debug("bundle from %s refused by the node: %s", link.link_id, refusal.name)
            self._notify()


if TYPE_CHECKING:

    def _conforms(cl: UdpConvergenceLayer, link: UdpLink) -> tuple[ConvergenceLayer, Any]:
        from dtn.convergence.base import Link

        checked_link: Link = link
        return cl, checked_link
