"""The reference bundle store: everything in memory, ``commit()`` does nothing. For tests and the simulator."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterable
from typing import BinaryIO

from dtn.bundle.ids import BundleId
from dtn.errors import StoreFull
from dtn.storage.base import (
    BundleMeta,
    Constraint,
    check_new_bundle,
    fragment_order_key,
    priority_order_key,
    quota_message,
)


@dataclasses.dataclass(slots=True)
class _Entry:
    meta: BundleMeta
    raw: bytes
    arrival: int


class MemoryBundleStore:
    """``BundleStore`` held in dictionaries. Bounded by ``quota_bytes`` like the durable stores."""

    def __init__(self, *, quota_bytes: int | None = None) -> None:
        if quota_bytes is not None and quota_bytes < 0:
            raise ValueError(f"quota_bytes must not be negative, got {quota_bytes}")
        self._quota_bytes = quota_bytes
        self._bundles: dict[BundleId, _Entry] = {}
        self._tombstones: dict[BundleId, int] = {}
        self._arrivals = 0
        self._bytes_used = 0

    @property
    def quota_bytes(self) -> int | None:
        return self._quota_bytes

    @property
    def bytes_used(self) -> int:
        return self._bytes_used

    def __len__(self) -> int:
        return len(self._bundles)

    def __contains__(self, bundle_id: object) -> bool:
        return bundle_id in self._bundles

    def is_known(self, bundle_id: BundleId) -> bool:
        return bundle_id in self._bundles or bundle_id in self._tombstones

    def add(self, meta: BundleMeta, raw: bytes) -> bool:
        check_new_bundle(meta, len(raw))
        if self.is_known(meta.id):
            return False
        self._check_quota(meta)
        self._arrivals += 1
        self._bundles[meta.id] = _Entry(meta, bytes(raw), self._arrivals)
        self._bytes_used += meta.size_bytes
        return True

    def add_stream(self, meta: BundleMeta, chunks: Iterable[bytes | bytearray | memoryview]) -> bool:
        check_new_bundle(meta, None)
        if self.is_known(meta.id):
            return False
        self._check_quota(meta)
        return self.add(meta, b"".join(chunks))

    def _check_quota(self, meta: BundleMeta) -> None:
        quota = self._quota_bytes
        if quota is not None and self._bytes_used + meta.size_bytes > quota:
            raise StoreFull(quota_message(self._bytes_used, quota, meta.size_bytes, meta.id))

    def get(self, bundle_id: BundleId) -> BundleMeta | None:
        entry = self._bundles.get(bundle_id)
        return None if entry is None else entry.meta

    def raw(self, bundle_id: BundleId) -> bytes:
        entry = self._bundles.get(bundle_id)
        if entry is None:
            raise KeyError(f"bundle {bundle_id} is not in the store")
        return entry.raw

    def open_raw(self, bundle_id: BundleId) -> BinaryIO:
        return io.BytesIO(self.raw(bundle_id))

    def set_constraints(self, bundle_id: BundleId, constraints: Constraint) -> bool:
        entry = self._bundles.get(bundle_id)
        if entry is None:
            return False
        constraints = Constraint(constraints)
        if not constraints:
            del self._bundles[bundle_id]
            self._bytes_used -= entry.meta.size_bytes
            self._tombstones[bundle_id] = entry.meta.expiry_dtn_ms
        else:
            entry.meta = dataclasses.replace(entry.meta, constraints=constraints)
        return True

    def delete(self, bundle_id: BundleId) -> bool:
        return self.set_constraints(bundle_id, Constraint.NONE)

    def set_next_hop(self, bundle_id: BundleId, next_hop: str | None) -> bool:
        entry = self._bundles.get(bundle_id)
        if entry is None:
            return False
        entry.meta = dataclasses.replace(entry.meta, next_hop=next_hop)
        return True

    def _ordered(self, entries: Iterable[_Entry], limit: int | None) -> list[BundleMeta]:
        ordered = sorted(entries, key=lambda e: priority_order_key(e.meta, e.arrival))
        return [e.meta for e in ordered[:limit]]

    def with_constraint(self, constraint: Constraint, limit: int | None = None) -> list[BundleMeta]:
        return self._ordered((e for e in self._bundles.values() if e.meta.constraints & constraint), limit)

    def by_destination(self, destination: str, limit: int | None = None) -> list[BundleMeta]:
        return self._ordered((e for e in self._bundles.values() if e.meta.destination == destination), limit)

    def by_next_hop(self, next_hop: str, limit: int | None = None) -> list[BundleMeta]:
        return self._ordered((e for e in self._bundles.values() if e.meta.next_hop == next_hop), limit)

    def expiring_before(self, dtn_ms: int, limit: int | None = None) -> list[BundleMeta]:
        entries = [e for e in self._bundles.values() if e.meta.expiry_dtn_ms < dtn_ms]
        entries.sort(key=lambda e: (e.meta.expiry_dtn_ms, e.arrival))
        return [e.meta for e in entries[:limit]]

    def fragments_of(self, whole_id: BundleId) -> list[BundleMeta]:
        whole = whole_id.whole()
        found = [e.meta for k, e in self._bundles.items() if k.is_fragment and k.whole() == whole]
        return sorted(found, key=lambda m: fragment_order_key(m.id))

    def purge_tombstones(self, dtn_ms: int) -> int:
        gone = [k for k, expiry in self._tombstones.items() if expiry < dtn_ms]
        for k in gone:
            del self._tombstones[k]
        return len(gone)

    def commit(self) -> None:
        """Nothing to make durable."""

    def close(self) -> None:
        """Nothing to release."""
