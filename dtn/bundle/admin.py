"""Administrative records (RFC 9171 §6.1, RFC 9713; BIBE-CT as ION and draft-ietf-dtn-bibect send it).

An administrative record is the payload of a bundle whose ``ADMIN_RECORD`` flag is set: the CBOR array
``[record_type, content]``. This module holds codecs only (no I/O, no clock):

* type 1, bundle status report: ``[status_info, reason, source, [creation_ms, seq] (, offset, length)?]``;
  each of the four status items is ``[asserted]`` or ``[asserted, dtn_time_ms]``;
* type 7 (ION) and 3 (draft) BIBE PDU: ``[transmission_id, deadline, bstr(encapsulated bundle)]``; ION's
  deadline is UNIX seconds, the draft's is DTN milliseconds; the record keeps the raw value and its flavour;
* type 8 (ION) and 4 (draft/DTNME) BIBE custody signal: ``[disposition, [[first_id, count], ...]]``;
* any other type decodes to ``UnknownAdminRecord`` holding the content bytes unchanged (RFC 9713: a node
  ignores records it does not know rather than failing).

``decode_admin_record`` raises only ``DecodeError``, for any input; ``encode_admin_record`` is
deterministic (shortest-form heads, definite lengths) and ``decode_admin_record(encode_admin_record(r)) == r``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TypeVar

from dtn.bundle.cbor import (
    INDEFINITE,
    MAJOR_ARRAY,
    MAJOR_BSTR,
    MAJOR_MAP,
    MAJOR_SIMPLE,
    MAJOR_TAG,
    MAJOR_TSTR,
    encode_bstr,
    encode_uint,
    head,
    read_array_head,
    read_head,
    read_string,
    read_uint,
)
from dtn.bundle.eid import Eid, encode_eid, read_eid
from dtn.bundle.ids import BundleId
from dtn.bundle.reasons import StatusReason
from dtn.errors import DecodeError, EncodeError, InvalidEid

#: Seconds from the UNIX epoch to the DTN epoch (2000-01-01T00:00:00Z); a fact, kept here so that this pure
#: module need not import the clock module.
_DTN_EPOCH_UNIX_S = 946_684_800
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
#: Nesting limit when skipping over the content of an unknown record type.
_MAX_DEPTH = 64


class AdminRecordType(IntEnum):
    """Administrative record type codes we understand (RFC 9713 registry plus the BIBE-CT code points)."""

    STATUS_REPORT = 1
    BIBE_PDU_DRAFT = 3
    CUSTODY_SIGNAL_DRAFT = 4
    BIBE_PDU_ION = 7
    CUSTODY_SIGNAL_ION = 8


class BibeFlavour(StrEnum):
    """Which code points and deadline units a BIBE peer speaks (shared/spec custody.md §0)."""

    ION = "ion"  #: types 7/8, deadline in UNIX seconds
    DRAFT = "draft"  #: types 3/4, retransmission time in DTN milliseconds

    @property
    def pdu_type(self) -> AdminRecordType:
        return AdminRecordType.BIBE_PDU_ION if self is BibeFlavour.ION else AdminRecordType.BIBE_PDU_DRAFT

    @property
    def signal_type(self) -> AdminRecordType:
        if self is BibeFlavour.ION:
            return AdminRecordType.CUSTODY_SIGNAL_ION
        return AdminRecordType.CUSTODY_SIGNAL_DRAFT


class CustodyDisposition(IntEnum):
    """Disposition codes of a BIBE custody signal (the BPv6 custody reason space, ION bibeP.h)."""

    ACCEPTED = 0
    NO_INFO = 1
    RESERVED = 2
    REDUNDANT_RECEPTION = 3
    DEPLETED_STORAGE = 4
    DEST_EID_UNINTELLIGIBLE = 5
    NO_ROUTE = 6
    NO_TIMELY_CONTACT = 7
    BLOCK_UNINTELLIGIBLE = 8

    @property
    def is_success(self) -> bool:
        """Custody was taken (accepted, or the peer already had the bundle): release the bundle."""
        return self in (CustodyDisposition.ACCEPTED, CustodyDisposition.REDUNDANT_RECEPTION)


_E = TypeVar("_E", bound=IntEnum)


def _known(enum: type[_E], value: int) -> _E | int:
    try:
        return enum(value)
    except ValueError:
        return value


# --- the records ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusItem:
    """One of the four status assertions; ``time_ms`` (DTN time) only when the subject asked for times."""

    asserted: bool = False
    time_ms: int | None = None


NOT_ASSERTED = StatusItem(False)


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Bundle status report (record type 1, RFC 9171 §6.1.1).

    ``fragment_length`` is item 6 of the report as received: RFC 9171 puts the subject's payload length
    there, ION its total ADU length; never use it for reassembly.
    """

    source: Eid
    creation_ms: int
    sequence: int
    received: StatusItem = NOT_ASSERTED
    forwarded: StatusItem = NOT_ASSERTED
    delivered: StatusItem = NOT_ASSERTED
    deleted: StatusItem = NOT_ASSERTED
    reason: StatusReason | int = StatusReason.NO_INFO
    fragment_offset: int | None = None
    fragment_length: int | None = None

    @property
    def record_type(self) -> int:
        return AdminRecordType.STATUS_REPORT

    @property
    def items(self) -> tuple[StatusItem, StatusItem, StatusItem, StatusItem]:
        return (self.received, self.forwarded, self.delivered, self.deleted)

    def subject_id(self) -> BundleId:
        """The id of the bundle the report is about."""
        return BundleId(str(self.source), self.creation_ms, self.sequence, self.fragment_offset, self.fragment_length)


@dataclass(frozen=True, slots=True)
class BibePdu:
    """A BIBE protocol data unit: a serialized bundle carried by a custodial BIBE hop.

    ``deadline`` is the raw wire value: UNIX seconds from ION (flavour ``ION``, type 7), DTN milliseconds
    from the draft (flavour ``DRAFT``, type 3). Transmission ID 0 means no custody was requested.
    """

    transmission_id: int
    deadline: int
    encapsulated: bytes
    flavour: BibeFlavour = BibeFlavour.ION

    @property
    def record_type(self) -> int:
        return self.flavour.pdu_type

    @property
    def custody_requested(self) -> bool:
        return self.transmission_id != 0

    @property
    def deadline_dtn_ms(self) -> int | None:
        """The deadline as DTN time, whatever units the sender used; None for 0 (no deadline).

        Heuristic valid for every sender we know: values of 2**32 or more are DTN milliseconds (draft);
        smaller values are seconds, UNIX seconds (ION) when past 2000-01-01 in UNIX time, else DTN-epoch
        seconds (DTNME).
        """
        value = self.deadline
        if value == 0:
            return None
        if value >= 1 << 32:
            return value
        if value > _DTN_EPOCH_UNIX_S:
            return (value - _DTN_EPOCH_UNIX_S) * 1000
        return value * 1000

    @classmethod
    def create(
        cls,
        encapsulated: bytes,
        *,
        transmission_id: int,
        deadline_dtn_ms: int | None,
        flavour: BibeFlavour = BibeFlavour.ION,
    ) -> BibePdu:
        """A PDU with the deadline written in the flavour's units (ION: UNIX seconds, rounded up)."""
        if deadline_dtn_ms is None:
            deadline = 0
        elif flavour is BibeFlavour.ION:
            deadline = -(-deadline_dtn_ms // 1000) + _DTN_EPOCH_UNIX_S
        else:
            deadline = deadline_dtn_ms
        return cls(transmission_id, deadline, bytes(encapsulated), flavour)


@dataclass(frozen=True, slots=True)
class CustodySignal:
    """A BIBE custody signal: one disposition for the transmission IDs in ``ranges`` ([first, count]).

    Ranges are kept as received (ION sends adjacent ranges unmerged); ``from_transmission_ids`` builds
    merged, sorted, non-overlapping ones.
    """

    disposition: CustodyDisposition | int
    ranges: tuple[tuple[int, int], ...]
    flavour: BibeFlavour = BibeFlavour.ION

    @property
    def record_type(self) -> int:
        return self.flavour.signal_type

    @property
    def is_success(self) -> bool:
        return self.disposition in (CustodyDisposition.ACCEPTED, CustodyDisposition.REDUNDANT_RECEPTION)

    def transmission_ids(self) -> Iterator[int]:
        """Every transmission ID the signal covers, range by range (duplicates if ranges overlap)."""
        for first, count in self.ranges:
            yield from range(first, first + count)

    def covers(self, transmission_id: int) -> bool:
        return any(first <= transmission_id < first + count for first, count in self.ranges)

    @classmethod
    def from_transmission_ids(
        cls,
        ids: Iterable[int],
        disposition: CustodyDisposition | int = CustodyDisposition.ACCEPTED,
        flavour: BibeFlavour = BibeFlavour.ION,
    ) -> CustodySignal:
        ranges: list[tuple[int, int]] = []
        for tid in sorted(set(ids)):
            if ranges and ranges[-1][0] + ranges[-1][1] == tid:
                ranges[-1] = (ranges[-1][0], ranges[-1][1] + 1)
            else:
                ranges.append((tid, 1))
        return cls(disposition, tuple(ranges), flavour)


@dataclass(frozen=True, slots=True)
class UnknownAdminRecord:
    """A record whose type we do not know; ``content`` is the encoded content item, byte for byte."""

    record_type: int
    content: bytes


AdminRecord = StatusReport | BibePdu | CustodySignal | UnknownAdminRecord


# --- encoding --------------------------------------------------------------------------------------------


def _check_uint(value: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _U64_MAX:
        raise EncodeError(f"{what} must be an unsigned 64-bit integer, got {value!r}")


def _encode_status_item(item: StatusItem, what: str) -> bytes:
    flag = b"\xf5" if item.asserted else b"\xf4"
    if item.time_ms is None:
        return b"\x81" + flag
    _check_uint(item.time_ms, f"{what} time")
    return b"\x82" + flag + encode_uint(item.time_ms)


def _encode_status_report(report: StatusReport) -> bytes:
    fragment = report.fragment_offset is not None or report.fragment_length is not None
    if fragment and (report.fragment_offset is None or report.fragment_length is None):
        raise EncodeError("a status report about a fragment needs both fragment_offset and fragment_length")
    _check_uint(report.reason, "reason code")
    _check_uint(report.creation_ms, "creation time")
    _check_uint(report.sequence, "sequence number")
    names = ("received", "forwarded", "delivered", "deleted")
    parts = [
        b"\x86" if fragment else b"\x84",
        b"\x84",
        *(_encode_status_item(item, name) for item, name in zip(report.items, names, strict=True)),
        encode_uint(report.reason),
        encode_eid(report.source),
        b"\x82",
        encode_uint(report.creation_ms),
        encode_uint(report.sequence),
    ]
    if report.fragment_offset is not None and report.fragment_length is not None:
        _check_uint(report.fragment_offset, "fragment offset")
        _check_uint(report.fragment_length, "fragment length")
        parts += [encode_uint(report.fragment_offset), encode_uint(report.fragment_length)]
    return b"".join(parts)


def _encode_bibe_pdu(pdu: BibePdu) -> bytes:
    _check_uint(pdu.transmission_id, "transmission ID")
    _check_uint(pdu.deadline, "deadline")
    return b"\x83" + encode_uint(pdu.transmission_id) + encode_uint(pdu.deadline) + encode_bstr(pdu.encapsulated)


def _encode_custody_signal(signal: CustodySignal) -> bytes:
    _check_uint(signal.disposition, "disposition")
    parts = [b"\x82", encode_uint(signal.disposition), head(MAJOR_ARRAY, len(signal.ranges))]
    for first, count in signal.ranges:
        _check_uint(first, "transmission ID")
        _check_uint(count, "range count")
        if first == 0 or count == 0:
            raise EncodeError(f"custody signal range [{first}, {count}]: IDs and counts start at 1")
        parts += [b"\x82", encode_uint(first), encode_uint(count)]
    return b"".join(parts)


def encode_admin_record(record: AdminRecord) -> bytes:
    """The deterministic CBOR encoding of ``record`` (a bundle payload); raises ``EncodeError``."""
    if isinstance(record, StatusReport):
        content = _encode_status_report(record)
    elif isinstance(record, BibePdu):
        content = _encode_bibe_pdu(record)
    elif isinstance(record, CustodySignal):
        content = _encode_custody_signal(record)
    elif isinstance(record, UnknownAdminRecord):
        _check_uint(record.record_type, "record type")
        if record.record_type in _DECODERS:
            raise EncodeError(f"record type {record.record_type} is known; use its own record class")
        content = bytes(record.content)
        try:
            whole = _skip_item(content, 0, len(content)) == len(content)
        except DecodeError:
            whole = False
        if not whole:
            raise EncodeError("unknown record content must be exactly one well-formed CBOR item")
    else:
        raise EncodeError(f"not an administrative record: {record!r:.80}")
    return b"\x82" + encode_uint(record.record_type) + content


# --- decoding --------------------------------------------------------------------------------------------


def _read_bool(buf: bytes, pos: int, end: int, what: str) -> tuple[bool, int]:
    if pos < end:
        if buf[pos] == 0xF5:
            return True, pos + 1
        if buf[pos] == 0xF4:
            return False, pos + 1
    raise DecodeError(f"{what}: expected true or false at offset {pos}")


def _read_status_item(buf: bytes, pos: int, end: int, what: str) -> tuple[StatusItem, int]:
    count, pos = read_array_head(buf, pos, end, what)
    if count not in (1, 2):
        raise DecodeError(f"{what}: status item must be [asserted] or [asserted, time], got {count} items")
    asserted, pos = _read_bool(buf, pos, end, what)
    if count == 1:
        return (StatusItem(True) if asserted else NOT_ASSERTED), pos
    time_ms, pos = read_uint(buf, pos, end, f"{what} time")
    return StatusItem(asserted, time_ms), pos


def _decode_status_report(buf: bytes, pos: int, end: int) -> tuple[StatusReport, int]:
    count, pos = read_array_head(buf, pos, end, "status report")
    if count not in (4, 6):
        raise DecodeError(f"status report must have 4 or 6 items, got {count}")
    n, pos = read_array_head(buf, pos, end, "status information")
    if n != 4:
        raise DecodeError(f"status information must have 4 items (received, forwarded, delivered, deleted), got {n}")
    received, pos = _read_status_item(buf, pos, end, "received status")
    forwarded, pos = _read_status_item(buf, pos, end, "forwarded status")
    delivered, pos = _read_status_item(buf, pos, end, "delivered status")
    deleted, pos = _read_status_item(buf, pos, end, "deleted status")
    reason, pos = read_uint(buf, pos, end, "reason code")
    try:
        source, pos = read_eid(buf, pos, end, "subject source node ID")
    except InvalidEid as exc:
        raise DecodeError(f"status report: {exc}") from exc
    n, pos = read_array_head(buf, pos, end, "subject creation timestamp")
    if n != 2:
        raise DecodeError(f"subject creation timestamp must be [time, sequence], got {n} items")
    creation_ms, pos = read_uint(buf, pos, end, "subject creation time")
    sequence, pos = read_uint(buf, pos, end, "subject sequence number")
    offset = length = None
    if count == 6:
        offset, pos = read_uint(buf, pos, end, "subject fragment offset")
        length, pos = read_uint(buf, pos, end, "subject fragment length")
    report = StatusReport(
        source,
        creation_ms,
        sequence,
        received,
        forwarded,
        delivered,
        deleted,
        _known(StatusReason, reason),
        offset,
        length,
    )
    return report, pos


def _decode_bibe_pdu(buf: bytes, pos: int, end: int, flavour: BibeFlavour) -> tuple[BibePdu, int]:
    count, pos = read_array_head(buf, pos, end, "BIBE PDU")
    if count != 3:
        raise DecodeError(f"BIBE PDU must be [transmission ID, deadline, bundle], got {count} items")
    tid, pos = read_uint(buf, pos, end, "BIBE transmission ID")
    deadline, pos = read_uint(buf, pos, end, "BIBE deadline")
    start, stop = read_string(buf, pos, end, MAJOR_BSTR, "BIBE encapsulated bundle")
    return BibePdu(tid, deadline, bytes(buf[start:stop]), flavour), stop


def _decode_custody_signal(buf: bytes, pos: int, end: int, flavour: BibeFlavour) -> tuple[CustodySignal, int]:
    count, pos = read_array_head(buf, pos, end, "custody signal")
    if count != 2:
        raise DecodeError(f"custody signal must be [disposition, ranges], got {count} items")
    disposition, pos = read_uint(buf, pos, end, "custody disposition")
    n, pos = read_array_head(buf, pos, end, "custody signal ranges")
    if n > (end - pos) // 3:  # each range takes at least 3 bytes
        raise DecodeError(f"custody signal claims {n} ranges but only {end - pos} bytes remain")
    ranges: list[tuple[int, int]] = []
    for _ in range(n):
        size, pos = read_array_head(buf, pos, end, "custody signal range")
        if size != 2:
            raise DecodeError(f"custody signal range must be [first ID, count], got {size} items")
        first, pos = read_uint(buf, pos, end, "first transmission ID")
        number, pos = read_uint(buf, pos, end, "transmission ID count")
        if first == 0 or number == 0:
            raise DecodeError(f"custody signal range [{first}, {number}]: IDs and counts start at 1")
        if first + number - 1 > _U64_MAX:
            raise DecodeError(f"custody signal range [{first}, {number}] runs past 2**64")
        ranges.append((first, number))
    return CustodySignal(_known(CustodyDisposition, disposition), tuple(ranges), flavour), pos


def _skip_item(buf: bytes, pos: int, end: int) -> int:
    """Position after the well-formed CBOR item at ``pos`` (any major type, bounded depth)."""
    pending = [1]  # items still to read at each open nesting level; -1 = indefinite, until a break
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        if pending[-1] == INDEFINITE and pos < end and buf[pos] == 0xFF:
            pending.pop()
            pos += 1
            continue
        if pending[-1] != INDEFINITE:
            pending[-1] -= 1
        major, arg, pos = read_head(buf, pos, end)
        if major in (MAJOR_BSTR, MAJOR_TSTR):
            if arg == INDEFINITE:
                while True:  # definite chunks of the same major type, then a break
                    if pos < end and buf[pos] == 0xFF:
                        pos += 1
                        break
                    _, pos = read_string(buf, pos, end, major, "string chunk")
            elif arg > end - pos:
                raise DecodeError(f"CBOR string of {arg} bytes runs past the end of the record")
            else:
                pos += arg
        elif major in (MAJOR_ARRAY, MAJOR_MAP, MAJOR_TAG):
            if len(pending) >= _MAX_DEPTH:
                raise DecodeError(f"CBOR nested more than {_MAX_DEPTH} levels deep")
            if major == MAJOR_TAG:
                pending.append(1)
            elif arg == INDEFINITE:
                pending.append(INDEFINITE)
            else:
                if arg > end - pos:
                    raise DecodeError(f"CBOR container of {arg} items runs past the end of the record")
                pending.append(arg * 2 if major == MAJOR_MAP else arg)
        elif major == MAJOR_SIMPLE and arg == INDEFINITE:
            raise DecodeError(f"unexpected CBOR break at offset {pos - 1}")
        elif major == MAJOR_SIMPLE and 24 <= arg < 32 and buf[pos - 2] == 0xF8:
            raise DecodeError(f"invalid CBOR simple value {arg} at offset {pos - 2}")
        if pending and pending[-1] == INDEFINITE and pos >= end:
            raise DecodeError("truncated CBOR: indefinite-length item has no break")
    return pos


def decode_admin_record(payload: bytes | bytearray | memoryview) -> AdminRecord:
    """Decode a bundle payload as an administrative record; raises only ``DecodeError`` (reason 8)."""
    buf = bytes(payload)
    end = len(buf)
    count, pos = read_array_head(buf, 0, end, "administrative record")
    if count != 2:
        raise DecodeError(f"administrative record must be [record type, content], got {count} items")
    record_type, pos = read_uint(buf, pos, end, "administrative record type")
    decoder = _DECODERS.get(record_type)
    record: AdminRecord
    if decoder is None:
        stop = _skip_item(buf, pos, end)
        record = UnknownAdminRecord(record_type, buf[pos:stop])
    else:
        record, stop = decoder(buf, pos, end)
    if stop != end:
        raise DecodeError(f"{end - stop} bytes of trailing data after the administrative record")
    return record


_Decoder = Callable[[bytes, int, int], tuple[AdminRecord, int]]

_DECODERS: dict[int, _Decoder] = {
    AdminRecordType.STATUS_REPORT: _decode_status_report,
    AdminRecordType.BIBE_PDU_ION: lambda b, p, e: _decode_bibe_pdu(b, p, e, BibeFlavour.ION),
    AdminRecordType.BIBE_PDU_DRAFT: lambda b, p, e: _decode_bibe_pdu(b, p, e, BibeFlavour.DRAFT),
    AdminRecordType.CUSTODY_SIGNAL_ION: lambda b, p, e: _decode_custody_signal(b, p, e, BibeFlavour.ION),
    AdminRecordType.CUSTODY_SIGNAL_DRAFT: lambda b, p, e: _decode_custody_signal(b, p, e, BibeFlavour.DRAFT),
}
