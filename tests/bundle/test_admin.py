"""Administrative records: vectors, round trips, and a decoder that fails only with DecodeError."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dtn.bundle.admin import (
    AdminRecord,
    AdminRecordType,
    BibeFlavour,
    BibePdu,
    CustodyDisposition,
    CustodySignal,
    StatusItem,
    StatusReport,
    UnknownAdminRecord,
    decode_admin_record,
    encode_admin_record,
)
from dtn.bundle.eid import DtnEid, IpnEid, parse_eid
from dtn.bundle.ids import BundleId
from dtn.bundle.reasons import StatusReason
from dtn.errors import DecodeError, EncodeError
from tests.vector_data import VECTORS

G1 = VECTORS["gen-bundle-G1-minimal"]
ADMIN_VECTORS = [
    n for n in VECTORS if n.startswith(("gen-status-report-", "ion-bibe-", "draft-bibect-")) and "bundle" not in n
]
U64 = 2**64 - 1


def test_admin_vectors_are_all_covered() -> None:
    assert sorted(ADMIN_VECTORS) == sorted(
        [
            "gen-status-report-record",
            "gen-status-report-fragment",
            "ion-bibe-bpdu",
            "ion-bibe-custody-signal",
            "draft-bibect-bpdu",
            "draft-bibect-custody-signal",
        ]
    )


@pytest.mark.parametrize("name", ADMIN_VECTORS)
def test_vector_reencodes_byte_exactly(name: str) -> None:
    data = VECTORS[name]
    assert encode_admin_record(decode_admin_record(data)) == data


def test_status_report_vector_meaning() -> None:
    report = decode_admin_record(VECTORS["gen-status-report-record"])
    assert report == StatusReport(
        source=IpnEid(1, 1),
        creation_ms=789004800000,
        sequence=7,
        delivered=StatusItem(True, 789004805000),
        reason=StatusReason.NO_INFO,
    )
    assert report.record_type == AdminRecordType.STATUS_REPORT
    assert [i.asserted for i in report.items] == [False, False, True, False]
    assert report.subject_id() == BundleId("ipn:1.1", 789004800000, 7)


def test_status_report_fragment_vector_meaning() -> None:
    report = decode_admin_record(VECTORS["gen-status-report-fragment"])
    assert isinstance(report, StatusReport)
    assert report.received == StatusItem(True, None)
    assert report.forwarded == report.delivered == report.deleted == StatusItem(False)
    assert (report.fragment_offset, report.fragment_length) == (5, 6)
    assert report.subject_id() == BundleId("ipn:1.1", 789004800000, 8, 5, 6)


def test_ion_total_adu_length_in_item_6_is_accepted() -> None:
    # ION writes the total ADU length (11) where RFC 9171 puts the fragment's payload length (6).
    ion = VECTORS["gen-status-report-fragment"][:-1] + b"\x0b"
    report = decode_admin_record(ion)
    assert isinstance(report, StatusReport)
    assert report.fragment_length == 11
    assert encode_admin_record(report) == ion


def test_ion_bibe_pdu_vector_meaning() -> None:
    pdu = decode_admin_record(VECTORS["ion-bibe-bpdu"])
    assert pdu == BibePdu(1, 1735693202, G1, BibeFlavour.ION)
    assert pdu.record_type == 7
    assert pdu.custody_requested
    # 1735693202 UNIX s = 2025-01-01T01:00:02Z = 789004800000 + 3602000 DTN ms
    assert pdu.deadline_dtn_ms == 789004800000 + 3_602_000


def test_draft_bibe_pdu_vector_meaning() -> None:
    pdu = decode_admin_record(VECTORS["draft-bibect-bpdu"])
    assert isinstance(pdu, BibePdu)
    assert (pdu.record_type, pdu.flavour, pdu.transmission_id, pdu.encapsulated) == (3, BibeFlavour.DRAFT, 1, G1)
    assert pdu.deadline == pdu.deadline_dtn_ms == 789004800000 + 3_602_000


@pytest.mark.parametrize(
    ("name", "flavour", "record_type"),
    [("ion-bibe-custody-signal", BibeFlavour.ION, 8), ("draft-bibect-custody-signal", BibeFlavour.DRAFT, 4)],
)
def test_custody_signal_vector_meaning(name: str, flavour: BibeFlavour, record_type: int) -> None:
    signal = decode_admin_record(VECTORS[name])
    assert signal == CustodySignal(CustodyDisposition.ACCEPTED, ((1, 3), (7, 1)), flavour)
    assert signal.record_type == record_type
    assert list(signal.transmission_ids()) == [1, 2, 3, 7]
    assert signal.is_success
    assert signal.covers(3) and signal.covers(7) and not signal.covers(4) and not signal.covers(8)
    assert CustodySignal.from_transmission_ids([7, 3, 1, 2, 2], flavour=flavour) == signal


def test_bibe_pdu_create_writes_the_flavours_units() -> None:
    deadline_ms = 789004800000 + 3_602_000
    ion = BibePdu.create(G1, transmission_id=1, deadline_dtn_ms=deadline_ms, flavour=BibeFlavour.ION)
    assert encode_admin_record(ion) == VECTORS["ion-bibe-bpdu"]
    draft = BibePdu.create(G1, transmission_id=1, deadline_dtn_ms=deadline_ms, flavour=BibeFlavour.DRAFT)
    assert encode_admin_record(draft) == VECTORS["draft-bibect-bpdu"]
    # ION's deadline is rounded up to the next whole second, never earlier than asked.
    assert BibePdu.create(G1, transmission_id=2, deadline_dtn_ms=deadline_ms + 1).deadline == 1735693203
    none = BibePdu.create(G1, transmission_id=0, deadline_dtn_ms=None)
    assert (none.deadline, none.deadline_dtn_ms, none.custody_requested) == (0, None, False)


def test_deadline_heuristic_reads_dtnme_dtn_epoch_seconds() -> None:
    assert BibePdu(1, 789008402, G1, BibeFlavour.DRAFT).deadline_dtn_ms == 789008402000


def test_unknown_reason_and_disposition_are_kept_as_int() -> None:
    report = StatusReport(DtnEid("//a/"), 0, 0, deleted=StatusItem(True), reason=200)
    again = decode_admin_record(encode_admin_record(report))
    assert again == report
    assert isinstance(again, StatusReport) and type(again.reason) is int
    signal = decode_admin_record(encode_admin_record(CustodySignal(42, ((5, 1),))))
    assert isinstance(signal, CustodySignal) and signal.disposition == 42 and not signal.is_success


def test_unknown_record_type_is_kept_not_rejected() -> None:
    data = bytes.fromhex("8219fc00") + cbor2.dumps({"a": [1.5, None, b"x"]})
    record = decode_admin_record(data)
    assert record == UnknownAdminRecord(64512, cbor2.dumps({"a": [1.5, None, b"x"]}))
    assert encode_admin_record(record) == data
    # ION's multicast briefing (5) and SAGA (6) records are unknown to us: ignored, not failed.
    assert decode_admin_record(b"\x82\x05\x80") == UnknownAdminRecord(5, b"\x80")


@pytest.mark.parametrize(
    ("hex_payload", "why"),
    [
        ("", "truncated"),
        ("8301018080", "three-item container"),
        ("a10101", "a map, not an array"),
        ("9f0180ff", "indefinite outer array"),
        ("820180", "empty status report"),
        ("8201858481f481f481f481f4008202820101820000", "5-item status report"),
        ("8201848381f481f481f4008202820101820000", "3 status items"),
        ("8201848481f481f481f48001008202820101820000", "status item of 0 items"),
        ("8201848481f481f481f481f6008202820101820000", "status item not a bool"),
        ("8201848481f481f481f481f4008203820101820000", "bad EID scheme"),
        ("8201848481f481f481f481f400820282010182000000", "trailing byte"),
        ("82078301015f41ff", "indefinite bstr"),
        ("820783010143ab", "bstr runs past the end"),
        ("8208820081820100", "range count 0"),
        ("8208820081820001", "transmission id 0"),
        ("8208820081830101", "range of 3 items"),
        ("82089b0000000000000001", "custody signal not an array"),
        ("8208820099ffff", "range array longer than input"),
        ("8218c89bffffffffffffffff", "huge unknown array"),
        ("8218c85fff", "unknown content: indefinite bstr without chunks is fine"),
        ("8218c8ff", "stray break"),
        ("8218c89f01", "indefinite array without break"),
        ("8218c8f818", "invalid two-byte simple value"),
        ("8218c8" + "81" * 100 + "00", "too deep"),
    ],
)
def test_bad_records_raise_decode_error(hex_payload: str, why: str) -> None:
    data = bytes.fromhex(hex_payload)
    if why.endswith("is fine"):
        assert decode_admin_record(data) == UnknownAdminRecord(200, data[3:])
        return
    with pytest.raises(DecodeError) as info:
        decode_admin_record(data)
    assert info.value.reason == StatusReason.BLOCK_UNINTELLIGIBLE


@pytest.mark.parametrize(
    "record",
    [
        StatusReport(IpnEid(1, 1), 0, 0, fragment_offset=3),
        StatusReport(IpnEid(1, 1), -1, 0),
        StatusReport(IpnEid(1, 1), 0, 0, received=StatusItem(True, 2**64)),
        CustodySignal(0, ((0, 1),)),
        CustodySignal(0, ((1, 0),)),
        BibePdu(-1, 0, b""),
        UnknownAdminRecord(1, b"\x80"),
        UnknownAdminRecord(200, b"\x01\x02"),
        UnknownAdminRecord(200, b""),
    ],
)
def test_unencodable_records_raise_encode_error(record: AdminRecord) -> None:
    with pytest.raises(EncodeError):
        encode_admin_record(record)


# --- properties ------------------------------------------------------------------------------------------

uints = st.one_of(st.integers(0, 30), st.integers(0, U64))
eids = st.one_of(
    st.builds(IpnEid, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.sampled_from([parse_eid("dtn:none"), parse_eid("dtn://node/app"), parse_eid("dtn://n.example/~grp")]),
)
status_items = st.builds(StatusItem, st.booleans(), st.none() | uints)
reasons = st.one_of(st.sampled_from(list(StatusReason)), st.integers(17, U64))


@st.composite
def status_reports(draw: st.DrawFn) -> StatusReport:
    fragment = draw(st.booleans())
    return StatusReport(
        draw(eids),
        draw(uints),
        draw(uints),
        draw(status_items),
        draw(status_items),
        draw(status_items),
        draw(status_items),
        draw(reasons),
        draw(uints) if fragment else None,
        draw(uints) if fragment else None,
    )


bibe_pdus = st.builds(BibePdu, uints, uints, st.binary(max_size=64), st.sampled_from(list(BibeFlavour)))
ranges = st.tuples(st.integers(1, 2**32), st.integers(1, 2**32))
custody_signals = st.builds(
    CustodySignal,
    st.one_of(st.sampled_from(list(CustodyDisposition)), st.integers(9, U64)),
    st.lists(ranges, max_size=6).map(tuple),
    st.sampled_from(list(BibeFlavour)),
)
cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), U64) | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
unknown_records = st.builds(
    UnknownAdminRecord,
    st.integers(0, U64).filter(lambda t: t not in {1, 3, 4, 7, 8}),
    cbor_values.map(cbor2.dumps),
)
records = st.one_of(status_reports(), bibe_pdus, custody_signals, unknown_records)


@given(records)
def test_round_trip(record: AdminRecord) -> None:
    data = encode_admin_record(record)
    assert decode_admin_record(data) == record
    assert encode_admin_record(decode_admin_record(data)) == data


@given(st.lists(st.integers(1, 200), max_size=40), st.sampled_from(list(BibeFlavour)))
def test_from_transmission_ids_merges_into_sorted_disjoint_ranges(ids: list[int], flavour: BibeFlavour) -> None:
    signal = CustodySignal.from_transmission_ids(ids, CustodyDisposition.REDUNDANT_RECEPTION, flavour)
    assert list(signal.transmission_ids()) == sorted(set(ids))
    for (a, n), (b, _) in zip(signal.ranges, signal.ranges[1:], strict=False):
        assert a + n < b  # disjoint and not adjacent: merged
    assert decode_admin_record(encode_admin_record(signal)) == signal


def _decode_or_decode_error(data: bytes) -> None:
    try:
        record = decode_admin_record(data)
    except DecodeError:
        return
    assert decode_admin_record(encode_admin_record(record)) == record


@settings(max_examples=300)
@given(st.binary(max_size=80))
@example(b"\x82\x01")
@example(b"\x82\x07\x83\x01\x01\x5b\xff\xff\xff\xff\xff\xff\xff\xff")
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    _decode_or_decode_error(data)


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(ADMIN_VECTORS)),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 10_000),
)
def test_mutated_vectors_raise_only_decode_error(name: str, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VECTORS[name])
    for where, value in edits:
        data[where % len(data)] = value
    _decode_or_decode_error(bytes(data))
    _decode_or_decode_error(bytes(data[: cut % (len(data) + 1)]))
