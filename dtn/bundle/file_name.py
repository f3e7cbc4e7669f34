"""The file-name block: how ``dtnsend`` tells ``dtnrecv`` the name of the file a payload came from.

The payload stays the file's raw bytes, so ION's ``bprecvfile`` and HDTN's ``bpreceivefile`` (which know
nothing of this block) still get the file intact. The block is an extension block of type 240 (the private and
experimental range 192-255; ION uses 192-197) whose block-type-specific data is one CBOR text string: the file's
base name, UTF-8, at most 255 bytes. Its block processing flags are 0: a node that does not know it keeps it and
forwards it unchanged (RFC 9171 §4.3.2), and only the first fragment carries it.
"""

from __future__ import annotations

from dtn.bundle.blocks import BlockData, CanonicalBlock
from dtn.bundle.cbor import encode_tstr, read_tstr
from dtn.bundle.crc import CrcType
from dtn.bundle.flags import NO_BLOCK_FLAGS
from dtn.errors import DecodeError

FILE_NAME_BLOCK_TYPE = 240
MAX_FILE_NAME_BYTES = 255


def clean_file_name(name: str) -> str:
    """The base name of ``name`` (no directories), safe to write into a folder; ValueError when nothing is left."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = "".join(ch for ch in base if ch.isprintable())
    if base in ("", ".", ".."):
        raise ValueError(f"not a usable file name: {name!r}")
    encoded = base.encode("utf-8")[:MAX_FILE_NAME_BYTES]
    return encoded.decode("utf-8", errors="ignore")


def file_name_block(name: str, number: int) -> CanonicalBlock:
    data = encode_tstr(clean_file_name(name))
    return CanonicalBlock(FILE_NAME_BLOCK_TYPE, number, NO_BLOCK_FLAGS, CrcType.NONE, data)


def read_file_name(data: BlockData) -> str:
    """The file name in a file-name block's data; ``DecodeError`` when it is not one CBOR text string."""
    buf = bytes(data)
    text, pos = read_tstr(buf, 0, len(buf), "file-name block")
    if pos != len(buf):
        raise DecodeError("file-name block must hold exactly one CBOR text string")
    try:
        return clean_file_name(text)
    except ValueError as exc:
        raise DecodeError(f"file-name block: {exc}") from exc
