"""UDP convergence layer framing, pure: what one received datagram is, and what may be sent.

RFC 7122 (and ION, HDTN, dtn7-rs): the payload of one UDP datagram is exactly one encoded bundle; four zero
octets are a keepalive. draft-ietf-dtn-udpcl classifies a datagram by its first octet (§3.1 of our digest):
``0x80``-``0x9f`` BPv7 bundle, ``0x00`` padding/keepalive, ``0x06`` BPv6, ``0xa0``-``0xbf`` extension map,
DTLS record types. We send only whole BPv7 bundles and accept liberally: anything else is classified, counted
and dropped by the adapter, never fatal.

A BPv7 datagram is checked here only for CBOR well-formedness (one complete array item, nothing after it), so
that truncated and padded datagrams are told apart from bundles cheaply; the bundle codec does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from ipaddress import ip_address

from dtn.errors import ConfigError

#: IANA "dtn-bundle" UDP port (RFC 7122).
DEFAULT_PORT = 4556
#: Largest UDP payload over IPv4: 65,535 - 8 (UDP header) - 20 (IPv4 header).
MAX_UDP_PAYLOAD_IPV4 = 65_507
#: Largest UDP payload over IPv6 without jumbograms: 65,535 - 8 (the IPv6 header is not counted in its length).
MAX_UDP_PAYLOAD_IPV6 = 65_527
#: Largest datagram a receiver reads (ION's UDPCLA_BUFSZ, HDTN's sample configs, dtn7-rs).
MAX_RECEIVE_DATAGRAM = 65_535
#: The RFC 7122 keepalive: exactly four zero octets.
KEEPALIVE = b"\x00\x00\x00\x00"
#: Nesting bound for the well-formedness scan (a bundle needs 4 levels; extension blocks a few more).
MAX_CBOR_DEPTH = 32


class DatagramKind(Enum):
    BUNDLE = "bundle"  # one whole BPv7 bundle (first octet 0x80-0x9f, one well-formed CBOR array)
    KEEPALIVE = "keepalive"  # exactly four zero octets
    PADDING = "padding"  # first octet 0x00, not a keepalive: ignore the whole datagram
    EXTENSION = "extension"  # draft-ietf-dtn-udpcl extension map(s): recognised, not implemented here
    BPV6 = "bpv6"  # a BPv6 bundle: recognised, not supported
    DTLS = "dtls"  # a DTLS record: recognised, not supported
    MALFORMED = "malformed"  # empty, unknown first octet, truncated or trailing bytes, too large


#: Kinds that are recognised but deliberately dropped without complaint.
IGNORED_KINDS = frozenset({DatagramKind.PADDING, DatagramKind.EXTENSION, DatagramKind.BPV6, DatagramKind.DTLS})


@dataclass(frozen=True, slots=True)
class Datagram:
    """What a received datagram is; ``reason`` says why for anything but a bundle or a keepalive."""

    kind: DatagramKind
    reason: str = ""


_BUNDLE = Datagram(DatagramKind.BUNDLE)
_KEEPALIVE = Datagram(DatagramKind.KEEPALIVE)


class _Malformed(Exception):
    pass


def classify_datagram(data: bytes | bytearray | memoryview, *, max_bytes: int = MAX_RECEIVE_DATAGRAM) -> Datagram:
    """Classify one received UDP payload. Total: never raises, whatever the bytes."""
    size = len(data)
    if size == 0:
        return Datagram(DatagramKind.MALFORMED, "empty datagram")
    if size > max_bytes:
        return Datagram(DatagramKind.MALFORMED, f"datagram of {size} bytes exceeds the limit of {max_bytes}")
    first = data[0]
    if 0x80 <= first <= 0x9F:
        try:
            end = cbor_item_end(data)
        except _Malformed as exc:
            return Datagram(DatagramKind.MALFORMED, f"not a whole bundle: {exc}")
        if end != size:
            return Datagram(DatagramKind.MALFORMED, f"{size - end} trailing bytes after the bundle")
        return _BUNDLE
    if first == 0x00:
        if size == 4 and bytes(data) == KEEPALIVE:
            return _KEEPALIVE
        return Datagram(DatagramKind.PADDING, f"padding datagram of {size} bytes")
    if 0xA0 <= first <= 0xBF:
        return Datagram(DatagramKind.EXTENSION, "UDPCL extension map (draft-ietf-dtn-udpcl) not supported")
    if first == 0x06:
        return Datagram(DatagramKind.BPV6, "BPv6 bundle not supported")
    if 0x14 <= first <= 0x1A or 0x20 <= first <= 0x3F:
        return Datagram(DatagramKind.DTLS, "DTLS record not supported")
    return Datagram(DatagramKind.MALFORMED, f"first octet 0x{first:02x} starts no bundle")


# What each initial byte means to the scanner: (action, width of the argument that follows it).
_SKIP, _STRING, _ARRAY, _MAP, _TAG, _INDEF_STRING, _INDEF_CONTAINER, _BREAK, _SIMPLE1, _RESERVED, _BAD_INDEF = range(11)


def _initial_byte_table() -> tuple[tuple[int, ...], tuple[int, ...]]:
    actions: list[int] = []
    widths: list[int] = []
    for initial in range(256):
        major, info = initial >> 5, initial & 0x1F
        width = 1 << (info - 24) if 24 <= info <= 27 else 0
        if 28 <= info <= 30:
            action = _RESERVED
        elif info == 31:
            if major in (2, 3):
                action = _INDEF_STRING
            elif major in (4, 5):
                action = _INDEF_CONTAINER
            elif major == 7:
                action = _BREAK
            else:
                action = _BAD_INDEF
        elif major in (2, 3):
            action = _STRING
        elif major == 4:
            action = _ARRAY
        elif major == 5:
            action = _MAP
        elif major == 6:
            action = _TAG
        elif major == 7 and info == 24:
            action = _SIMPLE1
        else:
            action = _SKIP
        actions.append(action)
        widths.append(width)
    return tuple(actions), tuple(widths)


_ACTIONS, _WIDTHS = _initial_byte_table()


def cbor_item_end(data: bytes | bytearray | memoryview, offset: int = 0, *, max_depth: int = MAX_CBOR_DEPTH) -> int:
    """Offset just past the one well-formed CBOR item (RFC 8949 §3, Appendix C) that starts at ``offset``.

    Raises ``_Malformed`` (module-private; use :func:`classify_datagram`) when the item is truncated or not
    well-formed. Iterative and table-driven, bounded by ``max_depth`` and by the data length; builds no values.
    """
    n = len(data)
    pos = offset
    actions, widths = _ACTIONS, _WIDTHS
    # One frame per open container: items still expected (> 0), or -1 for an indefinite array or map,
    # -2 / -3 for an indefinite byte / text string (whose chunks must be definite strings of that type).
    stack: list[int] = []
    while True:
        if pos >= n:
            raise _Malformed("truncated")
        initial = data[pos]
        pos += 1
        action = actions[initial]
        if stack and stack[-1] < -1 and initial != 0xFF:
            if action != _STRING or (initial >> 5) != -stack[-1]:
                raise _Malformed(f"bad chunk in an indefinite-length string at offset {pos - 1}")
        if action == _SKIP:
            pos += widths[initial]
        elif action == _STRING:
            width = widths[initial]
            if width:
                if pos + width > n:
                    raise _Malformed("truncated")
                length = int.from_bytes(data[pos : pos + width], "big")
                pos += width
            else:
                length = initial & 0x1F
            if length > n - pos:
                raise _Malformed("truncated")
            pos += length
        elif action == _ARRAY or action == _MAP or action == _TAG:
            width = widths[initial]
            if width:
                if pos + width > n:
                    raise _Malformed("truncated")
                count = int.from_bytes(data[pos : pos + width], "big")
                pos += width
            else:
                count = initial & 0x1F
            if action == _MAP:
                count *= 2
            elif action == _TAG:
                count = 1
            if count:
                if count > n - pos:
                    raise _Malformed("truncated")
                stack.append(count)
                if len(stack) > max_depth:
                    raise _Malformed("nested too deeply")
                continue
        elif action == _INDEF_CONTAINER or action == _INDEF_STRING:
            stack.append(-1 if action == _INDEF_CONTAINER else -(initial >> 5))
            if len(stack) > max_depth:
                raise _Malformed("nested too deeply")
            continue
        elif action == _BREAK:
            if not stack or stack[-1] > 0:
                raise _Malformed(f"unexpected break at offset {pos - 1}")
            stack.pop()
        elif action == _SIMPLE1:
            if pos >= n:
                raise _Malformed("truncated")
            if data[pos] < 32:
                raise _Malformed(f"two-byte simple value {data[pos]} below 32 at offset {pos - 1}")
            pos += 1
        elif action == _RESERVED:
            raise _Malformed(f"reserved additional information {initial & 0x1F} at offset {pos - 1}")
        else:
            raise _Malformed(f"indefinite length on major type {initial >> 5} at offset {pos - 1}")
        if pos > n:
            raise _Malformed("truncated")
        # One item is complete: count it against the enclosing definite containers.
        while stack:
            top = stack[-1]
            if top > 1:
                stack[-1] = top - 1
                break
            if top == 1:
                stack.pop()
                continue
            break
        else:
            return pos


def send_refusal(data: bytes | bytearray | memoryview, max_bytes: int) -> str | None:
    """Why ``data`` may not go out as one datagram on a link limited to ``max_bytes``; None if it may.

    Only BPv7 bundles are sent (never a keepalive, padding or extension map: ION and HDTN take every datagram
    for a bundle), and only whole: a larger bundle must be fragmented by the agent.
    """
    size = len(data)
    if size == 0:
        return "empty bundle"
    if not 0x80 <= data[0] <= 0x9F:
        return f"not an encoded BPv7 bundle (first octet 0x{data[0]:02x})"
    if size > max_bytes:
        return (
            f"bundle of {size} bytes exceeds the UDP link's maximum of {max_bytes} bytes per datagram; "
            "fragment it (RFC 9171 §5.8) or use another link"
        )
    return None


def max_payload_for_host(host: str) -> int:
    """The UDP payload ceiling for the address family of ``host`` (a literal IP address or a name)."""
    try:
        return MAX_UDP_PAYLOAD_IPV6 if ip_address(host).version == 6 else MAX_UDP_PAYLOAD_IPV4
    except ValueError:
        return MAX_UDP_PAYLOAD_IPV4


def parse_udp_address(address: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``udp://host:port`` → (host, port). The port defaults to 4556, the host to loopback; IPv6 in brackets."""
    scheme, sep, rest = address.partition("://")
    if not sep or scheme.lower() != "udp":
        raise ConfigError(f"not a UDP CL address (udp://host:port): {address!r}")
    rest = rest.rstrip("/")
    if "/" in rest or "?" in rest or "#" in rest or "@" in rest:
        raise ConfigError(f"a UDP CL address has only host and port: {address!r}")
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ConfigError(f"bad IPv6 literal in {address!r}")
        port_text = tail[1:] if tail else ""
    elif rest.count(":") > 1:
        raise ConfigError(f"put an IPv6 address in brackets: {address!r}")
    else:
        host, _, port_text = rest.partition(":")
    host = host or default_host
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65_535:
        raise ConfigError(f"bad UDP port {port_text!r} in {address!r}")
    return host, int(port_text)


def format_udp_address(host: str, port: int) -> str:
    """(host, port) → ``udp://host:port`` (IPv6 literals in brackets)."""
    return f"udp://[{host}]:{port}" if ":" in host else f"udp://{host}:{port}"
