"""Property tests over (state, input): every input gives a valid transition or the documented error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dtn.convergence.base import RefuseReason
from dtn.convergence.tcpcl.messages import (
    ContactHeader,
    Keepalive,
    MsgReject,
    SessInit,
    SessTerm,
    SessTermReason,
    XferAck,
    XferRefuse,
    XferSegment,
    transfer_length_item,
)
from dtn.convergence.tcpcl.session import (
    Role,
    SessionConfig,
    SessionEnded,
    State,
    TcpclSession,
    TransferReceived,
)
from dtn.errors import LocalProtocolError

from .helpers import make_pair

CONFIG = SessionConfig(keepalive_s=5, segment_mru=64, transfer_mru=256, max_pending_received=3,
                       max_outgoing_transfers=4, contact_timeout_s=10, term_timeout_s=5)
tid = st.integers(0, 6)
wire_message = st.one_of(
    st.builds(lambda f, t, d: XferSegment(f, t, d).to_bytes(), st.integers(0, 3), tid, st.binary(max_size=80)),
    st.builds(lambda t, n: XferSegment(2, t, b"x", (transfer_length_item(n),)).to_bytes(), tid,
              st.integers(0, 400)),
    st.builds(lambda f, t, n: XferAck(f, t, n).to_bytes(), st.integers(0, 3), tid, st.integers(0, 300)),
    st.builds(lambda r, t: XferRefuse(r, t).to_bytes(), st.sampled_from(RefuseReason), tid),
    st.just(Keepalive().to_bytes()),
    st.builds(lambda r, p: SessTerm(r, p).to_bytes(), st.sampled_from(SessTermReason), st.booleans()),
    st.builds(lambda a, b: MsgReject(a, b).to_bytes(), st.integers(0, 9), st.integers(0, 9)),
    st.just(SessInit(3, 50, 300, "ipn:9.0").to_bytes()),
    st.binary(min_size=1, max_size=20),
)
op = st.one_of(
    st.tuples(st.just("recv"), wire_message),
    st.tuples(st.just("send"), st.binary(max_size=300)),
    st.tuples(st.just("finish"), tid, st.sampled_from([None, *RefuseReason])),
    st.tuples(st.just("term"), st.sampled_from(SessTermReason)),
    st.tuples(st.just("timer"), st.floats(0, 20)),
    st.tuples(st.just("eof")),
)


def check_invariants(s: TcpclSession) -> None:
    assert s._parser.buffered <= 80 + 64 + 30  # never more than one partial message
    assert len(s._pending) <= CONFIG.max_pending_received + 1
    assert len(s._tx) <= CONFIG.max_outgoing_transfers
    if s.state is State.CLOSED:
        assert s.next_deadline() is None and not s._tx and not s._pending


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["negotiating", "established"]), st.lists(op, max_size=25))
def test_any_input_in_any_state(start: str, ops: list[tuple[object, ...]]) -> None:
    if start == "established":
        s = make_pair(CONFIG, CONFIG).b
        assert s.established
    else:
        s = TcpclSession(Role.PASSIVE, CONFIG, "ipn:2.0")
        s.start(0.0)
        s.receive_data(ContactHeader().to_bytes(), 0.0)
    now = 0.0
    ended = 0
    for item in ops:
        kind = item[0]
        try:
            if kind == "recv":
                assert isinstance(item[1], bytes)
                s.receive_data(item[1], now)
            elif kind == "send":
                assert isinstance(item[1], bytes)
                s.start_transfer(item[1], now)
            elif kind == "finish":
                s.finish_transfer(item[1], item[2], now)  # type: ignore[arg-type]
            elif kind == "term":
                s.terminate(item[1], now)  # type: ignore[arg-type]
            elif kind == "timer":
                assert isinstance(item[1], float)
                now += item[1]
                s.handle_timer(now)
            else:
                s.connection_lost(now)
        except LocalProtocolError:
            pass  # the documented error for asking what the state does not allow
        s.data_to_send()
        while (e := s.next_event()) is not None:
            ended += isinstance(e, SessionEnded)
            if isinstance(e, TransferReceived):
                assert len(e.data) <= CONFIG.transfer_mru
        check_invariants(s)
    assert ended == (1 if s.closed else 0)
