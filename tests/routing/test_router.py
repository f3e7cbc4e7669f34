"""The CGR router's bookings, exclusions, priorities and cache invalidation; the static router."""

from __future__ import annotations

from dtn.bundle.eid import IpnEid, parse_eid
from dtn.bundle.reasons import StatusReason
from dtn.routing.base import ForwardNow, NoRoute, Priority, RouteRequest, WaitUntil
from dtn.routing.cgr_router import CgrRouter
from dtn.routing.contacts import Contact, ContactPlan, Range
from dtn.routing.static import StaticRouter, rule

# Two ways from 1 to 3: via 2 now (10 000 bytes of room on 1->2), via 4 later.
PLAN = ContactPlan(
    (
        Contact(1, 2, 0, 10, 1000),
        Contact(2, 3, 0, 30, 1000),
        Contact(1, 4, 20, 40, 1000),
        Contact(4, 3, 20, 40, 1000),
    ),
    (Range(1, 2, 0, 100, 1), Range(2, 3, 0, 100, 1), Range(1, 4, 0, 100, 1), Range(3, 4, 0, 100, 1)),
)


#: Contact 1->2 is the first of node 1's contacts by end time, so its graph id is 0.
C12 = 0


def req(size: int = 2000, priority: Priority = Priority.STANDARD, excluded: tuple[int, ...] = ()) -> RouteRequest:
    return RouteRequest(IpnEid(3, 1), size, 1000, priority, frozenset(IpnEid(n, 0) for n in excluded))


def neighbours(decisions: list[object]) -> list[int]:
    return [d.neighbour.node for d in decisions if isinstance(d, ForwardNow | WaitUntil)]  # type: ignore[union-attr]


def test_booking_beyond_capacity_moves_later_bundles_to_the_next_route() -> None:
    router = CgrRouter(1, PLAN)
    # ECCC(2000) = 2125: four fit in the 10 000 bytes of 1->2, the fifth goes via 4.
    decisions = [router.route(req(), 0) for _ in range(6)]
    assert neighbours(decisions) == [2, 2, 2, 2, 4, 4]
    assert isinstance(decisions[4], WaitUntil) and decisions[4].at_s == 20
    assert router.residual_volume(C12) == 10_000 - 4 * 2125


def test_release_gives_volume_back_and_sent_keeps_it_consumed() -> None:
    router = CgrRouter(1, PLAN)
    decisions = [router.route(req(), 0) for _ in range(4)]
    assert neighbours(decisions) == [2, 2, 2, 2]
    first = decisions[0]
    assert isinstance(first, ForwardNow) and first.booking is not None
    router.release(first.booking)
    router.release(first.booking)  # a second hand-back is ignored
    assert router.residual_volume(C12) == 10_000 - 3 * 2125
    assert neighbours([router.route(req(), 0)]) == [2]
    second = decisions[1]
    assert isinstance(second, ForwardNow) and second.booking is not None
    router.sent(second.booking)
    assert router.residual_volume(C12) == 10_000 - 4 * 2125
    assert neighbours([router.route(req(), 0)]) == [4]


def test_priorities_share_volume_downwards() -> None:
    router = CgrRouter(1, PLAN)
    for _ in range(4):
        router.route(req(priority=Priority.EXPEDITED), 0)
    # Expedited bookings used the bulk view too: a bulk bundle goes the long way.
    assert neighbours([router.route(req(priority=Priority.BULK), 0)]) == [4]
    # A bulk booking does not eat into the expedited view, but the queue ahead of it does delay it (PBAT).
    router2 = CgrRouter(1, PLAN)
    for _ in range(4):
        router2.route(req(priority=Priority.BULK), 0)
    assert router2.residual_volume(C12, Priority.EXPEDITED) == 10_000
    assert router2.residual_volume(C12, Priority.BULK) == 10_000 - 4 * 2125


def test_excluded_previous_node_is_never_the_next_hop() -> None:
    router = CgrRouter(1, PLAN)
    assert neighbours([router.route(req(excluded=(2,)), 0)]) == [4]
    decision = router.route(req(excluded=(2, 4)), 0)
    assert isinstance(decision, NoRoute) and decision.reason == StatusReason.NO_ROUTE


def test_time_moving_past_a_route_and_plan_changes_invalidate_the_cache() -> None:
    router = CgrRouter(1, PLAN)
    assert neighbours([router.route(req(), 0)]) == [2]
    assert neighbours([router.route(req(), 10)]) == [4]  # 1->2 ended at 10: the cached list is recomputed
    assert router.route_list(3, 10).routes[0].entry_node == 4
    router.plan_changed(ContactPlan(PLAN.contacts[:2], PLAN.ranges))
    decision = router.route(req(), 12)
    assert isinstance(decision, NoRoute) and decision.reason == StatusReason.NO_ROUTE


def test_link_down_during_a_contact_skips_it() -> None:
    router = CgrRouter(1, PLAN)
    router.link_changed(IpnEid(2, 0), False, 1)
    assert neighbours([router.route(req(), 1)]) == [4]
    router.link_changed(IpnEid(2, 0), True, 2)
    assert neighbours([router.route(req(), 2)]) == [2]


def test_dtn_scheme_and_self_are_no_route() -> None:
    router = CgrRouter(1, PLAN)
    assert isinstance(router.route(RouteRequest(parse_eid("dtn://x/y"), 10, 100), 0), NoRoute)
    assert isinstance(router.route(RouteRequest(IpnEid(1, 5), 10, 100), 0), NoRoute)


def test_static_router() -> None:
    router = StaticRouter([rule("ipn:9.*", "ipn:3.0"), rule("ipn:9.*", "ipn:4.0"), rule("*", "ipn:2.0")])
    dest = RouteRequest(IpnEid(9, 1), 10, 100)
    assert router.route(dest, 0) == ForwardNow(IpnEid(3, 0))
    excluded = RouteRequest(IpnEid(9, 1), 10, 100, excluded_nodes=frozenset({IpnEid(3, 0)}))
    assert router.route(excluded, 0) == ForwardNow(IpnEid(4, 0))
    router.link_changed(IpnEid(4, 0), False, 0)
    assert router.route(excluded, 0) == ForwardNow(IpnEid(2, 0))
    assert router.route(RouteRequest(IpnEid(5, 1), 10, 100), 0) == ForwardNow(IpnEid(2, 0))
    only = StaticRouter([rule("ipn:9.*", "ipn:3.0")])
    decision = only.route(RouteRequest(IpnEid(5, 1), 10, 100), 0)
    assert isinstance(decision, NoRoute) and decision.reason == StatusReason.NO_ROUTE
