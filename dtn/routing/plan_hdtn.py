"""HDTN's contact-plan JSON: ``{"contacts": [{"contact", "source", "dest", "startTime", "endTime",
"rateBitsPerSec", "owlt"}, ...]}``.

Rates are bits/s (divided by 8 here), ``owlt`` is seconds and belongs to the contact: each contact becomes a
Contact plus a Range over the same window. Times are relative to when HDTN's router starts, or UNIX seconds
(``unix_times=True``; by default times from 10^9 on, i.e. after 2001-09-09, are taken as UNIX). A UNIX plan's
epoch is its earliest start (whole second), and its plan times are seconds from there.
"""

from __future__ import annotations

import json
from typing import Any

from dtn.routing.contacts import Contact, ContactPlan, PlanError, Range, RangeIndex, format_number
from dtn.routing.plan_fields import DTN_EPOCH_UNIX_S, contact_from_record, failer, json_locator

#: Times at or after this are taken as UNIX seconds when ``unix_times`` is not given.
UNIX_THRESHOLD_S = 1_000_000_000

_FIELDS = {
    "from_node": "source",
    "to_node": "dest",
    "start_s": "startTime",
    "end_s": "endTime",
    "rate_bytes_per_s": "rateBitsPerSec",
    "confidence": "confidence",
}


def read_hdtn(
    text: str, *, source: str = "<hdtn.json>", unix_times: bool | None = None, strict: bool = False
) -> ContactPlan:
    """HDTN's generated plans hold empty or inverted windows (``endTime <= startTime``); they are skipped with a
    note, or rejected with ``strict=True``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"not valid JSON: {exc.msg} (column {exc.colno})", source=source, line=exc.lineno) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("contacts"), list):
        raise PlanError("an HDTN plan is an object with a 'contacts' list", source=source, field="contacts")
    records: list[Any] = doc["contacts"]
    locate = json_locator(text, "contacts")

    contacts: list[Contact] = []
    owlts: list[float] = []
    skipped: list[int] = []
    for i, rec in enumerate(records):
        fail = failer(source, "contacts", i, locate)
        if not strict and isinstance(rec, dict) and _empty_window(rec):
            skipped.append(i)
            continue
        contact = contact_from_record(rec, fail, _FIELDS)
        owlt = rec.get("owlt", 0)
        if isinstance(owlt, bool) or not isinstance(owlt, int | float) or owlt < 0:
            raise fail("owlt", f"must be zero or a positive number of seconds, got {owlt!r}")
        contacts.append(contact)
        owlts.append(float(owlt))
    if unix_times is None:
        unix_times = bool(contacts) and min(c.start_s for c in contacts) >= UNIX_THRESHOLD_S
    epoch = None
    base = 0
    if unix_times and contacts:
        base = int(min(c.start_s for c in contacts) // 1)
        epoch = (base - DTN_EPOCH_UNIX_S) * 1000
    out_contacts = []
    out_ranges = []
    for c, owlt in zip(contacts, owlts, strict=True):
        start, end = c.start_s - base, c.end_s - base
        out_contacts.append(Contact(c.from_node, c.to_node, start, end, c.rate_bytes_per_s / 8, c.confidence))
        out_ranges.append(Range(c.from_node, c.to_node, start, end, owlt))
    notes: tuple[str, ...] = ()
    if skipped:
        first = ", ".join(str(i) for i in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        notes = (f"{source}: skipped {len(skipped)} contacts with endTime <= startTime (contacts[{first}])",)
    return ContactPlan(tuple(out_contacts), tuple(out_ranges), epoch, notes)


def _empty_window(rec: dict[str, Any]) -> bool:
    start, end = rec.get("startTime"), rec.get("endTime")
    numbers = (int, float)
    return isinstance(start, numbers) and isinstance(end, numbers) and end <= start


def write_hdtn(plan: ContactPlan, *, unix_times: bool | None = None) -> str:
    """HDTN JSON; UNIX times when the plan has an epoch (or ``unix_times``). Each contact's ``owlt`` is the range at
    its start; contacts without a range are left out (they are unusable, see ``unusable_contacts``)."""
    if unix_times is None:
        unix_times = plan.epoch_dtn_ms is not None
    if unix_times and plan.epoch_dtn_ms is None:
        raise PlanError("a relative plan cannot be written with UNIX times", field="epoch")
    base = plan.epoch_dtn_ms / 1000 + DTN_EPOCH_UNIX_S if unix_times and plan.epoch_dtn_ms is not None else 0
    index = RangeIndex(plan.ranges)
    rows = []
    number = 0
    for c in plan.contacts:
        owlt = index.owlt_s(c.from_node, c.to_node, c.start_s)
        if owlt is None:
            continue
        rec = (
            f'{{"contact": {number}, "source": {c.from_node}, "dest": {c.to_node}, '
            f'"startTime": {format_number(c.start_s + base)}, "endTime": {format_number(c.end_s + base)}, '
            f'"rateBitsPerSec": {format_number(c.rate_bytes_per_s * 8)}, "owlt": {format_number(owlt)}'
        )
        if c.confidence != 1.0:
            rec += f', "confidence": {format_number(c.confidence)}'
        rows.append("  " + rec + "}")
        number += 1
    return '{"contacts": [\n' + ",\n".join(rows) + "\n]}\n"


def unusable_contacts(plan: ContactPlan) -> list[Contact]:
    """Contacts no range covers at their start (ION suppresses them; HDTN cannot express them)."""
    index = RangeIndex(plan.ranges)
    return [c for c in plan.contacts if index.owlt_s(c.from_node, c.to_node, c.start_s) is None]
