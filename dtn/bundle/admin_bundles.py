"""Bundles that carry administrative records: status reports about a subject bundle, and their carriers.

Pure helpers (no clock): the caller passes the DTN time of the event and of the report's creation.
"""

from __future__ import annotations

from dtn.bundle.admin import AdminRecord, StatusItem, StatusReport, encode_admin_record
from dtn.bundle.blocks import PrimaryBlock, payload_block
from dtn.bundle.bundle import Bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import NULL_EID, Eid
from dtn.bundle.flags import BundleFlag
from dtn.bundle.reasons import StatusReason


def may_report_on(subject: Bundle) -> bool:
    """RFC 9171 §6.1: no status reports about anonymous bundles or about administrative records."""
    return not subject.primary.source.is_null and not subject.is_admin_record


def status_report_about(
    subject: Bundle,
    *,
    time_ms: int,
    received: bool = False,
    forwarded: bool = False,
    delivered: bool = False,
    deleted: bool = False,
    reason: StatusReason | int = StatusReason.NO_INFO,
) -> StatusReport:
    """A status report asserting the given statuses of ``subject`` at DTN time ``time_ms``."""
    return status_report_for(
        subject.primary,
        len(subject.payload),
        time_ms=time_ms,
        received=received,
        forwarded=forwarded,
        delivered=delivered,
        deleted=deleted,
        reason=reason,
    )


def status_report_for(
    primary: PrimaryBlock,
    payload_length: int,
    *,
    time_ms: int,
    received: bool = False,
    forwarded: bool = False,
    delivered: bool = False,
    deleted: bool = False,
    reason: StatusReason | int = StatusReason.NO_INFO,
) -> StatusReport:
    """A status report about the bundle with this primary block and payload length (no payload needed).

    Times go into the asserted items only when the subject set ``STATUS_TIME_REQUESTED``. For a fragment
    the report carries its offset and its payload length (RFC 9171 §6.1.1).
    """
    with_time = bool(primary.flags & BundleFlag.STATUS_TIME_REQUESTED)

    def item(asserted: bool) -> StatusItem:
        return StatusItem(asserted, time_ms if asserted and with_time else None)

    fragment = primary.fragment_offset is not None
    return StatusReport(
        source=primary.source,
        creation_ms=primary.creation_ms,
        sequence=primary.sequence,
        received=item(received),
        forwarded=item(forwarded),
        delivered=item(delivered),
        deleted=item(deleted),
        reason=reason,
        fragment_offset=primary.fragment_offset if fragment else None,
        fragment_length=payload_length if fragment else None,
    )


def admin_record_bundle(
    record: AdminRecord,
    *,
    source: Eid,
    destination: Eid,
    creation_ms: int,
    sequence: int = 0,
    lifetime_ms: int,
    report_to: Eid = NULL_EID,
    extra_flags: BundleFlag | int = 0,
    crc_type: CrcType = CrcType.CRC16_X25,
    payload_crc_type: CrcType = CrcType.NONE,
) -> Bundle:
    """A bundle whose payload is ``record``: flag ADMIN_RECORD, no report requests.

    The defaults are ION's: CRC-16 on the primary block, none on the payload block.
    """
    primary = PrimaryBlock(
        flags=BundleFlag(BundleFlag.ADMIN_RECORD | extra_flags),
        crc_type=crc_type,
        destination=destination,
        source=source,
        report_to=report_to,
        creation_ms=creation_ms,
        sequence=sequence,
        lifetime_ms=lifetime_ms,
    )
    return Bundle(primary, (payload_block(encode_admin_record(record), crc_type=payload_crc_type),))


def status_report_bundle(
    report: StatusReport,
    *,
    source: Eid,
    report_to: Eid,
    creation_ms: int,
    sequence: int = 0,
    lifetime_ms: int,
    crc_type: CrcType = CrcType.CRC16_X25,
) -> Bundle:
    """The bundle carrying ``report`` from ``source`` (our node ID) to the subject's ``report_to`` EID."""
    return admin_record_bundle(
        report,
        source=source,
        destination=report_to,
        creation_ms=creation_ms,
        sequence=sequence,
        lifetime_ms=lifetime_ms,
        crc_type=crc_type,
    )
