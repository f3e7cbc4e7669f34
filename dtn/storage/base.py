"""The bundle store contract: what the agent keeps about a bundle, and the ``BundleStore`` protocol.

The store is synchronous by design (ring 2): durability is an ordering question, and a ``commit()`` that
returns only once the work is durable makes the order obvious. One ``commit()`` covers every change since the
previous one (group commit): the runtime commits once per batch and only then acknowledges the batch.

Vocabulary follows RFC 9171 §5: a bundle is retained while it has at least one *retention constraint*
(§5.4 dispatch pending, forward pending, §5.9 reassembly pending, plus local-endpoint delivery, custody and
contraindication). Removing the last constraint deletes the bundle and leaves a *tombstone*: its id stays known
(for duplicate suppression) until the bundle would have expired, then ``purge_tombstones`` forgets it.

Ordering of query answers, the same for every implementation:

* ``with_constraint``, ``by_destination``, ``by_next_hop``: priority descending (higher is more urgent), then
  oldest first, where "oldest" means the order in which the store accepted the bundles (arrival order; the
  creation timestamp is not used because nodes without a clock create bundles at time 0).
* ``expiring_before``: expiry ascending, then arrival order.
* ``fragments_of``: fragment offset ascending, then payload length.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntFlag
from typing import BinaryIO, Protocol, runtime_checkable

from dtn.bundle.ids import BundleId

MAX_PRIORITY = 255


class Constraint(IntFlag):
    """Retention constraints (RFC 9171 §5); a bundle with none of them is deleted."""

    NONE = 0
    DISPATCH_PENDING = 1
    FORWARD_PENDING = 2
    REASSEMBLY_PENDING = 4
    LOCAL_ENDPOINT = 8
    CUSTODY_HELD = 16
    CONTRAINDICATED = 32


#: Every retention constraint; ``with_constraint(ANY_CONSTRAINT)`` lists every stored bundle.
ANY_CONSTRAINT = Constraint(sum(Constraint))


@dataclass(frozen=True, slots=True)
class BundleMeta:
    """What the store keeps beside a bundle's encoded bytes.

    ``destination`` and ``next_hop`` are text EIDs; ``expiry_dtn_ms`` is creation time + lifetime in DTN ms
    (RFC 9171 §4.2.6); ``size_bytes`` is the length of the encoded bundle the store holds; ``priority`` is
    0-255, higher first.
    """

    id: BundleId
    destination: str
    expiry_dtn_ms: int
    size_bytes: int
    constraints: Constraint
    priority: int = 0
    next_hop: str | None = field(default=None)

    def __post_init__(self) -> None:
        if self.size_bytes < 0:
            raise ValueError(f"bundle size must not be negative, got {self.size_bytes}")
        if not 0 <= self.priority <= MAX_PRIORITY:
            raise ValueError(f"priority must be 0..{MAX_PRIORITY}, got {self.priority}")
        if self.constraints & ~ANY_CONSTRAINT:
            raise ValueError(f"unknown retention constraint bits in {int(self.constraints):#x}")
        if self.expiry_dtn_ms < 0:
            raise ValueError(f"expiry must be a DTN time (ms since 2000), got {self.expiry_dtn_ms}")


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What a store did when it was opened (and what it found after a crash)."""

    orphan_files_removed: int = 0
    temp_files_removed: int = 0
    rows_missing_file: tuple[BundleId, ...] = ()
    expired_purged: int = 0
    tombstones_purged: int = 0
    migrated_from_version: int | None = None

    @property
    def clean(self) -> bool:
        """True when opening found nothing left over from a crash (expiry purges do not count)."""
        return not (self.orphan_files_removed or self.temp_files_removed or self.rows_missing_file)

    def __str__(self) -> str:
        parts = [
            f"{self.orphan_files_removed} orphan payload file(s) removed",
            f"{self.temp_files_removed} unfinished payload file(s) removed",
            f"{len(self.rows_missing_file)} bundle(s) dropped because their payload file was missing",
            f"{self.expired_purged} expired bundle(s) purged",
            f"{self.tombstones_purged} tombstone(s) purged",
        ]
        if self.migrated_from_version is not None:
            parts.append(f"schema migrated from version {self.migrated_from_version}")
        return "store recovery: " + ", ".join(parts)


@runtime_checkable
class BundleStore(Protocol):
    """Bundles and their metadata, durable at each ``commit()``. Ids are ``BundleId``; EIDs are text."""

    @property
    def quota_bytes(self) -> int | None:
        """The byte limit on stored bundles (``None``: no limit)."""
        ...

    @property
    def bytes_used(self) -> int:
        """Total ``size_bytes`` of the bundles held (committed or not)."""
        ...

    def __len__(self) -> int:
        """Number of bundles held (tombstones not counted)."""
        ...

    def __contains__(self, bundle_id: object) -> bool:
        """True when the bundle is held (a tombstone is not held)."""
        ...

    def add(self, meta: BundleMeta, raw: bytes) -> bool:
        """Store a bundle. False (and nothing changes) if the id is held or tombstoned.

        Raises ``StoreFull`` beyond the quota, ``ValueError`` if ``len(raw) != meta.size_bytes`` or the
        bundle has no retention constraint, ``StoreError`` if the medium fails.
        """
        ...

    def add_stream(self, meta: BundleMeta, chunks: Iterable[bytes | bytearray | memoryview]) -> bool:
        """``add`` for a bundle given as chunks; large bundles are never held in memory whole."""
        ...

    def is_known(self, bundle_id: BundleId) -> bool:
        """True when the id is held or tombstoned: the duplicate check of RFC 9171 §5.6."""
        ...

    def get(self, bundle_id: BundleId) -> BundleMeta | None:
        """Metadata of a held bundle, or None."""
        ...

    def raw(self, bundle_id: BundleId) -> bytes:
        """The encoded bundle (whole, in memory; use ``open_raw`` for large ones). KeyError if not held."""
        ...

    def open_raw(self, bundle_id: BundleId) -> BinaryIO:
        """A binary file object reading the encoded bundle; the caller closes it. KeyError if not held."""
        ...

    def set_constraints(self, bundle_id: BundleId, constraints: Constraint) -> bool:
        """Replace the retention constraints; empty deletes the bundle and leaves a tombstone.

        False if the bundle is not held.
        """
        ...

    def delete(self, bundle_id: BundleId) -> bool:
        """``set_constraints(bundle_id, Constraint.NONE)``."""
        ...

    def set_next_hop(self, bundle_id: BundleId, next_hop: str | None) -> bool:
        """Record (or clear) the node the bundle is queued for. False if the bundle is not held."""
        ...

    def with_constraint(self, constraint: Constraint, limit: int | None = None) -> list[BundleMeta]:
        """Held bundles having any of the flags in ``constraint``: priority first, then oldest first."""
        ...

    def by_destination(self, destination: str, limit: int | None = None) -> list[BundleMeta]:
        """Held bundles for a destination EID: priority first, then oldest first."""
        ...

    def by_next_hop(self, next_hop: str, limit: int | None = None) -> list[BundleMeta]:
        """Held bundles queued for a next hop: priority first, then oldest first."""
        ...

    def expiring_before(self, dtn_ms: int, limit: int | None = None) -> list[BundleMeta]:
        """Held bundles whose expiry is before ``dtn_ms``: soonest first."""
        ...

    def fragments_of(self, whole_id: BundleId) -> list[BundleMeta]:
        """Held fragments of the bundle ``whole_id`` (RFC 9171 §5.9), by fragment offset."""
        ...

    def purge_tombstones(self, dtn_ms: int) -> int:
        """Forget tombstones whose bundle expired before ``dtn_ms``; returns how many."""
        ...

    def commit(self) -> None:
        """Make every change since the previous commit durable; returns only once it is."""
        ...

    def close(self) -> None:
        """Release the store (uncommitted changes are discarded)."""
        ...


def check_new_bundle(meta: BundleMeta, size_bytes: int | None) -> None:
    """Validation shared by the implementations of ``add``: a constraint, and a size that matches."""
    if not meta.constraints:
        raise ValueError(f"bundle {meta.id} has no retention constraint: nothing would keep it in the store")
    if size_bytes is not None and size_bytes != meta.size_bytes:
        raise ValueError(f"bundle {meta.id}: meta.size_bytes is {meta.size_bytes} but {size_bytes} bytes were given")


def priority_order_key(meta: BundleMeta, arrival: int) -> tuple[int, int]:
    """Sort key for "priority first, then oldest first"."""
    return (-meta.priority, arrival)


def fragment_order_key(bundle_id: BundleId) -> tuple[int, int]:
    return (bundle_id.fragment_offset or 0, bundle_id.payload_length or 0)


def quota_message(used: int, quota: int, size: int, bundle_id: BundleId) -> str:
    return (
        f"bundle store full: {used} of {quota} bytes used, bundle {bundle_id} needs {size} more; "
        "raise the store quota or wait for bundles to be forwarded or expire"
    )
