"""Endpoint IDs (RFC 9171 §4.2.5, RFC 9758): the ``dtn`` and ``ipn`` schemes, text and CBOR forms.

``Eid`` values are immutable and hashable. Text: ``dtn:none``, ``dtn://node/demux``, ``ipn:N.S``,
``ipn:A.N.S``, ``ipn:!.S`` (LocalNode). CBOR: ``[1, 0]`` for ``dtn:none``, ``[1, "//node/demux"]``,
``[2, [node, service]]`` (node may be a 64-bit fully-qualified node number, allocator << 32 | node) or
``[2, [allocator, node, service]]``. We always emit the two-element ipn form, which ION and HDTN read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dtn.bundle.cbor import (
    MAJOR_TSTR,
    MAJOR_UINT,
    encode_tstr,
    encode_uint,
    read_array_head,
    read_head,
    read_tstr,
    read_uint,
)
from dtn.errors import DecodeError, InvalidEid

SCHEME_DTN = 1
SCHEME_IPN = 2

U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
#: RFC 9758 LocalNode node number, text form ``ipn:!.S``.
IPN_LOCAL_NODE = U32_MAX

_REG_NAME = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=%]+$")
_VCHAR = re.compile(r"^[\x21-\x7e]*$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]*)$")


@dataclass(frozen=True, slots=True)
class DtnEid:
    """A ``dtn`` scheme EID; ``ssp`` is everything after ``dtn:`` (``none`` or ``//node/demux``)."""

    ssp: str

    scheme = SCHEME_DTN

    def __post_init__(self) -> None:
        if self.ssp == "none":
            return
        if not self.ssp.startswith("//"):
            raise InvalidEid(f"dtn EID must be dtn:none or dtn://node/demux, got dtn:{self.ssp}")
        node, sep, demux = self.ssp[2:].partition("/")
        if not sep:
            raise InvalidEid(f"dtn EID needs a '/' after the node name: dtn:{self.ssp} (try dtn:{self.ssp}/)")
        if not node or not _REG_NAME.match(node):
            raise InvalidEid(f"dtn EID has an invalid node name {node!r}: dtn:{self.ssp}")
        if not _VCHAR.match(demux):
            raise InvalidEid(f"dtn EID demux may hold only visible ASCII characters: dtn:{self.ssp!r}")

    @property
    def is_null(self) -> bool:
        return self.ssp == "none"

    @property
    def node_name(self) -> str:
        if self.is_null:
            raise InvalidEid("dtn:none has no node name")
        return self.ssp[2:].partition("/")[0]

    @property
    def demux(self) -> str:
        if self.is_null:
            return ""
        return self.ssp[2:].partition("/")[2]

    @property
    def is_node_id(self) -> bool:
        """True for ``dtn://node/`` (the administrative endpoint, empty demux)."""
        return not self.is_null and self.demux == ""

    @property
    def is_singleton(self) -> bool:
        return not self.demux.startswith("~")

    def node_id(self) -> DtnEid:
        """The node ID (``dtn://node/``) of the node this endpoint belongs to."""
        if self.is_null:
            raise InvalidEid("dtn:none belongs to no node")
        return DtnEid(f"//{self.node_name}/")

    def to_cbor(self) -> list[Any]:
        return [SCHEME_DTN, 0 if self.is_null else self.ssp]

    def __str__(self) -> str:
        return f"dtn:{self.ssp}"

    def __repr__(self) -> str:
        return f"Eid('{self}')"


@dataclass(frozen=True, slots=True)
class IpnEid:
    """An ``ipn`` scheme EID (RFC 9758): allocator, node and service numbers, each 32 bits."""

    node: int
    service: int
    allocator: int = 0

    scheme = SCHEME_IPN

    def __post_init__(self) -> None:
        for name, value in (("allocator", self.allocator), ("node", self.node), ("service", self.service)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= U32_MAX:
                raise InvalidEid(f"ipn {name} number must be an integer from 0 to 2^32-1, got {value!r}")

    @property
    def is_null(self) -> bool:
        return self.allocator == 0 and self.node == 0 and self.service == 0

    @property
    def is_node_id(self) -> bool:
        return self.service == 0 and not self.is_null

    @property
    def is_singleton(self) -> bool:
        return True

    @property
    def fqnn(self) -> int:
        """Fully-qualified node number, ``allocator << 32 | node``."""
        return (self.allocator << 32) | self.node

    def node_id(self) -> IpnEid:
        """The node's administrative endpoint, ``ipn:N.0``."""
        if self.is_null:
            raise InvalidEid("the null ipn EID belongs to no node")
        return IpnEid(self.node, 0, self.allocator)

    def with_service(self, service: int) -> IpnEid:
        return IpnEid(self.node, service, self.allocator)

    def to_cbor(self) -> list[Any]:
        return [SCHEME_IPN, [self.fqnn, self.service]]

    def __str__(self) -> str:
        node = "!" if self.node == IPN_LOCAL_NODE else str(self.node)
        if self.allocator:
            return f"ipn:{self.allocator}.{node}.{self.service}"
        return f"ipn:{node}.{self.service}"

    def __repr__(self) -> str:
        return f"Eid('{self}')"


Eid = DtnEid | IpnEid

#: ``dtn:none``, the null endpoint.
NULL_EID = DtnEid("none")


def is_null(eid: Eid) -> bool:
    """True for ``dtn:none`` and ``ipn:0.0`` (equivalent under RFC 9758)."""
    return eid.is_null


def _ipn_number(text: str, what: str, full: str) -> int:
    if not _DECIMAL.match(text):
        raise InvalidEid(f"ipn {what} number must be unsigned decimal, got {text!r} in {full!r}")
    value = int(text)
    if value > U32_MAX:
        raise InvalidEid(f"ipn {what} number exceeds 32 bits in {full!r}")
    return value


def parse_eid(text: str) -> Eid:
    """Parse the text form of an EID; raises ``InvalidEid`` saying what is wrong."""
    if not isinstance(text, str):
        raise InvalidEid(f"EID must be text, got {type(text).__name__}")
    scheme, colon, ssp = text.partition(":")
    if not colon:
        raise InvalidEid(f"EID has no scheme: {text!r} (expected dtn:… or ipn:…)")
    scheme = scheme.lower()
    if scheme == "dtn":
        return DtnEid(ssp)
    if scheme == "ipn":
        parts = ssp.split(".")
        if len(parts) == 2:
            node_text, service_text = parts
            allocator = 0
        elif len(parts) == 3:
            allocator = _ipn_number(parts[0], "allocator", text)
            node_text, service_text = parts[1], parts[2]
        else:
            raise InvalidEid(f"ipn EID must be ipn:node.service or ipn:allocator.node.service, got {text!r}")
        node = IPN_LOCAL_NODE if node_text == "!" else _ipn_number(node_text, "node", text)
        return IpnEid(node, _ipn_number(service_text, "service", text), allocator)
    raise InvalidEid(f"unknown EID scheme {scheme!r} in {text!r} (supported: dtn, ipn)")


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _normalise_dtn_ssp(ssp: str) -> str:
    """2020-era encoders (bp7-rs samples) omitted the leading ``//`` and wrote a bare node name for a node
    ID (``"n1"``): accept and normalise to ``//n2/inbox`` and ``//n1/``."""
    if ssp.startswith("//"):
        return ssp
    return "//" + ssp if "/" in ssp else "//" + ssp + "/"


def eid_from_cbor(item: object) -> Eid:
    """An EID from its decoded CBOR form ``[scheme, ssp]``; raises ``InvalidEid``."""
    if not isinstance(item, list | tuple) or len(item) != 2:
        raise InvalidEid(f"EID must be a 2-item array [scheme, ssp], got {item!r:.60}")
    scheme, ssp = item
    if scheme == SCHEME_DTN and _is_uint(scheme):
        if ssp == 0 and _is_uint(ssp):
            return NULL_EID
        if not isinstance(ssp, str):
            raise InvalidEid(f"dtn SSP must be text or 0, got {ssp!r:.60}")
        if ssp == "none":
            raise InvalidEid("dtn:none must be encoded as [1, 0], not as text")
        return DtnEid(_normalise_dtn_ssp(ssp))
    if scheme == SCHEME_IPN and _is_uint(scheme):
        if not isinstance(ssp, list | tuple) or not all(_is_uint(n) for n in ssp):
            raise InvalidEid(f"ipn SSP must be an array of unsigned integers, got {ssp!r:.60}")
        if len(ssp) == 2:
            fqnn, service = ssp
            if fqnn > U64_MAX:
                raise InvalidEid("ipn node number exceeds 64 bits")
            return IpnEid(fqnn & U32_MAX, service, fqnn >> 32)
        if len(ssp) == 3:
            return IpnEid(ssp[1], ssp[2], ssp[0])
        raise InvalidEid(f"ipn SSP must have 2 or 3 elements, got {len(ssp)}")
    raise InvalidEid(f"unsupported EID scheme code {scheme!r} (supported: 1 dtn, 2 ipn)")


# --- CBOR wire form, hand-rolled for the bundle codec's hot path -------------------------------------------

_NULL_DTN_CBOR = b"\x82\x01\x00"


def encode_eid(eid: Eid) -> bytes:
    """The deterministic CBOR encoding of an EID (two-element ipn form, ``//`` dtn SSP)."""
    if isinstance(eid, IpnEid):
        node, service = eid.node, eid.service
        if node < 24 and service < 24 and not eid.allocator:
            return bytes((0x82, SCHEME_IPN, 0x82, node, service))
        return b"\x82\x02\x82" + encode_uint(eid.fqnn) + encode_uint(service)
    if eid.is_null:
        return _NULL_DTN_CBOR
    return b"\x82\x01" + encode_tstr(eid.ssp)


def read_eid(buf: bytes, pos: int, end: int, what: str) -> tuple[Eid, int]:
    """Read one CBOR-encoded EID at ``pos``: ``(eid, next_pos)``.

    Raises ``DecodeError`` when the CBOR structure is wrong and ``InvalidEid`` when the structure is right
    but the value is not a valid EID (unknown scheme, number out of range, bad dtn SSP), so that the
    caller can pick the status-report reason.
    """
    if pos + 5 <= end and buf[pos] == 0x82 and buf[pos + 1] == SCHEME_IPN and buf[pos + 2] == 0x82:
        node = buf[pos + 3]
        service = buf[pos + 4]
        if node < _SMALL and service < _SMALL:  # fast path: ipn:N.S with N, S < 24
            return _SMALL_IPN[node * _SMALL + service], pos + 5
    count, pos = read_array_head(buf, pos, end, what)
    if count != 2:
        raise DecodeError(f"{what}: EID must be a 2-item array [scheme, ssp], got {count} items")
    scheme, pos = read_uint(buf, pos, end, f"{what} scheme code")
    if scheme == SCHEME_IPN:
        n, pos = read_array_head(buf, pos, end, f"{what} ipn SSP")
        if n == 2:
            fqnn, pos = read_uint(buf, pos, end, f"{what} ipn node number")
            service, pos = read_uint(buf, pos, end, f"{what} ipn service number")
            if fqnn == 0 and service == 0:
                return _NULL_IPN, pos
            return IpnEid(fqnn & U32_MAX, service, fqnn >> 32), pos
        if n == 3:
            allocator, pos = read_uint(buf, pos, end, f"{what} ipn allocator")
            node, pos = read_uint(buf, pos, end, f"{what} ipn node number")
            service, pos = read_uint(buf, pos, end, f"{what} ipn service number")
            return IpnEid(node, service, allocator), pos
        raise InvalidEid(f"{what}: ipn SSP must have 2 or 3 elements, got {n}")
    if scheme == SCHEME_DTN:
        major, value, nxt = read_head(buf, pos, end)
        if major == MAJOR_UINT:
            if value != 0:
                raise InvalidEid(f"{what}: dtn SSP integer must be 0 (dtn:none), got {value}")
            return NULL_EID, nxt
        if major != MAJOR_TSTR:
            raise DecodeError(f"{what}: dtn SSP must be a text string or 0")
        ssp, pos = read_tstr(buf, pos, end, f"{what} dtn SSP")
        if ssp == "none":
            raise InvalidEid(f"{what}: dtn:none must be encoded as [1, 0], not as text")
        return DtnEid(_normalise_dtn_ssp(ssp)), pos
    raise InvalidEid(f"{what}: unsupported EID scheme code {scheme} (supported: 1 dtn, 2 ipn)")


_NULL_IPN = IpnEid(0, 0)
_SMALL = 24
# Immutable table of the ipn EIDs whose numbers fit in a one-byte CBOR head (the common case on the wire).
_SMALL_IPN: tuple[IpnEid, ...] = tuple(IpnEid(n, s) for n in range(_SMALL) for s in range(_SMALL))
