"""`dtn bundle`: build, inspect, fragment and reassemble BPv7 bundles held in files.

dtn bundle build --src ipn:1.1 --dst ipn:2.1 --payload hello --out hello.bundle
dtn bundle inspect hello.bundle            # JSON; exit 1 + reason on stderr when invalid
dtn bundle fragment --max-bytes 1000 big.bundle --out-dir frags/
dtn bundle reassemble frags/* --out whole.bundle
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from dtn.bundle.admin import (
    AdminRecord,
    BibePdu,
    CustodySignal,
    StatusItem,
    StatusReport,
    decode_admin_record,
)
from dtn.bundle.blocks import BundleAge, CanonicalBlock, HopCount, PreviousNode, PrimaryBlock, payload_block
from dtn.bundle.bundle import Bundle
from dtn.bundle.codec import DEFAULT_MAX_BYTES, check_bundle, decode_bundle, encode_bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import Eid, parse_eid
from dtn.bundle.flags import BlockFlag, BlockType, BundleFlag
from dtn.bundle.fragment import fragment, reassemble
from dtn.clock import SystemClock, dtn_ms_to_datetime
from dtn.errors import DecodeError, DtnError, InvalidEid

#: Bytes of payload shown by ``inspect``.
PREVIEW_BYTES = 32
#: How deep ``inspect`` follows bundles encapsulated in BIBE PDUs.
MAX_NESTING = 4

_CRC_CHOICES = {"none": CrcType.NONE, "16": CrcType.CRC16_X25, "32c": CrcType.CRC32C}
_CRC_NAMES = {CrcType.NONE: "none", CrcType.CRC16_X25: "crc16-x25", CrcType.CRC32C: "crc32c"}


class UsageError(Exception):
    """A bad argument or unreadable input: reported on stderr with exit status 2."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="build, inspect, fragment and reassemble BPv7 bundles",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="bundle_command", required=True)

    build = commands.add_parser("build", help="encode a bundle", description="Encode a BPv7 bundle.")
    build.add_argument("--src", required=True, type=_eid, help="source node ID, e.g. ipn:1.1")
    build.add_argument("--dst", required=True, type=_eid, help="destination EID, e.g. ipn:2.1")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--payload", metavar="TEXT", help="payload text (UTF-8)")
    source.add_argument("--payload-file", metavar="F", help="payload read from file F ('-' = stdin)")
    source.add_argument("stdin", nargs="?", choices=["-"], help="'-': payload read from stdin")
    build.add_argument("--lifetime-ms", type=_uint, default=86_400_000, help="lifetime in ms (default 1 day)")
    build.add_argument(
        "--crc",
        choices=list(_CRC_CHOICES),
        default="16",
        help="CRC type of every block (default 16). With 'none' the primary block keeps CRC-16, which "
        "RFC 9171 requires unless a BIB covers it.",
    )
    build.add_argument("--report-to", type=_eid, help="report-to EID (default: the source's node ID)")
    build.add_argument(
        "--flags",
        action="append",
        default=[],
        metavar="NAMES",
        help="bundle flags by name or number, comma-separated, repeatable: "
        + ", ".join(f.name.lower().replace("_", "-") for f in BundleFlag if f.name),
    )
    build.add_argument("--hop-limit", type=_uint, help="add a Hop Count block [N, 0] (1..255)")
    build.add_argument("--previous-node", type=_eid, help="add a Previous Node block naming this node ID")
    build.add_argument("--age-ms", type=_uint, help="add a Bundle Age block (added anyway when creation time is 0)")
    build.add_argument("--creation-ms", type=_uint, help="creation time, DTN ms (default: now, system clock)")
    build.add_argument("--sequence", type=_uint, default=0, help="creation sequence number (default 0)")
    build.add_argument("--out", metavar="F", help="write to F (default: stdout)")
    build.add_argument("--hex", action="store_true", help="write hex text instead of raw bytes")
    build.set_defaults(func=_build)

    inspect = commands.add_parser(
        "inspect", help="decode a bundle and print it as JSON", description="Decode and validate a bundle."
    )
    inspect.add_argument("file", nargs="?", default="-", metavar="F", help="bundle file (default '-' = stdin)")
    inspect.add_argument("--hex", action="store_true", help="the input is hex text")
    inspect.add_argument("--max-bytes", type=_uint, default=DEFAULT_MAX_BYTES, help=argparse.SUPPRESS)
    inspect.set_defaults(func=_inspect)

    fragment = commands.add_parser(
        "fragment", help="split a bundle into fragments", description="Fragment a bundle to fit a size."
    )
    fragment.add_argument("file", metavar="IN", help="bundle file ('-' = stdin)")
    fragment.add_argument("--max-bytes", type=_uint, required=True, help="maximum encoded size of a fragment")
    fragment.add_argument("--out-dir", required=True, metavar="D", help="directory for the fragment files")
    fragment.set_defaults(func=_fragment)

    reassemble = commands.add_parser(
        "reassemble", help="put fragments together", description="Reassemble fragments into the bundle."
    )
    reassemble.add_argument("files", nargs="+", metavar="F", help="fragment files, in any order")
    reassemble.add_argument("--out", required=True, metavar="F", help="file for the reassembled bundle")
    reassemble.set_defaults(func=_reassemble)


# --- argument types ------------------------------------------------------------------------------------


def _eid(text: str) -> Eid:
    try:
        return parse_eid(text)
    except InvalidEid as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _uint(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _bundle_flags(specs: list[str]) -> BundleFlag:
    by_name = {f.name.lower().replace("_", "-"): f for f in BundleFlag if f.name}
    flags = BundleFlag(0)
    for spec in specs:
        for word in filter(None, (w.strip() for w in spec.split(","))):
            key = word.lower().replace("_", "-")
            if key in by_name:
                flags |= by_name[key]
                continue
            try:
                flags |= BundleFlag(int(word, 0))
            except ValueError:
                raise UsageError(f"unknown bundle flag {word!r} (known: {', '.join(by_name)})") from None
    return flags


# --- I/O helpers ---------------------------------------------------------------------------------------


def _read_input(name: str, *, hex_text: bool = False) -> bytes:
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from exc
    if hex_text:
        try:
            return bytes.fromhex("".join(data.decode("ascii").split()))
        except (UnicodeDecodeError, ValueError) as exc:
            raise DecodeError(f"input is not hex text: {exc}") from exc
    return data


def _to_stdout(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # the reader went away (`dtn bundle inspect F | head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _write_output(name: str | None, data: bytes) -> None:
    if name is None or name == "-":
        _to_stdout(data)
        return
    try:
        Path(name).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {name}: {exc.strerror}") from exc


def _fail(command: str, exc: Exception) -> int:
    if isinstance(exc, DecodeError):
        print(
            f"dtn bundle {command}: invalid bundle: reason {int(exc.reason)} ({exc.reason.name.lower()}): "
            f"{exc.args[0]}",
            file=sys.stderr,
        )
        return 1
    print(f"dtn bundle {command}: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, UsageError) else 1


# --- build ---------------------------------------------------------------------------------------------


def build_bundle(args: argparse.Namespace, payload: bytes, creation_ms: int) -> Bundle:
    """The bundle ``dtn bundle build`` makes from its parsed arguments."""
    crc = _CRC_CHOICES[args.crc]
    src: Eid = args.src
    report_to: Eid = args.report_to if args.report_to is not None else _default_report_to(src)
    primary = PrimaryBlock(
        flags=_bundle_flags(args.flags),
        crc_type=crc if crc != CrcType.NONE else CrcType.CRC16_X25,
        destination=args.dst,
        source=src,
        report_to=report_to,
        creation_ms=creation_ms,
        sequence=args.sequence,
        lifetime_ms=args.lifetime_ms,
    )
    blocks: list[CanonicalBlock] = []
    number = 2
    if args.previous_node is not None:
        blocks.append(PreviousNode(args.previous_node).block(number, crc_type=crc))
        number += 1
    if args.age_ms is not None or creation_ms == 0:
        blocks.append(BundleAge(args.age_ms or 0).block(number, crc_type=crc))
        number += 1
    if args.hop_limit is not None:
        if not 1 <= args.hop_limit <= 255:
            raise UsageError(f"--hop-limit must be 1..255, got {args.hop_limit}")
        blocks.append(HopCount(args.hop_limit, 0).block(number, crc_type=crc))
    bundle = Bundle(primary, (*blocks, payload_block(payload, crc_type=crc)))
    try:
        check_bundle(bundle)
    except DecodeError as exc:
        raise UsageError(f"these arguments make an invalid bundle: {exc.args[0]}") from exc
    return bundle


def _default_report_to(src: Eid) -> Eid:
    try:
        return src.node_id()
    except InvalidEid:
        return src  # dtn:none stays dtn:none


def _build(args: argparse.Namespace) -> int:
    try:
        if args.payload is not None:
            payload = args.payload.encode("utf-8")
        else:
            payload = _read_input(args.payload_file if args.payload_file is not None else "-")
        creation_ms = args.creation_ms if args.creation_ms is not None else SystemClock().dtn_ms()
        raw = encode_bundle(build_bundle(args, payload, creation_ms))
        _write_output(args.out, (raw.hex() + "\n").encode("ascii") if args.hex else raw)
    except (DtnError, UsageError) as exc:
        return _fail("build", exc)
    return 0


# --- inspect -------------------------------------------------------------------------------------------


def _flag_names(flags: int, enum: type[BundleFlag] | type[BlockFlag]) -> list[str]:
    names = [f.name.lower() for f in enum if f.name and flags & f]
    known = 0
    for f in enum:
        known |= int(f)
    if flags & ~known:
        names.append(f"unassigned:0x{flags & ~known:x}")
    return names


def _utc(dtn_ms: int) -> str | None:
    if dtn_ms == 0:
        return None
    try:
        return dtn_ms_to_datetime(dtn_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return None


def _preview(data: bytes) -> dict[str, Any]:
    head = data[:PREVIEW_BYTES]
    out: dict[str, Any] = {"length": len(data)}
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        out["preview_text"] = text
    else:
        out["preview_hex"] = head.hex()
    out["preview_truncated"] = len(data) > PREVIEW_BYTES
    return out


def _primary_json(p: PrimaryBlock) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": 7,
        "flags": int(p.flags),
        "flag_names": _flag_names(int(p.flags), BundleFlag),
        "crc_type": _CRC_NAMES[CrcType(p.crc_type)],
        "crc_verified": True if p.crc_type else None,
        "destination": str(p.destination),
        "source": str(p.source),
        "report_to": str(p.report_to),
        "creation_ms": p.creation_ms,
        "creation_utc": _utc(p.creation_ms),
        "sequence": p.sequence,
        "lifetime_ms": p.lifetime_ms,
    }
    if p.fragment_offset is not None:
        out["fragment_offset"] = p.fragment_offset
        out["total_adu_length"] = p.total_adu_length
    return out


def _block_json(b: CanonicalBlock) -> dict[str, Any]:
    try:
        type_name = BlockType(b.block_type).name.lower()
    except ValueError:
        type_name = "unknown"
    data = bytes(b.data)
    out: dict[str, Any] = {
        "type": type_name,
        "type_code": b.block_type,
        "number": b.number,
        "flags": int(b.flags),
        "flag_names": _flag_names(int(b.flags), BlockFlag),
        "crc_type": _CRC_NAMES[CrcType(b.crc_type)],
        "crc_verified": True if b.crc_type else None,
        "data_length": len(data),
    }
    if b.block_type == BlockType.PREVIOUS_NODE:
        out["previous_node"] = str(PreviousNode.from_data(data).node)
    elif b.block_type == BlockType.BUNDLE_AGE:
        out["bundle_age_ms"] = BundleAge.from_data(data).age_ms
    elif b.block_type == BlockType.HOP_COUNT:
        hc = HopCount.from_data(data)
        out["hop_limit"], out["hop_count"] = hc.limit, hc.count
    elif b.block_type == BlockType.PAYLOAD:
        out["payload"] = _preview(data)
    else:
        out["data_preview_hex"] = data[:PREVIEW_BYTES].hex()
    return out


def _item_json(item: StatusItem) -> dict[str, Any]:
    out: dict[str, Any] = {"asserted": item.asserted}
    if item.time_ms is not None:
        out["time_ms"] = item.time_ms
        out["time_utc"] = _utc(item.time_ms)
    return out


def admin_record_json(record: AdminRecord, depth: int = 0) -> dict[str, Any]:
    """A JSON-ready description of an administrative record (BIBE PDUs: with the encapsulated bundle)."""
    out: dict[str, Any] = {"record_type": int(record.record_type)}
    if isinstance(record, StatusReport):
        out["kind"] = "status_report"
        names = ("received", "forwarded", "delivered", "deleted")
        out["status"] = {n: _item_json(i) for n, i in zip(names, record.items, strict=True)}
        reason = record.reason
        out["reason_code"] = int(reason)
        out["reason"] = reason.name.lower() if hasattr(reason, "name") else "unassigned"
        out["subject"] = {
            "source": str(record.source),
            "creation_ms": record.creation_ms,
            "sequence": record.sequence,
            "id": str(record.subject_id()),
        }
        if record.fragment_offset is not None:
            out["subject"]["fragment_offset"] = record.fragment_offset
            out["subject"]["fragment_length"] = record.fragment_length
    elif isinstance(record, BibePdu):
        out["kind"] = "bibe_pdu"
        out["flavour"] = record.flavour.value
        out["transmission_id"] = record.transmission_id
        out["deadline"] = record.deadline
        deadline_ms = record.deadline_dtn_ms
        out["deadline_dtn_ms"] = deadline_ms
        out["deadline_utc"] = None if deadline_ms is None else _utc(deadline_ms)
        out["encapsulated_length"] = len(record.encapsulated)
        if depth < MAX_NESTING:
            try:
                out["encapsulated"] = bundle_json(decode_bundle(record.encapsulated), depth + 1)
            except DecodeError as exc:
                out["encapsulated_error"] = str(exc)
    elif isinstance(record, CustodySignal):
        out["kind"] = "custody_signal"
        out["flavour"] = record.flavour.value
        out["disposition_code"] = int(record.disposition)
        out["disposition"] = getattr(record.disposition, "name", "unassigned").lower()
        out["ranges"] = [list(r) for r in record.ranges]
    else:
        out["kind"] = "unknown"
        out["content_hex"] = record.content[: PREVIEW_BYTES * 2].hex()
    return out


def bundle_json(bundle: Bundle, depth: int = 0) -> dict[str, Any]:
    """A JSON-ready description of a decoded (hence valid, CRC-verified) bundle."""
    out: dict[str, Any] = {
        "valid": True,
        "id": str(bundle.id),
        "primary": _primary_json(bundle.primary),
        "blocks": [_block_json(b) for b in bundle.blocks],
        "payload_length": len(bundle.payload),
    }
    if bundle.is_admin_record and not bundle.is_fragment:
        try:
            out["admin_record"] = admin_record_json(decode_admin_record(bundle.payload), depth)
        except DecodeError as exc:  # RFC 9713: an unparseable record is ignored, the bundle stays valid
            out["admin_record"] = {"error": str(exc)}
    return out


def _inspect(args: argparse.Namespace) -> int:
    try:
        raw = _read_input(args.file, hex_text=args.hex)
        bundle = decode_bundle(raw, max_bytes=args.max_bytes)
    except (DtnError, UsageError) as exc:
        return _fail("inspect", exc)
    description = bundle_json(bundle)
    description["size"] = len(raw)
    _to_stdout((json.dumps(description, indent=2) + "\n").encode("utf-8"))
    return 0


# --- fragment and reassemble -----------------------------------------------------------------------------


def _fragment(args: argparse.Namespace) -> int:
    try:
        bundle = decode_bundle(_read_input(args.file))
        pieces = fragment(bundle, args.max_bytes)
        out_dir = Path(args.out_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create {out_dir}: {exc.strerror}") from exc
        stem = "stdin" if args.file == "-" else Path(args.file).name.removesuffix(".bundle")
        width = len(str(len(pieces)))
        for index, piece in enumerate(pieces):
            offset = piece.primary.fragment_offset or 0
            _write_output(str(out_dir / f"{stem}.{index:0{width}d}.at{offset}.bundle"), encode_bundle(piece))
    except (DtnError, UsageError, ValueError) as exc:
        return _fail("fragment", exc)
    print(f"{len(pieces)} fragment(s) written to {out_dir}", file=sys.stderr)
    return 0


def _reassemble(args: argparse.Namespace) -> int:
    try:
        pieces = [decode_bundle(_read_input(name)) for name in args.files]
        whole = reassemble(pieces)
        _write_output(args.out, encode_bundle(whole))
    except (DtnError, UsageError, ValueError) as exc:
        return _fail("reassemble", exc)
    return 0
