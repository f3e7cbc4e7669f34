"""Our contact-plan format in JSON (reader and writer): the TOML model (see ``plan_toml``) as

    {"format": "dtn-contact-plan", "epoch": "2025-01-01T00:00:00Z",
     "contacts": [{"from": 1, "to": 2, "start_s": 0, "end_s": 100, "rate_bytes_per_s": 1000}, ...],
     "ranges": [{"from": 1, "to": 2, "start_s": 0, "end_s": 300, "owlt_s": 1}, ...]}
"""

from __future__ import annotations

import json
from typing import Any

from dtn.routing.contacts import ContactPlan, PlanError
from dtn.routing.plan_fields import dtn_ms_to_iso, json_locator, line_of
from dtn.routing.plan_toml import plan_from_document

FORMAT_TAG = "dtn-contact-plan"


def read_json(text: str, *, source: str = "<plan.json>") -> ContactPlan:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"not valid JSON: {exc.msg} (column {exc.colno})", source=source, line=exc.lineno) from None
    pos = text.find('"epoch"')
    return plan_from_document(
        doc,
        source=source,
        contact_locate=json_locator(text, "contacts"),
        range_locate=json_locator(text, "ranges"),
        epoch_line=line_of(text, pos) if pos >= 0 else None,
    )


def _compact(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(", ", ": "))


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def write_json(plan: ContactPlan) -> str:
    head: dict[str, Any] = {"format": FORMAT_TAG}
    if plan.epoch_dtn_ms is not None:
        head["epoch"] = dtn_ms_to_iso(plan.epoch_dtn_ms)
    lines = ["{" + _compact(head)[1:-1] + ","]
    contacts = []
    for c in plan.contacts:
        rec: dict[str, Any] = {"from": c.from_node, "to": c.to_node, "start_s": _num(c.start_s),
                               "end_s": _num(c.end_s), "rate_bytes_per_s": _num(c.rate_bytes_per_s)}
        if c.confidence != 1.0:
            rec["confidence"] = c.confidence
        contacts.append("  " + _compact(rec))
    ranges = [
        "  " + _compact({"from": r.from_node, "to": r.to_node, "start_s": _num(r.start_s), "end_s": _num(r.end_s),
                         "owlt_s": _num(r.owlt_s)})
        for r in plan.ranges
    ]
    lines.append(' "contacts": [' + ("\n" + ",\n".join(contacts) + "\n ]," if contacts else "],"))
    lines.append(' "ranges": [' + ("\n" + ",\n".join(ranges) + "\n ]" if ranges else "]"))
    lines.append("}")
    return "\n".join(lines) + "\n"
