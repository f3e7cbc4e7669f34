"""Route lists by contact suppression (classic CGR) against a brute-force model, and the router using them.

The model: route k is the best (earliest arrival, then fewest hops) loop-free contact sequence once the limiting
contacts (earliest end, first such hop) of routes 0..k-1 are suppressed; the list ends when none is left.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dtn.bundle.eid import IpnEid
from dtn.routing.base import ForwardNow, RouteRequest, WaitUntil
from dtn.routing.cgr import ContactGraph, Route, RouteList
from dtn.routing.cgr_router import CgrConfig, CgrRouter
from dtn.routing.contacts import Contact, ContactPlan, Range

from .test_cgr_property import NODES, check_chain

SUPPRESSION = CgrConfig(route_method="suppression")


def brute_best(
    graph: ContactGraph, source: int, dest: int, now: float, suppressed: set[int]
) -> tuple[float, int] | None:
    """(arrival, hops) of the best loop-free contact sequence avoiding ``suppressed``: every sequence tried."""
    best: tuple[float, int] | None = None

    def dfs(node: int, t: float, hops: int, visited: frozenset[int]) -> None:
        nonlocal best
        if node == dest:
            if best is None or (t, hops) < best:
                best = (t, hops)
            return
        for cid, c in enumerate(graph.contacts):
            if c.from_node == node and cid not in suppressed and c.end_s > t and c.to_node not in visited:
                dfs(c.to_node, max(c.start_s, t) + graph.delay_s[cid], hops + 1, visited | {c.to_node})

    dfs(source, now, 0, frozenset({source}))
    return best


@st.composite
def ranged_plans(draw: st.DrawFn) -> ContactPlan:
    """Up to 4 nodes and 20 contacts, every node pair ranged (OWLTs from 0 to 30 s, changing at 50 s): most
    source/destination pairs have several routes."""
    nodes = range(1, draw(st.integers(2, 4)) + 1)
    contacts = []
    for _ in range(draw(st.integers(0, 20))):
        a = draw(st.sampled_from(nodes))
        b = draw(st.sampled_from([n for n in nodes if n != a]))
        start = draw(st.integers(0, 100))
        contacts.append(Contact(a, b, start, start + draw(st.integers(1, 60)), 1000))
    ranges = []
    for a in nodes:
        for b in nodes:
            if a < b:
                ranges.append(Range(a, b, 0, 50, draw(st.sampled_from([0, 1, 2, 5, 30]))))
                ranges.append(Range(a, b, 50, 400, draw(st.sampled_from([0, 1, 2, 5, 30]))))
    return ContactPlan(tuple(contacts), tuple(ranges))


def limiting(graph: ContactGraph, route: Route) -> int:
    ends = [graph.end_s[cid] for cid in route.contact_ids]
    return route.contact_ids[ends.index(min(ends))]


@settings(max_examples=200, deadline=None)
@given(ranged_plans(), st.data(), st.sampled_from(["pairs", "cursors", "bounded passes"]))
def test_suppression_list_matches_brute_force(plan: ContactPlan, data: st.DataObject, mode: str) -> None:
    nodes = plan.nodes() or list(NODES)
    source = data.draw(st.sampled_from(nodes))
    dest = data.draw(st.sampled_from(nodes))
    now = data.draw(st.integers(0, 30))
    if source == dest:
        return
    graph = ContactGraph(plan)
    graph._pair_mode = mode == "pairs"  # every search of the graph: one pass by node pairs or with cursors, or
    graph._one_pass = mode != "bounded passes"  # the bounded passes of large graphs
    rl = RouteList(graph, source, dest, now, method="suppression")
    routes = rl.all()
    assert rl.exhausted and len(routes) <= len(graph)  # terminates: one route per contact at most
    # One search per route, then one that finds nothing, unless no contact that ends after ``now`` is left out of
    # the source or into the destination (nothing can be found: no search).
    left = [cid for cid in range(len(graph)) if graph.end_s[cid] > now and cid not in rl._suppressed]
    searchable = any(graph.from_node[c] == source for c in left) and any(graph.to_node[c] == dest for c in left)
    assert rl.searches == len(routes) + searchable
    best = graph.search(source, dest, now)
    assert (best is None) == (routes == [])
    if best is not None:
        assert routes[0].contact_ids == tuple(best)  # the first route is the best route
    suppressed: set[int] = set()
    for route in routes:
        assert brute_best(graph, source, dest, now, suppressed) == (route.arrival_s, route.hop_count)
        check_chain(graph, route.contact_ids, source, dest, now)
        assert not suppressed & set(route.contact_ids)
        assert len(set(route.nodes)) == len(route.nodes)  # loop-free
        assert route.to_s == min(graph.end_s[cid] for cid in route.contact_ids)
        assert graph.limiting_contact(route) == limiting(graph, route)
        suppressed.add(limiting(graph, route))
    assert brute_best(graph, source, dest, now, suppressed) is None  # nothing left when the list ends
    keys = [(r.arrival_s, r.hop_count) for r in routes]
    assert keys == sorted(keys)  # non-decreasing arrival, then hops
    assert len({r.contact_ids for r in routes}) == len(routes)
    # Extended one route at a time (as the router does), then the rest at once: the same list.
    lazy = RouteList(graph, source, dest, now, method="suppression")
    first = [lazy.get(k) for k in range(min(2, len(routes)))]
    assert first == routes[: len(first)] and lazy.all(1) == routes[:1]
    assert lazy.all() == routes and lazy.get(len(routes)) is None and lazy.searches == rl.searches


def test_worked_example_routes(worked: ContactPlan) -> None:
    # R1 = 1->2->4 (ends 100, limited by 1->2), R2 = 1->3->4 (limited by 1->3), then nothing: as Yen's list.
    graph = ContactGraph(worked)
    rl = RouteList(graph, 1, 4, 0, method="suppression")
    assert [(r.nodes, r.arrival_s, r.to_s) for r in rl.all()] == [((1, 2, 4), 52, 100), ((1, 3, 4), 75, 60)]
    yen = RouteList(graph, 1, 4, 0)
    assert [r.contact_ids for r in yen.all()] == [r.contact_ids for r in rl.routes]


def test_suppression_lists_fewer_alternatives_than_yen() -> None:
    # 1->2 closes first on both routes through it: suppressing it drops 1->2->3 via the later 2->3 contact.
    plan = ContactPlan(
        (Contact(1, 2, 0, 10, 1000), Contact(2, 3, 0, 20, 1000), Contact(2, 3, 30, 40, 1000),
         Contact(1, 3, 50, 60, 1000)),
        (Range(1, 2, 0, 100, 1), Range(2, 3, 0, 100, 1), Range(1, 3, 0, 100, 1)),
    )
    graph = ContactGraph(plan)
    suppression = [r.arrival_s for r in RouteList(graph, 1, 3, 0, method="suppression").all()]
    yen = [r.arrival_s for r in RouteList(graph, 1, 3, 0).all()]
    assert suppression == [2, 51]
    assert yen == [2, 31, 51]


def test_unknown_method_is_refused(worked: ContactPlan) -> None:
    try:
        RouteList(ContactGraph(worked), 1, 4, 0, method="dijkstra")  # type: ignore[arg-type]
    except ValueError as exc:
        assert "dijkstra" in str(exc)
    else:
        raise AssertionError("accepted an unknown method")


def test_router_with_suppression_moves_bundles_to_the_next_route() -> None:
    plan = ContactPlan(
        (Contact(1, 2, 0, 10, 1000), Contact(2, 3, 0, 30, 1000), Contact(1, 4, 20, 40, 1000),
         Contact(4, 3, 20, 40, 1000)),
        (Range(1, 2, 0, 100, 1), Range(2, 3, 0, 100, 1), Range(1, 4, 0, 100, 1), Range(3, 4, 0, 100, 1)),
    )
    router = CgrRouter(1, plan, SUPPRESSION)
    request = RouteRequest(IpnEid(3, 1), 2000, 1000)
    decisions = [router.route(request, 0) for _ in range(6)]
    hops = [d.neighbour.node for d in decisions if isinstance(d, ForwardNow | WaitUntil)]
    assert hops == [2, 2, 2, 2, 4, 4]  # ECCC 2125: four fit in the 10 000 bytes of 1->2
    assert router.route_list(3, 0).method == "suppression"


def test_router_with_suppression_on_the_worked_example(worked: ContactPlan) -> None:
    router = CgrRouter(1, worked, SUPPRESSION)
    infos = router.routes(4, 0, size_bytes=1000)
    assert [(i.route.entry_node, i.projected_arrival_s) for i in infos] == [(2, 53), (3, 75)]


def test_pairs_whose_later_contact_arrives_first() -> None:
    # 1->2 contacts A [0, a_end) with OWLT 30 and B [10, 20) with OWLT 1: A closes first, yet B arrives first (11
    # < 30): the one-pass search must not stop at the pair's first usable contact. Without and with overlap.
    ranges = (Range(1, 2, 0, 10, 30), Range(1, 2, 10, 100, 1), Range(2, 3, 0, 100, 0))
    for a_end, pair_mode in ((10, True), (15, True), (10, False), (15, False)):
        plan = ContactPlan((Contact(1, 2, 0, a_end, 1000), Contact(1, 2, 10, 20, 1000), Contact(2, 3, 0, 90, 1)),
                           ranges)
        graph = ContactGraph(plan)
        graph._pair_mode = pair_mode
        path = graph.search(1, 3, 0)
        assert path is not None and graph.walk(path, 0) == 11
        assert brute_best(graph, 1, 3, 0, set()) == (11, 2)


def test_mars_like_plans_search_by_node_pairs() -> None:
    # Periodic contacts to few neighbours, none overlapping: the pair mode; overlapping contacts: cursors.
    ranges = (Range(1, 2, 0, 1000, 1), Range(2, 3, 0, 1000, 1))
    periodic = tuple(Contact(a, b, t, t + 50, 1000) for t in range(0, 1000, 100) for a, b in ((1, 2), (2, 3)))
    assert ContactGraph(ContactPlan(periodic, ranges))._pair_mode
    overlapping = (*periodic, Contact(1, 2, 20, 80, 1000))
    assert not ContactGraph(ContactPlan(overlapping, ranges))._pair_mode
