"""TCPCLv4 over real sockets on 127.0.0.1: plain and TLS, outcomes, timeouts, disconnects, hostile peers."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from dtn.convergence.base import Outcome, RefuseReason
from dtn.convergence.tcpcl.aio import TcpclConfig, TcpclConvergenceLayer, TcpclLink, parse_address
from dtn.convergence.tcpcl.messages import (
    ContactHeader,
    Keepalive,
    MessageParser,
    ParserLimits,
    SessInit,
    SessTerm,
    SessTermReason,
    XferSegment,
)
from dtn.convergence.tcpcl.session import SessionConfig
from dtn.convergence.tcpcl.tls import node_ids_from_certificate
from dtn.errors import ConfigError

from .conftest import Pki, Sink, make_pki, within
from .helpers import vector

G1 = vector("gen-bundle-G1-minimal")
MiB = 1 << 20


@dataclass
class Nodes:
    server: TcpclConvergenceLayer
    client: TcpclConvergenceLayer
    server_sink: Sink
    client_sink: Sink
    address: str


async def start_nodes(server_cfg: TcpclConfig, client_cfg: TcpclConfig, **sink_kw: object) -> Nodes:
    server_sink, client_sink = Sink(**sink_kw), Sink()  # type: ignore[arg-type]
    server = TcpclConvergenceLayer("ipn:2.0", server_sink, server_cfg)
    client = TcpclConvergenceLayer("ipn:1.0", client_sink, client_cfg)
    address = await server.listen("tcpcl://127.0.0.1:0")
    return Nodes(server, client, server_sink, client_sink, address)


@pytest.fixture
async def plain() -> AsyncIterator[Nodes]:
    nodes = await start_nodes(TcpclConfig(), TcpclConfig())
    yield nodes
    await nodes.client.close()
    await nodes.server.close()


def tls_config(pki: Pki, name: str, node_id: str, **kw: bool) -> TcpclConfig:
    server_ctx, client_ctx = pki.contexts(name, node_id, **kw)
    return TcpclConfig(SessionConfig(require_tls=True), ssl_server=server_ctx, ssl_client=client_ctx)


@pytest.fixture
async def tls_nodes(pki: Pki) -> AsyncIterator[Nodes]:
    nodes = await start_nodes(tls_config(pki, "node2", "ipn:2.0"), tls_config(pki, "node1", "ipn:1.0", uri_san=True))
    yield nodes
    await nodes.client.close()
    await nodes.server.close()


def test_parse_address() -> None:
    assert parse_address("tcpcl://127.0.0.1:4557") == ("127.0.0.1", 4557)
    assert parse_address("tcpcl://[::1]") == ("::1", 4556)
    with pytest.raises(ConfigError):
        parse_address("udp://127.0.0.1:1")


async def exchange(nodes: Nodes, sizes: list[int]) -> TcpclLink:
    link = await nodes.client.connect(nodes.address, peer_node_id="ipn:2.0")
    assert link.is_up and link.peer_node_id == "ipn:2.0"
    await nodes.server_sink.wait_for(lambda: len(nodes.server_sink.up) == 1)
    back = nodes.server_sink.up[0]
    assert back.peer_node_id == "ipn:1.0"
    bundles = [G1[:n] if n <= len(G1) else bytes(range(256)) * (n // 256) + b"x" * (n % 256) for n in sizes]
    results = await asyncio.gather(*(link.send(b) for b in bundles))
    assert [r.outcome for r in results] == [Outcome.ACKNOWLEDGED] * len(sizes)
    assert nodes.server_sink.received == bundles
    reply = await back.send(G1)
    assert reply.ok and nodes.client_sink.received == [G1]
    return link


async def test_plain_session_transfers_1_byte_and_1_mib_both_ways(plain: Nodes) -> None:
    link = await exchange(plain, [1, MiB, len(G1)])
    assert not link.tls
    await link.close()
    await plain.server_sink.wait_for(lambda: len(plain.server_sink.down) == 1)
    assert plain.client_sink.down[0][1] == "unknown"
    assert plain.server_sink.down[0][1] == "unknown by peer"


async def test_tls_session_transfers_and_authenticates_node_ids(tls_nodes: Nodes) -> None:
    link = await exchange(tls_nodes, [1, MiB])
    assert link.tls and tls_nodes.server_sink.up[0].tls  # type: ignore[attr-defined]
    await link.close()


async def test_200_mib_bundle_over_tls_intact(tls_nodes: Nodes) -> None:
    tls_nodes.server_sink.keep = False
    digests: list[str] = []
    original = tls_nodes.server_sink.bundle_received

    async def hashing(link: object, data: bytes) -> RefuseReason | None:
        digests.append(hashlib.sha256(data).hexdigest())
        return await original(link, data)  # type: ignore[arg-type]

    tls_nodes.server_sink.bundle_received = hashing  # type: ignore[method-assign]
    big = bytes(range(256)) * (200 * MiB // 256)
    link = await tls_nodes.client.connect(tls_nodes.address)
    result = await link.send(big)
    assert result.ok
    assert digests == [hashlib.sha256(big).hexdigest()]
    await link.close()


async def test_tls_node_id_not_in_certificate_fails_both_sides(pki: Pki) -> None:
    server_ctx, client_ctx = pki.contexts("impostor", "ipn:99.0")
    impostor = TcpclConfig(SessionConfig(require_tls=True), ssl_server=server_ctx, ssl_client=client_ctx)
    nodes = await start_nodes(impostor, tls_config(pki, "node1b", "ipn:1.0"))
    try:
        with pytest.raises(ConnectionError):
            await nodes.client.connect(nodes.address)
        # the impostor's own side saw a valid client, then the client's SESS_TERM(contact failure)
        await nodes.server_sink.wait_for(lambda: len(nodes.server_sink.down) == len(nodes.server_sink.up))
        assert [reason for _, reason in nodes.server_sink.down] in ([], ["contact_failure by peer"])
    finally:
        await nodes.client.close()
        await nodes.server.close()


async def test_tls_untrusted_ca_fails(pki: Pki, tmp_path: object) -> None:
    from pathlib import Path

    other = make_pki(Path(str(tmp_path)), "other CA")
    s_ctx, c_ctx = other.contexts("rogue", "ipn:2.0")
    rogue = TcpclConfig(SessionConfig(require_tls=True), ssl_server=s_ctx, ssl_client=c_ctx)
    nodes = await start_nodes(rogue, tls_config(pki, "node1c", "ipn:1.0"))
    try:
        with pytest.raises(ConnectionError):
            await nodes.client.connect(nodes.address)
    finally:
        await nodes.client.close()
        await nodes.server.close()


async def test_required_tls_against_plain_peer_fails(pki: Pki) -> None:
    nodes = await start_nodes(TcpclConfig(), tls_config(pki, "node1d", "ipn:1.0"))
    try:
        with pytest.raises(ConnectionError):
            await nodes.client.connect(nodes.address)
    finally:
        await nodes.client.close()
        await nodes.server.close()


def test_node_ids_from_certificate(pki: Pki) -> None:
    import ssl

    cert, _ = pki.issue("ids", "ipn:7.0")
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert node_ids_from_certificate(der) == frozenset({"ipn:7.0"})
    cert, _ = pki.issue("ids2", "dtn://seven/", uri_san=True)
    assert node_ids_from_certificate(ssl.PEM_cert_to_DER_cert(cert.read_text())) == frozenset({"dtn://seven/"})
    assert node_ids_from_certificate(b"\x30\x82\xff\xff garbage") == frozenset()
    assert node_ids_from_certificate(der[: len(der) // 2]) == frozenset()


async def test_refusals_reach_the_sender() -> None:
    nodes = await start_nodes(TcpclConfig(SessionConfig(transfer_mru=1000)), TcpclConfig(),
                              decide=RefuseReason.COMPLETED)
    try:
        link = await nodes.client.connect(nodes.address)
        assert link.limits.max_bundle_bytes == 1000
        dup = await link.send(G1)
        assert (dup.outcome, dup.reason) == (Outcome.REFUSED, RefuseReason.COMPLETED)
        big = await link.send(b"x" * 1001)
        assert (big.outcome, big.reason) == (Outcome.REFUSED, RefuseReason.NOT_ACCEPTABLE)
        nodes.server_sink.decide = RefuseReason.NO_RESOURCES
        full = await link.send(G1)
        assert full.reason is RefuseReason.NO_RESOURCES
        nodes.server_sink.decide = None
        assert (await link.send(G1)).ok
    finally:
        await nodes.client.close()
        await nodes.server.close()


async def test_slow_sink_slows_the_sender_and_bounds_reading() -> None:
    gate = asyncio.Event()
    cfg = TcpclConfig(SessionConfig(max_pending_received=2, segment_mru=256 * 1024))
    nodes = await start_nodes(cfg, TcpclConfig(), gate=gate, keep=False)
    try:
        link = await nodes.client.connect(nodes.address)
        sends = [asyncio.ensure_future(link.send(bytes(MiB))) for _ in range(24)]
        await nodes.server_sink.wait_for(lambda: nodes.server_sink.started == 2)
        server_link = next(iter(nodes.server.links))
        # give the sender a chance to push more: it cannot, the receiver does not read
        await asyncio.wait(sends, timeout=0.3)
        assert nodes.server_sink.started == 2
        assert not any(s.done() for s in sends)
        assert server_link.session._parser.buffered <= 256 * 1024 + 64 * 1024 + 100
        gate.set()
        results = await within(asyncio.gather(*sends), 30)
        assert all(r.ok for r in results) and nodes.server_sink.sizes == [MiB] * 24
    finally:
        gate.set()
        await nodes.client.close()
        await nodes.server.close()


# ---------------------------------------------------------------------------------------- raw peers


async def raw_handshake(address: str, keepalive_s: int = 0, segment_mru: int = MiB) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter, MessageParser]:
    host, port = parse_address(address)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(ContactHeader().to_bytes() + SessInit(keepalive_s, segment_mru, 1 << 30, "ipn:66.0").to_bytes())
    parser = MessageParser(ParserLimits(max_segment_data=1 << 30))
    while True:
        parser.feed(await within(reader.read(65536), 5))
        if parser.next_contact_header() is not None:
            break
    while not isinstance(await next_message(reader, parser), SessInit):
        pass
    return reader, writer, parser


async def next_message(reader: asyncio.StreamReader, parser: MessageParser) -> object:
    while (m := parser.next_message()) is None:
        data = await within(reader.read(65536), 5)
        if not data:
            return None
        parser.feed(data)
    return m


async def read_until_eof(reader: asyncio.StreamReader, parser: MessageParser) -> list[object]:
    got = []
    while (m := await next_message(reader, parser)) is not None:
        got.append(m)
    return got


async def test_keepalive_sent_and_idle_timeout_on_silent_peer() -> None:
    nodes = await start_nodes(TcpclConfig(SessionConfig(keepalive_s=1)), TcpclConfig())
    try:
        reader, writer, parser = await raw_handshake(nodes.address, keepalive_s=1)
        got = await read_until_eof(reader, parser)  # we say nothing: it keeps alive, then gives up
        assert got[0] == Keepalive()
        assert got[-1] == SessTerm(SessTermReason.IDLE_TIMEOUT)
        writer.close()
        await nodes.server_sink.wait_for(lambda: len(nodes.server_sink.down) == 1)
        assert nodes.server_sink.down[0][1] == "idle_timeout"
    finally:
        await nodes.server.close()


async def test_keepalives_hold_an_idle_session() -> None:
    cfg = TcpclConfig(SessionConfig(keepalive_s=1))
    nodes = await start_nodes(cfg, cfg)
    try:
        link = await nodes.client.connect(nodes.address)
        waiter = asyncio.ensure_future(link.wait_closed())
        done, _ = await asyncio.wait([waiter], timeout=2.5)  # longer than the 2 s idle timeout
        assert not done and link.is_up
        waiter.cancel()
        assert (await link.send(G1)).ok
    finally:
        await nodes.client.close()
        await nodes.server.close()


async def test_peer_disconnect_mid_transfer_fails_on_both_sides() -> None:
    # receiver side: a raw sender starts a transfer then vanishes
    nodes = await start_nodes(TcpclConfig(), TcpclConfig())
    try:
        reader, writer, parser = await raw_handshake(nodes.address)
        await nodes.server_sink.wait_for(lambda: len(nodes.server_sink.up) == 1)
        writer.write(XferSegment(0x02, 0, b"part of a bundle").to_bytes())
        await writer.drain()
        writer.close()
        await nodes.server_sink.wait_for(lambda: len(nodes.server_sink.down) == 1)
        assert nodes.server_sink.received == []
        assert nodes.server_sink.down[0][1] == "peer closed the connection"
    finally:
        await nodes.server.close()

    # sender side: a raw receiver reads the start of the bundle, then closes
    accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def vanishing_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(6)
        writer.write(ContactHeader().to_bytes() + SessInit(0, MiB, 1 << 30, "ipn:3.0").to_bytes())
        await reader.readexactly(100_000)
        writer.close()
        accepted.set_result(None)

    server = await asyncio.start_server(vanishing_peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = Sink()
    client = TcpclConvergenceLayer("ipn:1.0", sink)
    try:
        link = await client.connect(f"tcpcl://127.0.0.1:{port}")
        result = await within(link.send(bytes(8 * MiB)), 10)
        assert result.outcome is Outcome.FAILED
        await sink.wait_for(lambda: len(sink.down) == 1)
        assert not link.is_up
    finally:
        await client.close()
        server.close()


async def test_hostile_garbage_is_cut_off() -> None:
    nodes = await start_nodes(TcpclConfig(), TcpclConfig())
    try:
        reader, writer = await asyncio.open_connection(*parse_address(nodes.address))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
        assert await within(reader.read(), 5) == b""  # closed, no contact header, no SESS_TERM
        writer.close()
        for link in list(nodes.server.links):
            await within(link.wait_closed(), 5)
        assert nodes.server.links == frozenset() and nodes.server_sink.up == []
    finally:
        await nodes.server.close()


async def test_hostile_oversized_segment_is_cut_off_without_buffering() -> None:
    nodes = await start_nodes(TcpclConfig(SessionConfig(segment_mru=64 * 1024)), TcpclConfig())
    try:
        reader, writer, parser = await raw_handshake(nodes.address)
        await nodes.server_sink.wait_for(lambda: len(nodes.server_sink.up) == 1)
        server_link = nodes.server_sink.up[0]
        assert isinstance(server_link, TcpclLink)
        header = bytes.fromhex("0100" + "00" * 8) + (1 << 40).to_bytes(8, "big")
        writer.write(header + b"A" * MiB)
        got = await read_until_eof(reader, parser)
        assert got == [SessTerm(SessTermReason.RESOURCE_EXHAUSTION)]
        assert server_link.session._parser.buffered <= MiB + len(header)
        writer.close()
    finally:
        await nodes.server.close()


async def test_hostile_unknown_message_type_gets_msg_reject_and_close() -> None:
    nodes = await start_nodes(TcpclConfig(), TcpclConfig())
    try:
        reader, writer, parser = await raw_handshake(nodes.address)
        writer.write(b"\xee")
        got = await read_until_eof(reader, parser)
        assert [type(m).__name__ for m in got] == ["MsgReject"]
        writer.close()
    finally:
        await nodes.server.close()


async def test_slowloris_contact_header_times_out() -> None:
    nodes = await start_nodes(TcpclConfig(SessionConfig(contact_timeout_s=0.5)), TcpclConfig())
    try:
        reader, writer = await asyncio.open_connection(*parse_address(nodes.address))
        writer.write(b"dt")  # and never the rest
        assert await within(reader.read(), 5) == b""
        writer.close()
        # in SESS_INIT: contact header, then a SESS_INIT that never completes
        reader, writer = await asyncio.open_connection(*parse_address(nodes.address))
        writer.write(ContactHeader().to_bytes() + SessInit(0, 1, 1, "ipn:5.0").to_bytes()[:10])
        parser = MessageParser()
        parser.feed(await within(reader.readexactly(6), 5))
        assert parser.next_contact_header() == ContactHeader()
        assert await read_until_eof(reader, parser) == [SessTerm(SessTermReason.CONTACT_FAILURE)]
        writer.close()
    finally:
        await nodes.server.close()


async def test_connect_to_nothing_raises_connection_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = TcpclConvergenceLayer("ipn:1.0", Sink())
    with pytest.raises(ConnectionError):
        await client.connect(f"tcpcl://127.0.0.1:{port}")
