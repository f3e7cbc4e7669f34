"""Which status reports a bundle asked for (RFC 9171 §5, §6.1) and the report records about it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dtn.bundle.admin import StatusReport
from dtn.bundle.admin_bundles import status_report_for
from dtn.bundle.blocks import PrimaryBlock
from dtn.bundle.flags import BundleFlag
from dtn.bundle.reasons import StatusReason


class StatusKind(Enum):
    RECEIVED = "received"
    FORWARDED = "forwarded"
    DELIVERED = "delivered"
    DELETED = "deleted"


REQUEST_FLAG = {
    StatusKind.RECEIVED: BundleFlag.REPORT_RECEPTION,
    StatusKind.FORWARDED: BundleFlag.REPORT_FORWARDING,
    StatusKind.DELIVERED: BundleFlag.REPORT_DELIVERY,
    StatusKind.DELETED: BundleFlag.REPORT_DELETION,
}


@dataclass(frozen=True, slots=True)
class Subject:
    """What a report needs to know of its subject bundle (kept small: no payload)."""

    primary: PrimaryBlock
    payload_length: int

    @property
    def wants_reports(self) -> bool:
        """RFC 9171 §6.1: never about anonymous bundles or administrative records, and only to a real EID."""
        p = self.primary
        return not (p.source.is_null or p.is_admin_record or p.report_to.is_null)

    def requested(self, kind: StatusKind) -> bool:
        return self.wants_reports and bool(self.primary.flags & REQUEST_FLAG[kind])


def report_about(subject: Subject, kind: StatusKind, reason: StatusReason, time_ms: int) -> StatusReport:
    """A report asserting ``kind`` about ``subject``; the time goes in when the subject asked for it."""
    asserted = {kind.value: True}
    return status_report_for(subject.primary, subject.payload_length, time_ms=time_ms, reason=reason, **asserted)
