"""Static routing: ordered rules ``destination pattern -> neighbour node ID``, first match wins.

Patterns are EID text with shell wildcards: ``ipn:9.*`` (every service of node 9), ``ipn:9.1``, ``dtn://mars/*``,
``*`` (default route). A rule whose neighbour is excluded for the bundle (the node it came from) or whose link is
known to be down is skipped; when no rule is left the answer is NoRoute (6).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from dtn.bundle.eid import Eid, parse_eid
from dtn.bundle.reasons import StatusReason
from dtn.routing.base import Booking, ForwardNow, NoRoute, RouteDecision, RouteRequest
from dtn.routing.contacts import ContactPlan


@dataclass(frozen=True, slots=True)
class StaticRule:
    pattern: str
    via: Eid

    def matches(self, destination: Eid) -> bool:
        return fnmatchcase(str(destination), self.pattern)


def rule(pattern: str, via: str | Eid) -> StaticRule:
    """A rule from text: ``rule("ipn:9.*", "ipn:3.0")``."""
    return StaticRule(pattern.strip(), parse_eid(via) if isinstance(via, str) else via)


class StaticRouter:
    def __init__(self, rules: Iterable[StaticRule]) -> None:
        self.rules = tuple(rules)
        self._down: set[Eid] = set()

    def route(self, request: RouteRequest, now: float) -> RouteDecision:
        matched = False
        for r in self.rules:
            if not r.matches(request.destination):
                continue
            matched = True
            if r.via in request.excluded_nodes or r.via in self._down:
                continue
            return ForwardNow(r.via)
        detail = "every matching rule's neighbour is excluded or down" if matched else "no rule matches"
        return NoRoute(StatusReason.NO_ROUTE, f"{detail}: {request.destination}")

    def link_changed(self, neighbour: Eid, up: bool, now: float) -> None:
        if up:
            self._down.discard(neighbour)
        else:
            self._down.add(neighbour)

    def plan_changed(self, plan: ContactPlan) -> None:
        """Static routes ignore contact plans."""

    def sent(self, booking: Booking) -> None:
        """Static routes book nothing."""

    def release(self, booking: Booking) -> None:
        """Static routes book nothing."""
