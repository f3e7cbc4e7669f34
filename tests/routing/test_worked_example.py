"""The worked example of the CGR digest (ION's algorithm, integer seconds), exactly."""

from dtn.bundle.eid import IpnEid
from dtn.bundle.reasons import StatusReason
from dtn.routing.base import ForwardNow, NoRoute, RouteRequest, WaitUntil
from dtn.routing.cgr import ContactGraph, RouteList
from dtn.routing.cgr_router import CgrRouter
from dtn.routing.contacts import ContactPlan, owlt_margin_s
from dtn.routing.plan_files import parse_plan


def request(size: int, dest: int = 4, expiry: float = 300) -> RouteRequest:
    return RouteRequest(IpnEid(dest, 1), size, expiry)


def test_dijkstra_and_yen_routes(worked: ContactPlan) -> None:
    rl = RouteList(ContactGraph(worked), 1, 4, 0)
    r1, r2 = rl.get(0), rl.get(1)
    assert r1 is not None and r2 is not None
    assert r1.nodes == (1, 2, 4) and r1.arrival_s == 52 and r1.entry_node == 2
    assert (r1.from_s, r1.to_s) == (0, 100)
    assert r2.nodes == (1, 3, 4) and r2.arrival_s == 75 and r2.entry_node == 3
    assert (r2.from_s, r2.to_s) == (10, 60)
    assert rl.get(2) is None


def test_pbat_and_choice_without_backlog(worked: ContactPlan) -> None:
    router = CgrRouter(1, worked)
    assert router.estimated_volume(1000) == 1062
    infos = router.routes(4, 0, size_bytes=1000)
    assert [(i.route.entry_node, i.projected_arrival_s) for i in infos] == [(2, 53), (3, 75)]
    decision = router.route(request(1000), 0)
    assert isinstance(decision, ForwardNow)
    assert decision.neighbour == IpnEid(2, 0) and decision.arrival_s == 53


def test_95000_queued_to_node_2_sends_to_node_3(worked: ContactPlan) -> None:
    router = CgrRouter(1, worked)
    assert router.estimated_volume(89_412) == 95_000
    first = router.route(request(89_412), 0)
    assert isinstance(first, ForwardNow) and first.neighbour == IpnEid(2, 0)
    c12 = next(i for i, c in enumerate(router.graph.contacts) if (c.from_node, c.to_node) == (1, 2))
    assert router.residual_volume(c12) == 5_000  # MTV(C12) = 100 000 - 95 000
    infos = router.routes(4, 0, size_bytes=1000)
    assert [(i.route.entry_node, i.projected_arrival_s) for i in infos] == [(2, 100), (3, 75)]
    second = router.route(request(1000), 0)
    assert isinstance(second, WaitUntil)
    assert (second.neighbour, second.at_s, second.arrival_s) == (IpnEid(3, 0), 10, 75)


def test_99000_queued_makes_route_1_too_small(worked: ContactPlan) -> None:
    router = CgrRouter(1, worked)
    assert router.estimated_volume(93_177) == 99_000
    assert isinstance(router.route(request(93_177), 0), ForwardNow)
    infos = router.routes(4, 0, size_bytes=1000)
    assert infos[0].route.entry_node == 2 and infos[0].projected_arrival_s is None  # EVL 1000 < 1062
    decision = router.route(request(1000), 0)
    assert isinstance(decision, WaitUntil) and decision.neighbour == IpnEid(3, 0) and decision.arrival_s == 75


def test_deep_space_case() -> None:
    plan = parse_plan(
        "a contact +0 +3600 1 2 100000\n"
        "a contact +1800 +5400 2 3 12500\n"
        "a range +0 +5400 1 2 1\n"
        "a range +0 +5400 2 3 1200\n",
        "ion",
    )
    router = CgrRouter(1, plan)
    [info] = router.routes(3, 0, size_bytes=50_000)
    assert info.route.arrival_s == 3000
    assert router.estimated_volume(50_000) == 53_125
    assert info.projected_arrival_s == 3004


def test_owlt_margin() -> None:
    assert owlt_margin_s(1200) == 0
    assert owlt_margin_s(1490) == 0
    assert owlt_margin_s(1500) == 1
    assert owlt_margin_s(3000) == 2


def test_expiry_before_arrival_is_no_timely_contact(worked: ContactPlan) -> None:
    router = CgrRouter(1, worked)
    decision = router.route(request(1000, expiry=52), 0)
    assert isinstance(decision, NoRoute) and decision.reason == StatusReason.NO_TIMELY_CONTACT
    decision = router.route(request(1000, expiry=53), 0)
    assert isinstance(decision, ForwardNow) and decision.neighbour == IpnEid(2, 0) and decision.arrival_s == 53


def test_unknown_destination_is_no_route(worked: ContactPlan) -> None:
    decision = CgrRouter(1, worked).route(request(1000, dest=7), 0)
    assert isinstance(decision, NoRoute) and decision.reason == StatusReason.NO_ROUTE
