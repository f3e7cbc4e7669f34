"""Wireshark agrees with our encoder: every bundle we emit, sent as a UDP datagram to port 4556, is decoded
by tshark's BPv7 dissector with good CRCs, the fields we meant, and no malformed packet or expert problem.

The one expert item allowed is Wireshark's "Unknown type code" (group Undecoded): the dissector says it
has no sub-dissector for an application payload, an unknown extension block type or an administrative
record type it does not know (BIBE 3/4/7/8). That is Wireshark's limit, not a fault in the bundle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from dtn.bundle.admin import (
    BibeFlavour,
    BibePdu,
    CustodyDisposition,
    CustodySignal,
    StatusItem,
    StatusReport,
    UnknownAdminRecord,
    decode_admin_record,
)
from dtn.bundle.admin_bundles import admin_record_bundle, status_report_about, status_report_bundle
from dtn.bundle.blocks import (
    BundleAge,
    CanonicalBlock,
    HopCount,
    PreviousNode,
    PrimaryBlock,
    payload_block,
)
from dtn.bundle.bundle import Bundle
from dtn.bundle.codec import decode_bundle, encode_bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import IpnEid, parse_eid
from dtn.bundle.flags import NO_BLOCK_FLAGS, BlockFlag, BundleFlag
from dtn.bundle.fragment import fragment
from dtn.bundle.reasons import StatusReason
from tests.pcap_tools import require_tshark, tshark, write_udp_pcap
from tests.vector_data import VECTORS

#: Every valid whole-bundle vector (the LEGACY-INVALID ones and the BPSec ones without primary CRC aside).
BUNDLE_VECTORS = [
    "gen-bundle-G1-minimal",
    "gen-bundle-G2-ext",
    "gen-fragment-1",
    "gen-fragment-2",
    "gen-status-report-bundle",
    "ion-bibe-bpdu-bundle",
]
T0 = 789004800000  # 2025-01-01T00:00:00Z in DTN ms
ALLOWED_EXPERT = "Unknown type code"
#: Wireshark 4.0's status-report dissector never reads items 5 and 6 (the subject's fragment offset and
#: length): it compares the item index with the size of the 4-item status-information array instead of the
#: report's, and so flags the correct 6-item report of RFC 9171 §6.1.1 as "Data not fully dissected".
WIRESHARK_FRAGMENT_REPORT_BUG = "Data not fully dissected"
#: Wireshark's expert severities (epan/proto.h PI_*): chat, note, warn, error.
WARN_OR_ERROR = {0x00600000, 0x00800000}
UDP_MAX_PAYLOAD = 65507
NO_FLAGS = BundleFlag(0)


@dataclass
class Case:
    name: str
    raw: bytes

    @property
    def bundle(self) -> Bundle:
        return decode_bundle(self.raw)


def _bundle(
    *,
    crc: CrcType,
    dst: str = "ipn:2.1",
    src: str = "ipn:1.1",
    report_to: str = "ipn:1.0",
    flags: BundleFlag = NO_FLAGS,
    creation_ms: int = T0,
    sequence: int = 0,
    extensions: tuple[CanonicalBlock, ...] = (),
    payload: bytes = b"hello",
    payload_flags: BlockFlag = NO_BLOCK_FLAGS,
) -> bytes:
    primary = PrimaryBlock(
        flags, crc, parse_eid(dst), parse_eid(src), parse_eid(report_to), creation_ms, sequence, 3_600_000
    )
    return encode_bundle(Bundle(primary, (*extensions, payload_block(payload, flags=payload_flags, crc_type=crc))))


def generated_cases() -> list[Case]:
    cases: list[Case] = []
    for crc in (CrcType.CRC16_X25, CrcType.CRC32C):
        tag = f"crc{crc.name.lower()}"
        every_block = (
            PreviousNode(IpnEid(7, 0)).block(2, crc_type=crc),
            BundleAge(1500).block(3, crc_type=crc),
            HopCount(30, 2).block(4, crc_type=crc),
            CanonicalBlock(192, 5, BlockFlag.REPLICATE_IN_EVERY_FRAGMENT, crc, b"\x82\x01\x02"),
        )
        cases += [
            Case(f"{tag}-all-block-kinds", _bundle(crc=crc, extensions=every_block, sequence=1)),
            Case(
                f"{tag}-dtn-eids",
                _bundle(crc=crc, dst="dtn://mars.example/inbox", src="dtn://earth/", report_to="dtn://earth/"),
            ),
            Case(
                f"{tag}-anonymous",
                _bundle(crc=crc, src="dtn:none", report_to="dtn:none", flags=BundleFlag.MUST_NOT_FRAGMENT),
            ),
            Case(
                f"{tag}-no-clock-with-age",
                _bundle(crc=crc, creation_ms=0, sequence=41, extensions=(BundleAge(300).block(2, crc_type=crc),)),
            ),
            Case(
                f"{tag}-all-flags",
                _bundle(
                    crc=crc,
                    flags=BundleFlag.MUST_NOT_FRAGMENT
                    | BundleFlag.APP_ACK_REQUESTED
                    | BundleFlag.STATUS_TIME_REQUESTED
                    | BundleFlag.REPORT_RECEPTION
                    | BundleFlag.REPORT_FORWARDING
                    | BundleFlag.REPORT_DELIVERY
                    | BundleFlag.REPORT_DELETION,
                    sequence=2,
                ),
            ),
            Case(f"{tag}-empty-payload", _bundle(crc=crc, payload=b"", sequence=3)),
            Case(f"{tag}-large-payload", _bundle(crc=crc, payload=bytes(range(256)) * 200, sequence=4)),
            Case(f"{tag}-big-numbers", _bundle(crc=crc, dst=f"ipn:{2**32 - 2}.{2**32 - 1}", sequence=2**40)),
        ]
    # Every primary CRC type combined with every payload CRC type, as peers mix them (ION: 16 + none).
    for primary_crc in (CrcType.CRC16_X25, CrcType.CRC32C):
        for payload_crc in CrcType:
            primary = PrimaryBlock(
                BundleFlag(0), primary_crc, IpnEid(2, 1), IpnEid(1, 1), IpnEid(1, 0), T0, 10 + payload_crc, 60_000
            )
            raw = encode_bundle(Bundle(primary, (payload_block(b"mixed", crc_type=payload_crc),)))
            cases.append(Case(f"primary-{primary_crc.name}-payload-{payload_crc.name}", raw))
    return cases


def admin_cases() -> list[Case]:
    g2 = decode_bundle(VECTORS["gen-bundle-G2-ext"])
    fragment = decode_bundle(VECTORS["gen-fragment-2"])
    node = parse_eid("ipn:2.0")
    cases = []
    for i, reason in enumerate(StatusReason):
        report = status_report_about(
            g2, time_ms=T0 + 5000, received=True, forwarded=True, delivered=True, deleted=True, reason=reason
        )
        carrier = status_report_bundle(
            report, source=node, report_to=g2.primary.report_to, creation_ms=T0 + 6000, sequence=i, lifetime_ms=60_000
        )
        cases.append(Case(f"status-report-reason-{int(reason)}", encode_bundle(carrier)))
    about_fragment = status_report_about(fragment, time_ms=T0 + 1, received=True)
    carrier = status_report_bundle(
        about_fragment,
        source=node,
        report_to=IpnEid(1, 0),
        creation_ms=T0 + 7000,
        lifetime_ms=60_000,
        crc_type=CrcType.CRC32C,
    )
    cases.append(Case("status-report-about-fragment", encode_bundle(carrier)))
    ion_total_length = StatusReport(
        IpnEid(1, 1), T0, 8, received=StatusItem(True), fragment_offset=5, fragment_length=11
    )
    cases.append(
        Case(
            "status-report-ion-total-length",
            encode_bundle(
                status_report_bundle(
                    ion_total_length, source=node, report_to=IpnEid(1, 0), creation_ms=T0 + 8000, lifetime_ms=60_000
                )
            ),
        )
    )
    g1 = VECTORS["gen-bundle-G1-minimal"]
    records = [
        ("bibe-pdu-ion", BibePdu.create(g1, transmission_id=5, deadline_dtn_ms=T0 + 10_000)),
        (
            "bibe-pdu-draft",
            BibePdu.create(g1, transmission_id=6, deadline_dtn_ms=T0 + 10_000, flavour=BibeFlavour.DRAFT),
        ),
        ("custody-signal-ion", CustodySignal.from_transmission_ids([1, 2, 3, 9])),
        (
            "custody-signal-draft",
            CustodySignal(CustodyDisposition.DEPLETED_STORAGE, ((4, 2),), BibeFlavour.DRAFT),
        ),
        ("unknown-admin-record", UnknownAdminRecord(64400, b"\x82\x01\x02")),
    ]
    for i, (name, record) in enumerate(records):
        bundle = admin_record_bundle(
            record, source=IpnEid(1, 0), destination=IpnEid(2, 0), creation_ms=T0 + 9000, sequence=i, lifetime_ms=60_000
        )
        cases.append(Case(name, encode_bundle(bundle)))
    return cases


def fragment_cases() -> list[Case]:
    """Two bundles (CRC-16, CRC-32C) with a replicated unknown block, cut into fragments of <= 1000 bytes."""
    cases = []
    for crc in (CrcType.CRC16_X25, CrcType.CRC32C):
        extensions = (
            HopCount(30, 0).block(2, crc_type=crc),
            CanonicalBlock(192, 3, BlockFlag.REPLICATE_IN_EVERY_FRAGMENT, crc, b"\x01"),
        )
        whole = decode_bundle(
            _bundle(crc=crc, payload=bytes(range(256)) * 12, sequence=100 + crc, extensions=extensions)
        )
        for k, piece in enumerate(fragment(whole, 1000)):
            cases.append(Case(f"fragment-{crc.name}-{k}", encode_bundle(piece)))
    return cases


def all_cases() -> list[Case]:
    return [Case(name, VECTORS[name]) for name in BUNDLE_VECTORS] + generated_cases() + admin_cases() + fragment_cases()


FIELDS = [
    "frame.number",
    "_ws.col.Protocol",
    "_ws.malformed",
    "_ws.expert.message",
    "_ws.expert.severity",
    "bpv7.crc_status",
    "bpv7.primary.src_uri",
    "bpv7.primary.dst_uri",
    "bpv7.canonical.block_num",
    "bpv7.admin_rec.type_code",
    "bpv7.status_rep.reason_code",
    "bpv7.status_rep.subj_src_uri",
    "bpv7.payload.reassembled.length",
]


def _dissect(path: Path) -> list[dict[str, list[str]]]:
    args = ["-T", "fields", "-E", "separator=\t", "-E", "aggregator=|", "-E", "occurrence=a"]
    for field in FIELDS:
        args += ["-e", field]
    rows = []
    for line in tshark(path, *args).splitlines():
        values = line.split("\t")
        rows.append({f: (v.split("|") if v else []) for f, v in zip(FIELDS, values, strict=False)})
    return rows


def _is_report_about_fragment(bundle: Bundle) -> bool:
    if not bundle.is_admin_record:
        return False
    record = decode_admin_record(bundle.payload)
    return isinstance(record, StatusReport) and record.fragment_offset is not None


def _crc_blocks(bundle: Bundle) -> int:
    return (1 if bundle.primary.crc_type else 0) + sum(1 for b in bundle.blocks if b.crc_type)


@pytest.fixture(scope="module")
def dissected(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Case], list[dict[str, list[str]]]]:
    require_tshark()
    cases = all_cases()
    for case in cases:
        assert len(case.raw) <= UDP_MAX_PAYLOAD, case.name
    path = tmp_path_factory.mktemp("wireshark") / "bundles.pcap"
    write_udp_pcap(path, [c.raw for c in cases])
    if os.environ.get("DTN_KEEP_PCAP"):
        write_udp_pcap(Path(os.environ["DTN_KEEP_PCAP"]), [c.raw for c in cases])
    rows = _dissect(path)
    assert len(rows) == len(cases)
    return cases, rows


def test_the_capture_covers_every_kind(dissected: tuple[list[Case], list[dict[str, list[str]]]]) -> None:
    cases, _ = dissected
    names = {c.name for c in cases}
    assert set(BUNDLE_VECTORS) <= names
    bundles = [c.bundle for c in cases]
    assert {t for b in bundles for t in (blk.block_type for blk in b.blocks)} >= {1, 6, 7, 10, 192}
    assert {b.primary.crc_type for b in bundles} == {CrcType.CRC16_X25, CrcType.CRC32C}
    assert {blk.crc_type for b in bundles for blk in b.blocks} == set(CrcType)
    assert any(b.is_fragment for b in bundles)
    assert {c.name for c in cases if c.bundle.is_admin_record} >= {"bibe-pdu-ion", "custody-signal-draft"}


def test_wireshark_decodes_every_bundle_without_problems(
    dissected: tuple[list[Case], list[dict[str, list[str]]]],
) -> None:
    cases, rows = dissected
    problems = []
    for case, row in zip(cases, rows, strict=True):
        bundle = case.bundle
        where = f"frame {row['frame.number'][0]} ({case.name})"
        if row["_ws.col.Protocol"] not in (["BPv7"], ["BPv7 Admin"]):
            problems.append(f"{where}: dissected as {row['_ws.col.Protocol']}, not BPv7")
        if row["_ws.malformed"]:
            problems.append(f"{where}: Malformed Packet")
        allowed = {ALLOWED_EXPERT}
        if _is_report_about_fragment(bundle):
            allowed.add(WIRESHARK_FRAGMENT_REPORT_BUG)
        for message, severity in zip(row["_ws.expert.message"], row["_ws.expert.severity"], strict=True):
            if int(severity) in WARN_OR_ERROR and message not in allowed:
                problems.append(f"{where}: expert {message!r}")
        statuses = row["bpv7.crc_status"]
        if statuses != ["1"] * _crc_blocks(bundle):
            problems.append(f"{where}: CRC status {statuses}, expected {_crc_blocks(bundle)} x Good (1)")
        if row["bpv7.primary.src_uri"][:1] != [str(bundle.primary.source)]:
            problems.append(f"{where}: source {row['bpv7.primary.src_uri']} != {bundle.primary.source}")
        if row["bpv7.primary.dst_uri"][:1] != [str(bundle.primary.destination)]:
            problems.append(f"{where}: destination {row['bpv7.primary.dst_uri']} != {bundle.primary.destination}")
        numbers = [str(b.number) for b in bundle.blocks]
        if row["bpv7.canonical.block_num"][: len(numbers)] != numbers:
            problems.append(f"{where}: block numbers {row['bpv7.canonical.block_num']} != {numbers}")
    assert problems == []


def test_wireshark_reads_our_admin_records(dissected: tuple[list[Case], list[dict[str, list[str]]]]) -> None:
    cases, rows = dissected
    seen_reports = 0
    for case, row in zip(cases, rows, strict=True):
        bundle = case.bundle
        if not bundle.is_admin_record:
            assert row["bpv7.admin_rec.type_code"] == [], case.name
            continue
        record_type = bundle.payload[1] if bundle.payload[1] < 24 else int.from_bytes(bundle.payload[2:4], "big")
        assert row["bpv7.admin_rec.type_code"][:1] == [str(record_type)], case.name
        if record_type == 1:
            seen_reports += 1
            assert row["bpv7.status_rep.subj_src_uri"] == ["ipn:1.1"], case.name
            if case.name.startswith("status-report-reason-"):
                assert row["bpv7.status_rep.reason_code"] == [case.name.rsplit("-", 1)[1]]
    assert seen_reports == len(StatusReason) + 3


def test_wireshark_reassembles_our_fragments(dissected: tuple[list[Case], list[dict[str, list[str]]]]) -> None:
    cases, rows = dissected
    lengths = {
        c.name: row["bpv7.payload.reassembled.length"]
        for c, row in zip(cases, rows, strict=True)
        if c.bundle.is_fragment
    }
    # The vectors gen-fragment-1/2 make up "hello world" (11 bytes); Wireshark reassembles in the last one.
    assert lengths["gen-fragment-2"] == ["11"]
    for crc in (CrcType.CRC16_X25, CrcType.CRC32C):
        mine = [v for k, v in lengths.items() if k.startswith(f"fragment-{crc.name}-")]
        assert len(mine) >= 4
        assert mine[-1] == [str(256 * 12)]
