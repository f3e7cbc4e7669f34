"""The node's router: Contact Graph Routing over the loaded contact plan, static rules as the fallback.

The agent routes on **DTN time in seconds** (``dtn_ms / 1000``); ``CgrRouter`` routes on the **plan timeline**.
``PlanRouter`` maps one onto the other: plan time ``t`` is DTN time ``origin_dtn_ms + 1000 t``, where the origin
is the plan's epoch for an absolute plan and the DTN time at which the plan was loaded for a relative one
(a relative plan starts when it is loaded). Requests (``now``, ``expiry_s``) go in converted, decisions
(``WaitUntil.at_s``, arrival times) come out converted, so the agent never sees plan time.

CGR is asked first; when it finds no route (no plan, a non-ipn destination, no contact towards the destination)
the static rules are asked. Bookings come only from CGR and go back to it.

``contact_windows(node)`` gives the runtime (``dtn.contact_schedule``) the windows in which this node has contacts
to a neighbour, on DTN time, so that links open and close with the plan. ``contact_missed``/``contact_over``
let the runtime tell CGR that a neighbour's current contact is lost (routes through it are skipped until
the contact is over) and that the next contact is a fresh chance.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dtn.bundle.eid import Eid, IpnEid
from dtn.routing.base import (
    Booking,
    ForwardNow,
    NoRoute,
    Priority,
    RouteDecision,
    RouteRequest,
    WaitUntil,
)
from dtn.routing.cgr_router import CgrConfig, CgrRouter, RouteInfo
from dtn.routing.contacts import ContactPlan
from dtn.routing.static import StaticRouter


@dataclass(frozen=True, slots=True)
class ContactWindow:
    """A time during which this node may send to ``neighbour`` (node number), on DTN time: ``[start_ms,
    end_ms)`` at ``rate_bytes_per_s`` (bytes per DTN second)."""

    neighbour: int
    start_ms: int
    end_ms: int
    rate_bytes_per_s: float


def plan_origin_dtn_ms(plan: ContactPlan, loaded_dtn_ms: int) -> int:
    """DTN time of plan time 0: the plan's epoch, or for a relative plan the moment it was loaded."""
    return plan.epoch_dtn_ms if plan.epoch_dtn_ms is not None else loaded_dtn_ms


def merge_windows(windows: list[ContactWindow]) -> list[ContactWindow]:
    """Windows of one neighbour sorted by start; overlapping or touching windows at the same rate merge."""
    out: list[ContactWindow] = []
    for w in sorted(windows, key=lambda w: (w.start_ms, w.end_ms)):
        last = out[-1] if out else None
        if last is not None and w.start_ms <= last.end_ms and w.rate_bytes_per_s == last.rate_bytes_per_s:
            if w.end_ms > last.end_ms:
                out[-1] = ContactWindow(last.neighbour, last.start_ms, w.end_ms, last.rate_bytes_per_s)
            continue
        out.append(w)
    return out


class PlanRouter:
    """A ``Router`` (see ``dtn.routing.base``) for the node ``local``: CGR first, then ``static``."""

    def __init__(self, local: Eid, static: StaticRouter, *, config: CgrConfig | None = None) -> None:
        self.local = local
        self.static = static
        self.config = config or CgrConfig()
        self.plan: ContactPlan | None = None
        self.cgr: CgrRouter | None = None
        self.origin_dtn_ms = 0
        self._last_dtn_ms = 0

    # -- loading ---------------------------------------------------------------------------------------------

    def load(self, plan: ContactPlan, dtn_ms: int) -> None:
        """Route over ``plan`` from now on; a relative plan's time 0 is ``dtn_ms``."""
        self._last_dtn_ms = max(self._last_dtn_ms, dtn_ms)
        self.plan = plan
        self.origin_dtn_ms = plan_origin_dtn_ms(plan, dtn_ms)
        if not isinstance(self.local, IpnEid):
            return  # CGR routes between ipn nodes; a dtn:// node keeps its static rules
        if self.cgr is None:
            self.cgr = CgrRouter(self.local.node, plan, self.config)
        else:
            self.cgr.plan_changed(plan)

    @property
    def cgr_enabled(self) -> bool:
        return self.cgr is not None

    # -- time mapping ----------------------------------------------------------------------------------------

    def to_plan_s(self, dtn_s: float) -> float:
        return (round(dtn_s * 1000) - self.origin_dtn_ms) / 1000

    def to_dtn_ms(self, plan_s: float) -> int:
        """Plan time → DTN ms, rounded up (a wake-up never comes before the contact starts)."""
        if math.isinf(plan_s):
            return 1 << 62
        return self.origin_dtn_ms + math.ceil(plan_s * 1000 - 1e-6)

    def _to_dtn_s(self, plan_s: float | None) -> float | None:
        if plan_s is None:
            return None
        # +0.5 ms: the agent truncates at_s * 1000 to an integer; this keeps it on the intended millisecond.
        return (self.to_dtn_ms(plan_s) + 0.5) / 1000

    # -- Router protocol -------------------------------------------------------------------------------------

    def route(self, request: RouteRequest, now: float) -> RouteDecision:
        self._last_dtn_ms = max(self._last_dtn_ms, round(now * 1000))
        cgr_answer: NoRoute | None = None
        if self.cgr is not None:
            planned = RouteRequest(
                request.destination,
                request.size_bytes,
                self.to_plan_s(request.expiry_s),
                request.priority,
                request.excluded_nodes,
            )
            decision = self.cgr.route(planned, self.to_plan_s(now))
            if isinstance(decision, ForwardNow):
                return ForwardNow(decision.neighbour, decision.booking, self._to_dtn_s(decision.arrival_s))
            if isinstance(decision, WaitUntil):
                at_s = self._to_dtn_s(decision.at_s)
                assert at_s is not None
                return WaitUntil(at_s, decision.neighbour, decision.booking, self._to_dtn_s(decision.arrival_s))
            cgr_answer = decision
        fallback = self.static.route(request, now)
        if isinstance(fallback, NoRoute) and cgr_answer is not None:
            if not self.static.rules:
                return cgr_answer
            return NoRoute(cgr_answer.reason, f"{cgr_answer.detail}; static rules: {fallback.detail}")
        return fallback

    def link_changed(self, neighbour: Eid, up: bool, now: float) -> None:
        self._last_dtn_ms = max(self._last_dtn_ms, round(now * 1000))
        self.static.link_changed(neighbour, up, now)
        if self.cgr is not None:
            self.cgr.link_changed(neighbour, up, self.to_plan_s(now))

    def plan_changed(self, plan: ContactPlan) -> None:
        """Router protocol: a relative plan starts at the latest time this router was told of."""
        self.load(plan, self._last_dtn_ms)

    def sent(self, booking: Booking) -> None:
        if self.cgr is not None:
            self.cgr.sent(booking)

    def release(self, booking: Booking) -> None:
        if self.cgr is not None:
            self.cgr.release(booking)

    # -- contacts for the runtime ----------------------------------------------------------------------------

    def contact_missed(self, neighbour: Eid) -> None:
        """The link of a contact that should be up could not be opened: CGR skips routes through it until the
        contact is over (``contact_over``)."""
        if self.cgr is not None:
            self.cgr.link_changed(neighbour, False, 0.0)

    def contact_over(self, neighbour: Eid) -> None:
        """The contact ended as planned (or a new one is starting): the next contact is not missed."""
        if self.cgr is not None:
            self.cgr.link_changed(neighbour, True, 0.0)

    def scheduled_neighbours(self) -> set[int]:
        """Node numbers this node has contacts to in the plan."""
        if self.plan is None or not isinstance(self.local, IpnEid):
            return set()
        me = self.local.node
        return {c.to_node for c in self.plan.contacts if c.from_node == me and c.to_node != me}

    def contact_windows(self, neighbour: int) -> list[ContactWindow]:
        """This node's contacts to ``neighbour`` as DTN-time windows, merged, by start time."""
        if self.plan is None or not isinstance(self.local, IpnEid):
            return []
        me = self.local.node
        found = [
            ContactWindow(neighbour, self.to_dtn_ms(c.start_s), self.to_dtn_ms(c.end_s), c.rate_bytes_per_s)
            for c in self.plan.contacts
            if c.from_node == me and c.to_node == neighbour
        ]
        return merge_windows(found)

    # -- queries for people ----------------------------------------------------------------------------------

    def routes(
        self, destination: int, at_dtn_ms: int, *, count: int = 5, size_bytes: int = 0,
        priority: Priority = Priority.STANDARD,
    ) -> list[RouteInfo]:
        """The ranked CGR routes to ``destination`` at ``at_dtn_ms`` (no booking); [] without a plan."""
        if self.cgr is None:
            return []
        return self.cgr.routes(destination, (at_dtn_ms - self.origin_dtn_ms) / 1000, count=count,
                               size_bytes=size_bytes, priority=priority)


def route_info_to_json(info: RouteInfo, origin_dtn_ms: int | None = None) -> dict[str, Any]:
    """A ranked route as JSON: times in plan seconds, and in DTN ms when the plan's origin is known."""
    r = info.route
    doc: dict[str, Any] = {
        "next_hop": f"ipn:{r.entry_node}.0",
        "nodes": [f"ipn:{n}.0" for n in r.nodes],
        "hops": r.hop_count,
        "arrival_s": r.arrival_s,
        "projected_arrival_s": info.projected_arrival_s,
        "from_s": r.from_s,
        "to_s": r.to_s,
        "capacity_bytes": info.capacity_bytes,
        "confidence": r.confidence,
        "contacts": [
            {"from": c.from_node, "to": c.to_node, "start_s": c.start_s, "end_s": c.end_s,
             "rate_bytes_per_s": c.rate_bytes_per_s}
            for c in r.hops
        ],
    }
    if origin_dtn_ms is not None:
        doc["arrival_dtn_ms"] = origin_dtn_ms + round(r.arrival_s * 1000)
        if info.projected_arrival_s is not None:
            doc["projected_arrival_dtn_ms"] = origin_dtn_ms + round(info.projected_arrival_s * 1000)
    return doc
