"""Route search against brute force on small random plans (<= 6 nodes, <= 30 contacts).

Brute force enumerates every loop-free contact sequence (a sequence that revisits a node is never better: cut
the loop out and the rest of the sequence still works from the earlier, no-later arrival, with fewer hops).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtn.routing import cgr
from dtn.routing.cgr import ContactGraph, RouteList
from dtn.routing.contacts import Contact, ContactPlan, Range, RangeIndex, owlt_margin_s

NODES = range(1, 7)


@st.composite
def plans(draw: st.DrawFn) -> ContactPlan:
    contacts = []
    for _ in range(draw(st.integers(0, 30))):
        a = draw(st.sampled_from(NODES))
        b = draw(st.sampled_from([n for n in NODES if n != a]))
        start = draw(st.integers(0, 60))
        length = draw(st.integers(1, 30))
        contacts.append(Contact(a, b, start, start + length, 1000))
    ranges = []
    for _ in range(draw(st.integers(0, 20))):
        a = draw(st.sampled_from(NODES))
        b = draw(st.sampled_from([n for n in NODES if n != a]))
        start = draw(st.integers(0, 40))
        ranges.append(Range(a, b, start, start + draw(st.integers(1, 100)), draw(st.integers(0, 8))))
    return ContactPlan(tuple(contacts), tuple(ranges))


def brute_force(plan: ContactPlan, source: int, dest: int, now: float) -> tuple[float, int] | None:
    index = RangeIndex(plan.ranges)
    usable = []
    for c in plan.contacts:
        owlt = index.owlt_s(c.from_node, c.to_node, c.start_s)
        if owlt is not None:
            usable.append((c, owlt + owlt_margin_s(owlt)))
    best: tuple[float, int] | None = None

    def dfs(node: int, t: float, hops: int, visited: frozenset[int]) -> None:
        nonlocal best
        if node == dest:
            if best is None or (t, hops) < best:
                best = (t, hops)
            return
        for c, delay in usable:
            if c.from_node == node and c.end_s > t and c.to_node not in visited:
                dfs(c.to_node, max(c.start_s, t) + delay, hops + 1, visited | {c.to_node})

    dfs(source, now, 0, frozenset({source}))
    return best


def check_chain(graph: ContactGraph, ids: tuple[int, ...], source: int, dest: int, now: float) -> None:
    node, t = source, now
    for cid in ids:
        c = graph.contacts[cid]
        assert c.from_node == node and c.end_s > t
        t = max(c.start_s, t) + graph.delay_s[cid]
        node = c.to_node
    assert node == dest


@settings(max_examples=300, deadline=None)
@given(plans(), st.sampled_from(NODES), st.sampled_from(NODES), st.integers(0, 30))
def test_best_route_matches_brute_force(plan: ContactPlan, source: int, dest: int, now: int) -> None:
    if source == dest:
        return
    graph = ContactGraph(plan)
    found = graph.search(source, dest, now)
    expected = brute_force(plan, source, dest, now)
    if expected is None:
        assert found is None
        return
    assert found is not None
    check_chain(graph, tuple(found), source, dest, now)
    assert (graph.walk(found, now), len(found)) == expected


@settings(max_examples=150, deadline=None)
@given(plans(), st.sampled_from(NODES), st.sampled_from(NODES), st.integers(0, 30))
def test_yen_routes_are_valid_distinct_and_loop_free(plan: ContactPlan, source: int, dest: int, now: int) -> None:
    if source == dest:
        return
    graph = ContactGraph(plan)
    rl = RouteList(graph, source, dest, now)
    routes = [r for r in (rl.get(k) for k in range(8)) if r is not None]
    expected = brute_force(plan, source, dest, now)
    assert (expected is None) == (routes == [])
    if expected is not None:
        assert (routes[0].arrival_s, routes[0].hop_count) == expected
    assert len({r.contact_ids for r in routes}) == len(routes)
    for r in routes:
        check_chain(graph, r.contact_ids, source, dest, now)
        assert len(set(r.nodes)) == len(r.nodes)
        assert r.arrival_s >= routes[0].arrival_s


def test_window_edges() -> None:
    # Arrival exactly at a contact's end is too late; exactly at its start is in time.
    plan = ContactPlan(
        (Contact(5, 3, 0, 10, 1000), Contact(3, 1, 12, 20, 1000), Contact(3, 2, 14, 20, 1000)),
        (Range(3, 5, 0, 100, 2), Range(1, 3, 0, 100, 0), Range(2, 3, 0, 100, 4)),
    )
    graph = ContactGraph(plan)
    assert graph.search(5, 1, 0) is not None  # arrives at 3 at 2, contact 3->1 opens at 12
    assert graph.walk(graph.search(5, 1, 0) or [], 0) == 12
    assert graph.search(5, 1, 10) is None  # 5->3 has ended at 10
    assert graph.search(5, 1, 9) is not None
    late = ContactPlan(
        (Contact(1, 2, 0, 10, 1), Contact(2, 3, 0, 12, 1)), (Range(1, 2, 0, 99, 12), Range(2, 3, 0, 99, 1))
    )
    assert ContactGraph(late).search(1, 3, 0) is None  # reaches node 2 at 12 = end of 2->3


def test_destination_numbered_below_source() -> None:
    plan = ContactPlan(
        (Contact(9, 4, 0, 10, 1), Contact(4, 1, 5, 10, 1)), (Range(1, 4, 0, 10, 1), Range(4, 9, 0, 10, 1))
    )
    graph = ContactGraph(plan)
    path = graph.search(9, 1, 0)
    assert path is not None and graph.walk(path, 0) == 6


def test_fewer_hops_at_equal_arrival_even_when_reached_later() -> None:
    # 1->2->3->4 reaches 4 at 3; 1->4 direct at 7; both catch 4->5 opening at 50: the 2-hop route wins.
    contacts = (
        Contact(1, 2, 0, 100, 1), Contact(2, 3, 0, 100, 1), Contact(3, 4, 0, 100, 1),
        Contact(1, 4, 6, 100, 1), Contact(4, 5, 50, 100, 1),
    )
    ranges = tuple(Range(a, b, 0, 100, 1) for a, b in ((1, 2), (2, 3), (3, 4), (1, 4), (4, 5)))
    graph = ContactGraph(ContactPlan(contacts, ranges))
    path = graph.search(1, 5, 0)
    assert path is not None and len(path) == 2 and graph.walk(path, 0) == 51


def all_arrivals(plan: ContactPlan, source: int, dest: int, now: float) -> list[float]:
    """Arrival times of every loop-free contact sequence from ``source`` to ``dest``, sorted."""
    index = RangeIndex(plan.ranges)
    usable = []
    for c in plan.contacts:
        owlt = index.owlt_s(c.from_node, c.to_node, c.start_s)
        if owlt is not None:
            usable.append((c, owlt + owlt_margin_s(owlt)))
    out: list[float] = []

    def dfs(node: int, t: float, visited: frozenset[int]) -> None:
        if node == dest:
            out.append(t)
            return
        for c, delay in usable:
            if c.from_node == node and c.end_s > t and c.to_node not in visited:
                dfs(c.to_node, max(c.start_s, t) + delay, visited | {c.to_node})

    dfs(source, now, frozenset({source}))
    return sorted(out)


@settings(max_examples=150, deadline=None)
@given(plans(), st.sampled_from(NODES), st.sampled_from(NODES), st.integers(0, 30))
def test_yen_lists_the_k_earliest_routes(plan: ContactPlan, source: int, dest: int, now: int) -> None:
    # Yen's k-th route arrives as early as the k-th earliest of all loop-free contact sequences.
    if source == dest:
        return
    rl = RouteList(ContactGraph(plan), source, dest, now)
    routes = [r for r in (rl.get(k) for k in range(6)) if r is not None]
    assert [r.arrival_s for r in routes] == all_arrivals(plan, source, dest, now)[:6]


def hop_bellman_ford(
    graph: ContactGraph, source: int, dest: int, now: float, banned_contacts: set[int], banned_nodes: set[int]
) -> tuple[float, int] | None:
    """(earliest arrival, fewest hops at that arrival) by rounds of at most k hops: an independent reference."""
    arrival = {source: float(now)}
    best: tuple[float, int] | None = None
    for k in range(1, len(graph.plan.nodes()) + 1):
        nxt = dict(arrival)
        for cid, c in enumerate(graph.contacts):
            t = arrival.get(c.from_node)
            if t is None or cid in banned_contacts or (c.from_node in banned_nodes and c.from_node != source):
                continue
            if c.end_s > t:
                a = max(c.start_s, t) + graph.delay_s[cid]
                if a < nxt.get(c.to_node, float("inf")):
                    nxt[c.to_node] = a
        arrival = nxt
        if dest in arrival and (best is None or arrival[dest] < best[0]):
            best = (arrival[dest], k)
    return best


@st.composite
def bigger_plans(draw: st.DrawFn) -> ContactPlan:
    """Up to 12 nodes and 120 contacts, overlapping contacts between the same pair, zero and large OWLTs."""
    nodes = range(1, draw(st.integers(2, 12)) + 1)
    contacts = []
    for _ in range(draw(st.integers(0, 120))):
        a = draw(st.sampled_from(nodes))
        b = draw(st.sampled_from([n for n in nodes if n != a]))
        start = draw(st.integers(0, 200))
        contacts.append(Contact(a, b, start, start + draw(st.integers(1, 80)), 1000))
    ranges = [Range(a, b, 0, 400, draw(st.sampled_from([0, 0, 1, 2, 5, 30])))
              for a in nodes for b in nodes if a < b]
    return ContactPlan(tuple(contacts), tuple(ranges))


@settings(max_examples=200, deadline=None)
@given(bigger_plans(), st.data())
def test_search_with_bans_matches_reference(plan: ContactPlan, data: st.DataObject) -> None:
    check_search_with_bans(plan, data)


def check_search_with_bans(plan: ContactPlan, data: st.DataObject, pair_mode: bool | None = None) -> None:
    graph = ContactGraph(plan)
    if pair_mode is not None and graph._one_pass:
        graph._pair_mode = pair_mode  # the one-pass search by node pairs or by contacts with cursors
    nodes = plan.nodes()
    source = data.draw(st.sampled_from(nodes))
    dest = data.draw(st.sampled_from(nodes))
    now = data.draw(st.integers(0, 150))
    if source == dest:
        return
    banned_nodes = set(data.draw(st.lists(st.sampled_from(nodes), max_size=3))) - {source, dest}
    banned_contacts = set(data.draw(st.lists(st.integers(0, max(len(graph) - 1, 0)), max_size=5)))
    found = graph.search(source, dest, now, banned_contacts=banned_contacts, banned_nodes=banned_nodes)
    expected = hop_bellman_ford(graph, source, dest, now, banned_contacts, banned_nodes)
    if expected is None:
        assert found is None
        return
    assert found is not None
    check_chain(graph, tuple(found), source, dest, now)
    assert not banned_contacts & set(found)
    assert not banned_nodes & {graph.to_node[cid] for cid in found}
    assert (graph.walk(found, now), len(found)) == expected


@settings(max_examples=100, deadline=None)
@given(bigger_plans(), st.data())
def test_search_without_hop_table_matches_reference(plan: ContactPlan, data: st.DataObject) -> None:
    # Large graphs have no table of hop counts between nodes: the bounded node-pair search decides alone.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cgr, "_SINGLE_PASS_MAX_CONTACTS", 0)
        patch.setattr(cgr, "_HOP_TABLE_WORK", 0)
        patch.setattr(cgr, "_HOP_SEARCH_BUDGET", data.draw(st.sampled_from([1, 8, 64])))
        check_search_with_bans(plan, data)


@settings(max_examples=150, deadline=None)
@given(bigger_plans(), st.data())
def test_bounded_passes_match_reference(plan: ContactPlan, data: st.DataObject) -> None:
    # Small graphs are searched in one pass; large ones by up to three bounded passes: both must be right.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cgr, "_SINGLE_PASS_MAX_CONTACTS", 0)
        check_search_with_bans(plan, data)


@settings(max_examples=150, deadline=None)
@given(plans(), st.sampled_from(NODES), st.sampled_from(NODES), st.integers(0, 30))
def test_one_pass_and_bounded_passes_agree(plan: ContactPlan, source: int, dest: int, now: int) -> None:
    if source == dest:
        return
    one = ContactGraph(plan)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cgr, "_SINGLE_PASS_MAX_CONTACTS", 0)
        bounded = ContactGraph(plan)
    a, b = one.search(source, dest, now), bounded.search(source, dest, now)
    assert (a is None) == (b is None)
    if a is not None and b is not None:
        assert (one.walk(a, now), len(a)) == (bounded.walk(b, now), len(b))


@settings(max_examples=200, deadline=None)
@given(bigger_plans(), st.data(), st.booleans())
def test_both_one_pass_modes_match_reference(plan: ContactPlan, data: st.DataObject, pair_mode: bool) -> None:
    # Node pairs (monotone or not) or contacts by start with cursors, whatever the plan's shape.
    check_search_with_bans(plan, data, pair_mode)
