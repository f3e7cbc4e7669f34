"""TCPCLv4 messages: golden vectors, every chunking, round trips, and hostile lengths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtn.convergence.base import RefuseReason
from dtn.convergence.tcpcl.messages import (
    U16_MAX,
    U64_MAX,
    BadContactHeader,
    ContactHeader,
    ExtensionItem,
    Keepalive,
    Message,
    MessageParser,
    MessageTooLarge,
    MsgReject,
    MsgRejectReason,
    ParserLimits,
    SessInit,
    SessTerm,
    SessTermReason,
    UnknownMessageType,
    VersionMismatch,
    XferAck,
    XferRefuse,
    XferSegment,
    decode_contact_header,
    decode_message,
    transfer_length_item,
)
from dtn.errors import RemoteProtocolError

from .helpers import vector

G1 = vector("gen-bundle-G1-minimal")

GOLDEN: dict[str, Message] = {
    "tcpclv4-sess-init-default": SessInit(0, U64_MAX, U64_MAX, ""),
    "tcpclv4-sess-init": SessInit(300, 1024, 10240, "hello"),
    "tcpclv4-sess-init-ext": SessInit(300, 1024, 10240, "hello", (ExtensionItem(0xFFFE, b"exthi", True),)),
    "tcpclv4-sess-term": SessTerm(SessTermReason.UNKNOWN),
    "tcpclv4-sess-term-busy": SessTerm(SessTermReason.BUSY),
    "tcpclv4-sess-term-reply": SessTerm(SessTermReason.CONTACT_FAILURE, reply=True),
    "tcpclv4-keepalive": Keepalive(),
    "tcpclv4-msg-reject": MsgReject(MsgRejectReason.MESSAGE_UNSUPPORTED, 0x07),
    "tcpclv4-xfer-refuse": XferRefuse(RefuseReason.NO_RESOURCES, 1234),
    "tcpclv4-xfer-seg-start": XferSegment(0x02, 1234, b"hello"),
    "tcpclv4-xfer-seg-start-lenext": XferSegment(
        0x02, 1234, b"hello", (ExtensionItem(1, (800).to_bytes(8, "big"), True),)
    ),
    "tcpclv4-xfer-seg-mid": XferSegment(0x00, 1234, b"hello"),
    "tcpclv4-xfer-seg-end": XferSegment(0x01, 1234, b"hello"),
    "tcpclv4-xfer-ack": XferAck(0x01, 1234, 43210),
    "session-A2-sess-init": SessInit(60, 65536, 1 << 20, "ipn:1.0"),
    "session-B2-sess-init": SessInit(30, 8192, 1 << 20, "ipn:2.0"),
    "session-A3-xfer-single": XferSegment(0x03, 0, G1),
    "session-B3-xfer-ack": XferAck(0x03, 0, 51),
    "session-A4-xfer-start-lenext": XferSegment(0x02, 1, G1[:32], (transfer_length_item(51),)),
    "session-B4-ack1": XferAck(0x02, 1, 32),
    "session-A5-xfer-end": XferSegment(0x01, 1, G1[32:]),
    "session-B5-ack2": XferAck(0x01, 1, 51),
    "session-A6-sess-term": SessTerm(SessTermReason.UNKNOWN),
    "session-B6-sess-term-reply": SessTerm(SessTermReason.UNKNOWN, reply=True),
}


def parse_all(data: bytes, step: int | None) -> list[Message]:
    parser = MessageParser(ParserLimits(max_segment_data=1 << 20))
    out: list[Message] = []
    step = step or len(data)
    for i in range(0, len(data), step):
        parser.feed(data[i : i + step])
        while (m := parser.next_message()) is not None:
            out.append(m)
    assert parser.buffered == 0
    return out


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_vector_decodes_and_encodes(name: str) -> None:
    raw = vector(name)
    assert decode_message(raw) == GOLDEN[name]
    assert GOLDEN[name].to_bytes() == raw


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_vector_every_split_and_byte_by_byte(name: str) -> None:
    raw = vector(name)
    for cut in range(1, len(raw)):
        parser = MessageParser()
        parser.feed(raw[:cut])
        assert parser.next_message() is None
        parser.feed(raw[cut:])
        assert parser.next_message() == GOLDEN[name]
    assert parse_all(raw, 1) == [GOLDEN[name]]


def test_contact_headers() -> None:
    assert decode_contact_header(vector("tcpclv4-contact-header")) == ContactHeader(can_tls=False)
    assert decode_contact_header(vector("tcpclv4-contact-header-tls")) == ContactHeader(can_tls=True)
    assert ContactHeader(can_tls=True).to_bytes() == vector("tcpclv4-contact-header-tls")
    assert ContactHeader().to_bytes() == vector("session-A1-contact") == vector("session-B1-contact")
    # unknown flag bits are ignored on receipt
    assert decode_contact_header(bytes.fromhex("64746e2104fe")) == ContactHeader(can_tls=False)


def test_contact_header_bad_magic_detected_early_and_version_mismatch() -> None:
    parser = MessageParser()
    parser.feed(b"GET")
    with pytest.raises(BadContactHeader):
        parser.next_contact_header()
    with pytest.raises(VersionMismatch) as info:
        decode_contact_header(bytes.fromhex("64746e210301"))
    assert info.value.version == 3
    assert info.value.reason == SessTermReason.VERSION_MISMATCH


def test_whole_worked_session_stream_in_every_chunking() -> None:
    names = [n for n in GOLDEN if n.startswith("session-A")]
    stream = b"".join(vector(n) for n in names)
    expected = [GOLDEN[n] for n in names]
    for step in (None, 1, 2, 3, 7, 50):
        assert parse_all(stream, step) == expected
    for cut in range(len(stream)):
        parser = MessageParser()
        got: list[Message] = []
        for part in (stream[:cut], stream[cut:]):
            parser.feed(part)
            while (m := parser.next_message()) is not None:
                got.append(m)
        assert got == expected


def test_sipos_order_msg_reject_is_read_without_crash() -> None:
    assert decode_message(vector("tcpclv4-msg-reject-SIPOS-ORDER")) == MsgReject(0x07, 0x02)


def test_unknown_reason_codes_are_unknown() -> None:
    assert decode_message(bytes.fromhex("0300" + "00" * 7 + "01")) == XferRefuse(RefuseReason.UNKNOWN, 1)
    assert decode_message(bytes.fromhex("0309" + "00" * 8)) == XferRefuse(RefuseReason.UNKNOWN, 0)
    assert decode_message(bytes.fromhex("0500ee")) == SessTerm(SessTermReason.UNKNOWN)


@pytest.mark.parametrize("code", [0x00, 0x08, 0xEF, 0xF0, 0xFF])
def test_unknown_message_type(code: int) -> None:
    parser = MessageParser()
    parser.feed(bytes((code, 1, 2, 3)))
    with pytest.raises(UnknownMessageType) as info:
        parser.next_message()
    assert info.value.type_code == code
    assert info.value.reason == MsgRejectReason.MESSAGE_TYPE_UNKNOWN


def test_oversized_lengths_are_refused_before_buffering() -> None:
    parser = MessageParser(ParserLimits(max_segment_data=1000))
    parser.feed(XferSegment(0x00, 1, b"").to_bytes()[:10] + (2**63).to_bytes(8, "big"))
    with pytest.raises(MessageTooLarge):
        parser.next_message()
    parser = MessageParser()
    parser.feed(bytes.fromhex("0102" + "00" * 8 + "ffffffff"))
    with pytest.raises(MessageTooLarge):
        parser.next_message()
    parser = MessageParser()
    parser.feed(bytes.fromhex("070000" + "00" * 16 + "ffff"))
    with pytest.raises(MessageTooLarge):
        parser.next_message()
    init = SessInit(0, 1, 1, "x").to_bytes()
    parser = MessageParser()
    parser.feed(init[:-4] + (0xFFFFFFFF).to_bytes(4, "big"))
    with pytest.raises(MessageTooLarge):
        parser.next_message()


def test_extension_items_overrunning_their_list() -> None:
    raw = bytes.fromhex("070000" + "00" * 16 + "0000" + "00000007" + "00000100056162")
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(raw)
    assert info.value.reason == SessTermReason.CONTACT_FAILURE


def test_node_id_not_utf8() -> None:
    raw = bytes.fromhex("070000" + "00" * 16 + "0002" + "c328" + "00000000")
    with pytest.raises(RemoteProtocolError):
        decode_message(raw)


def test_extensions_only_on_start() -> None:
    with pytest.raises(ValueError):
        XferSegment(0x00, 1, b"x", (transfer_length_item(1),)).to_bytes()


u8 = st.integers(0, 255)
u16 = st.integers(0, U16_MAX)
u64 = st.integers(0, U64_MAX)
items = st.lists(st.builds(ExtensionItem, u16, st.binary(max_size=40), st.booleans()), max_size=3).map(tuple)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(SessInit, u16, u64, u64, st.text(max_size=30), items),
    st.builds(SessTerm, st.sampled_from(SessTermReason), st.booleans()),
    st.just(Keepalive()),
    st.builds(MsgReject, u8, u8),
    st.builds(XferAck, u8, u64, u64),
    st.builds(XferRefuse, st.sampled_from(RefuseReason), u64),
    st.builds(XferSegment, u8.filter(lambda f: not f & 2), u64, st.binary(max_size=200)),
    st.builds(XferSegment, u8.map(lambda f: f | 2), u64, st.binary(max_size=200), items),
)


@given(messages)
def test_round_trip(message: Message) -> None:
    assert decode_message(message.to_bytes()) == message


@given(st.lists(messages, max_size=8), st.integers(1, 64))
def test_stream_round_trip_any_chunking(msgs: list[Message], step: int) -> None:
    stream = b"".join(m.to_bytes() for m in msgs)
    assert parse_all(stream, step) == msgs


@given(st.binary(max_size=300))
def test_garbage_gives_message_or_protocol_error(data: bytes) -> None:
    parser = MessageParser(ParserLimits(max_segment_data=100, max_extension_bytes=100, max_node_id_bytes=100))
    parser.feed(data)
    try:
        while parser.next_message() is not None:
            pass
    except RemoteProtocolError:
        pass
    assert parser.buffered <= len(data)
