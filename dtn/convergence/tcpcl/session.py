"""TCPCLv4 session state machine (RFC 9174 §3.3, §4, §5, §6), sans-I/O.

Bytes and ``now`` go in (``receive_data``, or in place with ``get_buffer``/``buffer_updated``; ``start_transfer``,
``finish_transfer``, ``handle_timer``, ``terminate``); bytes (``data_to_send``, or ``data_to_send_parts`` whose
large payloads are views of the bundles sent) and events (``next_event``) come out. The adapter writes the bytes,
hands events to the node, and calls ``handle_timer`` at ``next_deadline()``.

The receiver acknowledges the last segment of a transfer only when the node says so (``finish_transfer``), after
it has committed the bundle; decisions go on the wire in the order transfers arrived. Memory is bounded whatever
the peer sends: the parser refuses segments above our segment MRU, transfers above our transfer MRU are refused,
and ``receive_window_open`` tells the adapter to stop reading while too many received bundles await a decision.

Bundles larger than memory: an incoming transfer above ``spool_above_bytes`` is handed out as ``TransferData``
events (the adapter writes them to a file) and ends with ``TransferStreamed`` (or ``TransferAborted``); the node
may refuse it while it arrives (``refuse_transfer``). ``start_transfer_stream(length, chunks, now)`` sends a
bundle whose data is pulled from an iterator only as segments go out.
"""

from __future__ import annotations

import io
import struct
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from dtn.convergence.base import RefuseReason
from dtn.convergence.tcpcl.messages import (
    TRANSFER_LENGTH_EXTENSION,
    U64_MAX,
    BadContactHeader,
    ContactHeader,
    ExtensionItem,
    Keepalive,
    Message,
    MessageParser,
    MessageType,
    MsgReject,
    MsgRejectReason,
    ParserLimits,
    SegmentFlag,
    SegmentView,
    SessInit,
    SessTerm,
    SessTermReason,
    UnknownMessageType,
    VersionMismatch,
    XferAck,
    XferRefuse,
    encode_segment_header,
    transfer_length_item,
)
from dtn.errors import LocalProtocolError, RemoteProtocolError
from dtn.parts import coalesce

_START = int(SegmentFlag.START)
_END = int(SegmentFlag.END)
_DIRECT_WRITE_BYTES = 64 * 1024  # segment payloads at least this large are written as they are, not joined


class Role(Enum):
    ACTIVE = "active"  # the TCP client: sends its contact header and SESS_INIT first; TLS client
    PASSIVE = "passive"  # the TCP server


class State(Enum):
    CONTACT = "contact"  # exchanging contact headers
    TLS = "tls"  # the adapter is running the TLS handshake
    SESS_INIT = "sess_init"  # exchanging SESS_INIT
    ESTABLISHED = "established"
    ENDING = "ending"  # SESS_TERM sent or received
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Local policy. Sizes in bytes, times in seconds."""

    keepalive_s: int = 60  # 0: we do not want keepalives
    segment_mru: int = 2 << 20  # largest segment we accept (our receive buffer stays below ~2x this + 256 KiB)
    transfer_mru: int = 1 << 30  # largest bundle we accept
    # we segment at min(peer's segment MRU, this): payloads are written from the bundle, so large segments cost
    # no copy; the transport may hold one segment beyond its high-water mark
    max_segment_bytes: int = 4 << 20
    can_tls: bool = False
    require_tls: bool = False  # refuse a session that did not negotiate TLS
    require_node_id_auth: bool = True  # with TLS: the peer's SESS_INIT node ID must be in its certificate
    contact_timeout_s: float = 60.0  # for contact header and SESS_INIT exchange
    idle_factor: float = 2.0  # idle timeout = factor x negotiated keepalive
    term_timeout_s: float = 10.0  # how long an ending session may wait for transfers and the reply
    max_pending_received: int = 16  # received bundles waiting for the node's decision before we stop reading
    max_pending_bytes: int = 1 << 30
    max_outgoing_transfers: int = 1024  # transfers started and not yet acknowledged/refused
    max_extension_bytes: int = 1 << 16
    max_node_id_bytes: int = 1024
    output_batch_bytes: int = 1 << 20  # how much data_to_send() produces per call when segments are queued
    max_held_bytes: int = 1 << 20  # unparsed input held while the receive window is closed (beyond a segment)
    # an incoming transfer larger than this (announced by its transfer length extension, or once the data
    # gathered exceeds it) is not gathered: its data goes out as TransferData events (the adapter writes it to a
    # file) and it ends with TransferStreamed instead of TransferReceived; None: every transfer is gathered
    spool_above_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class SessionParameters:
    """What SESS_INIT negotiation settled (RFC 9174 §4.7); fixed for the life of the session."""

    peer_node_id: str
    keepalive_s: int
    segment_mtu: int  # largest segment we send
    transfer_mtu: int  # largest bundle we may send
    tls: bool
    peer_extensions: tuple[ExtensionItem, ...] = ()


# ---------------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class StartTls:
    """Both sides set CAN_TLS: run the TLS handshake now, then call ``tls_started``."""

    server_side: bool


@dataclass(frozen=True, slots=True)
class SessionUp:
    peer_node_id: str
    parameters: SessionParameters


@dataclass(frozen=True, slots=True)
class TransferReceived:
    """A whole bundle arrived; answer with ``finish_transfer(transfer_id, None | reason, now)``."""

    transfer_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TransferData:
    """The next piece of an incoming transfer that is streamed, not gathered (``spool_above_bytes``): ``data``
    belongs at ``offset`` of the bundle. Pieces come in order, without gaps."""

    transfer_id: int
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TransferStreamed:
    """The last piece of a streamed transfer arrived (``length`` bytes in all, every one given in a
    ``TransferData``): answer with ``finish_transfer(transfer_id, None | reason, now)`` as for
    ``TransferReceived``."""

    transfer_id: int
    length: int


@dataclass(frozen=True, slots=True)
class TransferAborted:
    """A streamed incoming transfer will not complete (the sender abandoned it, it broke a limit, the node
    refused it, the session ended): discard what its ``TransferData`` events gave."""

    transfer_id: int
    detail: str


@dataclass(frozen=True, slots=True)
class TransferAcked:
    transfer_id: int


@dataclass(frozen=True, slots=True)
class TransferRefused:
    transfer_id: int
    reason: RefuseReason


@dataclass(frozen=True, slots=True)
class TransferFailed:
    """An outgoing transfer will never be acknowledged: the session ended (or is ending) before that."""

    transfer_id: int
    detail: str


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """The peer sent MSG_REJECT; logged, nothing else to do."""

    reason: int
    rejected_type: int


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session is over: write what ``data_to_send`` still returns, then close the connection.

    ``reason`` is the SESS_TERM reason (None when the connection simply closed); ``by_peer`` says who started.
    """

    reason: SessTermReason | None
    by_peer: bool
    detail: str = ""


Event = (StartTls | SessionUp | TransferReceived | TransferData | TransferStreamed | TransferAborted
         | TransferAcked | TransferRefused | TransferFailed | MessageRejected | SessionEnded)


class TransferTooLarge(LocalProtocolError):
    """The bundle exceeds the peer's transfer MRU."""


# ---------------------------------------------------------------------------------------------------- state


@dataclass(slots=True)
class _Outgoing:
    transfer_id: int
    data: memoryview
    total: int
    offset: int = 0  # bytes already segmented onto the wire
    started: bool = False  # the START segment went out
    source: Iterator[bytes | bytearray | memoryview] | None = None  # a streamed transfer's data, pulled as needed
    carry: memoryview | None = None  # the unsent rest of the chunk last pulled from ``source``

    @property
    def fully_sent(self) -> bool:
        return self.started and self.offset >= self.total


@dataclass(slots=True)
class _Incoming:
    transfer_id: int
    declared_length: int | None
    received: int = 0
    buffer: io.BytesIO | None = None  # segments of a multi-segment transfer, copied once each
    streaming: bool = False  # handed out as TransferData events, not gathered

    def append(self, data: memoryview) -> None:
        if self.buffer is None:
            self.buffer = io.BytesIO()
        self.buffer.write(data)
        self.received += len(data)

    def value(self) -> bytes:
        data = self.buffer.getvalue() if self.buffer is not None else b""
        self.buffer = None
        return data


@dataclass(slots=True)
class _Reply:
    """One XFER_ACK or XFER_REFUSE waiting its turn: replies go out in the order segments arrived."""

    transfer_id: int
    flags: int
    length: int
    refuse: RefuseReason | None = None
    decided: bool = False
    held: int = 0  # bytes of the transfer held in memory while the node decides (0 for a streamed one)


class TcpclSession:
    """One TCPCLv4 session over one connection, either role."""

    def __init__(self, role: Role, config: SessionConfig, node_id: str) -> None:
        if config.segment_mru < 1 or config.transfer_mru < 1 or not 0 <= config.keepalive_s <= 0xFFFF:
            raise ValueError("segment MRU and transfer MRU must be positive, keepalive a u16")
        self.role = role
        self.config = config
        self.node_id = node_id
        self.state = State.CONTACT
        self.parameters: SessionParameters | None = None
        self.peer_contact: ContactHeader | None = None
        self.tls = False
        self._peer_cert_node_ids: frozenset[str] | None = None
        self._parser = MessageParser(ParserLimits(config.segment_mru, config.max_extension_bytes,
                                                  config.max_node_id_bytes))
        self._out: list[bytes | memoryview] = []  # parts joined once in data_to_send()
        self._out_bytes = 0
        # bytes we hold unparsed while the receive window is closed; beyond this we parse (and refuse)
        self._hold_limit = config.segment_mru + config.max_held_bytes
        self._events: deque[Event] = deque()
        self._sent_contact = False
        self._sent_term = False
        self._received_term = False
        self._term_reason: SessTermReason | None = None
        self._term_by_peer = False
        # time
        self._now = 0.0
        self._started = 0.0
        self._last_rx = 0.0
        self._last_tx = 0.0
        self._ending_deadline: float | None = None
        # outgoing
        self._next_tid = 0
        self._tx_queue: deque[_Outgoing] = deque()
        self._tx: dict[int, _Outgoing] = {}
        # incoming
        self._rx: _Incoming | None = None
        self._replies: deque[_Reply] = deque()
        self._deferred_term: SessTerm | None = None  # a SESS_TERM reply waiting behind earlier replies
        self._pending: dict[int, _Reply] = {}  # final segments received, the node has not decided yet
        self._pending_bytes = 0
        self._refused_rx: OrderedDict[int, RefuseReason] = OrderedDict()
        #: The most bytes of one incoming transfer ever gathered in memory (streamed transfers hold none).
        self.rx_gathered_high_water_bytes = 0

    # ------------------------------------------------------------------------------------------ public API

    def start(self, now: float) -> None:
        """The connection is open: the active side sends its contact header, both start the contact timer."""
        self._now = self._started = self._last_rx = self._last_tx = now
        if self.role is Role.ACTIVE:
            self._send_contact()

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def established(self) -> bool:
        return self.state is State.ESTABLISHED

    @property
    def receive_window_open(self) -> bool:
        """False while too many received bundles await the node's decision: stop reading the socket.

        While it is closed, bytes already fed stay unparsed (up to a segment MRU plus ``max_held_bytes``) and
        are parsed when ``finish_transfer`` opens it again."""
        return (len(self._pending) < self.config.max_pending_received
                and self._pending_bytes < self.config.max_pending_bytes)

    @property
    def transfers_in_flight(self) -> int:
        return len(self._tx)

    @property
    def can_start_transfer(self) -> bool:
        return self.state is State.ESTABLISHED and len(self._tx) < self.config.max_outgoing_transfers

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Bytes from the peer, in any chunking. An empty ``data`` means the peer closed the connection."""
        self._now = now
        if self.state is State.CLOSED:
            return
        if not data:
            self._connection_lost("peer closed the connection")
            return
        self._last_rx = now
        self._parser.feed(data)
        self._process_safely()

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next bytes from the peer should land (``asyncio.BufferedProtocol.get_buffer``): free space
        in the parser's buffer, so the socket writes straight into it. Follow with ``buffer_updated``."""
        return self._parser.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int, now: float) -> None:
        """``nbytes`` from the peer were written into the space ``get_buffer`` gave (``nbytes`` > 0)."""
        self._now = now
        self._parser.buffer_updated(nbytes)
        if self.state is State.CLOSED:
            self._parser.discard()
            return
        self._last_rx = now
        self._process_safely()

    def _process_safely(self) -> None:
        try:
            self._process()
        except UnknownMessageType as exc:
            self._queue(MsgReject(MsgRejectReason.MESSAGE_TYPE_UNKNOWN, exc.type_code))
            self._close(None, False, str(exc))
        except BadContactHeader as exc:
            self._close(None, False, str(exc))
        except VersionMismatch as exc:
            if self.role is Role.PASSIVE:
                self._send_contact()
                self._queue(SessTerm(SessTermReason.VERSION_MISMATCH))
            self._close(SessTermReason.VERSION_MISMATCH, False, str(exc))
        except RemoteProtocolError as exc:
            self._abort(_term_reason(exc.reason), str(exc))

    def connection_lost(self, now: float, detail: str = "connection lost") -> None:
        self._now = now
        if self.state is not State.CLOSED:
            self._connection_lost(detail)

    def tls_started(self, now: float, peer_node_ids: frozenset[str] | None) -> None:
        """The TLS handshake succeeded; ``peer_node_ids`` are the NODE-IDs in the peer's certificate."""
        if self.state is not State.TLS:
            raise LocalProtocolError(f"tls_started in state {self.state.value}")
        self._now = self._last_rx = now
        self.tls = True
        self._peer_cert_node_ids = peer_node_ids
        self.state = State.SESS_INIT
        if self.role is Role.ACTIVE:
            self._send_sess_init()

    def start_transfer(self, data: bytes | bytearray | memoryview, now: float, *, _length: int | None = None) -> int:
        """Queue one bundle; returns its transfer ID. Segments are produced by ``data_to_send``."""
        self._now = now
        if self.state is not State.ESTABLISHED or self.parameters is None:
            raise LocalProtocolError(f"cannot start a transfer in state {self.state.value}")
        length = len(data) if _length is None else _length
        if length > self.parameters.transfer_mtu:
            raise TransferTooLarge(
                f"{length} bytes exceed the peer's transfer MRU {self.parameters.transfer_mtu}")
        if len(self._tx) >= self.config.max_outgoing_transfers:
            raise LocalProtocolError("too many transfers in flight")
        if self._next_tid > U64_MAX:
            self.terminate(SessTermReason.RESOURCE_EXHAUSTION, now)
            raise LocalProtocolError("transfer IDs exhausted")
        tid = self._next_tid
        self._next_tid += 1
        view = data if isinstance(data, memoryview) else memoryview(data)
        view = view.cast("B") if view.ndim != 1 or view.format != "B" else view
        item = _Outgoing(tid, view, length)
        self._tx_queue.append(item)
        self._tx[tid] = item
        return tid

    def start_transfer_stream(
        self, total_length: int, chunks: Iterable[bytes | bytearray | memoryview], now: float
    ) -> int:
        """Queue one bundle of ``total_length`` bytes whose data ``chunks`` yields in pieces of any size;
        returns its transfer ID. The chunks are pulled only as ``data_to_send`` produces segments (a segment's
        payload may span chunks and is written as those chunks' views, not joined), so memory holds about one
        output batch of the bundle; the segments and bytes on the wire are those ``start_transfer`` would
        produce for the joined data. If the chunks fail (an exception) or hold fewer than ``total_length``
        bytes, the session is terminated: a started transfer cannot be cancelled by its sender."""
        self._now = now
        if total_length < 1:
            raise ValueError("a streamed transfer has at least one byte")
        tid = self.start_transfer(b"", now, _length=total_length)
        item = self._tx[tid]
        item.source = iter(chunks)
        return tid

    def refuse_transfer(self, transfer_id: int, reason: RefuseReason, now: float) -> None:
        """Refuse the streamed incoming transfer ``transfer_id`` while its data still arrives (its head is not
        a valid bundle, the store has no room): XFER_REFUSE now, the rest of its segments are discarded. No
        ``TransferAborted`` follows (the caller knows)."""
        self._now = now
        rx = self._rx
        if rx is None or rx.transfer_id != transfer_id:
            if transfer_id in self._pending:
                self.finish_transfer(transfer_id, reason, now)
            return
        self._rx = None
        self._refuse(transfer_id, reason)
        self._maybe_finish_ending()

    def finish_transfer(self, transfer_id: int, refuse_reason: RefuseReason | None, now: float) -> None:
        """The node's answer for a received bundle: None = committed, acknowledge; else refuse."""
        self._now = now
        decision = self._pending.pop(transfer_id, None)
        if decision is None:
            if self.state is State.CLOSED:
                return
            raise LocalProtocolError(f"no received transfer {transfer_id} awaits a decision")
        decision.decided = True
        decision.refuse = refuse_reason
        self._pending_bytes -= decision.held
        if refuse_reason is not None:
            self._remember_refused(transfer_id, refuse_reason)
        self._flush_replies()
        if self._parser.buffered and self.receive_window_open and self.state is not State.CLOSED:
            self._process_safely()
        self._maybe_finish_ending()

    def terminate(self, reason: SessTermReason, now: float) -> None:
        """Start ending the session (SESS_TERM). Transfers under way may finish; queued ones fail."""
        self._now = now
        if self.state in (State.CLOSED, State.ENDING):
            return
        if self.state is not State.ESTABLISHED:
            if self._sent_contact:
                self._queue(SessTerm(reason))
                self._sent_term = True
            self._close(reason, False, "terminated during negotiation")
            return
        self._begin_ending(reason, by_peer=False)
        self._queue(SessTerm(reason))
        self._sent_term = True
        self._maybe_finish_ending()

    def data_to_send(self) -> bytes:
        """Bytes to write to the connection now (control messages first, then up to a batch of segments)."""
        parts = self.data_to_send_parts()
        return parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)

    def data_to_send_parts(self) -> list[bytes | memoryview]:
        """The same bytes as ``data_to_send``, in order, as a few parts to write one after the other: small
        messages joined together, large segment payloads as views of the bundle given to ``start_transfer``
        (not copied). Empty when there is nothing to send."""
        if self.state in (State.ESTABLISHED, State.ENDING) and self._tx_queue and self.parameters is not None:
            self._produce_segments()
        out = self._out
        if not out:
            return []
        self._out = []
        self._out_bytes = 0
        self._last_tx = self._now
        return out if len(out) == 1 else coalesce(out, _DIRECT_WRITE_BYTES)

    @property
    def wants_to_send(self) -> bool:
        return bool(self._out) or (self.state in (State.ESTABLISHED, State.ENDING) and bool(self._tx_queue))

    def next_deadline(self) -> float | None:
        if self.state is State.CLOSED:
            return None
        if self.state in (State.CONTACT, State.TLS, State.SESS_INIT):
            return self._started + self.config.contact_timeout_s
        deadlines = []
        if self._ending_deadline is not None:
            deadlines.append(self._ending_deadline)
        keepalive = self.parameters.keepalive_s if self.parameters else 0
        if keepalive > 0:
            deadlines.append(self._last_tx + keepalive)
            deadlines.append(self._last_rx + self.config.idle_factor * keepalive)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        self._now = now
        if self.state is State.CLOSED:
            return
        if self.state in (State.CONTACT, State.TLS, State.SESS_INIT):
            if now >= self._started + self.config.contact_timeout_s:
                self.terminate(SessTermReason.CONTACT_FAILURE, now)
            return
        if self._ending_deadline is not None and now >= self._ending_deadline:
            self._close(self._term_reason, self._term_by_peer, "ending timed out")
            return
        keepalive = self.parameters.keepalive_s if self.parameters else 0
        if keepalive <= 0:
            return
        if not self.receive_window_open:
            self._last_rx = now  # we are not reading: the peer's silence is ours
        if now >= self._last_rx + self.config.idle_factor * keepalive:
            self._abort(SessTermReason.IDLE_TIMEOUT, "idle timeout")
            return
        if now >= self._last_tx + keepalive and not self._out:
            self._queue(Keepalive())
            self._last_tx = now

    # ------------------------------------------------------------------------------------------ internals

    def _queue(self, message: Message | ContactHeader) -> None:
        data = message.to_bytes()
        self._out.append(data)
        self._out_bytes += len(data)

    def _send_contact(self) -> None:
        if not self._sent_contact:
            self._queue(ContactHeader(can_tls=self.config.can_tls))
            self._sent_contact = True

    def _send_sess_init(self) -> None:
        c = self.config
        self._queue(SessInit(c.keepalive_s, c.segment_mru, c.transfer_mru, self.node_id))

    def _process(self) -> None:
        parser = self._parser
        while self.state is not State.CLOSED:
            if self.state is State.CONTACT:
                header = parser.next_contact_header()
                if header is None:
                    return
                self._on_contact(header)
                continue
            if self.state is State.TLS:
                if parser.buffered:
                    raise RemoteProtocolError("plaintext data where the TLS handshake belongs",
                                              SessTermReason.CONTACT_FAILURE)
                return
            if not self.receive_window_open and parser.buffered <= self._hold_limit:
                return  # flow control: parse on when the node has decided (finish_transfer)
            message = parser.next_message_view()
            if message is None:
                return
            if isinstance(message, SegmentView):
                if self.state is State.SESS_INIT:
                    raise RemoteProtocolError("XferSegment before SESS_INIT", SessTermReason.CONTACT_FAILURE)
                self._on_segment(message)
            elif self.state is State.SESS_INIT:
                self._on_negotiation_message(message)
            else:
                self._on_message(message)

    def _on_contact(self, header: ContactHeader) -> None:
        self.peer_contact = header
        if self.role is Role.PASSIVE:
            self._send_contact()
        use_tls = self.config.can_tls and header.can_tls
        if self.config.require_tls and not use_tls:
            self._abort(SessTermReason.CONTACT_FAILURE, "TLS required but not negotiated")
            return
        if use_tls:
            self.state = State.TLS
            self._events.append(StartTls(server_side=self.role is Role.PASSIVE))
            return
        self.state = State.SESS_INIT
        if self.role is Role.ACTIVE:
            self._send_sess_init()

    def _on_negotiation_message(self, message: Message) -> None:
        if isinstance(message, SessTerm):
            self._on_sess_term(message)
            return
        if not isinstance(message, SessInit):
            raise RemoteProtocolError(f"{type(message).__name__} before SESS_INIT", SessTermReason.CONTACT_FAILURE)
        if self.role is Role.PASSIVE:
            self._send_sess_init()
        for item in message.extensions:
            if item.critical:  # no session extension is known to us
                raise RemoteProtocolError(f"unknown critical session extension 0x{item.item_type:04x}",
                                          SessTermReason.CONTACT_FAILURE)
        if message.segment_mru < 1:
            raise RemoteProtocolError("peer's segment MRU is 0", SessTermReason.CONTACT_FAILURE)
        if self.tls and self.config.require_node_id_auth:
            ids = self._peer_cert_node_ids or frozenset()
            if message.node_id not in ids:
                raise RemoteProtocolError(f"node ID {message.node_id!r} is not in the peer's certificate",
                                          SessTermReason.CONTACT_FAILURE)
        keepalive = min(self.config.keepalive_s, message.keepalive_s)
        self.parameters = SessionParameters(
            peer_node_id=message.node_id,
            keepalive_s=keepalive,
            segment_mtu=min(message.segment_mru, self.config.max_segment_bytes),
            transfer_mtu=message.transfer_mru,
            tls=self.tls,
            peer_extensions=message.extensions,
        )
        self.state = State.ESTABLISHED
        self._last_tx = self._last_rx = self._now
        self._events.append(SessionUp(message.node_id, self.parameters))

    def _on_message(self, message: Message) -> None:
        if isinstance(message, XferAck):
            self._on_ack(message)
        elif isinstance(message, XferRefuse):
            self._on_refuse(message)
        elif isinstance(message, Keepalive):
            pass
        elif isinstance(message, SessTerm):
            self._on_sess_term(message)
        elif isinstance(message, MsgReject):
            self._events.append(MessageRejected(message.reason, message.rejected_type))
        else:  # SESS_INIT after establishment
            self._queue(MsgReject(MsgRejectReason.MESSAGE_UNEXPECTED, MessageType.SESS_INIT))

    def _on_sess_term(self, message: SessTerm) -> None:
        self._received_term = True
        if self.state in (State.CONTACT, State.TLS, State.SESS_INIT):
            if not self._sent_term:
                self._queue(SessTerm(message.reason, reply=True))
                self._sent_term = True
            self._close(message.reason, True, "peer terminated during negotiation")
            return
        if self.state is State.ESTABLISHED:
            self._begin_ending(message.reason, by_peer=True)
        if not self._sent_term:
            if self._replies:
                self._deferred_term = SessTerm(message.reason, reply=True)
            else:
                self._queue(SessTerm(message.reason, reply=True))
            self._sent_term = True
        self._maybe_finish_ending()

    # incoming transfers

    def _remember_refused(self, transfer_id: int, reason: RefuseReason) -> None:
        self._refused_rx[transfer_id] = reason
        while len(self._refused_rx) > 64:
            self._refused_rx.popitem(last=False)

    def _reply(self, reply: _Reply) -> None:
        """Send an ACK/REFUSE now, or queue it behind undecided transfers so the wire keeps arrival order."""
        if self._replies or not reply.decided:
            self._replies.append(reply)
        elif reply.refuse is None:
            self._queue(XferAck(reply.flags, reply.transfer_id, reply.length))
        else:
            self._queue(XferRefuse(reply.refuse, reply.transfer_id))

    def _refuse(self, transfer_id: int, reason: RefuseReason) -> None:
        self._remember_refused(transfer_id, reason)
        self._reply(_Reply(transfer_id, 0, 0, reason, decided=True))

    def _drop_rx(self, detail: str) -> None:
        """Forget the incoming transfer under way (a streamed one: tell the adapter to discard its data)."""
        rx = self._rx
        self._rx = None
        if rx is not None and rx.streaming:
            self._events.append(TransferAborted(rx.transfer_id, detail))

    def _on_segment(self, seg: SegmentView) -> None:
        tid = seg.transfer_id
        spool = self.config.spool_above_bytes
        if seg.start:
            self._drop_rx("the sender started another transfer")  # an unfinished one was abandoned
            if self.state is State.ENDING:
                self._refuse(tid, RefuseReason.SESSION_TERMINATING)
                return
            if tid in self._pending or tid in self._refused_rx:
                self._refuse(tid, RefuseReason.NOT_ACCEPTABLE)  # transfer IDs must not repeat
                return
            if not self.receive_window_open:
                self._refuse(tid, RefuseReason.NO_RESOURCES)
                return
            declared: int | None = None
            for item in seg.extensions:
                if item.item_type == TRANSFER_LENGTH_EXTENSION and len(item.value) == 8:
                    (declared,) = struct.unpack("!Q", item.value)
                elif item.critical:
                    self._refuse(tid, RefuseReason.EXTENSION_FAILURE)
                    return
                # else: unknown non-critical (including dtn7-rs's BundleID in type 0x0001): ignored
            if declared is not None and declared > self.config.transfer_mru:
                self._refuse(tid, RefuseReason.NOT_ACCEPTABLE)
                return
            big = spool is not None and declared is not None and declared > spool
            self._rx = _Incoming(tid, declared, streaming=big)
        rx = self._rx
        if rx is None or rx.transfer_id != tid:
            previous = self._refused_rx.get(tid)
            if previous is not None:
                self._refuse(tid, previous)  # a segment that crossed our refusal on the wire
            else:
                self._queue(MsgReject(MsgRejectReason.MESSAGE_UNEXPECTED, MessageType.XFER_SEGMENT))
            return
        total = rx.received + len(seg.data)
        limit = self.config.transfer_mru if rx.declared_length is None else rx.declared_length
        if total > limit:
            self._drop_rx("the transfer exceeds its length or the transfer MRU")
            self._refuse(tid, RefuseReason.NOT_ACCEPTABLE)
            return
        if spool is not None and not rx.streaming and total > spool:
            rx.streaming = True  # from now on the data goes out as events (what was gathered first)
            if rx.received:
                self._events.append(TransferData(tid, 0, rx.value()))
        if not seg.end:
            if rx.streaming:
                self._events.append(TransferData(tid, rx.received, bytes(seg.data)))
                rx.received = total
            else:
                rx.append(seg.data)
                if total > self.rx_gathered_high_water_bytes:
                    self.rx_gathered_high_water_bytes = total
            self._reply(_Reply(tid, seg.flags, total, decided=True))
            return
        if rx.declared_length is not None and total != rx.declared_length:
            self._drop_rx("the transfer ended short of its announced length")
            self._refuse(tid, RefuseReason.NOT_ACCEPTABLE)
            return
        self._rx = None
        if rx.streaming:
            if len(seg.data):
                self._events.append(TransferData(tid, rx.received, bytes(seg.data)))
            reply = _Reply(tid, seg.flags, total)
            self._pending[tid] = reply
            self._reply(reply)
            self._events.append(TransferStreamed(tid, total))
            return
        if rx.buffer is None:  # a one-segment transfer: its only copy
            data = bytes(seg.data)
        else:
            rx.append(seg.data)
            data = rx.value()
        if total > self.rx_gathered_high_water_bytes:
            self.rx_gathered_high_water_bytes = total
        reply = _Reply(tid, seg.flags, total, held=total)
        self._pending[tid] = reply
        self._reply(reply)
        self._pending_bytes += total
        self._events.append(TransferReceived(tid, data))

    def _flush_replies(self) -> None:
        replies = self._replies
        while replies and replies[0].decided:
            reply = replies.popleft()
            if self.state is State.CLOSED:
                continue
            if reply.refuse is None:
                self._queue(XferAck(reply.flags, reply.transfer_id, reply.length))
            else:
                self._queue(XferRefuse(reply.refuse, reply.transfer_id))
        if not replies and self._deferred_term is not None:
            self._queue(self._deferred_term)
            self._deferred_term = None

    # outgoing transfers

    def _produce_segments(self) -> None:
        assert self.parameters is not None
        mtu = self.parameters.segment_mtu
        budget = self.config.output_batch_bytes
        while self._tx_queue and self._out_bytes < budget:
            item = self._tx_queue[0]
            if self.state is State.ENDING and not item.started:
                break  # no new transfer starts once the session is ending
            start = not item.started
            if item.source is None:
                chunks: list[memoryview] = [item.data[item.offset : item.offset + mtu]]
                size = len(chunks[0])
            else:
                size = min(mtu, item.total - item.offset)
                pulled = self._pull(item, size)
                if pulled is None:
                    return  # the session was aborted
                chunks = pulled
            end = item.offset + size >= item.total
            flags = (_START if start else 0) | (_END if end else 0)
            extensions = (transfer_length_item(item.total),) if start and not end else ()
            header = encode_segment_header(flags, item.transfer_id, size, extensions)
            self._out.append(header)
            self._out.extend(chunks)
            self._out_bytes += len(header) + size
            item.offset += size
            item.started = True
            if end:
                self._tx_queue.popleft()
                item.data = memoryview(b"")  # the bytes are on their way; keep no reference
                item.source = None
                item.carry = None
        self._maybe_finish_ending()

    def _pull(self, item: _Outgoing, size: int) -> list[memoryview] | None:
        """The next ``size`` bytes of a streamed transfer, as views of the chunks its source yields; None after
        aborting the session because the source failed or ran dry."""
        assert item.source is not None
        parts: list[memoryview] = []
        need = size
        try:
            while need:
                carry = item.carry
                if carry is None or not len(carry):
                    chunk = next(item.source, None)
                    if chunk is None:
                        raise ValueError(f"its data ended after {item.offset + size - need} of {item.total} bytes")
                    carry = memoryview(chunk)
                    if carry.ndim != 1 or carry.format != "B":
                        carry = carry.cast("B")
                take = carry[:need]
                item.carry = carry[len(take):]
                if len(take):
                    parts.append(take)
                need -= len(take)
        except Exception as exc:  # the bundle's file could not be read: a started transfer cannot be cancelled
            self._abort(SessTermReason.UNKNOWN, f"transfer {item.transfer_id}: cannot read the bundle: {exc}")
            return None
        return parts

    def _on_ack(self, ack: XferAck) -> None:
        item = self._tx.get(ack.transfer_id)
        if item is None:
            if ack.transfer_id >= self._next_tid:
                self._queue(MsgReject(MsgRejectReason.MESSAGE_UNEXPECTED, MessageType.XFER_ACK))
            return  # late ack of a transfer already refused or failed
        if ack.flags & _END and item.fully_sent and item.offset == ack.acknowledged_length:
            del self._tx[ack.transfer_id]
            self._events.append(TransferAcked(ack.transfer_id))
            self._maybe_finish_ending()

    def _on_refuse(self, refuse: XferRefuse) -> None:
        item = self._tx.pop(refuse.transfer_id, None)
        if item is None:
            return
        if not item.fully_sent:
            try:
                self._tx_queue.remove(item)
            except ValueError:
                pass
            item.data = memoryview(b"")
            item.source = None
            item.carry = None
        self._events.append(TransferRefused(refuse.transfer_id, refuse.reason))
        self._maybe_finish_ending()

    # ending

    def _begin_ending(self, reason: SessTermReason, *, by_peer: bool) -> None:
        self.state = State.ENDING
        self._term_reason = reason
        self._term_by_peer = by_peer
        self._ending_deadline = self._now + self.config.term_timeout_s
        for item in list(self._tx_queue):  # queued transfers that have not started never will
            if not item.started:
                self._tx_queue.remove(item)
                self._tx.pop(item.transfer_id, None)
                self._events.append(TransferFailed(item.transfer_id, "session terminating"))

    def _maybe_finish_ending(self) -> None:
        if self.state is not State.ENDING or not (self._sent_term and self._received_term):
            return
        if self._tx or self._rx is not None or self._replies:
            return
        self._close(self._term_reason, self._term_by_peer, "")

    def _abort(self, reason: SessTermReason, detail: str) -> None:
        """Unclean termination: SESS_TERM (if a contact header went out and none was sent) and close."""
        if self._sent_contact and not self._sent_term:
            self._queue(SessTerm(reason))
            self._sent_term = True
        self._close(reason, False, detail)

    def _connection_lost(self, detail: str) -> None:
        clean = self._sent_term and self._received_term
        self._close(self._term_reason if clean else None, self._term_by_peer, "" if clean else detail)

    def _close(self, reason: SessTermReason | None, by_peer: bool, detail: str) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        if self._deferred_term is not None:
            self._queue(self._deferred_term)
            self._deferred_term = None
        for tid in list(self._tx):
            self._events.append(TransferFailed(tid, detail or "session ended"))
        for item in self._tx.values():
            item.source = None
            item.carry = None
        self._tx.clear()
        self._tx_queue.clear()
        self._drop_rx(detail or "session ended")
        self._pending.clear()
        self._replies.clear()
        self._pending_bytes = 0
        self._events.append(SessionEnded(reason, by_peer, detail))


def _term_reason(code: int) -> SessTermReason:
    try:
        return SessTermReason(code)
    except ValueError:
        return SessTermReason.UNKNOWN
