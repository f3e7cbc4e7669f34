"""TCPCLv4 wire format (RFC 9174 §4.2, §4.6, §5): every message, its encoding and an incremental parser.

Pure code: bytes in, dataclasses out, and back. All integers are unsigned big-endian. ``MessageParser`` takes
arbitrary chunks and yields whole messages; it refuses lengths above its caps *before* buffering them, so a
hostile peer cannot make it grow without bound.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from dtn.convergence.base import RefuseReason
from dtn.errors import RemoteProtocolError

MAGIC = b"dtn!"
VERSION = 4
CONTACT_HEADER_LENGTH = 6
DEFAULT_PORT = 4556

#: XFER_REFUSE reason codes (RFC 9174 §5.2.4) are the CL contract's ``RefuseReason``.
XferRefuseReason = RefuseReason

#: Transfer extension type 0x0001, Transfer Length (RFC 9174 §5.2.5.1).
TRANSFER_LENGTH_EXTENSION = 0x0001

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


class MessageType(IntEnum):
    """Message type codes (RFC 9174 §9.5)."""

    XFER_SEGMENT = 0x01
    XFER_ACK = 0x02
    XFER_REFUSE = 0x03
    KEEPALIVE = 0x04
    SESS_TERM = 0x05
    MSG_REJECT = 0x06
    SESS_INIT = 0x07


class SessTermReason(IntEnum):
    """SESS_TERM reason codes (RFC 9174 §6.1)."""

    UNKNOWN = 0x00
    IDLE_TIMEOUT = 0x01
    VERSION_MISMATCH = 0x02
    BUSY = 0x03
    CONTACT_FAILURE = 0x04
    RESOURCE_EXHAUSTION = 0x05


class MsgRejectReason(IntEnum):
    """MSG_REJECT reason codes (RFC 9174 §5.1.2)."""

    MESSAGE_TYPE_UNKNOWN = 0x01
    MESSAGE_UNSUPPORTED = 0x02
    MESSAGE_UNEXPECTED = 0x03


class ContactFlag(IntFlag):
    CAN_TLS = 0x01


class SegmentFlag(IntFlag):
    END = 0x01
    START = 0x02


# plain ints for the hot paths (IntFlag arithmetic goes through the enum machinery)
_START = int(SegmentFlag.START)
_END = int(SegmentFlag.END)
_SEGMENT = int(MessageType.XFER_SEGMENT)
_ACK = int(MessageType.XFER_ACK)
_U64 = struct.Struct("!Q")
_SEGMENT_HEAD = struct.Struct("!BQ")  # flags, transfer ID
_ACK_BODY = struct.Struct("!BQQ")  # flags, transfer ID, acknowledged length
_SEGMENT_START_HEADER = struct.Struct("!BBQI")  # type, flags, transfer ID, extension items length
_SEGMENT_HEADER = struct.Struct("!BBQQ")  # type, flags, transfer ID, data length
_ACK_MESSAGE = struct.Struct("!BBQQ")


class SessTermFlag(IntFlag):
    REPLY = 0x01


class ExtensionFlag(IntFlag):
    CRITICAL = 0x01


def _refuse_reason(code: int) -> RefuseReason:
    """Unknown XFER_REFUSE codes are treated as Unknown (RFC 9174 §5.2.4)."""
    try:
        return RefuseReason(code)
    except ValueError:
        return RefuseReason.UNKNOWN


def _term_reason(code: int) -> SessTermReason:
    try:
        return SessTermReason(code)
    except ValueError:
        return SessTermReason.UNKNOWN


# --------------------------------------------------------------------------------------------------------------
# Messages


@dataclass(frozen=True, slots=True)
class ContactHeader:
    """The six bytes each entity sends first (RFC 9174 §4.2). Unknown flag bits are ignored on receipt."""

    can_tls: bool = False
    version: int = VERSION

    def to_bytes(self) -> bytes:
        return MAGIC + bytes((self.version, ContactFlag.CAN_TLS if self.can_tls else 0))


@dataclass(frozen=True, slots=True)
class ExtensionItem:
    """A session or transfer extension item (RFC 9174 §4.8, §5.2.5): flags, u16 type, u16-length value."""

    item_type: int
    value: bytes = b""
    critical: bool = False

    def to_bytes(self) -> bytes:
        if not 0 <= self.item_type <= U16_MAX or len(self.value) > U16_MAX:
            raise ValueError("extension item type or length out of range")
        flags = ExtensionFlag.CRITICAL if self.critical else 0
        return struct.pack("!BHH", flags, self.item_type, len(self.value)) + self.value


def transfer_length_item(total_length: int) -> ExtensionItem:
    """The Transfer Length extension (non-critical), total bundle length as u64."""
    return ExtensionItem(TRANSFER_LENGTH_EXTENSION, struct.pack("!Q", total_length))


def encode_items(items: tuple[ExtensionItem, ...]) -> bytes:
    return b"".join(item.to_bytes() for item in items)


def decode_items(data: bytes) -> tuple[ExtensionItem, ...]:
    """Extension items filling exactly ``data``; an item overrunning it is a protocol error."""
    items: list[ExtensionItem] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 5:
            raise RemoteProtocolError("truncated extension item header", SessTermReason.CONTACT_FAILURE)
        flags, item_type, length = struct.unpack_from("!BHH", data, pos)
        pos += 5
        if pos + length > len(data):
            raise RemoteProtocolError("extension item overruns its list", SessTermReason.CONTACT_FAILURE)
        items.append(ExtensionItem(item_type, bytes(data[pos : pos + length]), bool(flags & 1)))
        pos += length
    return tuple(items)


@dataclass(frozen=True, slots=True)
class SessInit:
    """SESS_INIT (RFC 9174 §4.6)."""

    keepalive_s: int
    segment_mru: int
    transfer_mru: int
    node_id: str
    extensions: tuple[ExtensionItem, ...] = ()

    def to_bytes(self) -> bytes:
        node = self.node_id.encode("utf-8")
        items = encode_items(self.extensions)
        if not (0 <= self.keepalive_s <= U16_MAX and len(node) <= U16_MAX):
            raise ValueError("SESS_INIT keepalive or node ID out of range")
        head = struct.pack("!BHQQH", MessageType.SESS_INIT, self.keepalive_s, self.segment_mru,
                           self.transfer_mru, len(node))
        return head + node + struct.pack("!I", len(items)) + items


@dataclass(frozen=True, slots=True)
class SessTerm:
    """SESS_TERM (RFC 9174 §6.1); ``reply`` is the REPLY flag."""

    reason: SessTermReason = SessTermReason.UNKNOWN
    reply: bool = False

    def to_bytes(self) -> bytes:
        return bytes((MessageType.SESS_TERM, SessTermFlag.REPLY if self.reply else 0, self.reason))


@dataclass(frozen=True, slots=True)
class Keepalive:
    """KEEPALIVE (RFC 9174 §5.1.1): the type byte alone."""

    def to_bytes(self) -> bytes:
        return bytes((MessageType.KEEPALIVE,))


@dataclass(frozen=True, slots=True)
class MsgReject:
    """MSG_REJECT (RFC 9174 §5.1.2) in RFC field order: reason, then the rejected message header."""

    reason: int
    rejected_type: int

    def to_bytes(self) -> bytes:
        return bytes((MessageType.MSG_REJECT, self.reason, self.rejected_type))


@dataclass(frozen=True, slots=True)
class XferSegment:
    """XFER_SEGMENT (RFC 9174 §5.2.2). ``flags`` is kept whole (unknown bits are echoed in the XFER_ACK);
    ``extensions`` exist only when START is set."""

    flags: int
    transfer_id: int
    data: bytes = b""
    extensions: tuple[ExtensionItem, ...] = ()

    @property
    def start(self) -> bool:
        return bool(self.flags & _START)

    @property
    def end(self) -> bool:
        return bool(self.flags & _END)

    def to_bytes(self) -> bytes:
        return encode_segment_header(self.flags, self.transfer_id, len(self.data), self.extensions) + self.data


def encode_segment_header(
    flags: int, transfer_id: int, data_length: int, extensions: tuple[ExtensionItem, ...] = ()
) -> bytes:
    """Everything of an XFER_SEGMENT before its data (so big data can be written without a copy)."""
    if flags & _START:
        items = encode_items(extensions) if extensions else b""
        return (_SEGMENT_START_HEADER.pack(_SEGMENT, flags, transfer_id, len(items)) + items
                + _U64.pack(data_length))
    if extensions:
        raise ValueError("transfer extensions belong to the START segment only")
    return _SEGMENT_HEADER.pack(_SEGMENT, flags, transfer_id, data_length)


@dataclass(frozen=True, slots=True)
class XferAck:
    """XFER_ACK (RFC 9174 §5.2.3): the segment's flags and the cumulative acknowledged length."""

    flags: int
    transfer_id: int
    acknowledged_length: int

    def to_bytes(self) -> bytes:
        return _ACK_MESSAGE.pack(_ACK, self.flags, self.transfer_id, self.acknowledged_length)


@dataclass(frozen=True, slots=True)
class XferRefuse:
    """XFER_REFUSE (RFC 9174 §5.2.4)."""

    reason: RefuseReason
    transfer_id: int

    def to_bytes(self) -> bytes:
        return struct.pack("!BBQ", MessageType.XFER_REFUSE, self.reason, self.transfer_id)


Message = SessInit | SessTerm | Keepalive | MsgReject | XferSegment | XferAck | XferRefuse


# --------------------------------------------------------------------------------------------------------------
# Errors the parser raises; each carries the code that goes back on the wire.


class BadContactHeader(RemoteProtocolError):
    """Not 'dtn!': close the connection without SESS_TERM (RFC 9174 §4.3)."""


class VersionMismatch(RemoteProtocolError):
    """A contact header of another version; ``version`` is what the peer offered."""

    def __init__(self, version: int) -> None:
        super().__init__(f"peer speaks TCPCL version {version}, not 4", SessTermReason.VERSION_MISMATCH)
        self.version = version


class UnknownMessageType(RemoteProtocolError):
    """A type code we do not know: MSG_REJECT(0x01) and close, the stream cannot be resynchronised."""

    def __init__(self, type_code: int) -> None:
        super().__init__(f"unknown TCPCL message type 0x{type_code:02x}", MsgRejectReason.MESSAGE_TYPE_UNKNOWN)
        self.type_code = type_code


class MessageTooLarge(RemoteProtocolError):
    """A length field above our caps (segment MRU, extension or node-ID limits): the session is cut."""


@dataclass(frozen=True, slots=True)
class ParserLimits:
    """Caps on what one message may make the parser buffer."""

    max_segment_data: int = 1 << 20
    max_extension_bytes: int = 1 << 16
    max_node_id_bytes: int = 1024


@dataclass(frozen=True, slots=True)
class SegmentView:
    """An XFER_SEGMENT whose ``data`` is a view into the parser's buffer, valid until the parser is next called.

    ``MessageParser.next_message_view`` returns it so that the receiver copies segment data once, straight to
    where it belongs (``bytes`` for a one-segment transfer, the transfer's buffer otherwise)."""

    flags: int
    transfer_id: int
    data: memoryview
    extensions: tuple[ExtensionItem, ...] = ()

    @property
    def start(self) -> bool:
        return bool(self.flags & _START)

    @property
    def end(self) -> bool:
        return bool(self.flags & _END)


_READ_CHUNK = 256 * 1024  # the smallest free space ``get_buffer`` offers
_INITIAL_CAPACITY = 64 * 1024



class MessageParser:
    """Incremental parser: ``feed`` arbitrary chunks, then call ``next_message`` until it returns None.

    The first thing read is the contact header (``next_contact_header``), then messages. Bytes either come in
    through ``feed`` (one copy) or land in place: ``get_buffer`` gives the free space at the end of the buffer
    and ``buffer_updated(n)`` says how much of it was filled (``asyncio.BufferedProtocol`` style), so a socket
    can ``recv_into`` the buffer directly. The buffer is one ``bytearray`` reused for the life of the parser.

    Buffered data never exceeds the largest message the limits allow plus the last chunk fed (or the free space
    last offered by ``get_buffer``: the rest of the partial message, or ``_READ_CHUNK``). The buffer's capacity
    stays below twice the largest message plus ``_READ_CHUNK`` (twice, so that moving a partial message to the
    front is rare) and grows only as bytes arrive."""

    __slots__ = ("limits", "_buf", "_start", "_end", "_need")

    def __init__(self, limits: ParserLimits | None = None) -> None:
        self.limits = limits or ParserLimits()
        self._buf = bytearray(_INITIAL_CAPACITY)
        self._start = 0  # first unparsed byte
        self._end = 0  # end of the bytes received
        self._need = 0  # bytes still missing from the partial message at _start, when known

    @property
    def buffered(self) -> int:
        return self._end - self._start

    def _reserve(self, free: int) -> None:
        """Make room for ``free`` more bytes after ``_end``: move the unparsed bytes to the front, or grow.

        The buffer is never resized in place (a ``memoryview`` handed out by ``get_buffer`` may still exist):
        growing allocates a new one, twice what is needed, so that moving partial messages to the front stays
        rare (at most once per half a buffer received)."""
        start, end = self._start, self._end
        if start == end:
            self._start = self._end = start = end = 0
        capacity = len(self._buf)
        if capacity - end >= free:
            return
        held = end - start
        if 2 * (held + free) <= capacity:
            view = memoryview(self._buf)
            view[:held] = view[start:end]  # memoryview assignment copes with the overlap
        else:
            buf = bytearray(2 * (held + free))
            buf[:held] = memoryview(self._buf)[start:end]
            self._buf = buf
        self._start, self._end = 0, held

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        if not size:
            return
        self._reserve(size)
        end = self._end
        self._buf[end : end + size] = data
        self._end = end + size

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Free space to receive into; then call ``buffer_updated``. ``sizehint`` is ignored (it is advisory).

        The space covers the rest of a partial message when the buffer already has room for it; the buffer
        grows only with what the peer has actually sent (at most doubling, plus ``_READ_CHUNK``), so a header
        announcing a large segment commits no memory by itself."""
        need = self._need
        self._reserve(max(_READ_CHUNK, min(need, self._end - self._start + _READ_CHUNK)))
        end = self._end
        return memoryview(self._buf)[end : end + max(_READ_CHUNK, min(need, len(self._buf) - end))]

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written at the start of the space ``get_buffer`` returned."""
        if not 0 <= nbytes <= len(self._buf) - self._end:
            raise ValueError("buffer_updated beyond the space get_buffer offered")
        self._end += nbytes

    def discard(self) -> None:
        """Drop everything buffered (the stream is over)."""
        self._start = self._end = self._need = 0

    def take_remaining(self) -> bytes:
        """Whatever is buffered and not parsed (e.g. after a contact header when the stream changes)."""
        rest = bytes(self._buf[self._start : self._end])
        self.discard()
        return rest

    def next_contact_header(self) -> ContactHeader | None:
        pos = self._start
        if self.buffered < CONTACT_HEADER_LENGTH:
            if self.buffered and not MAGIC.startswith(bytes(self._buf[pos : min(pos + 4, self._end)])):
                raise BadContactHeader("bad contact header magic", SessTermReason.CONTACT_FAILURE)
            return None
        raw = bytes(self._buf[pos : pos + CONTACT_HEADER_LENGTH])
        if raw[:4] != MAGIC:
            raise BadContactHeader("bad contact header magic", SessTermReason.CONTACT_FAILURE)
        self._start = pos + CONTACT_HEADER_LENGTH
        if raw[4] != VERSION:
            raise VersionMismatch(raw[4])
        return ContactHeader(can_tls=bool(raw[5] & ContactFlag.CAN_TLS), version=raw[4])

    def next_message(self) -> Message | None:
        """The next whole message, or None when more bytes are needed. Raises ``RemoteProtocolError``."""
        message = self.next_message_view()
        if isinstance(message, SegmentView):
            return XferSegment(message.flags, message.transfer_id, bytes(message.data), message.extensions)
        return message

    def next_message_view(self) -> Message | SegmentView | None:
        """Like ``next_message``, but a segment comes as a ``SegmentView`` (its data not copied)."""
        buf, pos = self._buf, self._start
        avail = self._end - pos
        self._need = 0
        if avail < 1:
            return None
        kind = buf[pos]
        if kind == _SEGMENT:
            return self._segment(buf, pos, avail)
        if kind == _ACK:
            if avail < 18:
                return None
            flags, tid, length = _ACK_BODY.unpack_from(buf, pos + 1)
            self._start = pos + 18
            return XferAck(flags, tid, length)
        if kind == MessageType.XFER_REFUSE:
            if avail < 10:
                return None
            _, code, tid = struct.unpack_from("!BBQ", buf, pos)
            self._start = pos + 10
            return XferRefuse(_refuse_reason(code), tid)
        if kind == MessageType.KEEPALIVE:
            self._start = pos + 1
            return Keepalive()
        if kind == MessageType.SESS_TERM:
            if avail < 3:
                return None
            self._start = pos + 3
            return SessTerm(_term_reason(buf[pos + 2]), bool(buf[pos + 1] & SessTermFlag.REPLY))
        if kind == MessageType.MSG_REJECT:
            if avail < 3:
                return None
            self._start = pos + 3
            return MsgReject(buf[pos + 1], buf[pos + 2])
        if kind == MessageType.SESS_INIT:
            return self._sess_init(buf, pos, avail)
        raise UnknownMessageType(kind)

    def _sess_init(self, buf: bytearray, pos: int, avail: int) -> SessInit | None:
        if avail < 21:
            return None
        _, keepalive, seg_mru, xfer_mru, node_len = struct.unpack_from("!BHQQH", buf, pos)
        if node_len > self.limits.max_node_id_bytes:
            raise MessageTooLarge(f"node ID of {node_len} bytes", SessTermReason.CONTACT_FAILURE)
        if avail < 21 + node_len + 4:
            return None
        (items_len,) = struct.unpack_from("!I", buf, pos + 21 + node_len)
        if items_len > self.limits.max_extension_bytes:
            raise MessageTooLarge(f"{items_len} bytes of session extensions", SessTermReason.CONTACT_FAILURE)
        total = 25 + node_len + items_len
        if avail < total:
            self._need = total - avail
            return None
        try:
            node_id = bytes(buf[pos + 21 : pos + 21 + node_len]).decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError("node ID is not UTF-8", SessTermReason.CONTACT_FAILURE) from None
        items = decode_items(bytes(buf[pos + 25 + node_len : pos + total]))
        self._start = pos + total
        return SessInit(keepalive, seg_mru, xfer_mru, node_id, items)

    def _segment(self, buf: bytearray, pos: int, avail: int) -> SegmentView | None:
        if avail < 10:
            return None
        flags, tid = _SEGMENT_HEAD.unpack_from(buf, pos + 1)
        head = 10
        items: tuple[ExtensionItem, ...] = ()
        if flags & _START:
            if avail < 14:
                return None
            (items_len,) = struct.unpack_from("!I", buf, pos + 10)
            if items_len > self.limits.max_extension_bytes:
                raise MessageTooLarge(f"{items_len} bytes of transfer extensions",
                                      SessTermReason.RESOURCE_EXHAUSTION)
            head = 14 + items_len
            if avail < head + 8:
                self._need = head + 8 - avail
                return None
            if items_len:
                try:
                    items = decode_items(bytes(buf[pos + 14 : pos + head]))
                except RemoteProtocolError as exc:
                    raise RemoteProtocolError(str(exc), SessTermReason.UNKNOWN) from None
        if avail < head + 8:
            return None
        (length,) = _U64.unpack_from(buf, pos + head)
        if length > self.limits.max_segment_data:
            raise MessageTooLarge(f"segment of {length} bytes exceeds our segment MRU",
                                  SessTermReason.RESOURCE_EXHAUSTION)
        start = pos + head + 8
        if avail < head + 8 + length:
            self._need = head + 8 + length - avail
            return None
        end = start + length
        self._start = end
        return SegmentView(flags, tid, memoryview(buf)[start:end], items)


def decode_message(data: bytes, limits: ParserLimits | None = None) -> Message:
    """Exactly one whole message (for tests and tools)."""
    parser = MessageParser(limits or ParserLimits(max_segment_data=U64_MAX, max_extension_bytes=U32_MAX,
                                                  max_node_id_bytes=U16_MAX))
    parser.feed(data)
    msg = parser.next_message()
    if msg is None or parser.buffered:
        raise RemoteProtocolError("not exactly one TCPCL message", SessTermReason.UNKNOWN)
    return msg


def decode_contact_header(data: bytes) -> ContactHeader:
    parser = MessageParser()
    parser.feed(data)
    header = parser.next_contact_header()
    if header is None or parser.buffered:
        raise BadContactHeader("not exactly one contact header", SessTermReason.CONTACT_FAILURE)
    return header
