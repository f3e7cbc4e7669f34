"""``check_bundle_store``: the behaviour every ``BundleStore`` must have. Each check gets a store factory
(``make(**options)``; options: quota_bytes, large_payload_bytes) and raises AssertionError on a deviation."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator

import pytest

from dtn.bundle.ids import BundleId
from dtn.bundle.reasons import StatusReason
from dtn.errors import StoreFull
from dtn.storage.base import ANY_CONSTRAINT, BundleMeta, BundleStore, Constraint

StoreFactory = Callable[..., BundleStore]

DP = Constraint.DISPATCH_PENDING
FP = Constraint.FORWARD_PENDING
RP = Constraint.REASSEMBLY_PENDING
CH = Constraint.CUSTODY_HELD


def payload(bundle_id: BundleId, size: int) -> bytes:
    """Deterministic bytes for a bundle, so a reader can check what it got back."""
    seed = hashlib.sha256(str(bundle_id).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def meta(
    seq: int,
    *,
    size: int = 100,
    dest: str = "ipn:2.1",
    expiry: int = 10_000,
    constraints: Constraint = DP,
    priority: int = 0,
    next_hop: str | None = None,
    source: str = "ipn:1.1",
    fragment: tuple[int, int] | None = None,
) -> BundleMeta:
    offset, length = fragment if fragment else (None, None)
    return BundleMeta(BundleId(source, 5_000, seq, offset, length), dest, expiry, size, constraints, priority, next_hop)


def put(store: BundleStore, m: BundleMeta) -> bool:
    return store.add(m, payload(m.id, m.size_bytes))


def ids(metas: list[BundleMeta]) -> list[int]:
    return [m.id.sequence for m in metas]


def check_add_get_raw(make: StoreFactory) -> None:
    store = make()
    assert len(store) == 0 and store.bytes_used == 0
    m = meta(1, size=321, next_hop="ipn:9.0", priority=7)
    assert put(store, m) is True
    assert store.get(m.id) == m
    assert store.raw(m.id) == payload(m.id, 321)
    with store.open_raw(m.id) as f:
        assert f.read() == payload(m.id, 321)
    assert m.id in store and store.is_known(m.id)
    assert len(store) == 1 and store.bytes_used == 321
    store.commit()
    assert store.get(m.id) == m


def check_duplicate_refused(make: StoreFactory) -> None:
    store = make()
    m = meta(1)
    assert put(store, m)
    assert put(store, m) is False
    assert store.add_stream(m, [payload(m.id, m.size_bytes)]) is False
    store.commit()
    assert put(store, meta(1, size=5, dest="ipn:3.1")) is False
    assert len(store) == 1 and store.bytes_used == 100
    assert store.get(m.id) == m


def check_unknown_ids(make: StoreFactory) -> None:
    store = make()
    unknown = BundleId("ipn:1.1", 1, 1)
    assert store.get(unknown) is None
    assert unknown not in store and not store.is_known(unknown)
    assert "not a bundle id" not in store
    with pytest.raises(KeyError):
        store.raw(unknown)
    with pytest.raises(KeyError):
        store.open_raw(unknown)
    assert store.set_constraints(unknown, FP) is False
    assert store.delete(unknown) is False
    assert store.set_next_hop(unknown, "ipn:3.0") is False


def check_tombstones(make: StoreFactory) -> None:
    store = make()
    m = meta(1, expiry=1_000)
    put(store, m)
    store.commit()
    assert store.delete(m.id) is True
    assert store.delete(m.id) is False
    assert store.get(m.id) is None and m.id not in store
    assert store.is_known(m.id), "a deleted bundle stays known until it expires"
    with pytest.raises(KeyError):
        store.raw(m.id)
    assert len(store) == 0 and store.bytes_used == 0
    assert put(store, m) is False, "a tombstoned id is a duplicate"
    assert store.with_constraint(ANY_CONSTRAINT) == []
    store.commit()
    assert store.purge_tombstones(1_000) == 0, "not expired before its expiry"
    assert store.is_known(m.id)
    assert store.purge_tombstones(1_001) == 1
    assert not store.is_known(m.id)
    assert put(store, m) is True, "once the tombstone expired the id is new again"
    store.commit()
    assert store.get(m.id) == m


def check_set_constraints(make: StoreFactory) -> None:
    store = make()
    m = meta(1, constraints=DP)
    put(store, m)
    assert store.set_constraints(m.id, FP | CH) is True
    got = store.get(m.id)
    assert got is not None and got.constraints == FP | CH
    assert ids(store.with_constraint(DP)) == []
    assert ids(store.with_constraint(CH)) == [1]
    assert store.set_constraints(m.id, Constraint.NONE) is True
    assert store.get(m.id) is None and store.is_known(m.id)
    store.commit()


def check_with_constraint_order(make: StoreFactory) -> None:
    store = make()
    put(store, meta(1, priority=0, constraints=DP))
    put(store, meta(2, priority=2, constraints=FP))
    put(store, meta(3, priority=0, constraints=DP | FP))
    put(store, meta(4, priority=2, constraints=DP))
    put(store, meta(5, priority=1, constraints=RP))
    store.commit()
    assert ids(store.with_constraint(DP)) == [4, 1, 3]
    assert ids(store.with_constraint(FP)) == [2, 3]
    assert ids(store.with_constraint(DP | FP)) == [2, 4, 1, 3]
    assert ids(store.with_constraint(ANY_CONSTRAINT)) == [2, 4, 5, 1, 3]
    assert ids(store.with_constraint(ANY_CONSTRAINT, limit=2)) == [2, 4]
    assert ids(store.with_constraint(ANY_CONSTRAINT, limit=0)) == []
    assert store.with_constraint(Constraint.NONE) == []
    assert ids(store.with_constraint(Constraint.CONTRAINDICATED)) == []


def check_by_destination_and_next_hop(make: StoreFactory) -> None:
    store = make()
    put(store, meta(1, dest="ipn:2.1"))
    put(store, meta(2, dest="ipn:3.1", priority=1))
    put(store, meta(3, dest="ipn:2.1", priority=1))
    put(store, meta(4, dest="dtn://far/away", next_hop="ipn:9.0"))
    assert ids(store.by_destination("ipn:2.1")) == [3, 1]
    assert ids(store.by_destination("ipn:2.1", limit=1)) == [3]
    assert ids(store.by_destination("dtn://far/away")) == [4]
    assert store.by_destination("ipn:5.1") == []
    assert ids(store.by_next_hop("ipn:9.0")) == [4]
    assert store.set_next_hop(meta(1).id, "ipn:9.0") is True
    assert store.set_next_hop(meta(2).id, "ipn:9.0") is True
    assert ids(store.by_next_hop("ipn:9.0")) == [2, 1, 4]
    assert store.set_next_hop(meta(4).id, None) is True
    assert ids(store.by_next_hop("ipn:9.0")) == [2, 1]
    store.delete(meta(2).id)
    assert ids(store.by_next_hop("ipn:9.0")) == [1]
    assert ids(store.by_destination("ipn:3.1")) == []
    store.commit()
    got = store.get(meta(1).id)
    assert got is not None and got.next_hop == "ipn:9.0"


def check_expiring_before(make: StoreFactory) -> None:
    store = make()
    put(store, meta(1, expiry=300))
    put(store, meta(2, expiry=100, priority=5))
    put(store, meta(3, expiry=200))
    put(store, meta(4, expiry=100))
    store.delete(meta(3).id)
    assert ids(store.expiring_before(100)) == []
    assert ids(store.expiring_before(101)) == [2, 4]
    assert ids(store.expiring_before(1_000)) == [2, 4, 1]
    assert ids(store.expiring_before(1_000, limit=1)) == [2]
    store.commit()


def check_fragments(make: StoreFactory) -> None:
    store = make()
    put(store, meta(7, fragment=(100, 300), constraints=RP))
    put(store, meta(7, fragment=(0, 300), constraints=RP))
    put(store, meta(7, fragment=(200, 300), constraints=RP))
    put(store, meta(8, fragment=(0, 300), constraints=RP))
    put(store, meta(7))
    whole = BundleId("ipn:1.1", 5_000, 7)
    assert [m.id.fragment_offset for m in store.fragments_of(whole)] == [0, 100, 200]
    assert [m.id.fragment_offset for m in store.fragments_of(whole._replace(fragment_offset=100))] == [0, 100, 200]
    store.delete(BundleId("ipn:1.1", 5_000, 7, 100, 300))
    assert [m.id.fragment_offset for m in store.fragments_of(whole)] == [0, 200]
    assert store.get(whole) is not None, "the whole bundle and its fragments are different bundles"
    store.commit()


def check_odd_ids(make: StoreFactory) -> None:
    store = make()
    odd = [
        BundleId("dtn://node/with/slashes/1/2", 0, 0),
        BundleId("dtn://node/with/slashes/1", 2, 0, 3, 4),
        BundleId("dtn://ñode+x/∆", 2**40, 2**50),
        BundleId("dtn:none", 0, 0),
    ]
    for n, bundle_id in enumerate(odd):
        m = BundleMeta(bundle_id, "dtn://ñode+x/∆", 2**60, n, DP)
        assert store.add(m, payload(bundle_id, n))
    store.commit()
    for n, bundle_id in enumerate(odd):
        got = store.get(bundle_id)
        assert got is not None and got.id == bundle_id
        assert store.raw(bundle_id) == payload(bundle_id, n)
    assert len(store.by_destination("dtn://ñode+x/∆")) == 4


def check_rejects_bad_adds(make: StoreFactory) -> None:
    store = make()
    with pytest.raises(ValueError, match="size"):
        store.add(meta(1, size=10), b"short")
    with pytest.raises(ValueError, match="retention constraint"):
        store.add(meta(2, constraints=Constraint.NONE), payload(meta(2).id, 100))
    m = meta(3, size=10)
    with pytest.raises(ValueError, match="size"):
        store.add_stream(m, [b"12345", b"678"])
    assert len(store) == 0 and store.bytes_used == 0 and not store.is_known(m.id)
    store.commit()


def check_quota(make: StoreFactory) -> None:
    store = make(quota_bytes=250)
    assert store.quota_bytes == 250
    put(store, meta(1, size=100))
    put(store, meta(2, size=100))
    with pytest.raises(StoreFull) as full:
        put(store, meta(3, size=100))
    assert full.value.reason == StatusReason.DEPLETED_STORAGE
    assert "quota" in str(full.value)
    with pytest.raises(StoreFull):
        store.add_stream(meta(3, size=100), iter([payload(meta(3).id, 100)]))
    assert put(store, meta(1, size=100)) is False, "a duplicate is refused as a duplicate, even when full"
    assert put(store, meta(4, size=50)) is True, "exactly at the quota is allowed"
    assert store.bytes_used == 250
    store.delete(meta(2).id)
    assert put(store, meta(3, size=100)) is True
    assert not store.is_known(meta(5).id)
    store.commit()


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def check_large_bundles_streamed(make: StoreFactory) -> None:
    store = make(large_payload_bytes=4096)
    big = meta(1, size=300_000)
    data = payload(big.id, big.size_bytes)
    assert store.add_stream(big, _chunks(data, 7_000)) is True
    small = meta(2, size=1000)
    assert store.add_stream(small, _chunks(payload(small.id, 1000), 300)) is True
    also_big = meta(3, size=5000)
    assert store.add(also_big, payload(also_big.id, 5000)) is True
    store.commit()
    with store.open_raw(big.id) as f:
        parts = []
        while chunk := f.read(65536):
            parts.append(chunk)
    assert b"".join(parts) == data
    assert store.raw(small.id) == payload(small.id, 1000)
    assert store.raw(also_big.id) == payload(also_big.id, 5000)
    assert store.bytes_used == 306_000
    assert store.add_stream(big, iter([b"x"])) is False
    reader = store.open_raw(big.id)
    store.delete(big.id)
    store.commit()
    assert reader.read() == data, "an open reader keeps reading a bundle deleted meanwhile"
    reader.close()
    with pytest.raises(KeyError):
        store.open_raw(big.id)
    assert store.bytes_used == 6000


def check_reads_see_uncommitted_work(make: StoreFactory) -> None:
    store = make()
    put(store, meta(1))
    assert ids(store.with_constraint(DP)) == [1]
    store.commit()
    put(store, meta(2))
    store.delete(meta(1).id)
    assert ids(store.with_constraint(DP)) == [2]
    store.commit()
    assert ids(store.with_constraint(DP)) == [2]
    assert isinstance(store.open_raw(meta(2).id), io.IOBase)


CHECKS: list[Callable[[StoreFactory], None]] = [
    check_add_get_raw,
    check_duplicate_refused,
    check_unknown_ids,
    check_tombstones,
    check_set_constraints,
    check_with_constraint_order,
    check_by_destination_and_next_hop,
    check_expiring_before,
    check_fragments,
    check_odd_ids,
    check_rejects_bad_adds,
    check_quota,
    check_large_bundles_streamed,
    check_reads_see_uncommitted_work,
]


def check_bundle_store(make: StoreFactory) -> None:
    """Run every conformance check against stores made by ``make``."""
    for check in CHECKS:
        check(make)
