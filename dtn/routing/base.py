"""The Router contract between the Bundle Protocol Agent and a routing algorithm (static or CGR).

The agent asks ``route(request, now)`` for each bundle to forward. The answer is one of

* ``ForwardNow(neighbour, booking)`` — hand the bundle to the link to ``neighbour`` now;
* ``WaitUntil(at_s, neighbour, booking)`` — keep the bundle in the store and transmit when the contact opens;
* ``NoRoute(reason, detail)`` — no usable route now; ``reason`` is the status-report reason
  (6 no known route, 7 no timely contact). The agent retries on ``link_changed``/``plan_changed`` or drops
  the bundle at expiry.

A ``Booking`` is the volume a router set aside for the bundle on its contacts. The agent must hand it back
exactly once: ``sent(booking)`` after the convergence layer transmitted the bundle (the contact volume stays
consumed, the neighbour's queue shrinks), or ``release(booking)`` when it was not sent (transmission failed,
contact missed, bundle deleted or re-routed): the volume returns to the contacts.

All times are seconds on the router's timeline (for CGR, the contact plan's timeline: see
``dtn.routing.contacts``). Routers are pure: no I/O, no clock reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from dtn.bundle.eid import Eid
from dtn.bundle.reasons import StatusReason
from dtn.routing.contacts import ContactPlan


class Priority(IntEnum):
    """Bundle priority classes as ION has them (RFC 9171 has none; the agent maps its QoS onto these)."""

    BULK = 0
    STANDARD = 1
    EXPEDITED = 2


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What a router needs to know about one bundle to forward.

    ``size_bytes`` is the encoded bundle size; ``expiry_s`` is when its lifetime ends (same timeline as ``now``);
    ``excluded_nodes`` are node IDs that must not be the next hop (the node the bundle came from, loop
    avoidance).
    """

    destination: Eid
    size_bytes: int
    expiry_s: float
    priority: Priority = Priority.STANDARD
    excluded_nodes: frozenset[Eid] = frozenset()


@dataclass(frozen=True, slots=True)
class Booking:
    """Volume set aside for one bundle: ``volume_bytes`` (estimated consumption, CL overhead included) on each
    contact in ``contact_ids`` (router-specific identifiers) of the plan generation ``generation``."""

    booking_id: int
    neighbour: Eid
    priority: Priority
    volume_bytes: int
    contact_ids: tuple[int, ...] = ()
    generation: int = 0


@dataclass(frozen=True, slots=True)
class ForwardNow:
    neighbour: Eid
    booking: Booking | None = None
    #: Projected arrival time at the destination, when the router knows it.
    arrival_s: float | None = None


@dataclass(frozen=True, slots=True)
class WaitUntil:
    at_s: float
    neighbour: Eid
    booking: Booking | None = None
    arrival_s: float | None = None


@dataclass(frozen=True, slots=True)
class NoRoute:
    reason: StatusReason = StatusReason.NO_ROUTE
    detail: str = field(default="")


RouteDecision = ForwardNow | WaitUntil | NoRoute


class Router(Protocol):
    def route(self, request: RouteRequest, now: float) -> RouteDecision:
        """Where the bundle goes next; a ForwardNow/WaitUntil may carry a Booking to hand back later."""
        ...

    def link_changed(self, neighbour: Eid, up: bool, now: float) -> None:
        """A link to ``neighbour`` came up or went down."""
        ...

    def plan_changed(self, plan: ContactPlan) -> None:
        """A new contact plan replaces the old one (route caches are discarded)."""
        ...

    def sent(self, booking: Booking) -> None:
        """The booked bundle was transmitted."""
        ...

    def release(self, booking: Booking) -> None:
        """The booked bundle was not transmitted: give the volume back."""
        ...
