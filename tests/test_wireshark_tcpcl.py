"""Wireshark agrees with our TCPCLv4: a real session on 127.0.0.1, recorded through a relay, decodes cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dtn.convergence.base import Link, NullSink, RefuseReason
from dtn.convergence.tcpcl.aio import TcpclConfig, TcpclConvergenceLayer, parse_address
from dtn.convergence.tcpcl.session import SessionConfig
from tests.convergence.tcpcl.helpers import vector
from tests.pcap_tools import expert_problems, require_tshark, tshark, write_tcp_pcap

G1 = vector("gen-bundle-G1-minimal")
G2 = vector("gen-bundle-G2-ext")


class Sink(NullSink):
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.got = asyncio.Event()

    async def bundle_received(self, link: Link, data: bytes) -> RefuseReason | None:
        self.received.append(data)
        self.got.set()
        return RefuseReason.COMPLETED if len(self.received) == 3 else None


async def record_session(segment_mru: int) -> list[tuple[bool, bytes]]:
    """Client → relay → server; the relay notes every chunk (from_client, bytes) in the order it passed."""
    sink = Sink()
    server = TcpclConvergenceLayer("ipn:2.0", sink, TcpclConfig(SessionConfig(keepalive_s=30, segment_mru=segment_mru)))
    client = TcpclConvergenceLayer("ipn:1.0", Sink(), TcpclConfig(SessionConfig(keepalive_s=60)))
    host, port = parse_address(await server.listen("tcpcl://127.0.0.1:0"))
    exchange: list[tuple[bool, bytes]] = []
    done = asyncio.Event()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, from_client: bool) -> None:
            while data := await src.read(65536):
                exchange.append((from_client, data))
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        writer.close()
        up_writer.close()
        done.set()

    relay_server = await asyncio.start_server(relay, "127.0.0.1", 0)
    relay_port = relay_server.sockets[0].getsockname()[1]
    link = await client.connect(f"tcpcl://127.0.0.1:{relay_port}")
    assert (await link.send(G1)).ok  # with a segment MRU of 32: two segments and a Transfer Length item
    assert (await link.send(G2)).ok
    refused = await link.send(G1)
    assert refused.reason is RefuseReason.COMPLETED
    await link.close()
    await asyncio.wait_for(done.wait(), 10)
    relay_server.close()
    await client.close()
    await server.close()
    assert sink.received == [G1, G2, G1]
    return exchange


def check_decoded(pcap: Path) -> None:
    fields = tshark(pcap, "-2", "-Y", "tcpcl", "-T", "fields", "-e", "tcpcl.v4.mhdr.type")
    types = {t for line in fields.split() for t in line.split(",")}
    # SESS_INIT, XFER_SEGMENT, XFER_ACK, XFER_REFUSE, SESS_TERM
    assert {"0x07", "0x01", "0x02", "0x03", "0x05"} <= types, types
    assert tshark(pcap, "-Y", "tcpcl.contact_hdr").count("Contact Header") == 2
    verbose = tshark(pcap, "-2", "-V")
    assert "ipn:1.0" in verbose and "ipn:2.0" in verbose
    dests = tshark(pcap, "-2", "-Y", "bpv7", "-T", "fields", "-e", "bpv7.primary.dst_uri")
    assert dests.split() == ["ipn:2.1"] * 3, dests  # every bundle decoded by the BPv7 dissector


async def test_tshark_decodes_a_real_tcpcl_session(tmp_path: Path) -> None:
    require_tshark()
    exchange = await record_session(segment_mru=1 << 20)
    assert b"".join(d for c, d in exchange if c).startswith(b"dtn!\x04")
    pcap = tmp_path / "tcpcl.pcap"
    write_tcp_pcap(pcap, exchange, server_port=4556)
    assert expert_problems(pcap) == []
    check_decoded(pcap)


async def test_tshark_decodes_segmented_transfers(tmp_path: Path) -> None:
    """Bundles split at a 32-byte segment MRU with the Transfer Length extension, reassembled by Wireshark.

    Wireshark's single pass flags a START segment as "missing END" before it has seen the END segment, so the
    expert check runs with two-pass analysis (-2), where each transfer is seen whole."""
    require_tshark()
    exchange = await record_session(segment_mru=32)
    pcap = tmp_path / "tcpcl-seg.pcap"
    write_tcp_pcap(pcap, exchange, server_port=4556)
    out = tshark(pcap, "-2", "-q", "-z", "expert,warn")
    problems = [line for line in out.splitlines() if "Warning" in line or "Error" in line]
    assert problems == []
    assert "Malformed" not in tshark(pcap, "-2", "-V")
    totals = tshark(pcap, "-2", "-T", "fields", "-e", "tcpcl.v4.xferext.transfer_length.total_len")
    assert sorted(int(t) for t in totals.split()) == sorted([len(G1), len(G2), len(G1)])
    check_decoded(pcap)
