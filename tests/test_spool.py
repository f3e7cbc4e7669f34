"""FileSpool: a large received bundle written to a real file as it arrives, its head and payload CRC checked on
the way; fed whole, split at every offset and byte by byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtn.bundle.blocks import BundleAge, PrimaryBlock, payload_block
from dtn.bundle.bundle import Bundle
from dtn.bundle.codec import decode_bundle, encode_bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import IpnEid
from dtn.bundle.flags import BundleFlag
from dtn.convergence.base import RefuseReason
from dtn.spool import FileSpool, SpoolError, clear_spool_directory


def raw_bundle(payload: bytes, crc: CrcType = CrcType.CRC32C) -> bytes:
    p = PrimaryBlock(BundleFlag(0), CrcType.CRC16_X25, IpnEid(2, 1), IpnEid(1, 1), IpnEid(1, 0), 0, 8, 3_600_000)
    age = BundleAge(5).block(2, crc_type=CrcType.CRC32C)
    return encode_bundle(Bundle(p, (age, payload_block(payload, crc_type=crc))))


def feed(tmp: Path, raw: bytes, cuts: list[int], **options: object) -> tuple[FileSpool, RefuseReason | None]:
    spool = FileSpool(tmp, max_bundle_bytes=int(options.get("max_bytes", 1 << 30)),  # type: ignore[call-overload]
                      room=lambda n: n <= int(options.get("room", 1 << 30)))  # type: ignore[call-overload]
    pos = 0
    for cut in [*cuts, len(raw)]:
        if cut > pos:
            reason = spool.write(raw[pos:cut])
            if reason is not None:
                return spool, reason
            pos = cut
    return spool, None


PAYLOAD = bytes(range(256)) * 3


@pytest.mark.parametrize("crc", [CrcType.NONE, CrcType.CRC16_X25, CrcType.CRC32C])
def test_split_at_every_offset(tmp_path: Path, crc: CrcType) -> None:
    raw = raw_bundle(PAYLOAD, crc)
    for cut in range(len(raw) + 1):
        spool, reason = feed(tmp_path, raw, [cut])
        assert reason is None
        head = spool.finish(len(raw))
        assert spool.path.read_bytes() == raw
        assert b"".join(spool.payload_chunks()) == PAYLOAD
        assert head.payload_length == len(PAYLOAD) and head.encoded_length == len(raw)
        spool.discard()
    assert list(tmp_path.iterdir()) == []


def test_byte_by_byte(tmp_path: Path) -> None:
    raw = raw_bundle(PAYLOAD)
    spool, reason = feed(tmp_path, raw, list(range(len(raw))))
    assert reason is None
    spool.finish(len(raw))
    assert decode_bundle(spool.path.read_bytes()).payload == PAYLOAD


@settings(max_examples=60, deadline=None)
@given(flip=st.integers(0, 10_000))
def test_a_corrupted_payload_is_refused(tmp_path_factory: pytest.TempPathFactory, flip: int) -> None:
    raw = bytearray(raw_bundle(PAYLOAD))
    head_len = len(raw) - len(PAYLOAD) - 6
    index = head_len + flip % len(PAYLOAD)
    raw[index] ^= 0x01
    tmp = tmp_path_factory.mktemp("spool")
    spool, reason = feed(tmp, bytes(raw), [100, 400])
    assert reason is None  # the head is fine
    with pytest.raises(SpoolError):
        spool.finish(len(raw))
    spool.discard()
    assert list(tmp.iterdir()) == []


def test_not_a_bundle_is_refused_before_a_file_is_written(tmp_path: Path) -> None:
    _, reason = feed(tmp_path, b"\x01" * 5000, [10])
    assert reason is RefuseReason.NOT_ACCEPTABLE
    assert list(tmp_path.iterdir()) == []


def test_too_large_and_no_room(tmp_path: Path) -> None:
    raw = raw_bundle(PAYLOAD)
    assert feed(tmp_path, raw, [200], max_bytes=len(raw) - 1)[1] is RefuseReason.NOT_ACCEPTABLE
    assert feed(tmp_path, raw, [200], room=len(raw) - 1)[1] is RefuseReason.NO_RESOURCES
    assert list(tmp_path.iterdir()) == []


def test_more_or_fewer_bytes_than_the_bundle_are_refused(tmp_path: Path) -> None:
    raw = raw_bundle(PAYLOAD)
    assert feed(tmp_path, raw + b"\x00", [])[1] is RefuseReason.NOT_ACCEPTABLE
    spool, reason = feed(tmp_path, raw[:-1], [])
    assert reason is None
    with pytest.raises(SpoolError):
        spool.finish(len(raw) - 1)
    spool.discard()


def test_clear_spool_directory(tmp_path: Path) -> None:
    (tmp_path / ".tmp-spool-abc").write_bytes(b"x")
    (tmp_path / "keep.bundle").write_bytes(b"x")
    assert clear_spool_directory(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep.bundle"]
