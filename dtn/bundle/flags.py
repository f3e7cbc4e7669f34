"""Flag and type registries of RFC 9171 §4.2.3, §4.2.4 and §9.1, with RFC vocabulary.

Both flag classes are ``IntFlag`` with the default ``KEEP`` boundary: reserved and unassigned bits that
arrive on the wire survive decode and encode unchanged (RFC 9171 says to ignore them, never to clear them).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class BundleFlag(IntFlag):
    """Bundle processing control flags (primary block)."""

    IS_FRAGMENT = 0x000001
    ADMIN_RECORD = 0x000002
    MUST_NOT_FRAGMENT = 0x000004
    #: Reserved bit 3; ION sets it privately (``BDL_IS_BIBE``) on bundles carrying a BIBE PDU.
    ION_BIBE = 0x000008
    APP_ACK_REQUESTED = 0x000020
    STATUS_TIME_REQUESTED = 0x000040
    REPORT_RECEPTION = 0x004000
    REPORT_FORWARDING = 0x010000
    REPORT_DELIVERY = 0x020000
    REPORT_DELETION = 0x040000


#: The four status-report request flags.
REPORT_REQUEST_FLAGS = (
    BundleFlag.REPORT_RECEPTION | BundleFlag.REPORT_FORWARDING | BundleFlag.REPORT_DELIVERY | BundleFlag.REPORT_DELETION
)


class BlockFlag(IntFlag):
    """Block processing control flags (canonical blocks)."""

    REPLICATE_IN_EVERY_FRAGMENT = 0x01
    REPORT_IF_UNPROCESSABLE = 0x02
    DELETE_BUNDLE_IF_UNPROCESSABLE = 0x04
    DISCARD_IF_UNPROCESSABLE = 0x10


class BlockType(IntEnum):
    """Bundle block type codes (IANA "Bundle Block Types", BP version 7)."""

    PAYLOAD = 1
    PREVIOUS_NODE = 6
    BUNDLE_AGE = 7
    HOP_COUNT = 10
    BIB = 11
    BCB = 12


#: Block types this package understands itself; every other type is carried through opaquely.
KNOWN_BLOCK_TYPES = frozenset(int(t) for t in BlockType)

#: No block processing control flags (a handy default).
NO_BLOCK_FLAGS = BlockFlag(0)

# Fast, memory-bounded conversion of wire values. ``IntFlag(value)`` memoises every value it has seen in the
# class's value map, so flag words chosen by a peer would grow it without bound; values with bits we do not
# name are built afresh and not memoised.
_BUNDLE_FLAG_MAP = BundleFlag._value2member_map_
_BLOCK_FLAG_MAP = BlockFlag._value2member_map_
_BUNDLE_KNOWN = sum(int(f) for f in BundleFlag)
_BLOCK_KNOWN = sum(int(f) for f in BlockFlag)


def bundle_flags(value: int) -> BundleFlag:
    """``BundleFlag(value)``, keeping unknown bits, without memoising values that carry unknown bits."""
    flag = _BUNDLE_FLAG_MAP.get(value)
    if flag is None:
        flag = BundleFlag(value)
        if value & ~_BUNDLE_KNOWN:
            _BUNDLE_FLAG_MAP.pop(value, None)
    return flag  # type: ignore[return-value]


def block_flags(value: int) -> BlockFlag:
    """``BlockFlag(value)``, keeping unknown bits, without memoising values that carry unknown bits."""
    flag = _BLOCK_FLAG_MAP.get(value)
    if flag is None:
        flag = BlockFlag(value)
        if value & ~_BLOCK_KNOWN:
            _BLOCK_FLAG_MAP.pop(value, None)
    return flag  # type: ignore[return-value]
