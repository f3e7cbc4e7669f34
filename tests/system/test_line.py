"""Real dtnd processes on 127.0.0.1 with SQLite stores: three nodes in a line (TCPCLv4 and UDP), a 50 MiB file,
a neighbour that comes up late, expiry with its deletion report, malformed bundles from a neighbour."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dtn.api.client import DtnClient
from dtn.bundle.blocks import PrimaryBlock, payload_block
from dtn.bundle.bundle import Bundle
from dtn.bundle.codec import encode_bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import parse_eid
from dtn.bundle.flags import BundleFlag
from dtn.bundle.ids import BundleId
from dtn.clock import SystemClock
from dtn.convergence.base import NullSink, RefuseReason
from dtn.convergence.tcpcl.aio import TcpclConvergenceLayer

from .procs import Dtnd, command, dtnd, eventually, free_port, free_ports, line_of_nodes, run_cli


@pytest.fixture
def stopper() -> Iterator[list[Dtnd]]:
    """Nodes appended here are stopped (SIGTERM, expected exit 0) at the end of the test."""
    nodes: list[Dtnd] = []
    yield nodes
    failures = []
    for node in nodes:
        if node.running:
            code = node.terminate()
            if code != 0:
                failures.append(f"dtnd exited {code}:\n{node.log()}")
    assert not failures, "\n".join(failures)


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode() + result.stderr.decode()


@pytest.mark.parametrize("scheme", ["tcpcl", "udp"])
def test_three_nodes_in_a_line(scheme: str, tmp_path: Path, stopper: list[Dtnd]) -> None:
    nodes = line_of_nodes(tmp_path, scheme)
    for node in nodes:
        stopper.append(node.start())
    receiver = subprocess.Popen([*command("dtnrecv"), "--api", nodes[2].api, "--endpoint", "ipn:3.1", "--out",
                                 str(tmp_path / "inbox"), "--count", "1", "--timeout", "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    source = tmp_path / "hello.txt"
    source.write_bytes(b"three hops\n" * 1000)
    sent = run_cli("dtnsend", "--api", nodes[0].api, "--to", "ipn:3.1", str(source), "--wait", "--timeout", "60")
    assert sent.returncode == 0, out(sent) + nodes[1].log()
    stdout, stderr = receiver.communicate(timeout=60)
    assert receiver.returncode == 0, stderr.decode()
    assert (tmp_path / "inbox" / "hello.txt").read_bytes() == source.read_bytes()
    ping = run_cli("dtnping", "ipn:3", "--api", nodes[0].api, "--count", "2", "--interval", "0")
    assert ping.returncode == 0, out(ping)
    assert "2 bundles transmitted, 2 received" in ping.stdout.decode()


@pytest.mark.slow
def test_50_mib_file_arrives_byte_identical(tmp_path: Path, stopper: list[Dtnd]) -> None:
    nodes = line_of_nodes(tmp_path, "tcpcl", count=2)
    for node in nodes:
        stopper.append(node.start())
    source = tmp_path / "big.bin"
    with source.open("wb") as handle:
        for _ in range(50):
            handle.write(os.urandom(1 << 20))
    sent = run_cli("dtnsend", "--api", nodes[0].api, "--to", "ipn:2.1", str(source), timeout_s=120)
    assert sent.returncode == 0, out(sent)
    received = run_cli("dtnrecv", "--api", nodes[1].api, "--endpoint", "ipn:2.1", "--out", str(tmp_path / "inbox"),
                       "--timeout", "120", timeout_s=180)
    assert received.returncode == 0, out(received) + nodes[1].log()
    copy = tmp_path / "inbox" / "big.bin"
    assert copy.stat().st_size == 50 << 20
    assert hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


def send_across(nodes: list[Dtnd], source: Path, inbox: Path) -> str:
    """``dtnsend`` the file from the first node to ``ipn:3.1`` asking for a delivery report, ``dtnrecv`` it at
    the last into ``inbox``; checks it arrived byte-identical and returns the bundle ID."""
    sent = run_cli("dtnsend", "--api", nodes[0].api, "--to", "ipn:3.1", str(source), "--report", "delivered",
                   timeout_s=120)
    assert sent.returncode == 0, out(sent)
    received = run_cli("dtnrecv", "--api", nodes[-1].api, "--endpoint", "ipn:3.1", "--out", str(inbox),
                       "--timeout", "120", timeout_s=180)
    assert received.returncode == 0, out(received) + nodes[-1].log()
    assert (inbox / source.name).read_bytes() == source.read_bytes()
    return sent.stdout.decode().split()[0]


async def test_a_file_sent_in_fragments_crosses_a_relay_and_is_reassembled(tmp_path: Path, stopper: list[Dtnd]) -> None:
    nodes = line_of_nodes(tmp_path, "tcpcl", extra=["--fragment-payload", "65536"])
    for node in nodes:
        stopper.append(node.start())
    source = tmp_path / "pieces.bin"
    source.write_bytes(os.urandom(40 * 65536 + 999))
    bundle_id = send_across(nodes, source, tmp_path / "inbox")
    async with DtnClient(nodes[0].api) as sender, DtnClient(nodes[1].api) as relay, \
            DtnClient(nodes[2].api) as receiver:
        assert await sender.wait_report(bundle_id, "delivered", timeout_s=60) is not None
        assert (await relay.statistics())["forwarded"] == 41 + 1  # the fragments, and the report on its way back
        assert (await receiver.statistics())["reassembled"] == 1
        await eventually(lambda: _empty(receiver), what="the receiver's store empty")


async def test_one_unfragmented_bundle_larger_than_memory_crosses_a_relay(tmp_path: Path, stopper: list[Dtnd]) -> None:
    """Nodes that never fragment at the source (as ION's bpsendfile sends a file): the payload goes as ONE bundle,
    written to a file at the sender, received into a file and sent from it at the relay, received into a file at
    the destination."""
    nodes = line_of_nodes(tmp_path, "tcpcl", extra=["--fragment-payload", "0"])
    for node in nodes:
        stopper.append(node.start())
    source = tmp_path / "whole.bin"
    source.write_bytes(os.urandom((16 << 20) + 4321))  # above the 16 MiB a node holds in memory
    bundle_id = send_across(nodes, source, tmp_path / "inbox")
    assert not BundleId.parse(bundle_id).is_fragment
    async with DtnClient(nodes[0].api) as sender, DtnClient(nodes[1].api) as relay, \
            DtnClient(nodes[2].api) as receiver:
        assert await sender.wait_report(bundle_id, "delivered", timeout_s=60) is not None
        relayed = await relay.statistics()
        assert relayed["spooled_transfers"] == 1 and relayed["fragments_sent"] == 0
        assert (await receiver.statistics())["spooled_transfers"] == 1
        await eventually(lambda: _empty(receiver), what="the receiver's store empty")


async def test_bundle_waits_for_a_neighbour_that_is_down(tmp_path: Path, stopper: list[Dtnd]) -> None:
    port = free_port()
    first = dtnd(tmp_path, "n1", "ipn:1", neighbours=[f"ipn:2=tcpcl://127.0.0.1:{port}"])
    second = dtnd(tmp_path, "n2", "ipn:2", listen=[f"tcpcl://127.0.0.1:{port}"])
    stopper.append(await asyncio.to_thread(first.start))
    async with DtnClient(first.api) as one:
        bundle_id = await one.send("ipn:2.1", b"patience", reports={"delivered"})
        stored = await one.bundles()
        assert [(b["id"], b["destination"]) for b in stored] == [(bundle_id, "ipn:2.1")]
        stopper.append(await asyncio.to_thread(second.start))
        async with DtnClient(second.api) as two:
            delivery = await two.receive("ipn:2.1", timeout_s=30)
            assert delivery is not None and (delivery.bundle_id, delivery.payload) == (bundle_id, b"patience")
            assert await two.acknowledge(delivery)
        assert await one.wait_report(bundle_id, "delivered", timeout_s=30) is not None
        await eventually(lambda: _empty(one), what="sender's store empty")


async def _empty(client: DtnClient) -> bool:
    return await client.bundles() == []


async def test_expired_bundle_is_deleted_and_reported(tmp_path: Path, stopper: list[Dtnd]) -> None:
    node = dtnd(tmp_path, "n1", "ipn:1", neighbours=[f"ipn:2=tcpcl://127.0.0.1:{free_port()}"])
    stopper.append(await asyncio.to_thread(node.start))
    async with DtnClient(node.api) as client:
        bundle_id = await client.send("ipn:2.1", b"short-lived", lifetime_ms=800, reports={"deleted"})
        report = await client.wait_report(bundle_id, "deleted", timeout_s=30)
        assert report is not None and report["reason"] == "lifetime_expired" and report["reason_code"] == 1
        assert await client.bundles() == []
        stats = await client.statistics()
        assert stats["deleted"] >= 1


def _bundle(destination: str, payload: bytes) -> bytes:
    primary = PrimaryBlock(BundleFlag(0), CrcType.CRC32C, parse_eid(destination), parse_eid("ipn:8.1"),
                           parse_eid("ipn:8.0"), SystemClock().dtn_ms(), 0, 60_000)
    return encode_bundle(Bundle(primary, (payload_block(payload),)))


def _malformed(good: bytes) -> list[bytes]:
    corrupt_crc = bytearray(good)
    corrupt_crc[20] ^= 0xFF  # inside the primary block, covered by its CRC-32C
    return [bytes(corrupt_crc), good[: len(good) // 2], b"\x9f\x00\xff", b"not a bundle at all", b"\x9f\xff"]


async def test_malformed_bundles_from_a_neighbour_are_dropped(tmp_path: Path, stopper: list[Dtnd]) -> None:
    [port] = free_ports(1)
    node = dtnd(tmp_path, "n2", "ipn:2", listen=[f"tcpcl://127.0.0.1:{port}", f"udp://127.0.0.1:{port}"])
    stopper.append(await asyncio.to_thread(node.start))
    async with DtnClient(node.api) as client:
        await client.register("ipn:2.1")
        # over TCPCLv4: each malformed bundle is refused with NOT_ACCEPTABLE, the session stays up
        peer = TcpclConvergenceLayer("ipn:8.0", NullSink())  # our own peer's receiving side expects nothing
        try:
            link = await peer.connect(f"tcpcl://127.0.0.1:{port}", peer_node_id="ipn:2.0")
            good = _bundle("ipn:2.1", b"good over tcpcl")
            for bad in _malformed(good):
                result = await link.send(bad)
                assert not result.ok and result.reason is RefuseReason.NOT_ACCEPTABLE, (bad, result)
            assert link.is_up
            assert (await link.send(good)).ok
        finally:
            await peer.close()
        delivery = await client.receive("ipn:2.1", timeout_s=30)
        assert delivery is not None and delivery.payload == b"good over tcpcl"
        assert await client.acknowledge(delivery)
        stats = await client.statistics()
        assert stats["received_malformed"] >= 2  # the ones that reach the agent (the rest stop at the CL)
        # over UDP: garbage datagrams are dropped, the next good bundle is delivered
        good = _bundle("ipn:2.1", b"good over udp")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for bad in _malformed(good):
                udp.sendto(bad, ("127.0.0.1", port))
            udp.sendto(good, ("127.0.0.1", port))
        delivery = await client.receive("ipn:2.1", timeout_s=30)
        assert delivery is not None and delivery.payload == b"good over udp"
        assert await client.acknowledge(delivery)
        assert (await client.status())["node_id"] == "ipn:2.0"
    assert node.running
