"""The contact plan: scheduled contacts and one-way light times (ranges) between ipn nodes.

A plan is pure data. Its times are seconds (floats) on the **plan timeline**; plan time 0 is the plan's
``epoch_dtn_ms`` when the plan has absolute times (ION ``yyyy/mm/dd-hh:mm:ss`` or an ``@`` rebase, HDTN UNIX
times, an ``epoch`` in our TOML/JSON), so that plan time ``t`` is DTN time ``epoch_dtn_ms + 1000 * t``
(:func:`plan_time_from_dtn_ms`, :func:`dtn_ms_from_plan_time`). A plan without an epoch is relative: its time 0
is whatever the loader decides, normally the moment the node loads the plan. The router is always handed ``now``
and bundle expiry on this same timeline.

Contacts ``[start_s, end_s)`` are unidirectional; rates are bytes per second. Ranges give the OWLT of a pair
during ``[start_s, end_s)``, with ION's symmetry rule: a range declared from a lower to a higher node number also
serves the reverse direction unless the reverse direction has its own range at that time. A contact that no
range covers at its start is unusable (ION suppresses it).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

from dtn.errors import ConfigError

#: ION's relative-motion allowance: MAX_SPEED_MPH 450 000 → 125 miles/s against light's 186 282 miles/s.
_MARGIN_NUM = 125
_MARGIN_DEN = 186_282
#: How many earlier ranges of a pair a look-up examines (ranges of a pair may overlap a little).
_LOOKBACK = 64


class PlanError(ConfigError):
    """A contact plan that cannot be read: names the file (``source``), the line and the field."""

    def __init__(self, message: str, *, source: str = "<plan>", line: int | None = None, field: str = "") -> None:
        where = source if line is None else f"{source}:{line}"
        text = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        super().__init__(text)
        self.source = source
        self.line = line
        self.field = field


def owlt_margin_s(owlt_s: float) -> int:
    """ION's OWLT safety margin, integer seconds: ``(125 * owlt) // 186282`` (0 up to 1490 s, 1 at 1500 s)."""
    return (_MARGIN_NUM * int(owlt_s)) // _MARGIN_DEN


@dataclass(frozen=True, slots=True)
class Contact:
    """A transmission opportunity from ``from_node`` to ``to_node`` during ``[start_s, end_s)``."""

    from_node: int
    to_node: int
    start_s: float
    end_s: float
    rate_bytes_per_s: float
    confidence: float = 1.0

    @property
    def volume_bytes(self) -> float:
        return self.rate_bytes_per_s * (self.end_s - self.start_s)


@dataclass(frozen=True, slots=True)
class Range:
    """One-way light time ``owlt_s`` from ``from_node`` to ``to_node`` during ``[start_s, end_s)``."""

    from_node: int
    to_node: int
    start_s: float
    end_s: float
    owlt_s: float


def validate_contact(contact: Contact) -> str | None:
    """The first problem with a contact as ``"field: message"``, or None."""
    for name in ("from_node", "to_node"):
        value = getattr(contact, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 0xFFFF_FFFF:
            return f"{name}: must be an ipn node number from 1 to 2^32-1, got {value!r}"
    if not contact.end_s > contact.start_s:
        return f"end_s: must be after start_s ({contact.start_s}), got {contact.end_s}"
    if not contact.rate_bytes_per_s > 0:
        return f"rate_bytes_per_s: must be positive, got {contact.rate_bytes_per_s}"
    if not 0 < contact.confidence <= 1:
        return f"confidence: must be in (0, 1], got {contact.confidence}"
    return None


def validate_range(rng: Range) -> str | None:
    for name in ("from_node", "to_node"):
        value = getattr(rng, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 0xFFFF_FFFF:
            return f"{name}: must be an ipn node number from 1 to 2^32-1, got {value!r}"
    if not rng.end_s > rng.start_s:
        return f"end_s: must be after start_s ({rng.start_s}), got {rng.end_s}"
    if not rng.owlt_s >= 0:
        return f"owlt_s: must be zero or positive, got {rng.owlt_s}"
    return None


@dataclass(frozen=True)
class ContactPlan:
    """Contacts and ranges on one timeline; ``epoch_dtn_ms`` anchors plan time 0 (None: relative plan).

    ``notes`` are what a reader skipped (ignored commands, unusable contacts); they do not take part in equality.
    """

    contacts: tuple[Contact, ...] = ()
    ranges: tuple[Range, ...] = ()
    epoch_dtn_ms: int | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

    def nodes(self) -> list[int]:
        found = {c.from_node for c in self.contacts} | {c.to_node for c in self.contacts}
        found |= {r.from_node for r in self.ranges} | {r.to_node for r in self.ranges}
        return sorted(found)

    def range_index(self) -> RangeIndex:
        return RangeIndex(self.ranges)

    def sorted(self) -> ContactPlan:
        """The same plan with contacts and ranges in a canonical order (for comparisons and writers)."""
        return ContactPlan(
            tuple(sorted(self.contacts, key=_contact_key)),
            tuple(sorted(self.ranges, key=_range_key)),
            self.epoch_dtn_ms,
            self.notes,
        )

    def span_s(self) -> tuple[float, float] | None:
        if not self.contacts:
            return None
        return min(c.start_s for c in self.contacts), max(c.end_s for c in self.contacts)


def _contact_key(c: Contact) -> tuple[float, int, int, float]:
    return (c.start_s, c.from_node, c.to_node, c.end_s)


def _range_key(r: Range) -> tuple[float, int, int, float]:
    return (r.start_s, r.from_node, r.to_node, r.end_s)


class RangeIndex:
    """OWLT look-up by ordered pair and time, with ION's symmetry rule."""

    def __init__(self, ranges: Iterable[Range]) -> None:
        by_pair: dict[tuple[int, int], list[Range]] = {}
        for r in ranges:
            by_pair.setdefault((r.from_node, r.to_node), []).append(r)
        self._starts: dict[tuple[int, int], list[float]] = {}
        self._ranges: dict[tuple[int, int], list[Range]] = {}
        for pair, items in by_pair.items():
            items.sort(key=lambda r: r.start_s)
            self._ranges[pair] = items
            self._starts[pair] = [r.start_s for r in items]

    def _declared(self, from_node: int, to_node: int, at_s: float) -> float | None:
        pair = (from_node, to_node)
        starts = self._starts.get(pair)
        if starts is None:
            return None
        items = self._ranges[pair]
        i = bisect_right(starts, at_s) - 1
        # Ranges of a pair normally do not overlap; look a little further back in case an earlier one is longer.
        for j in range(i, max(i - _LOOKBACK, -1), -1):
            r = items[j]
            if r.start_s <= at_s < r.end_s:
                return r.owlt_s
        return None

    def owlt_s(self, from_node: int, to_node: int, at_s: float) -> float | None:
        """OWLT from ``from_node`` to ``to_node`` at ``at_s``, or None when no range applies."""
        owlt = self._declared(from_node, to_node, at_s)
        if owlt is None and to_node < from_node:
            owlt = self._declared(to_node, from_node, at_s)
        return owlt


def plan_time_from_dtn_ms(plan: ContactPlan, dtn_ms: int) -> float:
    """DTN time → plan time. A relative plan has no anchor: raise, the caller must pick its own origin."""
    if plan.epoch_dtn_ms is None:
        raise ValueError("this contact plan has relative times only; it has no DTN-time anchor")
    return (dtn_ms - plan.epoch_dtn_ms) / 1000


def dtn_ms_from_plan_time(plan: ContactPlan, plan_s: float) -> int:
    """Plan time → DTN time (needs an absolute plan)."""
    if plan.epoch_dtn_ms is None:
        raise ValueError("this contact plan has relative times only; it has no DTN-time anchor")
    return plan.epoch_dtn_ms + round(plan_s * 1000)


def format_number(value: float) -> str:
    """A plan number as text: integers without a decimal point, others as Python's shortest repr."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))
