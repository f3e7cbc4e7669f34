"""One entry point for every plan format: pick the reader or writer by name or by file name and content.
Pure: takes and returns text (the CLI and the node read and write the files)."""

from __future__ import annotations

import re
from collections.abc import Callable

from dtn.routing.contacts import ContactPlan, PlanError
from dtn.routing.plan_hdtn import read_hdtn, write_hdtn
from dtn.routing.plan_ion import read_ion, write_ion
from dtn.routing.plan_json import read_json, write_json
from dtn.routing.plan_toml import read_toml, write_toml

#: Format names: ``toml`` and ``json`` (ours), ``ion`` (ionadmin .rc commands), ``hdtn`` (HDTN JSON).
FORMATS = ("toml", "json", "ion", "hdtn")

_READERS: dict[str, Callable[..., ContactPlan]] = {
    "toml": read_toml,
    "json": read_json,
    "ion": read_ion,
    "hdtn": read_hdtn,
}
_WRITERS: dict[str, Callable[[ContactPlan], str]] = {
    "toml": write_toml,
    "json": write_json,
    "ion": write_ion,
    "hdtn": write_hdtn,
}


_TOML_KEY = re.compile(r"^[A-Za-z0-9_\-\.\"]+\s*=")


def detect_format(name: str, text: str = "") -> str:
    """The format of a file from its name (``.toml``, ``.rc``/``.ionrc``, ``.json``) and, for JSON, its content
    (HDTN's contacts have ``source``/``dest``, ours ``from``/``to``)."""
    lower = name.lower()
    if lower.endswith(".toml"):
        return "toml"
    if lower.endswith((".rc", ".ionrc", ".ion")):
        return "ion"
    if lower.endswith(".json"):
        head = text[:4096]
        if '"source"' in head or '"rateBitsPerSec"' in head:
            return "hdtn"
        return "json"
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "hdtn" if '"source"' in stripped[:4096] else "json"
    for line in stripped.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue  # comments look the same in TOML and ION .rc
        if line.startswith("[") or _TOML_KEY.match(line):
            return "toml"
        if line.startswith(("a ", "@", "m ", "d ", "r ", "s ", "x ", "1 ", "+")):
            return "ion"
        break
    raise PlanError("cannot tell the plan format from the name; give one of " + ", ".join(FORMATS), source=name)


def parse_plan(text: str, fmt: str | None = None, *, source: str = "<plan>") -> ContactPlan:
    fmt = fmt or detect_format(source, text)
    reader = _READERS.get(fmt)
    if reader is None:
        raise PlanError(f"unknown plan format {fmt!r} (known: {', '.join(FORMATS)})", source=source)
    return reader(text, source=source)


def format_plan(plan: ContactPlan, fmt: str) -> str:
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise PlanError(f"unknown plan format {fmt!r} (known: {', '.join(FORMATS)})")
    return writer(plan)
