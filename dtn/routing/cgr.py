"""Contact Graph Routing, pure route search (CCSDS SABR 734.3-B-1 / ION ``libcgr``).

``ContactGraph`` compiles a ContactPlan: every contact with a range at its start becomes a vertex with its
delay (OWLT + ION's margin); contacts leaving a node are kept sorted by end time so that a search only looks at
contacts still open. ``ContactGraph.search`` is Dijkstra over contacts for the earliest arrival time:

* arrival over contact Y reached at time t is ``max(Y.start, t) + owlt + margin``, usable only if
  ``Y.end > t`` (the window is ``[start, end)``: data arriving at the end instant is too late);
* labels are ordered by (arrival, hops, end of the last contact): ties go to fewer hops, then to the contact
  that ends earliest (keeping longer contacts for later traffic);
* a first pass expands each node once and finds the earliest arrival T*; a backward pass finds how late each
  node can be left and still make T*; a last pass may expand a node again, but only by a label with strictly
  fewer hops than every earlier expansion (earlier expansions arrived no later, so a label that has no fewer
  hops is dominated) and only with labels that can still make T*. Each expansion scans only the contacts of
  that node still open, so a search costs about O(contacts log contacts).

The search ignores volume (as ION's does); volume, queues and the bundle's deadline are applied per bundle by
``dtn.routing.cgr_router``. ``RouteList`` extends the best route into a ranked list with Yen's k-shortest-paths
algorithm, computed lazily, one route at a time.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from dtn.routing.contacts import Contact, ContactPlan, owlt_margin_s

_INF = float("inf")


@dataclass(frozen=True, slots=True)
class Route:
    """A contact sequence from the local node to the destination.

    ``arrival_s`` is the best-case arrival (no queueing, no transmission time, as ION's ``arrivalTime``);
    ``from_s`` is the first contact's start, ``to_s`` the earliest end of all hops (the route dies then).
    """

    contact_ids: tuple[int, ...]
    hops: tuple[Contact, ...]
    arrival_s: float
    from_s: float
    to_s: float
    confidence: float
    owlt_sum_s: float

    @property
    def entry_node(self) -> int:
        return self.hops[0].to_node

    @property
    def hop_count(self) -> int:
        return len(self.hops)

    @property
    def nodes(self) -> tuple[int, ...]:
        return (self.hops[0].from_node, *(c.to_node for c in self.hops))


class ContactGraph:
    """The usable contacts of a plan, indexed for route search. Immutable once built."""

    def __init__(self, plan: ContactPlan) -> None:
        index = plan.range_index()
        self.plan = plan
        self.unusable: list[Contact] = []
        usable: list[tuple[Contact, float]] = []
        for c in plan.contacts:
            owlt = index.owlt_s(c.from_node, c.to_node, c.start_s)
            if owlt is None:
                self.unusable.append(c)
            else:
                usable.append((c, owlt))
        # Contact ids are grouped by sending node and ordered by end time, and the per-contact arrays are
        # built in that order: a search scans a node's open contacts as one run of neighbouring ids.
        usable.sort(key=lambda item: (item[0].from_node, item[0].end_s, item[0].start_s, item[0].to_node))
        self.contacts: list[Contact] = [c for c, _ in usable]
        self.owlt_s = [owlt + 0.0 for _, owlt in usable]
        self.delay_s = [owlt + owlt_margin_s(owlt) + 0.0 for _, owlt in usable]
        self.from_node = [c.from_node for c in self.contacts]
        self.to_node = [c.to_node for c in self.contacts]
        self.start_s = [c.start_s + 0.0 for c in self.contacts]
        self.end_s = [c.end_s + 0.0 for c in self.contacts]
        self.rate = [c.rate_bytes_per_s + 0.0 for c in self.contacts]
        self._in_ids: dict[int, list[int]] = {}
        for cid, c in enumerate(self.contacts):
            self._in_ids.setdefault(c.to_node, []).append(cid)
        #: node -> (first id, end times of its contacts in id order)
        self._out: dict[int, tuple[int, list[float]]] = {}
        cid = 0
        n = len(self.contacts)
        while cid < n:
            node = self.from_node[cid]
            first = cid
            while cid < n and self.from_node[cid] == node:
                cid += 1
            self._out[node] = (first, self.end_s[first:cid])

    def __len__(self) -> int:
        return len(self.contacts)

    def contacts_from(self, node: int) -> range:
        """Contact ids leaving ``node``, by end time."""
        out = self._out.get(node)
        return range(0) if out is None else range(out[0], out[0] + len(out[1]))

    def search(
        self,
        source: int,
        destination: int,
        start_s: float,
        *,
        start_hops: int = 0,
        banned_contacts: frozenset[int] | set[int] = frozenset(),
        banned_nodes: frozenset[int] | set[int] = frozenset(),
    ) -> list[int] | None:
        """Contact ids of the earliest-arrival path from ``source`` (there at ``start_s``) to ``destination`` with
        the fewest hops among those, or None. ``banned_contacts`` are never used; ``banned_nodes`` are never
        passed through.

        Three near-linear passes: the earliest arrival T* (each node expanded once); the latest time each node
        can be left and still reach the destination by T* (a backward pass); then the fewest-hops search, in
        which a node may be expanded again with fewer hops, limited to labels that can still make T*."""
        found = self._forward(source, destination, start_s, start_hops, banned_contacts, banned_nodes, None)
        if found is None or len(found[0]) <= 1:
            return None if found is None else found[0]
        latest = self._latest_departure(destination, found[1], banned_contacts, banned_nodes)
        again = self._forward(source, destination, start_s, start_hops, banned_contacts, banned_nodes, latest)
        return found[0] if again is None else again[0]

    def _forward(
        self,
        source: int,
        destination: int,
        start_s: float,
        start_hops: int,
        banned_contacts: frozenset[int] | set[int],
        banned_nodes: frozenset[int] | set[int],
        latest: dict[int, float] | None,
    ) -> tuple[list[int], float] | None:
        out = self._out
        start = self.start_s
        end = self.end_s
        delay = self.delay_s
        to_node = self.to_node
        # Labels: label_contact[i] reached over label_parent[i] (-1: leaves the source).
        label_contact: list[int] = []
        label_parent: list[int] = []
        expanded_hops: dict[int, int] = {source: start_hops}
        # Per node, the best (arrival, hops) label queued so far: a new label no better is not queued (first
        # pass), or not if it has no fewer hops either (fewest-hops pass).
        tentative: dict[int, tuple[float, int]] = {source: (start_s, start_hops)}
        heap: list[tuple[float, int, float, int]] = []
        push = heapq.heappush
        pop = heapq.heappop

        def expand(node: int, at: float, hops: int, parent: int) -> None:
            entry = out.get(node)
            if entry is None:
                return
            first, ends = entry
            nxt = hops + 1
            for cid in range(first + bisect_right(ends, at), first + len(ends)):
                if cid in banned_contacts:
                    continue
                s = start[cid]
                arrival = (s if s > at else at) + delay[cid]
                target = to_node[cid]
                old = tentative.get(target)
                if old is not None and arrival >= old[0] and (latest is None or nxt >= old[1]):
                    continue  # a label already queued for that node is no worse
                if latest is not None:
                    bound = latest.get(target)
                    if bound is None or arrival > bound + 1e-9 * (1.0 + abs(bound)):
                        continue  # cannot reach the destination by the earliest arrival time any more
                if old is None or arrival < old[0] or (arrival == old[0] and nxt < old[1]):
                    tentative[target] = (arrival, nxt)
                push(heap, (arrival, nxt, end[cid], len(label_contact)))
                label_contact.append(cid)
                label_parent.append(parent)

        expand(source, start_s, start_hops, -1)
        while heap:
            arrival, hops, _, label = pop(heap)
            node = to_node[label_contact[label]]
            if node == destination:
                path = []
                while label >= 0:
                    path.append(label_contact[label])
                    label = label_parent[label]
                path.reverse()
                return path, arrival
            seen = expanded_hops.get(node)
            if seen is not None and (latest is None or seen <= hops):
                continue  # dominated: an earlier expansion arrived no later with no more hops
            expanded_hops[node] = hops
            if node in banned_nodes:
                continue
            expand(node, arrival, hops, label)
        return None

    def _latest_departure(
        self,
        destination: int,
        deadline: float,
        banned_contacts: frozenset[int] | set[int],
        banned_nodes: frozenset[int] | set[int],
    ) -> dict[int, float]:
        """For each node, the latest time at which one can be there and still reach ``destination`` by
        ``deadline`` (a backward Dijkstra on the latest departure time)."""
        start = self.start_s
        end = self.end_s
        delay = self.delay_s
        from_node = self.from_node
        in_ids = self._in_ids
        latest: dict[int, float] = {destination: deadline}
        heap: list[tuple[float, int]] = [(-deadline, destination)]
        while heap:
            neg, node = heapq.heappop(heap)
            bound = -neg
            if latest.get(node) != bound:
                continue
            if node in banned_nodes and node != destination:
                continue
            for cid in in_ids.get(node, ()):
                d = delay[cid]
                if start[cid] + d > bound or cid in banned_contacts:
                    continue
                leave = bound - d
                e = end[cid]
                if leave > e:
                    leave = e
                m = from_node[cid]
                old = latest.get(m)
                if old is None or leave > old:
                    latest[m] = leave
                    heapq.heappush(heap, (-leave, m))
        return latest

    def walk(self, contact_ids: Iterable[int], start_s: float) -> float:
        """Best-case arrival time along ``contact_ids`` leaving at ``start_s`` (inf if a contact is missed)."""
        t = start_s
        for cid in contact_ids:
            if self.end_s[cid] <= t:
                return _INF
            s = self.start_s[cid]
            t = (s if s > t else t) + self.delay_s[cid]
        return t

    def make_route(self, contact_ids: Iterable[int], start_s: float) -> Route:
        ids = tuple(contact_ids)
        confidence = 1.0
        for cid in ids:
            confidence *= self.contacts[cid].confidence
        return Route(
            contact_ids=ids,
            hops=tuple(self.contacts[cid] for cid in ids),
            arrival_s=self.walk(ids, start_s),
            from_s=self.start_s[ids[0]],
            to_s=min(self.end_s[cid] for cid in ids),
            confidence=confidence,
            owlt_sum_s=sum(self.owlt_s[cid] for cid in ids),
        )


def route_key(route: Route) -> tuple[float, int, float, tuple[int, ...]]:
    """Ranking of routes in a list: earliest arrival, fewer hops, later route end, then a stable order."""
    return (route.arrival_s, route.hop_count, -route.to_s, route.contact_ids)


class RouteList:
    """Ranked routes from ``source`` to ``destination`` computed at ``computed_at_s``, extended on demand by Yen's
    algorithm: each new route deviates from the previous one at some hop (the spur), with the root path's nodes
    banned (routes stay loop-free) and the next contact of every known route sharing that root banned (no
    duplicates)."""

    def __init__(self, graph: ContactGraph, source: int, destination: int, computed_at_s: float) -> None:
        self.graph = graph
        self.source = source
        self.destination = destination
        self.computed_at_s = computed_at_s
        self.routes: list[Route] = []
        self._candidates: list[tuple[tuple[float, int, float, tuple[int, ...]], Route]] = []
        self._seen: set[tuple[int, ...]] = set()
        self._exhausted = False
        self.searches = 0

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    def valid_until_s(self) -> float:
        """The list must be recomputed once time reaches the end of its earliest-ending route."""
        return min((r.to_s for r in self.routes), default=_INF)

    def get(self, k: int) -> Route | None:
        """The k-th best route (0-based), computing routes as needed; None when there are fewer."""
        while len(self.routes) <= k and not self._exhausted:
            self._extend()
        return self.routes[k] if k < len(self.routes) else None

    def _extend(self) -> None:
        g = self.graph
        if not self.routes:
            self.searches += 1
            path = g.search(self.source, self.destination, self.computed_at_s)
            if path is None:
                self._exhausted = True
                return
            self.routes.append(g.make_route(path, self.computed_at_s))
            self._seen.add(tuple(path))
            return
        last = self.routes[-1].contact_ids
        for i in range(len(last)):
            root = last[:i]
            spur_node = self.source if i == 0 else g.to_node[root[-1]]
            spur_time = g.walk(root, self.computed_at_s)
            banned_contacts = {r.contact_ids[i] for r in self.routes if r.contact_ids[:i] == root}
            banned_nodes = {self.source} | {g.to_node[cid] for cid in root}
            banned_nodes.discard(spur_node)
            self.searches += 1
            spur = g.search(
                spur_node,
                self.destination,
                spur_time,
                start_hops=i,
                banned_contacts=banned_contacts,
                banned_nodes=banned_nodes,
            )
            if spur is None:
                continue
            full = root + tuple(spur)
            if full in self._seen:
                continue
            self._seen.add(full)
            route = g.make_route(full, self.computed_at_s)
            heapq.heappush(self._candidates, (route_key(route), route))
        if not self._candidates:
            self._exhausted = True
            return
        self.routes.append(heapq.heappop(self._candidates)[1])
