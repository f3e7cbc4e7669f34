"""The CRCs against bit-by-bit reference implementations written from the catalogue parameters."""

from hypothesis import given
from hypothesis import strategies as st

from dtn.bundle.crc import CrcType, block_crc, compute_crc, crc16_x25, crc32c


def reference_crc(data: bytes, *, width: int, reflected_poly: int) -> int:
    """Reflected CRC, init and xorout all-ones, one bit at a time."""
    mask = (1 << width) - 1
    crc = mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ reflected_poly if crc & 1 else crc >> 1
    return crc ^ mask


def test_check_values() -> None:
    assert crc16_x25(b"123456789") == 0x906E
    assert crc32c(b"123456789") == 0xE3069283


@given(st.binary(max_size=300))
def test_crc16_matches_reference(data: bytes) -> None:
    assert crc16_x25(data) == reference_crc(data, width=16, reflected_poly=0x8408)
    assert crc16_x25(memoryview(data)) == crc16_x25(bytearray(data))


@given(st.binary(max_size=300))
def test_crc32c_matches_reference(data: bytes) -> None:
    assert crc32c(data) == reference_crc(data, width=32, reflected_poly=0x82F63B78)


@given(st.lists(st.binary(max_size=40), max_size=5), st.sampled_from([CrcType.CRC16_X25, CrcType.CRC32C]))
def test_block_crc_over_parts_equals_crc_over_the_zeroed_whole(parts: list[bytes], crc_type: CrcType) -> None:
    zeros = bytes(2 if crc_type == CrcType.CRC16_X25 else 4)
    assert block_crc(crc_type, *parts) == compute_crc(crc_type, b"".join(parts) + zeros)
    assert block_crc(CrcType.NONE, *parts) == b""
