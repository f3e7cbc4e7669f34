"""The queue of deliveries of one endpoint: oldest first, leased while a reader has them, offered again when a
lease ends or the reader goes away, gone once acknowledged."""

from __future__ import annotations

from dtn.bundle.ids import BundleId
from dtn.node import DeliveryQueue


def ids(count: int) -> list[BundleId]:
    return [BundleId("ipn:1.1", 1000, n) for n in range(count)]


def take_all(queue: DeliveryQueue, now: float) -> list[BundleId]:
    taken = []
    while (bundle_id := queue.take(now)) is not None:
        taken.append(bundle_id)
    return taken


async def test_oldest_first_and_each_once_while_leased() -> None:
    queue = DeliveryQueue(lease_s=30.0)
    bundles = ids(5)
    for b in bundles:
        queue.add(b)
    queue.add(bundles[0])  # added again: still once
    assert take_all(queue, 0.0) == bundles
    assert queue.take(29.9) is None, "all leased"


async def test_ended_leases_and_returned_bundles_come_back_in_their_place() -> None:
    queue = DeliveryQueue(lease_s=30.0)
    bundles = ids(6)
    for b in bundles[:3]:
        queue.add(b)
    assert take_all(queue, 0.0) == bundles[:3]
    for b in bundles[3:]:
        queue.add(b)
    assert queue.take(10.0) == bundles[3]  # leased until 40
    queue.drop(bundles[1])  # acknowledged
    queue.give_back(bundles[2])  # its reader went away
    assert queue.take(20.0) == bundles[2], "a returned bundle goes before younger ones"
    # at 31 the leases of 0 (from 0) have ended, 2 (from 20) and 3 (from 10) have not
    assert take_all(queue, 31.0) == [bundles[0], bundles[4], bundles[5]]
    assert take_all(queue, 45.0) == [bundles[3]]
    for b in bundles:
        queue.drop(b)
    assert take_all(queue, 1000.0) == []
    queue.give_back(bundles[0])  # gone: nothing to give back
    assert queue.take(1000.0) is None


async def test_taking_does_not_scan_the_leased() -> None:
    """A window of leased bundles does not slow taking: the leased ones are never looked at while their leases
    run (checked by counting what take() visits through the heap, which holds only the ready ones)."""
    queue = DeliveryQueue(lease_s=30.0)
    bundles = ids(200)
    for b in bundles:
        queue.add(b)
    assert take_all(queue, 0.0) == bundles
    late = BundleId("ipn:1.1", 2000, 0)
    queue.add(late)
    assert len(queue._ready) == 1 and queue.take(1.0) == late
