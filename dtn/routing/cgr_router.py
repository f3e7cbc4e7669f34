"""The CGR router: per-bundle route selection over cached route lists, as ION's ``ipnfw``/``libcgr`` do it.

For each bundle: walk the destination's route list (``dtn.routing.cgr.RouteList``, cached, extended on demand
by Yen's algorithm as ION 4 does, or by contact suppression as classic CGR did: ``CgrConfig.route_method``)
until a route's best-case arrival (a lower bound of any PBAT over it) is later than the best projected arrival
found so far. Skip routes whose entry node is excluded or whose best-case arrival is
after the bundle's expiry, compute the projected bundle arrival time (PBAT: queue ahead of the bundle on the
first contact, its transmission time on each hop, OWLT + margin) and the effective volume limit of each hop
(residual volume for the bundle's priority, window left), then pick the lowest PBAT, then fewer hops, later
route end, smaller OWLT sum, smaller entry node number. The chosen route's contacts are booked
(``Booking``) with the bundle's estimated consumption (ECCC = size + max(size * 6.25 %, 36) by default,
ION's figures) for its priority and every lower one; ``release`` gives it back, ``sent`` keeps it consumed.

Route lists are discarded when the plan changes and when ``now`` reaches the end of a listed route. Times are
on the plan's timeline (see ``dtn.routing.contacts``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dtn.bundle.eid import Eid, IpnEid
from dtn.bundle.reasons import StatusReason
from dtn.routing.base import Booking, ForwardNow, NoRoute, Priority, RouteDecision, RouteRequest, WaitUntil
from dtn.routing.cgr import ContactGraph, Route, RouteList, RouteMethod
from dtn.routing.contacts import ContactPlan

_PRIORITIES = (Priority.BULK, Priority.STANDARD, Priority.EXPEDITED)


@dataclass(frozen=True, slots=True)
class CgrConfig:
    """Tunables. ION: overhead 1/16 with a 36-byte minimum; SABR defaults: 0.03 and 100."""

    overhead_fraction: float = 1 / 16
    overhead_min_bytes: int = 36
    #: Upper bound on routes per destination examined for one bundle (route lists are extended lazily).
    max_routes: int = 32
    #: How route lists find alternatives: ``"yen"`` (ION 4's libcgr: the k earliest loop-free routes) or
    #: ``"suppression"`` (classic CGR, ION 3: suppress each route's limiting contact and search again; one search
    #: per route, fewer alternatives). See ``dtn.routing.cgr.RouteList``.
    route_method: RouteMethod = "yen"


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """A route as shown to people: the route, its projected arrival for a bundle (None: unusable for it),
    and the volume still bookable along it for the bundle's priority."""

    route: Route
    projected_arrival_s: float | None
    capacity_bytes: float


def ipn_node(eid: Eid) -> int | None:
    return eid.node if isinstance(eid, IpnEid) else None


class CgrRouter:
    """Contact Graph Routing for node ``local_node`` over ``plan`` (a Router, see ``dtn.routing.base``)."""

    def __init__(self, local_node: int, plan: ContactPlan, config: CgrConfig | None = None) -> None:
        self.local_node = local_node
        self.config = config or CgrConfig()
        self.generation = 0
        self._next_booking = 1
        self._backlog: dict[tuple[int, int], int] = {}
        self._active: dict[int, Booking] = {}
        self._down: set[int] = set()
        self.plan_changed(plan)

    # -- Router protocol -------------------------------------------------------------------------------------

    def plan_changed(self, plan: ContactPlan) -> None:
        self.plan = plan
        self.graph = ContactGraph(plan)
        self.generation += 1
        self._mtv: list[list[float]] = [[c.volume_bytes] * 3 for c in self.graph.contacts]
        self._lists: dict[int, RouteList] = {}

    def link_changed(self, neighbour: Eid, up: bool, now: float) -> None:
        node = ipn_node(neighbour)
        if node is None:
            return
        if up:
            self._down.discard(node)
        else:
            self._down.add(node)

    def route(self, request: RouteRequest, now: float) -> RouteDecision:
        dest = ipn_node(request.destination)
        if dest is None:
            return NoRoute(StatusReason.NO_ROUTE, f"CGR routes ipn destinations only: {request.destination}")
        if dest == self.local_node:
            return NoRoute(StatusReason.NO_ROUTE, "the destination is this node")
        excluded = {n for n in (ipn_node(e) for e in request.excluded_nodes) if n is not None}
        volume = self.estimated_volume(request.size_bytes)
        chosen = self._select(dest, volume, int(request.priority), request.expiry_s, excluded, now)
        if isinstance(chosen, NoRoute):
            return chosen
        route, pbat = chosen
        booking = self._book(route, volume, request.priority)
        first = route.hops[0]
        if first.start_s <= now:
            return ForwardNow(booking.neighbour, booking, pbat)
        return WaitUntil(first.start_s, booking.neighbour, booking, pbat)

    def sent(self, booking: Booking) -> None:
        if self._active.pop(booking.booking_id, None) is None:
            return
        self._unqueue(booking)

    def release(self, booking: Booking) -> None:
        if self._active.pop(booking.booking_id, None) is None:
            return
        self._unqueue(booking)
        if booking.generation != self.generation:
            return  # the plan changed since: its contacts' volumes are fresh already
        for cid in booking.contact_ids:
            mtv = self._mtv[cid]
            for p in range(int(booking.priority) + 1):
                mtv[p] += booking.volume_bytes

    # -- queries ---------------------------------------------------------------------------------------------

    def estimated_volume(self, size_bytes: int) -> int:
        """ECCC: the volume a bundle of ``size_bytes`` takes on a contact, convergence-layer overhead included."""
        overhead = max(int(size_bytes * self.config.overhead_fraction), self.config.overhead_min_bytes)
        return size_bytes + overhead

    def route_list(self, destination: int, now: float) -> RouteList:
        """The cached route list for ``destination``, recomputed after a plan change or once ``now`` has reached
        the end of one of its routes."""
        rl = self._lists.get(destination)
        if rl is None or now >= rl.valid_until_s() or now < rl.computed_at_s:
            rl = RouteList(self.graph, self.local_node, destination, now, method=self.config.route_method)
            self._lists[destination] = rl
        return rl

    def routes(
        self, destination: int, now: float, *, count: int = 5, size_bytes: int = 0,
        priority: Priority = Priority.STANDARD,
    ) -> list[RouteInfo]:
        """The first ``count`` routes to ``destination`` with projected arrival and capacity left (for ``dtn
        routes``); no booking."""
        rl = self.route_list(destination, now)
        volume = self.estimated_volume(size_bytes) if size_bytes else 0
        out = []
        for k in range(count):
            route = rl.get(k)
            if route is None:
                break
            if route.to_s <= now:
                continue
            walked = self._walk(route, volume, int(priority), now, math.inf)
            capacity = self._walk(route, 0, int(priority), now, math.inf)
            out.append(RouteInfo(route, walked[0] if walked else None, capacity[1] if capacity else 0.0))
        return out

    def residual_volume(self, contact_id: int, priority: Priority = Priority.STANDARD) -> float:
        return self._mtv[contact_id][int(priority)]

    # -- selection -------------------------------------------------------------------------------------------

    def _select(
        self, dest: int, volume: int, priority: int, expiry_s: float, excluded: set[int], now: float
    ) -> tuple[Route, float] | NoRoute:
        rl = self.route_list(dest, now)
        best: tuple[tuple[float, int, float, float, int], Route, float] | None = None
        reachable = False
        k = 0
        while k < self.config.max_routes:
            route = rl.get(k)
            if route is None:
                break
            if best is not None and route.arrival_s > best[2]:
                break  # routes come by best-case arrival, a lower bound of PBAT: no later one can beat the best
            k += 1
            entry = route.entry_node
            if route.to_s <= now or entry in excluded or entry == self.local_node:
                continue
            if entry in self._down and route.from_s <= now:
                continue  # the link of a contact that should be up is down: the contact is missed
            reachable = True
            if route.arrival_s > expiry_s:
                continue
            walked = self._walk(route, volume, priority, now, expiry_s)
            if walked is None:
                continue
            pbat = walked[0]
            key = (pbat, route.hop_count, -route.to_s, route.owlt_sum_s, entry)
            if best is None or key < best[0]:
                best = (key, route, pbat)
        if best is not None:
            return best[1], best[2]
        if reachable:
            return NoRoute(StatusReason.NO_TIMELY_CONTACT, f"no route to ipn:{dest} arrives in time with room")
        return NoRoute(StatusReason.NO_ROUTE, f"no known route to ipn:{dest}")

    def _walk(
        self, route: Route, volume: int, priority: int, now: float, expiry_s: float
    ) -> tuple[float, float] | None:
        """ION's computePBAT: (projected arrival, smallest effective volume limit) or None if unusable."""
        g = self.graph
        ids = route.contact_ids
        first_id = ids[0]
        entry = route.entry_node
        prior: float = sum(self._backlog.get((entry, p), 0) for p in range(priority, 3))
        if prior > 0:
            # Backlog is served first by earlier contacts to the same neighbour.
            for cid in g.contacts_from(self.local_node):
                if g.to_node[cid] != entry or g.start_s[cid] >= route.from_s or g.end_s[cid] <= now:
                    continue
                prior -= (g.end_s[cid] - max(now, g.start_s[cid])) * g.rate[cid]
                if prior <= 0:
                    prior = 0
                    break
        begin = max(now, g.start_s[first_id])
        rate = g.rate[first_id]
        first = begin + prior // rate
        last = begin + (prior + volume) // rate
        suffix_end = [0.0] * len(ids)
        running = math.inf
        for i in range(len(ids) - 1, -1, -1):
            running = min(running, g.end_s[ids[i]])
            suffix_end[i] = running
        arrival = last
        min_evl = math.inf
        for i, cid in enumerate(ids):
            if g.end_s[cid] <= first:
                return None
            arrival = last + g.delay_s[cid]
            mtv = self._mtv[cid][priority]
            if mtv <= 0:
                return None
            window = suffix_end[i] - first
            if window <= 0:
                return None
            evl = min(mtv, window * g.rate[cid])
            if evl < volume:
                return None  # the bundle does not fit (no proactive fragmentation here)
            min_evl = min(min_evl, evl)
            if i + 1 < len(ids):
                nxt = ids[i + 1]
                first = max(arrival, g.start_s[nxt])
                last = first + volume // g.rate[nxt]
        if arrival > expiry_s:
            return None
        return arrival, min_evl

    def _book(self, route: Route, volume: int, priority: Priority) -> Booking:
        for cid in route.contact_ids:
            mtv = self._mtv[cid]
            for p in range(int(priority) + 1):
                mtv[p] -= volume
        key = (route.entry_node, int(priority))
        self._backlog[key] = self._backlog.get(key, 0) + volume
        booking = Booking(
            booking_id=self._next_booking,
            neighbour=IpnEid(route.entry_node, 0),
            priority=priority,
            volume_bytes=volume,
            contact_ids=route.contact_ids,
            generation=self.generation,
        )
        self._next_booking += 1
        self._active[booking.booking_id] = booking
        return booking

    def _unqueue(self, booking: Booking) -> None:
        node = ipn_node(booking.neighbour)
        if node is None:
            return
        key = (node, int(booking.priority))
        left = self._backlog.get(key, 0) - booking.volume_bytes
        if left > 0:
            self._backlog[key] = left
        else:
            self._backlog.pop(key, None)
