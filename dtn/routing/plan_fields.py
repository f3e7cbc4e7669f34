"""Shared pieces of the plan readers: field validation into Contact/Range, epoch text, and finding the line of a
field in TOML or JSON text (tomllib and json give no positions, so errors look the line up afterwards)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from dtn.routing.contacts import Contact, PlanError, Range, validate_contact, validate_range

_DTN_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: Seconds from the UNIX epoch to the DTN epoch (2000-01-01T00:00:00Z).
DTN_EPOCH_UNIX_S = 946_684_800

#: Locates a field: (index of the record, field name) -> line number or None.
Locator = Callable[[int, str], "int | None"]


def datetime_to_dtn_ms(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _DTN_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def iso_to_dtn_ms(text: str) -> int:
    cleaned = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    when = datetime.fromisoformat(cleaned)
    return datetime_to_dtn_ms(when)


def dtn_ms_to_iso(dtn_ms: int) -> str:
    seconds, ms = divmod(dtn_ms, 1000)
    when = datetime.fromtimestamp(seconds + DTN_EPOCH_UNIX_S, tz=UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms:03d}Z" if ms else f"{text}Z"


def _number(record: Mapping[str, Any], name: str, fail: Callable[[str, str], PlanError], default: Any = None) -> float:
    if name not in record:
        if default is not None:
            return float(default)
        raise fail(name, "missing")
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(name, f"must be a number, got {value!r}")
    return float(value)


def _node(record: Mapping[str, Any], name: str, fail: Callable[[str, str], PlanError]) -> int:
    if name not in record:
        raise fail(name, "missing")
    value = record[name]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("ipn:"):
            text = text[4:]
            if text.endswith(".0"):
                text = text[:-2]
        if text.isdigit():
            return int(text)
        raise fail(name, f"must be an ipn node number or 'ipn:N', got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(name, f"must be an ipn node number, got {value!r}")
    return value


def failer(source: str, kind: str, index: int, locate: Locator | None) -> Callable[[str, str], PlanError]:
    def fail(name: str, message: str) -> PlanError:
        line = locate(index, name) if locate is not None else None
        return PlanError(message, source=source, line=line, field=f"{kind}[{index}].{name}")

    return fail


def contact_from_record(record: Any, fail: Callable[[str, str], PlanError], names: Mapping[str, str]) -> Contact:
    """A Contact from a mapping; ``names`` maps our field names to the format's (from, to, start, end, rate...)."""
    if not isinstance(record, Mapping):
        raise fail("", f"must be a table/object, got {type(record).__name__}")
    contact = Contact(
        from_node=_node(record, names["from_node"], fail),
        to_node=_node(record, names["to_node"], fail),
        start_s=_number(record, names["start_s"], fail),
        end_s=_number(record, names["end_s"], fail),
        rate_bytes_per_s=_number(record, names["rate_bytes_per_s"], fail),
        confidence=_number(record, names["confidence"], fail, 1.0),
    )
    problem = validate_contact(contact)
    if problem is not None:
        field_name, _, message = problem.partition(": ")
        raise fail(names.get(field_name, field_name), message)
    return contact


def range_from_record(record: Any, fail: Callable[[str, str], PlanError], names: Mapping[str, str]) -> Range:
    if not isinstance(record, Mapping):
        raise fail("", f"must be a table/object, got {type(record).__name__}")
    rng = Range(
        from_node=_node(record, names["from_node"], fail),
        to_node=_node(record, names["to_node"], fail),
        start_s=_number(record, names["start_s"], fail),
        end_s=_number(record, names["end_s"], fail),
        owlt_s=_number(record, names["owlt_s"], fail),
    )
    problem = validate_range(rng)
    if problem is not None:
        field_name, _, message = problem.partition(": ")
        raise fail(names.get(field_name, field_name), message)
    return rng


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def toml_locator(text: str, table: str) -> Locator:
    """Line of ``field`` inside the index-th ``[[table]]`` of TOML text."""

    def locate(index: int, name: str) -> int | None:
        headers = [m.start() for m in re.finditer(rf"(?m)^\s*\[\[\s*{re.escape(table)}\s*\]\]", text)]
        if index >= len(headers):
            return None
        start = headers[index]
        end = headers[index + 1] if index + 1 < len(headers) else len(text)
        nxt = re.compile(r"(?m)^\s*\[").search(text, start + 2)
        if nxt is not None and nxt.start() < end:
            end = nxt.start()
        m = re.compile(rf'(?m)^\s*"?{re.escape(name)}"?\s*=').search(text, start, end) if name else None
        return line_of(text, m.start() if m else start)

    return locate


def json_object_spans(text: str) -> dict[str, list[tuple[int, int]]]:
    """Offsets of every object inside each top-level array: ``{"contacts": [(start, end), ...], ...}``."""
    spans: dict[str, list[tuple[int, int]]] = {}
    stack: list[str] = []
    pending_key = ""
    array_key = ""
    obj_start = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if len(stack) == 1 and stack[0] == "{":
                pending_key = text[i + 1 : j]
            i = j + 1
            continue
        if ch in "{[":
            if ch == "[" and len(stack) == 1:
                array_key = pending_key
            if ch == "{" and len(stack) == 2 and stack[1] == "[":
                obj_start = i
            stack.append(ch)
        elif ch in "}]":
            if stack:
                stack.pop()
            if ch == "}" and len(stack) == 2 and stack[1] == "[":
                spans.setdefault(array_key, []).append((obj_start, i + 1))
        i += 1
    return spans


def json_locator(text: str, array: str) -> Locator:
    """Line of ``field`` inside the index-th object of the top-level array ``array`` (computed on first use)."""
    cache: dict[str, list[tuple[int, int]]] = {}

    def locate(index: int, name: str) -> int | None:
        if not cache:
            cache.update(json_object_spans(text))
            cache.setdefault("", [])
        spans = cache.get(array, [])
        if index >= len(spans):
            return None
        start, end = spans[index]
        pos = text.find(f'"{name}"', start, end) if name else -1
        return line_of(text, pos if pos >= 0 else start)

    return locate
