"""The convergence-layer contract (RFC 9171 §7): what the node asks of every CL and what a CL tells it.

A CL adapter (TCPCLv4, UDP, in-memory) listens on an address, opens links to peers, sends one bundle's bytes
at a time and reports the outcome, and hands every received bundle to a ``BundleSink``. The sink's answer to
``bundle_received`` comes after the node has committed the bundle to its store, so a CL that acknowledges
(TCPCLv4 XFER_ACK) acknowledges only what is durable; a refusal carries a ``RefuseReason``.

Addresses are URLs: ``tcpcl://127.0.0.1:4556``, ``udp://127.0.0.1:4556``, ``mem://name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Protocol


class RefuseReason(IntEnum):
    """Why a receiver refused a bundle; the codes are TCPCLv4's XFER_REFUSE reasons (RFC 9174 §5.2.4)."""

    UNKNOWN = 0x00
    COMPLETED = 0x01  # already have it (duplicate)
    NO_RESOURCES = 0x02  # store full
    RETRANSMIT = 0x03
    NOT_ACCEPTABLE = 0x04  # malformed, too large, not a bundle
    EXTENSION_FAILURE = 0x05
    SESSION_TERMINATING = 0x06


class Outcome(Enum):
    ACKNOWLEDGED = "acknowledged"  # the peer confirmed receipt (TCPCL) or the datagram left (UDP)
    REFUSED = "refused"  # the peer said no; see ``reason``
    FAILED = "failed"  # the link broke or the bundle could not be sent; see ``detail``


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    reason: RefuseReason | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.ACKNOWLEDGED


@dataclass(frozen=True, slots=True)
class LinkLimits:
    """What a link can carry: the largest bundle in bytes (None: no limit) and a pacing rate in bytes/s."""

    max_bundle_bytes: int | None = None
    rate_bytes_per_s: float | None = None


class Link(Protocol):
    """One open link to one peer."""

    @property
    def link_id(self) -> str: ...

    @property
    def peer_node_id(self) -> str | None:
        """The peer's node ID as it announced it (TCPCL SESS_INIT) or as configured; None if unknown."""
        ...

    @property
    def limits(self) -> LinkLimits: ...

    @property
    def is_up(self) -> bool: ...

    async def send(self, data: bytes | memoryview) -> SendResult:
        """Send one encoded bundle and return when its outcome is known."""
        ...

    async def close(self) -> None:
        """End the link cleanly (TCPCL: SESS_TERM and wait for the reply, bounded)."""
        ...


class BundleSink(Protocol):
    """What a CL adapter calls into: the node."""

    async def bundle_received(self, link: Link, data: bytes) -> RefuseReason | None:
        """A whole bundle arrived. Return None once it is durably accepted, or a refusal reason."""
        ...

    def link_up(self, link: Link) -> None: ...

    def link_down(self, link: Link, reason: str) -> None: ...


class NullSink:
    """A ``BundleSink`` for a link that only sends: it takes every bundle and drops it, and ignores the link's
    coming and going. Subclass it to watch just what you need."""

    async def bundle_received(self, link: Link, data: bytes) -> RefuseReason | None:
        return None

    def link_up(self, link: Link) -> None:
        pass

    def link_down(self, link: Link, reason: str) -> None:
        pass


class BundleSpool(Protocol):
    """Where a bundle too large to gather in memory is written as it arrives (a file, in practice)."""

    def write(self, data: bytes) -> RefuseReason | None:
        """The next bytes of the bundle, in order. None: go on; a reason: refuse the bundle now (the CL sends
        XFER_REFUSE while the data still arrives and calls ``discard``)."""
        ...

    def discard(self) -> None:
        """The bundle will not be completed (refused, abandoned by the sender, the link broke): remove it."""
        ...


class SpoolingSink(BundleSink, Protocol):
    """A sink that takes large bundles as files (TCPCLv4 transfers above the session's ``spool_above_bytes``)."""

    def open_spool(self, link: Link) -> BundleSpool | RefuseReason:
        """Where the next large bundle from ``link`` is written; or a reason to refuse it at once."""
        ...

    async def spooled_bundle_received(self, link: Link, spool: BundleSpool, length: int) -> RefuseReason | None:
        """The whole bundle (``length`` bytes) is in ``spool``. As ``bundle_received``: None once it is durably
        accepted, or a refusal reason. The sink owns the spool from now on (keeps or discards it)."""
        ...


class ConvergenceLayer(Protocol):
    """A CL adapter: one per scheme per node."""

    scheme: str

    async def listen(self, address: str) -> str:
        """Start accepting peers at ``address``; returns the bound address (port 0 resolved)."""
        ...

    async def connect(self, address: str, *, peer_node_id: str | None = None) -> Link:
        """Open a link to the peer at ``address``; raises ``ConnectionError`` (or a subclass) on failure."""
        ...

    async def close(self) -> None:
        """Stop listening and close every link."""
        ...
