"""What the application interface puts on the wire, shared by the server and the client: header names, the
JSON form of status reports, address and duration parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from dtn.bundle.admin import StatusReport
from dtn.bundle.reasons import StatusReason

#: Address of the API when neither ``--api`` nor ``DTN_API`` says otherwise.
DEFAULT_API_ADDRESS = "127.0.0.1:4242"
API_ENV = "DTN_API"
TOKEN_ENV = "DTN_API_TOKEN"
PREFIX = "/v1"

#: Headers of a delivery (``GET /v1/deliveries``); the file name is percent-encoded UTF-8.
H_BUNDLE_ID = "Dtn-Bundle-Id"
H_SOURCE = "Dtn-Source"
H_ENDPOINT = "Dtn-Endpoint"
H_CREATION_MS = "Dtn-Creation-Ms"
H_FILE_NAME = "Dtn-File-Name"

REPORT_KINDS = ("received", "forwarded", "delivered", "deleted")
PRIORITIES = {"bulk": 0, "normal": 1, "expedited": 2}


@dataclass(frozen=True, slots=True)
class Delivery:
    """A bundle handed to an application. Acknowledge it (``DtnClient.acknowledge``) once it is safe."""

    bundle_id: str
    endpoint: str
    source: str
    creation_ms: int
    file_name: str | None
    payload: bytes
    #: A large payload received with ``receive(spool_dir=...)``: the file holding it (``payload`` is then empty);
    #: the application moves or removes it.
    payload_path: Path | None = None
    payload_bytes: int | None = None

    @property
    def size_bytes(self) -> int:
        return self.payload_bytes if self.payload_bytes is not None else len(self.payload)


def encode_file_name(name: str) -> str:
    return quote(name, safe="")


def decode_file_name(value: str | None) -> str | None:
    return None if value is None or value == "" else unquote(value)


def report_to_json(report: StatusReport) -> dict[str, Any]:
    """The JSON form of a status report (``GET /v1/reports``)."""
    out: dict[str, Any] = {"subject": str(report.subject_id())}
    for kind in REPORT_KINDS:
        item = getattr(report, kind)
        out[kind] = {"asserted": item.asserted, "time_ms": item.time_ms}
    code = int(report.reason)
    out["reason_code"] = code
    try:
        out["reason"] = StatusReason(code).name.lower()
    except ValueError:
        out["reason"] = f"unknown-{code}"
    return out


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_duration_ms(text: str) -> int:
    """``90`` (seconds), ``500ms``, ``30s``, ``10m``, ``1h``, ``2d``, ``1w`` → milliseconds (> 0)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 10m, 1h, 2d)")
    value_ms = float(match.group(1)) * _UNIT_MS[match.group(2) or "s"]
    if value_ms < 1:
        raise ValueError(f"duration must be at least 1 ms: {text!r}")
    return int(value_ms)


def split_bind(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:4242`` for IPv6) → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536 or not host:
        raise ValueError(f"not an API address: {address!r} (HOST:PORT, e.g. 127.0.0.1:4242, or unix:PATH)")
    return host.strip("[]"), int(port)
