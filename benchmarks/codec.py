"""Bundle codec throughput: encode and decode+verify rates, side by side with pyd3tn when it is installed.

    .venv/bin/pip install pyd3tn        # optional reference (µD3TN's Python codec)
    .venv/bin/python benchmarks/codec.py [--quick]

For each payload size both codecs handle the same bundle layout (ipn:1.1 -> ipn:2.1, CRC-32C on the primary
block, and a payload block with CRC-32C, or CRC-16 in the second table, which is pyd3tn's default), and both
decoders parse the very same bytes (pyd3tn's own encoding). Our decode validates every RFC 9171 §4 rule and
verifies every CRC; pyd3tn's ``Bundle.parse`` verifies no CRC. Our encode builds the bundle model afresh on
every iteration (no cached block images), like ``serialize_bundle7`` builds its bytes from arguments.

The last section measures the memory a 1 MiB decode allocates (tracemalloc peak): the payload is a
memoryview of the input, so the decode itself must not copy it.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dtn.bundle.blocks import CanonicalBlock, PrimaryBlock  # noqa: E402
from dtn.bundle.bundle import Bundle  # noqa: E402
from dtn.bundle.codec import decode_bundle, encode_bundle  # noqa: E402
from dtn.bundle.crc import CrcType  # noqa: E402
from dtn.bundle.eid import IpnEid  # noqa: E402
from dtn.bundle.flags import BlockFlag, BundleFlag  # noqa: E402

try:
    from pyd3tn import bundle7 as pyd3tn
except ImportError:  # pragma: no cover - optional reference
    pyd3tn = None

SIZES = [("100 B", 100), ("1 KiB", 1024), ("64 KiB", 64 * 1024), ("1 MiB", 1024 * 1024)]
CREATED_MS = 789004800000
LIFETIME_MS = 300_000


def rate(fn: Callable[[], Any], budget_s: float) -> float:
    """Operations per second: best of 5 timed runs, each sized to take about budget_s / 5."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    loops = max(1, int(budget_s / 5 / once))
    best = float("inf")
    gc.disable()
    try:
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(loops):
                fn()
            best = min(best, (time.perf_counter() - start) / loops)
    finally:
        gc.enable()
    return 1.0 / best


def ours_encode(payload: bytes, payload_crc: CrcType) -> bytes:
    src, dst = IpnEid(1, 1), IpnEid(2, 1)
    primary = PrimaryBlock(BundleFlag(0), CrcType.CRC32C, dst, src, src, CREATED_MS, 1, LIFETIME_MS)
    return encode_bundle(Bundle(primary, (CanonicalBlock(1, 1, BlockFlag(0), payload_crc, payload),)))


def pyd3tn_encode(payload: bytes, payload_crc: CrcType) -> bytes:
    assert pyd3tn is not None
    crc = pyd3tn.CRCType.CRC32 if payload_crc == CrcType.CRC32C else pyd3tn.CRCType.CRC16
    unix_s = CREATED_MS // 1000 + 946_684_800  # pyd3tn takes UNIX seconds
    return bytes(
        pyd3tn.serialize_bundle7(
            "ipn:1.1",
            "ipn:2.1",
            payload,
            report_to_eid="ipn:1.1",
            crc_type_primary=pyd3tn.CRCType.CRC32,
            crc_type_canonical=crc,
            creation_timestamp=unix_s,
            sequence_number=1,
            lifetime=LIFETIME_MS // 1000,
        )
    )


def fmt_rate(ops: float) -> str:
    return f"{ops:12,.0f}/s"


def fmt_mbps(ops: float, size: int) -> str:
    return f"{ops * size / 1e6:9.1f} MB/s"


def table(payload_crc: CrcType, budget_s: float) -> None:
    name = {CrcType.CRC32C: "CRC-32C", CrcType.CRC16_X25: "CRC-16/X.25"}[payload_crc]
    print(f"\nPayload block with {name} (primary block CRC-32C)")
    header = f"{'payload':>8} | {'op':<7} | {'dtn':>14} {'':>14} | {'pyd3tn':>14} | {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for label, size in SIZES:
        payload = bytes(i & 0xFF for i in range(size))
        ref_bytes = pyd3tn_encode(payload, payload_crc) if pyd3tn else ours_encode(payload, payload_crc)
        decoded = decode_bundle(ref_bytes)  # our decoder accepts pyd3tn's bytes (and checks them)
        assert bytes(decoded.payload) == payload
        enc = rate(lambda p=payload: ours_encode(p, payload_crc), budget_s)
        dec = rate(lambda d=ref_bytes: decode_bundle(d), budget_s)
        ref_enc = rate(lambda p=payload: pyd3tn_encode(p, payload_crc), budget_s) if pyd3tn else None
        ref_dec = rate(lambda d=ref_bytes: pyd3tn.Bundle.parse(d), budget_s) if pyd3tn else None
        for op, mine, ref in (("encode", enc, ref_enc), ("decode", dec, ref_dec)):
            ref_text = fmt_rate(ref) if ref else f"{'(not installed)':>14}"
            ratio = f"{mine / ref:6.1f}x" if ref else f"{'-':>7}"
            print(f"{label:>8} | {op:<7} | {fmt_rate(mine)} {fmt_mbps(mine, size)} | {ref_text} | {ratio}")


def memory() -> None:
    size = 1024 * 1024
    payload = bytes(i & 0xFF for i in range(size))
    print("\nMemory of one 1 MiB-payload decode (tracemalloc peak, input already in memory)")
    for payload_crc in (CrcType.NONE, CrcType.CRC32C, CrcType.CRC16_X25):
        data = ours_encode(payload, payload_crc)
        gc.collect()
        tracemalloc.start()
        bundle = decode_bundle(data)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert isinstance(bundle.payload, memoryview) and bytes(bundle.payload) == payload
        print(
            f"  payload CRC {payload_crc.name:<10} peak {peak:>9,} bytes = {peak / size:5.3f} x payload"
            "  (payload is a memoryview of the input: 0 copies)"
        )
        del bundle
    data = ours_encode(payload, CrcType.CRC32C)
    gc.collect()
    tracemalloc.start()
    out = encode_bundle(decode_bundle(data))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out == data
    print(f"  decode + re-encode          peak {peak:>9,} bytes = {peak / size:5.3f} x payload  (1 copy: the output)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter timing runs")
    args = parser.parse_args()
    budget = 0.2 if args.quick else 0.6
    print(f"Python {sys.version.split()[0]}; pyd3tn {'installed' if pyd3tn else 'not installed'}")
    print("decode = full RFC 9171 validation + every CRC verified (pyd3tn.Bundle.parse verifies no CRC)")
    table(CrcType.CRC32C, budget)
    table(CrcType.CRC16_X25, budget)
    memory()


if __name__ == "__main__":
    main()
