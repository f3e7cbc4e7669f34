"""Status-report bundles and administrative-record carriers, checked against the project vectors."""

from __future__ import annotations

from dtn.bundle.admin import BibePdu, StatusItem, StatusReport, decode_admin_record, encode_admin_record
from dtn.bundle.admin_bundles import admin_record_bundle, may_report_on, status_report_about, status_report_bundle
from dtn.bundle.codec import decode_bundle, encode_bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import IpnEid, parse_eid
from dtn.bundle.flags import REPORT_REQUEST_FLAGS, BundleFlag
from dtn.bundle.reasons import StatusReason
from tests.vector_data import VECTORS


def test_delivery_report_about_g2_matches_the_record_and_bundle_vectors() -> None:
    g2 = decode_bundle(VECTORS["gen-bundle-G2-ext"])
    assert g2.primary.flags & BundleFlag.STATUS_TIME_REQUESTED
    report = status_report_about(g2, time_ms=789004805000, delivered=True)
    assert encode_admin_record(report) == VECTORS["gen-status-report-record"]
    carrier = status_report_bundle(
        report,
        source=parse_eid("ipn:2.0"),
        report_to=g2.primary.report_to,
        creation_ms=789004805001,
        lifetime_ms=86_400_000,
    )
    raw = encode_bundle(carrier)
    assert raw == VECTORS["gen-status-report-bundle"]
    back = decode_bundle(raw)
    assert back.is_admin_record
    assert not back.primary.flags & REPORT_REQUEST_FLAGS
    assert back.primary.destination == IpnEid(1, 0)
    assert decode_admin_record(back.payload) == report


def test_report_about_a_fragment_carries_offset_and_payload_length_and_no_time() -> None:
    fragment = decode_bundle(VECTORS["gen-fragment-2"])
    report = status_report_about(fragment, time_ms=789004801234, received=True)
    assert report.received == StatusItem(True, None)  # the subject did not ask for times
    assert (report.fragment_offset, report.fragment_length) == (5, 6)
    assert encode_admin_record(report) == VECTORS["gen-status-report-fragment"]


def test_deletion_report_reason_and_times() -> None:
    g2 = decode_bundle(VECTORS["gen-bundle-G2-ext"])
    report = status_report_about(g2, time_ms=42, deleted=True, reason=StatusReason.HOP_LIMIT_EXCEEDED)
    assert report.deleted == StatusItem(True, 42)
    assert report.received == report.forwarded == report.delivered == StatusItem(False)
    assert report.reason == StatusReason.HOP_LIMIT_EXCEEDED
    assert decode_admin_record(encode_admin_record(report)) == report


def test_may_report_on() -> None:
    assert may_report_on(decode_bundle(VECTORS["gen-bundle-G1-minimal"]))
    assert not may_report_on(decode_bundle(VECTORS["gen-status-report-bundle"]))


def test_bibe_carrier_as_ion_builds_it() -> None:
    pdu = decode_admin_record(VECTORS["ion-bibe-bpdu"])
    assert isinstance(pdu, BibePdu)
    carrier = admin_record_bundle(
        pdu,
        source=parse_eid("ipn:1.0"),
        destination=parse_eid("ipn:2.0"),
        creation_ms=789004800010,
        lifetime_ms=7_204_000,
        extra_flags=BundleFlag.ION_BIBE | BundleFlag.STATUS_TIME_REQUESTED,
    )
    raw = encode_bundle(carrier)
    assert raw == VECTORS["ion-bibe-bpdu-bundle"]
    assert decode_admin_record(decode_bundle(raw).payload) == pdu


def test_admin_record_bundle_round_trips_with_crc32c() -> None:
    report = StatusReport(IpnEid(5, 1), 1, 2, forwarded=StatusItem(True))
    carrier = admin_record_bundle(
        report,
        source=IpnEid(3, 0),
        destination=IpnEid(5, 0),
        creation_ms=10,
        lifetime_ms=1000,
        crc_type=CrcType.CRC32C,
        payload_crc_type=CrcType.CRC32C,
    )
    back = decode_bundle(encode_bundle(carrier))
    assert back == carrier
    assert decode_admin_record(back.payload) == report
