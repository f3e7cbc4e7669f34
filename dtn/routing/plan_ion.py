"""ION's contact plan: the ``ionadmin`` commands ``a contact``, ``a range``, ``d contact``, ``d range`` and ``@``.

Times are ``+N`` (seconds after the reference time) or absolute ``yyyy/mm/dd-hh:mm:ss`` (UTC). The reference
time starts at plan time 0 and ``@ TIME`` moves it (``@ +1200`` is relative to the current reference, so the
``@ +N`` steps of a cyclic plan add up). The first absolute time seen becomes the plan's epoch (plan time 0);
relative times before it are taken as relative to that same 0. Rates are bytes/s, range distances are light
seconds (OWLT). Registration contacts (start -1) and hypothetical contacts (stop 0) carry no data and are
skipped; every other ionadmin command (``m horizon``, ``1``, ``s``, ``l contact``...) is ignored. Both are
reported in the plan's ``notes``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from dtn.routing.contacts import (
    Contact,
    ContactPlan,
    PlanError,
    Range,
    format_number,
    validate_contact,
    validate_range,
)
from dtn.routing.plan_fields import DTN_EPOCH_UNIX_S, datetime_to_dtn_ms

_ABSOLUTE = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})-(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.epoch_dtn_ms: int | None = None
        self.reference_s = 0.0
        self.contacts: list[Contact] = []
        self.ranges: list[Range] = []
        self.notes: list[str] = []
        self.line = 0

    def fail(self, field: str, message: str) -> PlanError:
        return PlanError(message, source=self.source, line=self.line, field=field)

    def time(self, token: str, field: str) -> float:
        if token.startswith("+"):
            try:
                return self.reference_s + float(token[1:])
            except ValueError:
                raise self.fail(field, f"not a relative time (+seconds): {token!r}") from None
        m = _ABSOLUTE.match(token)
        if m is None:
            raise self.fail(field, f"not a time: {token!r} (use +seconds or yyyy/mm/dd-hh:mm:ss)")
        year, month, day, hour, minute = (int(g) for g in m.groups()[:5])
        second = float(m.group(6))
        try:
            when = datetime(year, month, day, hour, minute, int(second), tzinfo=UTC)
        except ValueError as exc:
            raise self.fail(field, f"not a valid date: {token!r} ({exc})") from None
        dtn_ms = datetime_to_dtn_ms(when) + round((second - int(second)) * 1000)
        if self.epoch_dtn_ms is None:
            self.epoch_dtn_ms = dtn_ms
        return (dtn_ms - self.epoch_dtn_ms) / 1000

    def number(self, token: str, field: str) -> float:
        try:
            return float(token)
        except ValueError:
            raise self.fail(field, f"not a number: {token!r}") from None

    def node(self, token: str, field: str) -> int:
        if not token.isdigit() or not 0 < int(token) <= 0xFFFF_FFFF:
            raise self.fail(field, f"not an ipn node number: {token!r}")
        return int(token)

    def command(self, words: list[str], text: str) -> None:
        if words[0] == "@":
            if len(words) != 2:
                raise self.fail("@", "expected '@ TIME'")
            self.reference_s = self.time(words[1], "@ time")
            return
        if words[0] == "a" and len(words) > 1 and words[1] == "contact":
            self.add_contact(words[2:], text)
            return
        if words[0] == "a" and len(words) > 1 and words[1] == "range":
            self.add_range(words[2:])
            return
        if words[0] == "d" and len(words) > 1 and words[1] in ("contact", "range"):
            self.delete(words[1], words[2:])
            return
        self.notes.append(f"{self.source}:{self.line}: ignored (not part of the contact plan): {text}")

    def add_contact(self, args: list[str], text: str) -> None:
        if len(args) not in (5, 6):
            raise self.fail("a contact", "expected 'a contact START STOP FROM TO RATE [CONFIDENCE]'")
        if args[0] == "-1" or args[1] == "0":
            kind = "registration" if args[0] == "-1" else "hypothetical"
            self.notes.append(f"{self.source}:{self.line}: skipped {kind} contact (carries no data): {text}")
            return
        contact = Contact(
            from_node=self.node(args[2], "from"),
            to_node=self.node(args[3], "to"),
            start_s=self.time(args[0], "start"),
            end_s=self.time(args[1], "stop"),
            rate_bytes_per_s=self.number(args[4], "rate"),
            confidence=self.number(args[5], "confidence") if len(args) == 6 else 1.0,
        )
        problem = validate_contact(contact)
        if problem is not None:
            name, _, message = problem.partition(": ")
            raise self.fail({"end_s": "stop", "rate_bytes_per_s": "rate"}.get(name, name), message)
        self.contacts.append(contact)

    def add_range(self, args: list[str]) -> None:
        if len(args) != 5:
            raise self.fail("a range", "expected 'a range START STOP NODE OTHER OWLT'")
        rng = Range(
            from_node=self.node(args[2], "node"),
            to_node=self.node(args[3], "other node"),
            start_s=self.time(args[0], "start"),
            end_s=self.time(args[1], "stop"),
            owlt_s=self.number(args[4], "owlt"),
        )
        problem = validate_range(rng)
        if problem is not None:
            name, _, message = problem.partition(": ")
            raise self.fail({"end_s": "stop", "owlt_s": "owlt"}.get(name, name), message)
        self.ranges.append(rng)

    def delete(self, what: str, args: list[str]) -> None:
        if len(args) != 3:
            raise self.fail(f"d {what}", f"expected 'd {what} START|* FROM TO'")
        start = None if args[0] == "*" else self.time(args[0], "start")
        a, b = self.node(args[1], "from"), self.node(args[2], "to")
        if what == "contact":
            self.contacts = [
                c for c in self.contacts
                if not (c.from_node == a and c.to_node == b and (start is None or c.start_s == start))
            ]
        else:
            self.ranges = [
                r for r in self.ranges
                if not (r.from_node == a and r.to_node == b and (start is None or r.start_s == start))
            ]


def read_ion(text: str, *, source: str = "<plan.ionrc>") -> ContactPlan:
    reader = _Reader(source)
    for number, raw in enumerate(text.splitlines(), 1):
        reader.line = number
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        reader.command(line.split(), line)
    return ContactPlan(tuple(reader.contacts), tuple(reader.ranges), reader.epoch_dtn_ms, tuple(reader.notes))


def _absolute(dtn_ms: int) -> str:
    when = datetime.fromtimestamp(dtn_ms // 1000 + DTN_EPOCH_UNIX_S, tz=UTC)
    return when.strftime("%Y/%m/%d-%H:%M:%S")


def write_ion(plan: ContactPlan) -> str:
    """ionadmin commands for the plan: ``@`` at the epoch (if any), then ranges and contacts in ``+N`` times."""
    out = ["# dtn contact plan as ionadmin commands (rates in bytes/s, range distances in light seconds)"]
    times = [c.start_s for c in plan.contacts] + [r.start_s for r in plan.ranges]
    base = 0
    if times and min(times) < 0:
        base = int(min(times) // 1)
    if plan.epoch_dtn_ms is not None:
        out.append(f"@ {_absolute(plan.epoch_dtn_ms + base * 1000)}")
        if plan.epoch_dtn_ms % 1000:
            out.append("# note: the plan epoch had a fraction of a second; ION times are whole seconds")
    elif base:
        raise PlanError("a relative plan with negative times cannot be written as ION +N times", field="start_s")
    for r in plan.ranges:
        out.append(
            f"a range +{format_number(r.start_s - base)} +{format_number(r.end_s - base)} "
            f"{r.from_node} {r.to_node} {format_number(r.owlt_s)}"
        )
    for c in plan.contacts:
        line = (
            f"a contact +{format_number(c.start_s - base)} +{format_number(c.end_s - base)} "
            f"{c.from_node} {c.to_node} {format_number(c.rate_bytes_per_s)}"
        )
        if c.confidence != 1.0:
            line += f" {format_number(c.confidence)}"
        out.append(line)
    return "\n".join(out) + "\n"
