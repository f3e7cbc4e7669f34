"""`dtn bundle`, run as a real subprocess: build, inspect, fragment, reassemble."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dtn.bundle.codec import decode_bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.flags import BlockType, BundleFlag
from dtn.clock import SystemClock
from tests.vector_data import VECTORS

DTN = [sys.executable, "-c", "from dtn.cli.dtn import run; run()"]


def dtn(*args: str, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*DTN, *args], input=stdin, capture_output=True, timeout=60, cwd=cwd)


def inspect_json(data: bytes, *args: str) -> dict[str, Any]:
    done = dtn("bundle", "inspect", *args, stdin=data)
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


G1_ARGS = ["--src", "ipn:1.1", "--dst", "ipn:2.1", "--creation-ms", "789004800000", "--lifetime-ms", "3600000"]


def test_build_reproduces_the_g1_vector(tmp_path: Path) -> None:
    # G1 is ION's default shape: CRC-16 on the primary block, none on the payload block.
    out = tmp_path / "g1.bundle"
    done = dtn("bundle", "build", *G1_ARGS, "--payload", "hello", "--crc", "none", "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert out.read_bytes() == VECTORS["gen-bundle-G1-minimal"]
    # --hex writes hex text to stdout; raw bytes go to stdout without --out.
    hex_done = dtn("bundle", "build", *G1_ARGS, "--payload", "hello", "--crc", "none", "--hex")
    assert hex_done.stdout.decode().strip() == VECTORS["gen-bundle-G1-minimal"].hex()
    raw_done = dtn("bundle", "build", *G1_ARGS, "--payload", "hello", "--crc", "none")
    assert raw_done.stdout == VECTORS["gen-bundle-G1-minimal"]


def test_build_payload_from_file_and_stdin(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4
    src = tmp_path / "payload.bin"
    src.write_bytes(payload)
    from_file = dtn("bundle", "build", *G1_ARGS, "--payload-file", str(src))
    from_stdin = dtn("bundle", "build", *G1_ARGS, "-", stdin=payload)
    assert from_file.returncode == from_stdin.returncode == 0, from_file.stderr + from_stdin.stderr
    assert from_file.stdout == from_stdin.stdout
    assert bytes(decode_bundle(from_file.stdout).payload) == payload


def test_build_every_option() -> None:
    done = dtn(
        "bundle", "build", "--src", "dtn://earth/app", "--dst", "ipn:2.1", "--payload", "hi", "--crc", "32c",
        "--report-to", "ipn:9.0", "--flags", "report-delivery,status-time-requested", "--flags", "must_not_fragment",
        "--hop-limit", "16", "--previous-node", "ipn:7.0", "--age-ms", "250", "--sequence", "9",
        "--lifetime-ms", "60000", "--creation-ms", "789004800000",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    bundle = decode_bundle(done.stdout)
    p = bundle.primary
    assert p.flags == BundleFlag.REPORT_DELIVERY | BundleFlag.STATUS_TIME_REQUESTED | BundleFlag.MUST_NOT_FRAGMENT
    assert (str(p.source), str(p.destination), str(p.report_to)) == ("dtn://earth/app", "ipn:2.1", "ipn:9.0")
    assert (p.creation_ms, p.sequence, p.lifetime_ms, p.crc_type) == (789004800000, 9, 60000, CrcType.CRC32C)
    assert [b.block_type for b in bundle.blocks] == [6, 7, 10, 1]
    assert all(b.crc_type == CrcType.CRC32C for b in bundle.blocks)
    assert str(bundle.previous_node) == "ipn:7.0"
    assert bundle.bundle_age_ms == 250
    assert bundle.hop_count is not None and (bundle.hop_count.limit, bundle.hop_count.count) == (16, 0)


def test_build_takes_creation_time_from_the_system_clock() -> None:
    before = SystemClock().dtn_ms()
    done = dtn("bundle", "build", "--src", "ipn:1.1", "--dst", "ipn:2.1", "--payload", "now")
    after = SystemClock().dtn_ms()
    assert done.returncode == 0, done.stderr.decode()
    bundle = decode_bundle(done.stdout)
    assert before <= bundle.primary.creation_ms <= after
    assert str(bundle.primary.report_to) == "ipn:1.0"  # default: the source's node ID


def test_build_with_creation_time_zero_adds_a_bundle_age_block() -> None:
    done = dtn("bundle", "build", "--src", "ipn:1.1", "--dst", "ipn:2.1", "--payload", "x", "--creation-ms", "0")
    assert done.returncode == 0, done.stderr.decode()
    assert decode_bundle(done.stdout).block(BlockType.BUNDLE_AGE) is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--src", "ipn:1", "--dst", "ipn:2.1", "--payload", "x"], "ipn"),
        (["--src", "ipn:1.1", "--dst", "ipn:2.1", "--payload", "x", "--flags", "bogus"], "unknown bundle flag"),
        (["--src", "ipn:1.1", "--dst", "ipn:2.1", "--payload", "x", "--hop-limit", "300"], "1..255"),
        (["--src", "dtn:none", "--dst", "ipn:2.1", "--payload", "x"], "must not fragment"),
        (["--src", "ipn:1.1", "--dst", "ipn:2.1"], "required"),
        (["--src", "ipn:1.1", "--dst", "ipn:2.1", "--payload-file", "/nonexistent/file"], "cannot read"),
    ],
)
def test_build_rejects_bad_arguments_with_a_message(args: list[str], message: str) -> None:
    done = dtn("bundle", "build", *args)
    assert done.returncode == 2
    assert message in done.stderr.decode()
    assert b"Traceback" not in done.stderr
    assert done.stdout == b""


def test_inspect_g2_shows_every_block() -> None:
    info = inspect_json(VECTORS["gen-bundle-G2-ext"])
    assert info["valid"] is True
    assert info["id"] == "ipn:1.1/789004800000/7"
    assert info["size"] == len(VECTORS["gen-bundle-G2-ext"])
    primary = info["primary"]
    assert primary["flags"] == 0x020040
    assert primary["flag_names"] == ["status_time_requested", "report_delivery"]
    assert (primary["crc_type"], primary["crc_verified"]) == ("crc32c", True)
    assert (primary["destination"], primary["source"], primary["report_to"]) == ("ipn:2.1", "ipn:1.1", "ipn:1.0")
    assert primary["creation_utc"] == "2025-01-01T00:00:00.000Z"
    blocks = info["blocks"]
    assert [(b["type"], b["type_code"], b["number"]) for b in blocks] == [
        ("previous_node", 6, 2),
        ("bundle_age", 7, 3),
        ("hop_count", 10, 4),
        ("payload", 1, 1),
    ]
    assert blocks[0]["previous_node"] == "ipn:3.0"
    assert blocks[1]["bundle_age_ms"] == 1500
    assert (blocks[2]["hop_limit"], blocks[2]["hop_count"]) == (30, 2)
    assert blocks[3]["payload"] == {"length": 11, "preview_text": "hello world", "preview_truncated": False}
    assert [b["crc_type"] for b in blocks] == ["none", "none", "none", "crc32c"]
    assert [b["crc_verified"] for b in blocks] == [None, None, None, True]
    assert "admin_record" not in info


def test_inspect_hex_input_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "g1.hex"
    hex_text = VECTORS["gen-bundle-G1-minimal"].hex()
    path.write_text(hex_text[:40] + "\n" + hex_text[40:] + "\n")
    done = dtn("bundle", "inspect", "--hex", str(path))
    assert done.returncode == 0, done.stderr.decode()
    info = json.loads(done.stdout)
    assert info["blocks"][0]["payload"]["preview_text"] == "hello"
    assert info["primary"]["crc_type"] == "crc16-x25"


def test_inspect_binary_payload_preview_is_hex() -> None:
    done = dtn("bundle", "build", *G1_ARGS, "-", stdin=bytes(range(100)))
    info = inspect_json(done.stdout)
    payload = info["blocks"][-1]["payload"]
    assert payload == {"length": 100, "preview_hex": bytes(range(32)).hex(), "preview_truncated": True}


def test_inspect_status_report_bundle() -> None:
    info = inspect_json(VECTORS["gen-status-report-bundle"])
    record = info["admin_record"]
    assert record["kind"] == "status_report" and record["record_type"] == 1
    assert record["status"]["delivered"] == {
        "asserted": True,
        "time_ms": 789004805000,
        "time_utc": "2025-01-01T00:00:05.000Z",
    }
    assert record["status"]["received"] == {"asserted": False}
    assert (record["reason_code"], record["reason"]) == (0, "no_info")
    assert record["subject"]["id"] == "ipn:1.1/789004800000/7"


def test_inspect_ion_bibe_bundle_shows_the_encapsulated_bundle() -> None:
    info = inspect_json(VECTORS["ion-bibe-bpdu-bundle"])
    assert "ion_bibe" in info["primary"]["flag_names"]
    record = info["admin_record"]
    assert (record["kind"], record["flavour"], record["record_type"]) == ("bibe_pdu", "ion", 7)
    assert (record["transmission_id"], record["deadline"]) == (1, 1735693202)
    assert record["deadline_utc"] == "2025-01-01T01:00:02.000Z"
    assert record["encapsulated"]["id"] == "ipn:1.1/789004800000/0"
    assert record["encapsulated"]["blocks"][0]["payload"]["preview_text"] == "hello"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (VECTORS["bp7rs-bundle-LEGACY-INVALID"], 8),
        (VECTORS["gen-bundle-G2-ext"][:-3] + b"\x00\x00\xff", 8),  # payload CRC-32C broken
        (b"", 8),
        (b"not a bundle at all", 8),
    ],
)
def test_inspect_invalid_bundle_exits_1_with_reason(data: bytes, reason: int) -> None:
    done = dtn("bundle", "inspect", "-", stdin=data)
    assert done.returncode == 1
    assert done.stdout == b""
    err = done.stderr.decode()
    assert err.count("\n") == 1, err
    assert f"reason {reason} " in err
    assert "Traceback" not in err


def test_inspect_bad_hex_and_missing_file() -> None:
    bad_hex = dtn("bundle", "inspect", "--hex", stdin=b"9f zz")
    assert bad_hex.returncode == 1 and "hex" in bad_hex.stderr.decode()
    missing = dtn("bundle", "inspect", "/nonexistent/bundle")
    assert missing.returncode == 2 and "cannot read" in missing.stderr.decode()


def test_fragment_and_reassemble_round_trip(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 12
    (tmp_path / "payload.bin").write_bytes(payload)
    whole = tmp_path / "big.bundle"
    built = dtn("bundle", "build", *G1_ARGS, "--payload-file", str(tmp_path / "payload.bin"), "--hop-limit", "9",
                "--out", str(whole))  # fmt: skip
    assert built.returncode == 0, built.stderr.decode()
    frags = tmp_path / "frags"
    done = dtn("bundle", "fragment", "--max-bytes", "1000", str(whole), "--out-dir", str(frags))
    assert done.returncode == 0, done.stderr.decode()
    files = sorted(frags.iterdir())
    assert len(files) >= 4
    offsets = []
    for f in files:
        assert len(f.read_bytes()) <= 1000
        piece = decode_bundle(f.read_bytes())
        assert piece.is_fragment
        offsets.append(piece.primary.fragment_offset)
    assert offsets == sorted(offsets) and offsets[0] == 0
    out = tmp_path / "whole.bundle"
    done = dtn("bundle", "reassemble", *[str(f) for f in reversed(files)], "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert out.read_bytes() == whole.read_bytes()
    # Missing a piece: exit 1 with a message, no output file.
    partial = tmp_path / "partial.bundle"
    done = dtn("bundle", "reassemble", *[str(f) for f in files[1:]], "--out", str(partial))
    assert done.returncode == 1
    assert not partial.exists()
    assert b"Traceback" not in done.stderr


def test_fragment_refuses_must_not_fragment(tmp_path: Path) -> None:
    src = tmp_path / "nf.bundle"
    built = dtn("bundle", "build", *G1_ARGS, "--payload", "x" * 3000, "--flags", "must-not-fragment",
                "--out", str(src))  # fmt: skip
    assert built.returncode == 0
    done = dtn("bundle", "fragment", "--max-bytes", "1000", str(src), "--out-dir", str(tmp_path / "f"))
    assert done.returncode == 1
    assert b"Traceback" not in done.stderr


def test_bundle_without_subcommand_prints_usage() -> None:
    done = dtn("bundle")
    assert done.returncode == 2
    assert b"build" in done.stderr
