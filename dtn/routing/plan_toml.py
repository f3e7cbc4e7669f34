"""Our contact-plan format in TOML (reader and writer).

    epoch = "2025-01-01T00:00:00Z"      # optional: the DTN time of plan time 0 (absent: a relative plan)

    [[contact]]
    from = 1                            # ipn node numbers (or "ipn:1")
    to = 2
    start_s = 0                         # seconds on the plan timeline; the window is [start_s, end_s)
    end_s = 100
    rate_bytes_per_s = 1000
    confidence = 1.0                    # optional, (0, 1]

    [[range]]
    from = 1
    to = 2
    start_s = 0
    end_s = 300
    owlt_s = 1                          # one-way light time; from < to also serves to -> from (ION rule)
"""

from __future__ import annotations

import tomllib
from typing import Any

from dtn.routing.contacts import ContactPlan, PlanError, format_number
from dtn.routing.plan_fields import (
    contact_from_record,
    dtn_ms_to_iso,
    failer,
    iso_to_dtn_ms,
    range_from_record,
    toml_locator,
)

CONTACT_FIELDS = {
    "from_node": "from",
    "to_node": "to",
    "start_s": "start_s",
    "end_s": "end_s",
    "rate_bytes_per_s": "rate_bytes_per_s",
    "confidence": "confidence",
}
RANGE_FIELDS = {"from_node": "from", "to_node": "to", "start_s": "start_s", "end_s": "end_s", "owlt_s": "owlt_s"}
TOP_KEYS = {"epoch", "contact", "range", "format"}


def plan_from_document(
    doc: Any, *, source: str, contact_locate: Any, range_locate: Any, epoch_line: int | None = None
) -> ContactPlan:
    """Shared by the TOML and JSON readers: the parsed document (dict) → ContactPlan."""
    if not isinstance(doc, dict):
        raise PlanError("the plan must be a table/object at the top level", source=source)
    unknown = sorted(set(doc) - TOP_KEYS - {"contacts", "ranges"})
    if unknown:
        raise PlanError(f"unknown key (expected epoch, contact, range): {unknown[0]!r}", source=source,
                        field=unknown[0])
    epoch = None
    if "epoch" in doc:
        value = doc["epoch"]
        try:
            if not isinstance(value, str):
                raise ValueError
            epoch = iso_to_dtn_ms(value)
        except ValueError:
            raise PlanError(f"must be an ISO 8601 UTC time such as 2025-01-01T00:00:00Z, got {value!r}",
                            source=source, line=epoch_line, field="epoch") from None
    contacts_raw: Any = doc.get("contact", doc.get("contacts", []))
    ranges_raw: Any = doc.get("range", doc.get("ranges", []))
    for name, value in (("contact", contacts_raw), ("range", ranges_raw)):
        if not isinstance(value, list):
            raise PlanError(f"must be a list of tables/objects, got {type(value).__name__}", source=source,
                            field=name)
    contacts = tuple(
        contact_from_record(rec, failer(source, "contact", i, contact_locate), CONTACT_FIELDS)
        for i, rec in enumerate(contacts_raw)
    )
    ranges = tuple(
        range_from_record(rec, failer(source, "range", i, range_locate), RANGE_FIELDS)
        for i, rec in enumerate(ranges_raw)
    )
    return ContactPlan(contacts, ranges, epoch)


def read_toml(text: str, *, source: str = "<plan.toml>") -> ContactPlan:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"not valid TOML: {exc}", source=source) from None
    epoch_line = None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("epoch"):
            epoch_line = number
            break
    return plan_from_document(
        doc,
        source=source,
        contact_locate=toml_locator(text, "contact"),
        range_locate=toml_locator(text, "range"),
        epoch_line=epoch_line,
    )


def write_toml(plan: ContactPlan) -> str:
    out = ["# dtn contact plan: times in seconds on the plan timeline, rates in bytes/s, OWLT in seconds"]
    if plan.epoch_dtn_ms is not None:
        out.append(f'epoch = "{dtn_ms_to_iso(plan.epoch_dtn_ms)}"')
    for c in plan.contacts:
        out.append("")
        out.append("[[contact]]")
        out.append(f"from = {c.from_node}")
        out.append(f"to = {c.to_node}")
        out.append(f"start_s = {format_number(c.start_s)}")
        out.append(f"end_s = {format_number(c.end_s)}")
        out.append(f"rate_bytes_per_s = {format_number(c.rate_bytes_per_s)}")
        if c.confidence != 1.0:
            out.append(f"confidence = {format_number(c.confidence)}")
    for r in plan.ranges:
        out.append("")
        out.append("[[range]]")
        out.append(f"from = {r.from_node}")
        out.append(f"to = {r.to_node}")
        out.append(f"start_s = {format_number(r.start_s)}")
        out.append(f"end_s = {format_number(r.end_s)}")
        out.append(f"owlt_s = {format_number(r.owlt_s)}")
    return "\n".join(out) + "\n"
