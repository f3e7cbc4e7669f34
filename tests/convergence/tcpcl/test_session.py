"""The TCPCLv4 session state machine, in memory: byte-exact worked session, pairs, timers, hostile input."""

from __future__ import annotations

import pytest

from dtn.convergence.base import RefuseReason
from dtn.convergence.tcpcl.messages import (
    ContactHeader,
    ExtensionItem,
    Keepalive,
    MessageParser,
    MsgReject,
    MsgRejectReason,
    ParserLimits,
    SessInit,
    SessTerm,
    SessTermReason,
    XferAck,
    XferRefuse,
    XferSegment,
    transfer_length_item,
)
from dtn.convergence.tcpcl.session import (
    Event,
    MessageRejected,
    Role,
    SessionConfig,
    SessionEnded,
    SessionUp,
    StartTls,
    State,
    TcpclSession,
    TransferAcked,
    TransferFailed,
    TransferReceived,
    TransferRefused,
    TransferTooLarge,
)
from dtn.errors import LocalProtocolError

from .helpers import Pair, make_pair, vector

G1 = vector("gen-bundle-G1-minimal")
A_CFG = SessionConfig(keepalive_s=60, segment_mru=65536, transfer_mru=1 << 20)
B_CFG = SessionConfig(keepalive_s=30, segment_mru=8192, transfer_mru=1 << 20)


def events(session: TcpclSession) -> list[Event]:
    out = []
    while (e := session.next_event()) is not None:
        out.append(e)
    return out


def messages(data: bytes) -> list[object]:
    parser = MessageParser(ParserLimits(max_segment_data=1 << 30))
    parser.feed(data)
    if data.startswith(b"dtn!"):
        parser.next_contact_header()
    out: list[object] = []
    while (m := parser.next_message()) is not None:
        out.append(m)
    return out


def run_passive_b(chunks: list[bytes]) -> tuple[bytes, list[Event]]:
    """Feed A's side of the worked session into a passive B; B accepts each bundle when it arrives."""
    b = TcpclSession(Role.PASSIVE, B_CFG, "ipn:2.0")
    b.start(0.0)
    out = bytearray()
    seen: list[Event] = []
    for chunk in chunks:
        if not chunk:
            continue  # an empty chunk means end of stream
        b.receive_data(chunk, 1.0)
        while (e := b.next_event()) is not None:
            seen.append(e)
            if isinstance(e, TransferReceived):
                b.finish_transfer(e.transfer_id, None, 1.0)
        out += b.data_to_send()
    return bytes(out), seen


A_STEPS = ["session-A1-contact", "session-A2-sess-init", "session-A3-xfer-single",
           "session-A4-xfer-start-lenext", "session-A5-xfer-end", "session-A6-sess-term"]
B_STEPS = ["session-B1-contact", "session-B2-sess-init", "session-B3-xfer-ack", "session-B4-ack1",
           "session-B5-ack2", "session-B6-sess-term-reply"]


def test_passive_side_of_worked_session_is_byte_exact_in_every_chunking() -> None:
    a_stream = b"".join(vector(n) for n in A_STEPS)
    expected_out = b"".join(vector(n) for n in B_STEPS)
    whole_out, whole_events = run_passive_b([vector(n) for n in A_STEPS])
    assert whole_out == expected_out
    assert [type(e) for e in whole_events] == [SessionUp, TransferReceived, TransferReceived, SessionEnded]
    up = whole_events[0]
    assert isinstance(up, SessionUp) and up.peer_node_id == "ipn:1.0"
    assert up.parameters.keepalive_s == 30 and up.parameters.segment_mtu == 65536
    assert [e.data for e in whole_events if isinstance(e, TransferReceived)] == [G1, G1]
    assert whole_events[-1] == SessionEnded(SessTermReason.UNKNOWN, True, "")
    for cut in range(len(a_stream)):
        out, evs = run_passive_b([a_stream[:cut], a_stream[cut:]])
        assert out == expected_out and evs == whole_events
    out, evs = run_passive_b([a_stream[i : i + 1] for i in range(len(a_stream))])
    assert out == expected_out and evs == whole_events


def test_active_side_of_worked_session() -> None:
    a = TcpclSession(Role.ACTIVE, A_CFG, "ipn:1.0")
    a.start(0.0)
    assert a.data_to_send() == vector("session-A1-contact")
    a.receive_data(vector("session-B1-contact"), 0.1)
    assert a.data_to_send() == vector("session-A2-sess-init")
    a.receive_data(vector("session-B2-sess-init"), 0.2)
    assert events(a) == [SessionUp("ipn:2.0", a.parameters)] and a.parameters is not None
    assert a.parameters.segment_mtu == 8192 and a.parameters.keepalive_s == 30
    assert a.start_transfer(G1, 0.3) == 0
    assert a.data_to_send() == vector("session-A3-xfer-single")
    a.receive_data(vector("session-B3-xfer-ack"), 0.4)
    assert events(a) == [TransferAcked(0)]
    a.terminate(SessTermReason.UNKNOWN, 0.5)
    assert a.data_to_send() == vector("session-A6-sess-term")
    assert a.state is State.ENDING
    a.receive_data(vector("session-B6-sess-term-reply"), 0.6)
    assert events(a) == [SessionEnded(SessTermReason.UNKNOWN, False, "")]
    assert a.closed


def test_segmentation_with_transfer_length_extension_matches_worked_session() -> None:
    a = TcpclSession(Role.ACTIVE, SessionConfig(keepalive_s=60, segment_mru=65536, transfer_mru=1 << 20,
                                                max_segment_bytes=32), "ipn:1.0")
    a.start(0.0)
    a.data_to_send()
    a.receive_data(vector("session-B1-contact") + vector("session-B2-sess-init"), 0.1)
    a.data_to_send()
    a._next_tid = 1  # the worked session numbers this transfer 1
    a.start_transfer(G1, 0.2)
    assert a.data_to_send() == vector("session-A4-xfer-start-lenext") + vector("session-A5-xfer-end")
    a.receive_data(vector("session-B4-ack1"), 0.3)
    assert events(a)[-1:] != [TransferAcked(1)]
    a.receive_data(vector("session-B5-ack2"), 0.3)
    assert events(a)[-1] == TransferAcked(1)


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_pair_transfers_many_bundles_both_ways_segmented_at_peer_mru(chunk: int | None) -> None:
    pair = make_pair(SessionConfig(segment_mru=100), SessionConfig(segment_mru=33), chunk=chunk)
    assert pair.a.established and pair.b.established
    bundles = [bytes([i]) * n for i, n in enumerate([1, 33, 34, 100, 101, 1000])]
    tids = [pair.a.start_transfer(d, 0.0) for d in bundles]
    back = [pair.b.start_transfer(d, 0.0) for d in bundles]
    pair.pump()
    got_b = [e.data for e in pair.events_b if isinstance(e, TransferReceived)]
    got_a = [e.data for e in pair.events_a if isinstance(e, TransferReceived)]
    assert got_b == bundles and got_a == bundles
    assert [e.transfer_id for e in pair.events_a if isinstance(e, TransferAcked)] == tids
    assert [e.transfer_id for e in pair.events_b if isinstance(e, TransferAcked)] == back
    for wire, mtu in ((pair.wire_a, 33), (pair.wire_b, 100)):
        segs = [m for w in wire for m in messages(w) if isinstance(m, XferSegment)]
        assert segs and max(len(s.data) for s in segs) == mtu


def test_final_ack_waits_for_the_node_and_decisions_go_out_in_arrival_order() -> None:
    pair = make_pair()
    pair.auto_accept = False
    for n in (10, 20, 30):
        pair.a.start_transfer(b"x" * n, 0.0)
    pair.pump()
    received = [e for e in pair.events_b if isinstance(e, TransferReceived)]
    assert [e.transfer_id for e in received] == [0, 1, 2]
    assert not [e for e in pair.events_a if isinstance(e, TransferAcked | TransferRefused)]
    pair.b.finish_transfer(2, RefuseReason.COMPLETED, 0.0)
    pair.b.finish_transfer(1, None, 0.0)
    pair.pump()
    assert not [e for e in pair.events_a if isinstance(e, TransferAcked | TransferRefused)]
    pair.b.finish_transfer(0, RefuseReason.NO_RESOURCES, 0.0)
    pair.pump()
    outcomes = [e for e in pair.events_a if isinstance(e, TransferAcked | TransferRefused)]
    assert outcomes == [TransferRefused(0, RefuseReason.NO_RESOURCES), TransferAcked(1),
                        TransferRefused(2, RefuseReason.COMPLETED)]
    with pytest.raises(LocalProtocolError):
        pair.b.finish_transfer(0, None, 0.0)


def test_receive_window_holds_input_while_decisions_pending() -> None:
    pair = make_pair(config_b=SessionConfig(max_pending_received=2))
    pair.auto_accept = False
    for _ in range(3):
        pair.a.start_transfer(b"abc", 0.0)
    pair.pump()
    assert not pair.b.receive_window_open
    assert len([e for e in pair.events_b if isinstance(e, TransferReceived)]) == 2
    assert pair.b._parser.buffered > 0  # the third transfer waits, unparsed
    pair.b.finish_transfer(0, None, 0.0)
    pair.pump()
    assert len([e for e in pair.events_b if isinstance(e, TransferReceived)]) == 3
    pair.b.finish_transfer(1, None, 0.0)
    pair.b.finish_transfer(2, None, 0.0)
    pair.pump()
    assert [e for e in pair.events_a if not isinstance(e, SessionUp)] == [
        TransferAcked(0), TransferAcked(1), TransferAcked(2)]


def test_input_beyond_the_hold_limit_is_refused_not_buffered() -> None:
    b = established_passive(SessionConfig(max_pending_received=1, segment_mru=100, max_held_bytes=1000))
    stream = b"".join(XferSegment(0x03, t, b"x" * 50).to_bytes() for t in range(100))
    b.receive_data(stream, 1.0)
    assert b._parser.buffered <= 100 + 1000 + 100
    assert [type(e) for e in events(b)] == [TransferReceived]
    b.finish_transfer(0, None, 1.0)
    out = messages(b.data_to_send())
    assert XferRefuse(RefuseReason.NO_RESOURCES, 1) in out and XferAck(0x03, 0, 50) == out[0]


def test_transfer_above_receivers_mru_is_refused_mid_transfer_and_sender_stops() -> None:
    pair = make_pair(config_b=SessionConfig(transfer_mru=1000, segment_mru=100))
    # the sender believes the MRU it was told; force a bigger bundle past its own check
    assert pair.a.parameters is not None
    with pytest.raises(TransferTooLarge):
        pair.a.start_transfer(b"z" * 1001, 0.0)
    object.__setattr__(pair.a.parameters, "transfer_mtu", 1 << 20)
    tid = pair.a.start_transfer(b"z" * 5000, 0.0)
    ok = pair.a.start_transfer(b"ok", 0.0)
    pair.pump()
    assert TransferRefused(tid, RefuseReason.NOT_ACCEPTABLE) in pair.events_a
    assert TransferAcked(ok) in pair.events_a
    assert [e.data for e in pair.events_b if isinstance(e, TransferReceived)] == [b"ok"]


def test_declared_transfer_length_above_mru_refused_at_start() -> None:
    b = established_passive(SessionConfig(transfer_mru=100))
    b.receive_data(XferSegment(0x02, 7, b"a", (transfer_length_item(101),)).to_bytes(), 1.0)
    assert messages(b.data_to_send()) == [XferRefuse(RefuseReason.NOT_ACCEPTABLE, 7)]
    # a segment of the refused transfer that crossed the refusal is refused again
    b.receive_data(XferSegment(0x01, 7, b"b").to_bytes(), 1.0)
    assert messages(b.data_to_send()) == [XferRefuse(RefuseReason.NOT_ACCEPTABLE, 7)]


def test_declared_length_mismatch_is_not_acceptable() -> None:
    b = established_passive()
    b.receive_data(XferSegment(0x02, 1, b"ab", (transfer_length_item(5),)).to_bytes(), 1.0)
    b.receive_data(XferSegment(0x01, 1, b"c").to_bytes(), 1.0)
    assert messages(b.data_to_send()) == [XferAck(0x02, 1, 2), XferRefuse(RefuseReason.NOT_ACCEPTABLE, 1)]
    assert not [e for e in events(b) if isinstance(e, TransferReceived)]


def test_transfer_extensions_critical_unknown_and_dtn7_bundle_id() -> None:
    b = established_passive()
    b.receive_data(XferSegment(0x03, 1, b"a", (ExtensionItem(0x7777, b"?", True),)).to_bytes(), 1.0)
    assert messages(b.data_to_send()) == [XferRefuse(RefuseReason.EXTENSION_FAILURE, 1)]
    # dtn7-rs BundleID in type 0x0001 with length != 8, non-critical: ignored
    b.receive_data(XferSegment(0x03, 2, b"a", (ExtensionItem(1, b"dtn://x/-1-2", False),
                                                ExtensionItem(0x7778, b"", False))).to_bytes(), 1.0)
    assert events(b) == [TransferReceived(2, b"a")]


def established_passive(config: SessionConfig | None = None) -> TcpclSession:
    b = TcpclSession(Role.PASSIVE, config or SessionConfig(), "ipn:2.0")
    b.start(0.0)
    b.receive_data(ContactHeader().to_bytes() + SessInit(30, 1 << 20, 1 << 30, "ipn:1.0").to_bytes(), 0.0)
    b.data_to_send()
    assert isinstance(b.next_event(), SessionUp)
    return b


def test_unknown_critical_session_extension_terminates_with_contact_failure() -> None:
    b = TcpclSession(Role.PASSIVE, SessionConfig(), "ipn:2.0")
    b.start(0.0)
    init = SessInit(30, 100, 100, "ipn:1.0", (ExtensionItem(0xFFFE, b"exthi", True),))
    b.receive_data(ContactHeader().to_bytes() + init.to_bytes(), 0.0)
    out = b.data_to_send()
    assert out.endswith(SessTerm(SessTermReason.CONTACT_FAILURE).to_bytes())
    assert events(b) == [SessionEnded(SessTermReason.CONTACT_FAILURE, False,
                                      "unknown critical session extension 0xfffe")]
    # a non-critical unknown item is skipped
    b2 = TcpclSession(Role.PASSIVE, SessionConfig(), "ipn:2.0")
    b2.start(0.0)
    init = SessInit(30, 100, 100, "ipn:1.0", (ExtensionItem(0xFFFE, b"exthi", False),))
    b2.receive_data(ContactHeader().to_bytes() + init.to_bytes(), 0.0)
    assert isinstance(b2.next_event(), SessionUp)


def test_unknown_message_type_rejected_and_closed() -> None:
    b = established_passive()
    b.receive_data(b"\x42", 1.0)
    assert messages(b.data_to_send()) == [MsgReject(MsgRejectReason.MESSAGE_TYPE_UNKNOWN, 0x42)]
    assert b.closed and isinstance(events(b)[-1], SessionEnded)


def test_unexpected_messages_rejected_session_continues() -> None:
    b = established_passive()
    b.receive_data(SessInit(1, 1, 1, "x").to_bytes() + XferAck(1, 99, 5).to_bytes()
                   + XferSegment(0x00, 5, b"mid").to_bytes(), 1.0)
    assert messages(b.data_to_send()) == [
        MsgReject(MsgRejectReason.MESSAGE_UNEXPECTED, 0x07),
        MsgReject(MsgRejectReason.MESSAGE_UNEXPECTED, 0x02),
        MsgReject(MsgRejectReason.MESSAGE_UNEXPECTED, 0x01),
    ]
    assert b.established
    b.receive_data(MsgReject(2, 7).to_bytes(), 1.0)
    assert events(b) == [MessageRejected(2, 7)]


def test_bad_magic_closes_without_sess_term_and_version_mismatch_answers() -> None:
    b = TcpclSession(Role.PASSIVE, SessionConfig(), "ipn:2.0")
    b.start(0.0)
    b.receive_data(b"GET / HTTP/1.1\r\n", 0.0)
    assert b.closed and b.data_to_send() == b""
    b = TcpclSession(Role.PASSIVE, SessionConfig(), "ipn:2.0")
    b.start(0.0)
    b.receive_data(bytes.fromhex("64746e210301000f"), 0.0)
    assert b.data_to_send() == ContactHeader().to_bytes() + SessTerm(SessTermReason.VERSION_MISMATCH).to_bytes()
    assert b.closed
    a = TcpclSession(Role.ACTIVE, SessionConfig(), "ipn:1.0")
    a.start(0.0)
    a.data_to_send()
    a.receive_data(bytes.fromhex("64746e210300"), 0.0)
    assert a.closed and a.data_to_send() == b""


def test_oversized_segment_cuts_the_session_without_buffering() -> None:
    b = established_passive(SessionConfig(segment_mru=1000))
    b.receive_data(bytes.fromhex("0100" + "00" * 8) + (10**12).to_bytes(8, "big") + b"x" * 100, 1.0)
    assert messages(b.data_to_send()) == [SessTerm(SessTermReason.RESOURCE_EXHAUSTION)]
    assert b.closed
    b.receive_data(b"x" * 10000, 1.0)  # ignored after close
    assert b._parser.buffered < 200


def test_sess_term_reply_rule_and_ending_lets_transfers_in_progress_finish() -> None:
    pair = make_pair(SessionConfig(max_segment_bytes=10), SessionConfig(segment_mru=10))
    pair.auto_accept = False
    first = pair.a.start_transfer(b"q" * 25, 0.0)
    queued = pair.a.start_transfer(b"r" * 5, 0.0)
    # only part of the first transfer reaches B before B terminates
    data = pair.a.data_to_send()
    msgs = messages(data)
    assert len(msgs) == 4  # 3 segments of transfer 0 then one of transfer 1
    pair.b.receive_data(msgs[0].to_bytes(), 0.0)  # type: ignore[attr-defined]
    pair.b.terminate(SessTermReason.BUSY, 0.0)
    pair.b.receive_data(b"".join(m.to_bytes() for m in msgs[1:]), 0.0)  # type: ignore[attr-defined]
    pair.pump()
    # B refuses the transfer that started after its SESS_TERM; the one under way completes
    assert [e.transfer_id for e in pair.events_b if isinstance(e, TransferReceived)] == [first]
    replies = [m for w in pair.wire_a for m in messages(w) if isinstance(m, SessTerm)]
    assert replies == [SessTerm(SessTermReason.BUSY, reply=True)]
    assert not pair.b.closed  # waits for the node's decision on `first`
    pair.b.finish_transfer(first, None, 0.0)
    pair.pump()
    outcomes = [e for e in pair.events_a if isinstance(e, TransferAcked | TransferRefused)]
    assert outcomes == [TransferAcked(first), TransferRefused(queued, RefuseReason.SESSION_TERMINATING)]
    assert pair.a.closed and pair.b.closed
    assert pair.events_a[-1] == SessionEnded(SessTermReason.BUSY, True, "")
    assert pair.events_b[-1] == SessionEnded(SessTermReason.BUSY, False, "")


def test_terminate_fails_queued_transfers_and_refuses_new_ones() -> None:
    pair = make_pair()
    tid = pair.a.start_transfer(b"x", 0.0)
    pair.a.terminate(SessTermReason.UNKNOWN, 0.0)
    assert pair.a.next_event() == TransferFailed(tid, "session terminating")
    with pytest.raises(LocalProtocolError):
        pair.a.start_transfer(b"y", 0.0)
    pair.pump()
    assert pair.a.closed and pair.b.closed


def test_keepalive_negotiation_sending_and_idle_timeout() -> None:
    pair = make_pair(SessionConfig(keepalive_s=10), SessionConfig(keepalive_s=4))
    assert pair.a.parameters is not None and pair.a.parameters.keepalive_s == 4
    assert pair.a.next_deadline() == 4.0
    pair.advance(4.0)
    assert [m for w in pair.wire_a[-1:] for m in messages(w)] == [Keepalive()]
    for _ in range(5):
        pair.advance(4.0)
    assert pair.a.established and pair.b.established
    # B goes silent: A times out after 2 x keepalive
    a = pair.a
    now = pair.now
    a.handle_timer(now + 4.0)
    a.data_to_send()
    a.handle_timer(now + 8.0)
    assert a.closed
    assert a.data_to_send() == SessTerm(SessTermReason.IDLE_TIMEOUT).to_bytes()
    assert events(a)[-1] == SessionEnded(SessTermReason.IDLE_TIMEOUT, False, "idle timeout")


def test_zero_keepalive_disables_timers() -> None:
    pair = make_pair(SessionConfig(keepalive_s=0), SessionConfig(keepalive_s=30))
    assert pair.a.next_deadline() is None and pair.b.next_deadline() is None


def test_contact_timeout() -> None:
    b = TcpclSession(Role.PASSIVE, SessionConfig(contact_timeout_s=5), "ipn:2.0")
    b.start(0.0)
    assert b.next_deadline() == 5.0
    b.handle_timer(5.0)
    assert b.closed and b.data_to_send() == b""
    a = TcpclSession(Role.ACTIVE, SessionConfig(contact_timeout_s=5), "ipn:1.0")
    a.start(0.0)
    a.handle_timer(5.0)
    assert a.data_to_send() == ContactHeader().to_bytes() + SessTerm(SessTermReason.CONTACT_FAILURE).to_bytes()


def test_ending_times_out() -> None:
    pair = make_pair(config_b=SessionConfig(term_timeout_s=3))
    pair.auto_accept = False
    pair.a.start_transfer(b"x", 0.0)
    pair.pump()
    pair.b.terminate(SessTermReason.UNKNOWN, 0.0)
    pair.pump()
    assert not pair.b.closed
    pair.advance(3.0)
    assert pair.b.closed


def test_tls_negotiation_and_node_id_authentication() -> None:
    tls = SessionConfig(can_tls=True)
    pair = make_pair(tls, tls)
    assert StartTls(server_side=False) in pair.events_a and StartTls(server_side=True) in pair.events_b
    assert pair.a.established and pair.a.parameters is not None and pair.a.parameters.tls
    # only one side can: plain TCP
    pair = make_pair(tls, SessionConfig())
    assert pair.a.established and not pair.a.tls
    # one side requires TLS the other cannot do
    pair = make_pair(SessionConfig(can_tls=True, require_tls=True), SessionConfig())
    assert pair.a.closed and pair.events_a[-1] == SessionEnded(
        SessTermReason.CONTACT_FAILURE, False, "TLS required but not negotiated")
    # certificate does not name the node ID announced in SESS_INIT
    a = TcpclSession(Role.ACTIVE, tls, "ipn:1.0")
    b = TcpclSession(Role.PASSIVE, tls, "ipn:2.0")
    pair = Pair(a, b, tls_ids={"ipn:2.0": frozenset({"ipn:9.0"})})
    a.start(0.0)
    b.start(0.0)
    pair.pump()
    assert a.closed and isinstance(pair.events_a[-1], SessionEnded)
    assert pair.events_a[-1].reason == SessTermReason.CONTACT_FAILURE
    assert pair.events_b[-1] == SessionEnded(SessTermReason.CONTACT_FAILURE, True,
                                             "peer terminated during negotiation") or pair.b.closed


def test_connection_lost_fails_outstanding_transfers() -> None:
    pair = make_pair()
    pair.auto_accept = False
    tid = pair.a.start_transfer(b"abc", 0.0)
    pair.pump()
    pair.a.receive_data(b"", 1.0)
    assert events(pair.a) == [
        TransferFailed(tid, "peer closed the connection"), SessionEnded(None, False, "peer closed the connection")]


def test_api_misuse_is_local_protocol_error() -> None:
    a = TcpclSession(Role.ACTIVE, SessionConfig(), "ipn:1.0")
    a.start(0.0)
    with pytest.raises(LocalProtocolError):
        a.start_transfer(b"x", 0.0)
    with pytest.raises(LocalProtocolError):
        a.tls_started(0.0, None)
    with pytest.raises(ValueError):
        TcpclSession(Role.ACTIVE, SessionConfig(segment_mru=0), "x")


def test_a_1_mib_bundle_goes_in_one_segment_with_the_default_mru() -> None:
    """The default segment MRU leaves room for a 1 MiB payload and its blocks: one segment, one XFER_ACK (no
    intermediate acknowledgement, no gathering of segments at the receiver)."""
    pair = make_pair(SessionConfig(), SessionConfig(), via_buffer=True)
    bundle = bytes(range(256)) * 4096 + b"\xff" * 300  # 1 MiB payload plus a primary block and headers
    tid = pair.a.start_transfer(bundle, 0.0)
    pair.pump()
    assert [e.data for e in pair.events_b if isinstance(e, TransferReceived)] == [bundle]
    assert [e.transfer_id for e in pair.events_a if isinstance(e, TransferAcked)] == [tid]
    segs = [m for w in pair.wire_a for m in messages(w) if isinstance(m, XferSegment)]
    acks = [m for w in pair.wire_b for m in messages(w) if isinstance(m, XferAck)]
    assert len(segs) == 1 and len(acks) == 1
