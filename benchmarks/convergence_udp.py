"""UDP CL datagram rate for 1 KiB bundles over loopback, with raw asyncio-dgram measured in the same run.

Three figures, each for our CL and for the reference (asyncio-dgram, no CL), best of ``--rounds`` alternating:

* ``send``: datagrams/s one task pushes through ``link.send()`` (ours: limit and bundle check, counters,
  outcome) vs ``DatagramClient.send()``, into a plain socket nobody reads (the kernel drops the overflow);
* ``end_to_end``: datagrams/s from our CL to our CL's listener (classification, bounded queue, the sink call)
  vs asyncio-dgram to asyncio-dgram, in windows of 64 so the receiver's socket buffer never overflows;
* ``classify_us``: microseconds to classify one 1 KiB bundle datagram (pure, no I/O).

    .venv/bin/python benchmarks/convergence_udp.py [--count 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

import asyncio_dgram

from dtn.bundle.blocks import PrimaryBlock, payload_block
from dtn.bundle.bundle import Bundle
from dtn.bundle.codec import encode_bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import parse_eid
from dtn.bundle.flags import BundleFlag
from dtn.convergence.base import Link, NullSink, RefuseReason
from dtn.convergence.udpcl.aio import UdpConvergenceLayer
from dtn.convergence.udpcl.framing import classify_datagram

WINDOW = 64
BUNDLE_BYTES = 1024


def bundle_of(size: int) -> bytes:
    """A real encoded BPv7 bundle of exactly ``size`` bytes (CRC-32C primary, payload padded to fit)."""
    primary = PrimaryBlock(
        BundleFlag(0), CrcType.CRC32C, parse_eid("ipn:2.1"), parse_eid("ipn:1.1"), parse_eid("ipn:1.0"), 0, 1, 60_000
    )

    def make(n: int) -> bytes:
        return encode_bundle(Bundle(primary, (payload_block(b"x" * n),)))

    raw = make(size - (len(make(500)) - 500))
    assert len(raw) == size
    return raw


class CountingSink(NullSink):
    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.reached = asyncio.Event()

    def expect(self, target: int) -> None:
        self.target = target
        self.reached = asyncio.Event()
        if self.count >= target:
            self.reached.set()

    async def bundle_received(self, link: Link, data: bytes) -> RefuseReason | None:
        self.count += 1
        if self.count >= self.target:
            self.reached.set()
        return None


def _blackhole() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


async def send_ours(count: int, data: bytes) -> float:
    sock, port = _blackhole()
    cl = UdpConvergenceLayer(CountingSink())
    try:
        link = await cl.connect(f"udp://127.0.0.1:{port}")
        start = time.perf_counter()
        for _ in range(count):
            result = await link.send(data)
            if not result.ok:
                raise RuntimeError(result.detail)
        return count / (time.perf_counter() - start)
    finally:
        await cl.close()
        sock.close()


async def send_raw(count: int, data: bytes) -> float:
    sock, port = _blackhole()
    client = await asyncio_dgram.connect(("127.0.0.1", port))
    try:
        start = time.perf_counter()
        for _ in range(count):
            await client.send(data)
        return count / (time.perf_counter() - start)
    finally:
        client.close()
        sock.close()


async def end_to_end_ours(count: int, data: bytes) -> tuple[float, int]:
    sink = CountingSink()
    rx = UdpConvergenceLayer(sink, receive_queue_size=4 * WINDOW)
    tx = UdpConvergenceLayer(CountingSink())
    try:
        address = await rx.listen("udp://127.0.0.1:0")
        link = await tx.connect(address)
        start = time.perf_counter()
        sent = 0
        while sent < count:
            batch = min(WINDOW, count - sent)
            for _ in range(batch):
                await link.send(data)
            sent += batch
            sink.expect(sent - rx.stats.dropped_queue_full)
            try:
                await asyncio.wait_for(sink.reached.wait(), 2.0)
            except TimeoutError:
                sink.count = sent  # count the loss and carry on
        elapsed = time.perf_counter() - start
        return count / elapsed, count - rx.stats.bundles_accepted
    finally:
        await tx.close()
        await rx.close()


async def end_to_end_raw(count: int, data: bytes) -> tuple[float, int]:
    server = await asyncio_dgram.bind(("127.0.0.1", 0))
    client = await asyncio_dgram.connect(("127.0.0.1", server.sockname[1]))
    received = 0
    target = 0
    reached = asyncio.Event()

    async def reader() -> None:
        nonlocal received
        while True:
            await server.recv()
            received += 1
            if received >= target:
                reached.set()

    task = asyncio.create_task(reader())
    try:
        start = time.perf_counter()
        sent = 0
        lost = 0
        while sent < count:
            batch = min(WINDOW, count - sent)
            for _ in range(batch):
                await client.send(data)
            sent += batch
            target = sent - lost
            reached.clear()
            if received < target:
                try:
                    await asyncio.wait_for(reached.wait(), 2.0)
                except TimeoutError:
                    lost = sent - received
        return count / (time.perf_counter() - start), count - received
    finally:
        task.cancel()
        client.close()
        server.close()


def classify_us(data: bytes, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        classify_datagram(data)
    return (time.perf_counter() - start) / count * 1e6


async def _best(fn: Callable[[], Awaitable[float]], rounds: int) -> float:
    return max([await fn() for _ in range(rounds)])


async def _measure(count: int, rounds: int) -> dict[str, float | int]:
    data = bundle_of(BUNDLE_BYTES)
    send_ours_best = send_raw_best = 0.0
    e2e_ours_best = e2e_raw_best = 0.0
    lost_ours = lost_raw = 0
    for _ in range(rounds):  # alternate so that machine noise hits both sides alike
        send_raw_best = max(send_raw_best, await send_raw(count, data))
        send_ours_best = max(send_ours_best, await send_ours(count, data))
        rate, lost = await end_to_end_raw(count, data)
        e2e_raw_best, lost_raw = max(e2e_raw_best, rate), lost_raw + lost
        rate, lost = await end_to_end_ours(count, data)
        e2e_ours_best, lost_ours = max(e2e_ours_best, rate), lost_ours + lost
    return {
        "bundle_bytes": len(data),
        "count": count,
        "send_ours_per_s": round(send_ours_best),
        "send_raw_per_s": round(send_raw_best),
        "send_ratio": round(send_ours_best / send_raw_best, 3),
        "end_to_end_ours_per_s": round(e2e_ours_best),
        "end_to_end_raw_per_s": round(e2e_raw_best),
        "end_to_end_ratio": round(e2e_ours_best / e2e_raw_best, 3),
        "lost_ours": lost_ours,
        "lost_raw": lost_raw,
        "classify_us": round(classify_us(data, 20_000), 2),
    }


def measure_udp(count: int = 20_000, rounds: int = 3) -> dict[str, float | int]:
    """Run the UDP benchmark on a fresh event loop and return the figures."""
    return asyncio.run(_measure(count, rounds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    figures = measure_udp(args.count, args.rounds)
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
