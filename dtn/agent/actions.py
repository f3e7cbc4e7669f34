"""What the Bundle Protocol Agent asks its runtime to do, and what it tells it.

The agent is sans-I/O: it returns these values from ``next_action()`` and the runtime carries them out
(hand bytes to a convergence layer, hand a bundle to an application, log).
"""

from __future__ import annotations

from dataclasses import dataclass

from dtn.bundle.admin import StatusReport
from dtn.bundle.blocks import BlockData
from dtn.bundle.bundle import Bundle
from dtn.bundle.ids import BundleId
from dtn.bundle.reasons import StatusReason
from dtn.storage.base import BundleMeta


@dataclass(frozen=True, slots=True)
class StreamedBundle:
    """A bundle too large to encode in memory, to be sent as ``head`` (every block, the payload's data empty)
    followed by the ``payload_length`` bytes at ``payload_offset`` of the stored bundle (``encode_bundle_stream``);
    ``encoded_length`` bytes in all."""

    head: Bundle
    payload_offset: int
    payload_length: int
    encoded_length: int


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send one encoded bundle or fragment of ``bundle_id`` over the link to ``neighbour``; report the outcome
    with ``BundleAgent.transfer_done(transmission_id, ...)``. ``parts``: its bytes in order (``encode_bundle_parts``:
    a large payload is a view of the bundle's own buffer, not joined to the rest). When ``stream`` is given,
    ``parts`` is empty: the bundle is streamed from the store instead."""

    transmission_id: int
    neighbour: str
    bundle_id: BundleId
    parts: tuple[BlockData, ...]
    stream: StreamedBundle | None = None

    @property
    def length(self) -> int:
        """Bytes in ``parts``."""
        return sum(len(part) for part in self.parts)

    @property
    def data(self) -> bytes:
        """The encoded bundle in one piece (joined: a copy when there are several parts)."""
        parts = self.parts
        return parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand the bundle (stored under ``bundle_id``) to the application registered at ``endpoint``; the
    application's acknowledgement goes to ``BundleAgent.delivery_acknowledged``. ``bundle``: the bundle itself
    when the agent had it at hand (just received or reassembled), so the runtime need not read it back."""

    endpoint: str
    bundle_id: BundleId
    bundle: Bundle | None = None


@dataclass(frozen=True, slots=True)
class ReportReceived:
    """A bundle status report arrived at this node's administrative endpoint."""

    report: StatusReport
    from_node: str


@dataclass(frozen=True, slots=True)
class BundleDeleted:
    """The agent deleted a bundle (RFC 9171 §5.10) with ``reason``; for logs and statistics."""

    bundle_id: BundleId
    reason: StatusReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Assemble:
    """Write the whole bundle ``meta`` — a large ADU whose fragments are all stored — to a file: ``head`` (every
    block, the payload's data empty) with the ADU as payload, read from ``pieces`` (fragment id, offset into its
    payload, length; in ADU order). It takes seconds for a large ADU, so the runtime does it off its event loop,
    then gives the file to ``BundleAgent.assembled``."""

    meta: BundleMeta
    head: Bundle
    payload_length: int
    pieces: tuple[tuple[BundleId, int, int], ...]


Action = Transmit | Deliver | ReportReceived | BundleDeleted | Assemble
