"""In-process links with the CL contract, for tests and the simulator.

A :class:`MemoryNetwork` is a namespace of ``mem://name`` addresses (no module-level state: make one per test
or testbed). A :class:`MemoryConvergenceLayer` listens on a name and connects to others; ``connect`` makes a
pair of link ends, reports ``link_up`` to both nodes, and each end sends to the other. A link can simulate a
rate (bytes/s, token bucket), a one-way latency and random loss, all driven by the asyncio loop's clock.

Outcomes: with ``acknowledged=True`` (the default, like TCPCLv4) ``send`` returns when the receiving node has
answered: ACKNOWLEDGED, REFUSED with the receiver's ``RefuseReason``, or FAILED (lost, link closed, receiver
error); the answer travels back with the same latency. With ``acknowledged=False`` (like UDP) ``send`` returns
ACKNOWLEDGED once the bundle has "left" (after pacing) and delivery happens later, or not at all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dtn.convergence.base import BundleSink, ConvergenceLayer, LinkLimits, Outcome, RefuseReason, SendResult
from dtn.convergence.udpcl.pacing import TokenBucket
from dtn.errors import ConfigError

log = logging.getLogger(__name__)

SCHEME = "mem"


def parse_memory_address(address: str) -> str:
    """``mem://name`` → ``name``."""
    scheme, sep, name = address.partition("://")
    if not sep or scheme.lower() != SCHEME or not name or "/" in name:
        raise ConfigError(f"not an in-memory CL address (mem://name): {address!r}")
    return name


@dataclass(frozen=True, slots=True)
class ChannelModel:
    """What a simulated link does to bundles, in each direction."""

    latency_s: float = 0.0
    loss: float = 0.0  # probability that a bundle is lost, 0..1
    acknowledged: bool = True
    queue_size: int = 64  # bundles in flight per direction; send() waits when full
    burst_bytes: int = 0  # with a rate: what may leave at once after an idle period

    def __post_init__(self) -> None:
        if not (self.latency_s >= 0 and math.isfinite(self.latency_s)):
            raise ConfigError(f"latency_s must be a non-negative number, not {self.latency_s!r}")
        if not 0.0 <= self.loss <= 1.0:
            raise ConfigError(f"loss must be a probability 0..1, not {self.loss!r}")
        if self.queue_size < 1:
            raise ConfigError(f"queue_size must be at least 1, not {self.queue_size!r}")
        if self.burst_bytes < 0:
            raise ConfigError(f"burst_bytes must not be negative, not {self.burst_bytes!r}")


class MemoryNetwork:
    """The names in-process CLs listen on. One per test or testbed."""

    def __init__(self) -> None:
        self._listeners: dict[str, MemoryConvergenceLayer] = {}

    def convergence_layer(
        self, sink: BundleSink, *, node_id: str | None = None, rng: random.Random | None = None
    ) -> MemoryConvergenceLayer:
        return MemoryConvergenceLayer(self, sink, node_id=node_id, rng=rng)

    def register(self, name: str, cl: MemoryConvergenceLayer) -> None:
        if name in self._listeners:
            raise OSError(f"mem://{name} is already in use")
        self._listeners[name] = cl

    def unregister(self, name: str, cl: MemoryConvergenceLayer) -> None:
        if self._listeners.get(name) is cl:
            del self._listeners[name]

    def lookup(self, name: str) -> MemoryConvergenceLayer | None:
        return self._listeners.get(name)


#: (deliver at, bundle or None for a simulated loss, where the outcome goes or None when unacknowledged)
_Item = tuple[float, bytes | None, "asyncio.Future[SendResult] | None"]


class _Channel:
    """One direction of a link: a FIFO of bundles in flight, delivered to ``receiver`` at their time."""

    def __init__(self, receiver: MemoryLink, model: ChannelModel, rate_bytes_per_s: float | None) -> None:
        self.receiver = receiver
        self.model = model
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(model.queue_size)
        loop = asyncio.get_running_loop()
        self.bucket = (
            TokenBucket(rate_bytes_per_s, burst_bytes=model.burst_bytes, now=loop.time())
            if rate_bytes_per_s is not None
            else None
        )
        self.stopped = False
        self.task = asyncio.create_task(self._run(), name=f"mem-channel to {receiver.link_id}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deliver_at, data, future = await self.queue.get()
            try:
                wait = deliver_at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                result = await self.receiver.deliver(data)
            except asyncio.CancelledError:
                if future is not None:
                    _resolve(future, SendResult(Outcome.FAILED, detail="link closed during delivery"))
                raise
            if future is None:
                continue
            if self.model.latency_s > 0:
                loop.call_later(self.model.latency_s, _resolve, future, result)
            else:
                _resolve(future, result)

    def stop(self, detail: str) -> None:
        self.stopped = True
        self.task.cancel()
        while not self.queue.empty():
            _, _, future = self.queue.get_nowait()
            if future is not None:
                _resolve(future, SendResult(Outcome.FAILED, detail=detail))


def _resolve(future: asyncio.Future[SendResult], result: SendResult) -> None:
    if not future.done():
        future.set_result(result)


class MemoryLink:
    """One end of an in-process link. ``send`` goes to the other end's node."""

    def __init__(self, cl: MemoryConvergenceLayer, link_id: str, peer_node_id: str | None, limits: LinkLimits) -> None:
        self._cl = cl
        self._link_id = link_id
        self._peer_node_id = peer_node_id
        self._limits = limits
        self._up = True
        self._other: MemoryLink | None = None
        self._outgoing: _Channel | None = None

    def __repr__(self) -> str:
        return f"MemoryLink({self._link_id!r}, peer_node_id={self._peer_node_id!r}, up={self._up})"

    @property
    def link_id(self) -> str:
        return self._link_id

    @property
    def peer_node_id(self) -> str | None:
        return self._peer_node_id

    @property
    def limits(self) -> LinkLimits:
        return self._limits

    @property
    def is_up(self) -> bool:
        return self._up

    def attach(self, other: MemoryLink, outgoing: _Channel) -> None:
        self._other = other
        self._outgoing = outgoing

    async def send(self, data: bytes | memoryview) -> SendResult:
        channel = self._outgoing
        if not self._up or channel is None:
            return SendResult(Outcome.FAILED, detail=f"link {self._link_id} is down")
        size = len(data)
        limit = self._limits.max_bundle_bytes
        if limit is not None and size > limit:
            return SendResult(
                Outcome.FAILED,
                RefuseReason.NOT_ACCEPTABLE,
                f"bundle of {size} bytes exceeds the link's maximum of {limit} bytes; fragment it",
            )
        loop = asyncio.get_running_loop()
        now = loop.time()
        delay = channel.bucket.reserve(size, now) if channel.bucket is not None else 0.0
        # A simulated loss is decided at send time: one rng draw per bundle, in send order (reproducible).
        payload = None if self._cl.lose(channel.model.loss) else bytes(data)
        future: asyncio.Future[SendResult] | None = None if not channel.model.acknowledged else loop.create_future()
        await channel.queue.put((now + delay + channel.model.latency_s, payload, future))
        if channel.stopped:  # closed while we waited for room: nobody will deliver it
            return SendResult(Outcome.FAILED, detail=f"link {self._link_id} closed before the bundle left")
        if future is None:
            if delay > 0:
                await asyncio.sleep(delay)
            return SendResult(Outcome.ACKNOWLEDGED)
        return await future

    async def deliver(self, data: bytes | None) -> SendResult:
        """A bundle arrives at this end: hand it to this end's node and return the outcome for the sender."""
        if data is None:
            return SendResult(Outcome.FAILED, detail="lost in transit (simulated loss)")
        if not self._up:
            return SendResult(Outcome.FAILED, detail=f"link {self._link_id} went down before delivery")
        try:
            refusal = await self._cl.sink.bundle_received(self, data)
        except Exception as exc:  # the receiving node's fault; the sender learns it failed
            log.exception("bundle sink failed on %s", self._link_id)
            return SendResult(Outcome.FAILED, detail=f"receiver error: {exc!r}")
        if refusal is None:
            return SendResult(Outcome.ACKNOWLEDGED)
        return SendResult(Outcome.REFUSED, RefuseReason(refusal), f"refused by the receiver: {refusal.name}")

    def go_down(self, reason: str) -> None:
        """Mark this end down, fail what it still has in flight and tell its node (once)."""
        if not self._up:
            return
        self._up = False
        if self._outgoing is not None:
            self._outgoing.stop(f"link {self._link_id} closed: {reason}")
        self._cl.link_gone(self, reason)

    async def close(self) -> None:
        """Close both ends: this node hears "closed locally", the peer "closed by peer"."""
        if not self._up:
            return
        self.go_down("closed locally")
        if self._other is not None:
            self._other.go_down("closed by peer")


class MemoryConvergenceLayer:
    """The ``mem`` CL of one node on a :class:`MemoryNetwork`."""

    scheme = SCHEME

    def __init__(
        self,
        network: MemoryNetwork,
        sink: BundleSink,
        *,
        node_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.network = network
        self.sink = sink
        self.node_id = node_id
        self._rng = rng
        self._names: list[str] = []
        self._links: dict[str, MemoryLink] = {}
        self._next_link = 0
        self._closed = False

    async def listen(self, address: str) -> str:
        if self._closed:
            raise ConnectionError("the in-memory CL is closed")
        name = parse_memory_address(address)
        self.network.register(name, self)
        self._names.append(name)
        return f"{SCHEME}://{name}"

    async def connect(
        self,
        address: str,
        *,
        peer_node_id: str | None = None,
        limits: LinkLimits | None = None,
        model: ChannelModel | None = None,
    ) -> MemoryLink:
        """A link to the node listening on ``mem://name``; ``ConnectionRefusedError`` if nobody does."""
        if self._closed:
            raise ConnectionError("the in-memory CL is closed")
        name = parse_memory_address(address)
        remote = self.network.lookup(name)
        if remote is None or remote._closed:
            raise ConnectionRefusedError(f"nobody listens on {SCHEME}://{name}")
        limits = limits or LinkLimits()
        model = model or ChannelModel()
        self._next_link += 1
        tag = f"{name}/{self._next_link}"
        local_end = MemoryLink(self, f"{SCHEME}://{tag}/out", peer_node_id or remote.node_id, limits)
        remote_end = MemoryLink(remote, f"{SCHEME}://{tag}/in", self.node_id, limits)
        local_end.attach(remote_end, _Channel(remote_end, model, limits.rate_bytes_per_s))
        remote_end.attach(local_end, _Channel(local_end, model, limits.rate_bytes_per_s))
        self._links[local_end.link_id] = local_end
        remote._links[remote_end.link_id] = remote_end
        remote.sink.link_up(remote_end)
        self.sink.link_up(local_end)
        return local_end

    async def close(self) -> None:
        """Stop listening and close every link (the peers hear "closed by peer")."""
        if self._closed:
            return
        self._closed = True
        for name in self._names:
            self.network.unregister(name, self)
        self._names.clear()
        for link in list(self._links.values()):
            await link.close()

    def lose(self, probability: float) -> bool:
        if probability <= 0.0:
            return False
        if self._rng is None:
            self._rng = random.Random()
        return self._rng.random() < probability

    def link_gone(self, link: MemoryLink, reason: str) -> None:
        if self._links.pop(link.link_id, None) is not None:
            self.sink.link_down(link, reason)


if TYPE_CHECKING:

    def _conforms(cl: MemoryConvergenceLayer, link: MemoryLink) -> tuple[ConvergenceLayer, Any]:
        from dtn.convergence.base import Link

        checked_link: Link = link
        return cl, checked_link
