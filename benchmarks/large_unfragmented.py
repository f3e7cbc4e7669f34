"""Peak RSS of a receiving ``dtnd`` taking ONE unfragmented bundle of N MiB over TCPCLv4 (as ION's
``bpsendfile`` sends a file): a TCPCL client in this process streams the bundle from a generator
(``TcpclLink.send_stream``); the ``dtnd`` (a real process, SQLite store in a temporary directory) writes it to a
file as it arrives and acknowledges it after the commit.

    python benchmarks/large_unfragmented.py [MIB]      # default 512
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dtn.bundle.blocks import PrimaryBlock, payload_block
from dtn.bundle.bundle import Bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import IpnEid
from dtn.bundle.flags import BundleFlag
from dtn.bundle.stream import encode_bundle_stream, encoded_length
from dtn.clock import SystemClock
from dtn.convergence.base import NullSink
from dtn.convergence.tcpcl.aio import TcpclConvergenceLayer, TcpclLink

MiB = 1 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak_rss_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) // 1024
    return 0


async def run(root: Path, payload_bytes: int) -> None:
    port, api = _free_port(), _free_port()
    dtnd = Path(sys.prefix) / "bin" / "dtnd"
    proc = subprocess.Popen([str(dtnd), "--node", "ipn:2", "--data-dir", str(root), "--api", f"127.0.0.1:{api}",
                             "--listen", f"tcpcl://127.0.0.1:{port}", "--log-level", "warning"])
    try:
        cl = TcpclConvergenceLayer("ipn:1.0", NullSink())
        link: TcpclLink | None = None
        for _ in range(200):
            try:
                link = await cl.connect(f"tcpcl://127.0.0.1:{port}")
                break
            except OSError:
                await asyncio.sleep(0.1)
        if link is None:
            raise RuntimeError("dtnd did not start")
        idle = _peak_rss_mib(proc.pid)
        primary = PrimaryBlock(BundleFlag(0), CrcType.CRC32C, IpnEid(2, 1), IpnEid(1, 1), IpnEid(1, 0),
                               SystemClock().dtn_ms(), 0, 3_600_000)
        head = Bundle(primary, (payload_block(b"", crc_type=CrcType.CRC32C),))
        chunk = os.urandom(MiB)
        pieces = [MiB] * (payload_bytes // MiB) + ([payload_bytes % MiB] if payload_bytes % MiB else [])
        chunks = encode_bundle_stream(head, payload_bytes, (chunk[:n] for n in pieces))
        started = time.perf_counter()
        result = await link.send_stream(encoded_length(head, payload_bytes), chunks)
        elapsed = time.perf_counter() - started
        print(f"{payload_bytes / MiB:.0f} MiB in one unfragmented bundle: {result.outcome.value} in {elapsed:.1f} s "
              f"({payload_bytes / MiB / elapsed:.0f} MiB/s); receiving dtnd peak RSS {_peak_rss_mib(proc.pid)} MiB "
              f"(before the transfer {idle} MiB)")
        await cl.close()
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp) / "data", mib * MiB))


if __name__ == "__main__":
    main()
