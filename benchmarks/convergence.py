"""Convergence-layer throughput: TCPCLv4 over loopback against raw asyncio TCP measured in the same run.

Figures:
  * throughput of 1 MiB and 100 MiB bundles over one TCPCLv4 session (target >= 70 % of raw asyncio TCP moving
    the same bytes, one application-level acknowledgement per bundle, in the same event loop);
  * rate of 1 KiB bundles over one session, many in flight (target >= 10,000 /s);
  * TLS variants of the above (informational);
  * the UDP CL figures from ``benchmarks/convergence_udp.py`` (``measure_udp``) when that script is present.

    .venv/bin/python benchmarks/convergence.py [--quick] [--no-tls] [--no-udp] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from dtn.convergence.base import Link, NullSink, RefuseReason
from dtn.convergence.tcpcl import tls
from dtn.convergence.tcpcl.aio import TcpclConfig, TcpclConvergenceLayer, TcpclLink
from dtn.convergence.tcpcl.session import SessionConfig

MiB = 1 << 20


class DiscardSink(NullSink):
    """Accepts every bundle at once and keeps nothing."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    async def bundle_received(self, link: Link, data: bytes) -> RefuseReason | None:
        self.count += 1
        self.bytes += len(data)
        return None


# ------------------------------------------------------------------------------------------- raw reference
#
# Every raw reference moves the same bytes as the TCPCLv4 run over one loopback connection: ``count`` messages
# of ``size`` bytes, each framed by an 8-byte length and answered by a 1-byte acknowledgement, the sender
# waiting for that acknowledgement before it sends the next message (as ``await link.send()`` does). They differ
# only in what the receiver does with the bytes (the sender writes 1 MiB pieces, as TCPCL writes segments):
#   * ``raw_bulk(..., "streams")``: the idiomatic asyncio application, ``StreamReader.readexactly(size)``, which
#     hands the receiver each message as one ``bytes`` object (what a CL must hand its node);
#   * ``raw_bulk(..., "buffered")``: the fastest pure-asyncio receiver we know that still delivers each message
#     as one ``bytes`` object: an ``asyncio.BufferedProtocol`` whose ``recv_into`` lands in a reused buffer,
#     then one copy into ``bytes``. This is the reference the 70 % target is measured against;
#   * ``raw_bulk(..., "discard")``: the same protocol throwing the bytes away (no ``bytes`` object at all): the
#     physical ceiling of one asyncio connection; informational.

RAW_MODES = ("buffered", "streams", "discard")
RAW_CHUNK_BYTES = 1 << 20  # the sender writes each message in pieces of TCPCL's default segment size ...
RAW_WRITE_HIGH_WATER_BYTES = 4 << 20  # ... and waits (drain) above TCPCL's default write high-water mark


class _RawReceiver(asyncio.BufferedProtocol):
    """Length-prefixed messages into one reused buffer; ``keep``: make each message one ``bytes`` object."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.buf = bytearray(1 << 20)
        self.view = memoryview(self.buf)
        self.fill = 0
        self.need = 8
        self.in_body = False
        self.transport: asyncio.Transport | None = None
        self.messages = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view[self.fill : max(self.need, self.fill + (256 << 10))]

    def buffer_updated(self, nbytes: int) -> None:
        self.fill += nbytes
        while self.fill >= self.need:  # the sender waits for each ack: at most one message is buffered
            if not self.in_body:
                size = int.from_bytes(self.view[:8], "big")
                self.view[: self.fill - 8] = self.view[8 : self.fill]
                self.fill -= 8
                self.in_body, self.need = True, size
                if size > len(self.buf):
                    self.buf = bytearray(size)
                    self.view = memoryview(self.buf)
                continue
            if self.keep:
                message = bytes(self.view[: self.need])
                del message
            rest = self.fill - self.need
            self.view[:rest] = self.view[self.need : self.fill]
            self.fill, self.need, self.in_body = rest, 8, False
            self.messages += 1
            assert self.transport is not None
            self.transport.write(b"k")


async def raw_bulk(size: int, count: int, mode: str = "buffered",
                   ssl_pair: tuple[ssl.SSLContext, ssl.SSLContext] | None = None) -> float:
    """Seconds to move ``count`` messages of ``size`` bytes, each answered by a 1-byte ack (see above)."""
    loop = asyncio.get_running_loop()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(8)
                message = await reader.readexactly(int.from_bytes(header, "big"))
                del message
                writer.write(b"k")
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server_ssl = ssl_pair[0] if ssl_pair else None
    if mode == "streams":
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ssl, limit=size + 1024)
    else:
        server = await loop.create_server(lambda: _RawReceiver(keep=mode == "buffered"), "127.0.0.1", 0,
                                          ssl=server_ssl)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_pair[1] if ssl_pair else None)
    writer.transport.set_write_buffer_limits(high=RAW_WRITE_HIGH_WATER_BYTES)  # as TcpclConfig's default
    data = memoryview(bytes(size))
    header = size.to_bytes(8, "big")
    start = time.perf_counter()
    for _ in range(count):
        writer.write(header)
        for offset in range(0, size, RAW_CHUNK_BYTES):  # written in segment-sized pieces, as TCPCL does
            writer.write(data[offset : offset + RAW_CHUNK_BYTES])
            await writer.drain()
        await reader.readexactly(1)
    elapsed = time.perf_counter() - start
    writer.close()
    server.close()
    await server.wait_closed()
    return elapsed


async def raw_small_rate(size: int, count: int, window: int) -> float:
    """Seconds for ``count`` length-prefixed ``size``-byte messages, up to ``window`` unacknowledged."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(8)
                await reader.readexactly(int.from_bytes(header, "big"))
                writer.write(b"k")
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    message = size.to_bytes(8, "big") + bytes(size)
    start = time.perf_counter()
    sent = acked = 0
    while acked < count:
        while sent < count and sent - acked < window:
            writer.write(message)
            sent += 1
        await writer.drain()
        got = await reader.read(window)
        acked += len(got)
    elapsed = time.perf_counter() - start
    writer.close()
    server.close()
    await server.wait_closed()
    return elapsed


# ------------------------------------------------------------------------------------------- TCPCLv4


async def tcpcl_pair(config: TcpclConfig) -> tuple[TcpclConvergenceLayer, TcpclConvergenceLayer, TcpclLink]:
    server = TcpclConvergenceLayer("ipn:2.0", DiscardSink(), config)
    client = TcpclConvergenceLayer("ipn:1.0", DiscardSink(), config)
    address = await server.listen("tcpcl://127.0.0.1:0")
    link = await client.connect(address)
    return server, client, link


async def tcpcl_bulk(size: int, count: int, config: TcpclConfig) -> float:
    server, client, link = await tcpcl_pair(config)
    data = bytes(size)
    start = time.perf_counter()
    for _ in range(count):
        result = await link.send(data)
        assert result.ok, result
    elapsed = time.perf_counter() - start
    await client.close()
    await server.close()
    return elapsed


async def tcpcl_small_rate(size: int, count: int, window: int, config: TcpclConfig) -> float:
    server, client, link = await tcpcl_pair(config)
    data = bytes(size)
    semaphore = asyncio.Semaphore(window)

    async def one() -> None:
        async with semaphore:
            result = await link.send(data)
            assert result.ok, result

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    elapsed = time.perf_counter() - start
    await client.close()
    await server.close()
    return elapsed


async def interleaved(runs: dict[str, Callable[[], Awaitable[float]]], rounds: int) -> dict[str, float]:
    """Best (lowest) seconds of each run over ``rounds``, the runs interleaved so that noise hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            times[name].append(await fn())
    return {name: min(values) for name, values in times.items()}


def make_tls(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and one node certificate (NODE-ID ipn:1.0 and ipn:2.0) for both ends."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(minutes=1))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    oid = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.11")
    names: list[x509.GeneralName] = [x509.OtherName(oid, bytes((0x16, 7)) + n.encode()) for n in ("ipn:1.0", "ipn:2.0")]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False).sign(ca_key, hashes.SHA256()))
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "node.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "node.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    c, k, a = directory / "node.pem", directory / "node.key", directory / "ca.pem"
    return tls.server_context(c, k, a), tls.client_context(c, k, a)


def line(label: str, value: str, ref: str = "", verdict: str = "") -> None:
    print(f"  {label:<44} {value:>16} {ref:>22} {verdict}")


async def run(args: argparse.Namespace) -> None:
    rounds = 1 if args.quick else args.rounds
    bulk_1m = 20 if args.quick else 100
    bulk_100m = 1 if args.quick else 3
    small = 5_000 if args.quick else 30_000
    window = 256
    plain = TcpclConfig(SessionConfig(keepalive_s=0))
    print(f"TCPCLv4 loopback benchmark (Python {sys.version.split()[0]}, best of {rounds} interleaved rounds)")
    print("  raw references: one connection, 8-byte length + message, 1-byte ack per message, sender waits for")
    print("  each ack; 'buffered' = BufferedProtocol + one copy into bytes per message (the target's reference),")
    print("  'streams' = StreamReader.readexactly per message, 'discard' = no bytes object made (ceiling)")
    print(f"  {'measure':<44} {'TCPCLv4':>16} {'raw reference':>22}")

    for size, count in ((MiB, bulk_1m), (100 * MiB, bulk_100m)):
        runs: dict[str, Callable[[], Awaitable[float]]] = {
            mode: functools.partial(raw_bulk, size, count, mode) for mode in RAW_MODES}
        runs["tcpcl"] = functools.partial(tcpcl_bulk, size, count, plain)
        best = await interleaved(runs, rounds)
        rate = {name: size * count / seconds / MiB for name, seconds in best.items()}
        ratio = rate["tcpcl"] / rate["buffered"]
        line(f"throughput, {size // MiB} MiB bundles x {count} (MiB/s)", f"{rate['tcpcl']:,.0f}",
             f"{rate['buffered']:,.0f} buffered",
             f"{ratio:.0%} of raw ({'OK' if ratio >= 0.7 else 'below 70 % target'})")
        line("", "", f"{rate['streams']:,.0f} streams", f"{rate['tcpcl'] / rate['streams']:.0%}")
        line("", "", f"{rate['discard']:,.0f} discard", f"{rate['tcpcl'] / rate['discard']:.0%}")

    best = await interleaved({"raw": lambda: raw_small_rate(1024, small, window),
                              "tcpcl": lambda: tcpcl_small_rate(1024, small, window, plain)}, rounds)
    line(f"1 KiB bundles over one session x {small} (/s)", f"{small / best['tcpcl']:,.0f}",
         f"{small / best['raw']:,.0f} streams", "OK" if small / best["tcpcl"] >= 10_000 else "below 10,000/s target")

    if not args.no_tls:
        with tempfile.TemporaryDirectory() as tmp:
            server_ctx, client_ctx = make_tls(Path(tmp))
            tls_cfg = TcpclConfig(SessionConfig(keepalive_s=0, require_tls=True), ssl_server=server_ctx,
                                  ssl_client=client_ctx)
            for size, count in ((MiB, bulk_1m), (100 * MiB, bulk_100m)):
                best = await interleaved({
                    "raw": lambda: raw_bulk(size, count, "buffered", (server_ctx, client_ctx)),  # noqa: B023
                    "tcpcl": lambda: tcpcl_bulk(size, count, tls_cfg)}, rounds)  # noqa: B023
                raw_rate, our_rate = size * count / best["raw"] / MiB, size * count / best["tcpcl"] / MiB
                line(f"TLS throughput, {size // MiB} MiB x {count} (MiB/s)", f"{our_rate:,.0f}",
                     f"{raw_rate:,.0f} TLS buffered", f"{our_rate / raw_rate:.0%} of raw TLS")
            best = await interleaved({"tcpcl": lambda: tcpcl_small_rate(1024, small, window, tls_cfg)}, rounds)
            line(f"TLS 1 KiB bundles x {small} (/s)", f"{small / best['tcpcl']:,.0f}")


def udp_hook() -> None:
    """The UDP CL figures live in benchmarks/convergence_udp.py (``measure_udp``); shown here when present."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from convergence_udp import measure_udp  # type: ignore[import-not-found]
    except ImportError:
        print("  UDP: benchmarks/convergence_udp.py (measure_udp) not found; skipped")
        return
    print("UDP CL (benchmarks/convergence_udp.py measure_udp):")
    for key, value in measure_udp().items():
        print(f"  {key:<44} {value:>16,.1f}" if isinstance(value, float) else f"  {key:<44} {value:>16}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer and smaller runs")
    parser.add_argument("--no-tls", action="store_true")
    parser.add_argument("--no-udp", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each is shown")
    args = parser.parse_args()
    asyncio.run(run(args))
    if not args.no_udp:
        udp_hook()  # measure_udp() runs its own event loop


if __name__ == "__main__":
    main()
