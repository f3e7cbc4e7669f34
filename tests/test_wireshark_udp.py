"""Wireshark agrees with our UDP CL: the datagrams it actually sends (captured by a real socket on 127.0.0.1)
are each one BPv7 bundle that tshark decodes with good CRCs, no malformed packet and no expert problem.

The capture socket listens on an ephemeral port (4556 may be taken on a shared machine); the pcap puts the
IANA port 4556 on the datagrams, which is what a deployment uses and what Wireshark's BPv7 dissector
recognises. The bytes are exactly those received. The one expert item allowed is "Unknown type code" (group
Undecoded): Wireshark has no sub-dissector for an application payload or a BIBE record; that is Wireshark's
limit, not a fault in the bundle (see tests/test_wireshark_bundles.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncio_dgram
import pytest

from dtn.bundle.blocks import PrimaryBlock, payload_block
from dtn.bundle.bundle import Bundle
from dtn.bundle.codec import decode_bundle, encode_bundle
from dtn.bundle.crc import CrcType
from dtn.bundle.eid import parse_eid
from dtn.bundle.flags import BundleFlag
from dtn.convergence.base import Outcome
from dtn.convergence.udpcl.aio import UdpConvergenceLayer
from dtn.convergence.udpcl.framing import KEEPALIVE, MAX_UDP_PAYLOAD_IPV4
from tests.convergence.udpcl.support import VECTORS, RecordingSink
from tests.pcap_tools import expert_problems, require_tshark, tshark, write_udp_pcap

VECTOR_BUNDLES = [
    "gen-bundle-G1-minimal",
    "gen-bundle-G2-ext",
    "gen-fragment-1",
    "gen-fragment-2",
    "gen-status-report-bundle",
    "ion-bibe-bpdu-bundle",
]
ALLOWED_EXPERT = "Unknown type code"
WARN_OR_ERROR = {0x00600000, 0x00800000}  # Wireshark's PI_WARN, PI_ERROR
FIELDS = ["frame.number", "_ws.col.Protocol", "_ws.malformed", "_ws.expert.message", "_ws.expert.severity"]
FIELDS += ["bpv7.crc_status", "udp.length"]


def largest_bundle(crc: CrcType) -> bytes:
    """A bundle of exactly 65,507 bytes, the largest one UDP datagram over IPv4 carries."""

    def make(payload_len: int) -> bytes:
        primary = PrimaryBlock(
            BundleFlag(0),
            crc,
            parse_eid("ipn:2.1"),
            parse_eid("ipn:1.1"),
            parse_eid("ipn:1.0"),
            789004800000,
            9,
            60_000,
        )
        payload = (bytes(range(256)) * 256)[:payload_len]
        return encode_bundle(Bundle(primary, (payload_block(payload, crc_type=crc),)))

    overhead = len(make(1000)) - 1000
    raw = make(MAX_UDP_PAYLOAD_IPV4 - overhead)
    assert len(raw) == MAX_UDP_PAYLOAD_IPV4
    return raw


async def _send_and_capture(bundles: list[bytes]) -> tuple[list[bytes], int]:
    capture = await asyncio_dgram.bind(("127.0.0.1", 0))
    cl = UdpConvergenceLayer(RecordingSink())
    try:
        link = await cl.connect(f"udp://127.0.0.1:{capture.sockname[1]}")
        # what must never reach the wire: a keepalive, and a bundle too large for one datagram
        assert (await link.send(KEEPALIVE)).outcome is Outcome.FAILED
        assert (await link.send(bundles[-1] + b"\x00")).outcome is Outcome.FAILED
        for raw in bundles:
            assert (await link.send(raw)).ok
        received = []
        for _ in bundles:
            data, source = await asyncio.wait_for(capture.recv(), 5)
            assert source[1] == link.local_address[1]
            received.append(data)
        assert cl.stats.datagrams_sent == len(bundles)
        return received, link.local_address[1]
    finally:
        await cl.close()
        capture.close()


async def test_wireshark_decodes_every_datagram_the_udp_cl_sends(tmp_path: Path) -> None:
    require_tshark()
    bundles = [VECTORS[name] for name in VECTOR_BUNDLES] + [largest_bundle(CrcType.CRC32C)]
    received, sport = await _send_and_capture(bundles)
    assert received == bundles  # one bundle per datagram, byte for byte, nothing else

    path = tmp_path / "udpcl.pcap"
    write_udp_pcap(path, received, sport=sport, dport=4556)
    assert expert_problems(path) == []
    args = ["-T", "fields", "-E", "separator=\t", "-E", "aggregator=|", "-E", "occurrence=a"]
    for field in FIELDS:
        args += ["-e", field]
    rows = [
        {f: (v.split("|") if v else []) for f, v in zip(FIELDS, line.split("\t"), strict=False)}
        for line in tshark(path, *args).splitlines()
    ]
    assert len(rows) == len(received)
    problems = []
    for raw, row in zip(received, rows, strict=True):
        where = f"frame {row['frame.number'][0]}"
        bundle = decode_bundle(raw)
        crc_blocks = (1 if bundle.primary.crc_type else 0) + sum(1 for b in bundle.blocks if b.crc_type)
        if row["_ws.col.Protocol"] not in (["BPv7"], ["BPv7 Admin"]):
            problems.append(f"{where}: dissected as {row['_ws.col.Protocol']}")
        if row["_ws.malformed"]:
            problems.append(f"{where}: Malformed Packet")
        for message, severity in zip(row["_ws.expert.message"], row["_ws.expert.severity"], strict=True):
            if int(severity) in WARN_OR_ERROR and message != ALLOWED_EXPERT:
                problems.append(f"{where}: expert {message!r}")
        if row["bpv7.crc_status"] != ["1"] * crc_blocks:
            problems.append(f"{where}: CRC status {row['bpv7.crc_status']}, expected {crc_blocks} x Good")
        if row["udp.length"] != [str(len(raw) + 8)]:
            problems.append(f"{where}: UDP length {row['udp.length']}")
    assert problems == []


@pytest.mark.parametrize("crc", [CrcType.CRC16_X25, CrcType.CRC32C])
def test_largest_bundle_is_exactly_the_ipv4_ceiling(crc: CrcType) -> None:
    raw = largest_bundle(crc)
    assert len(raw) == 65_507 and decode_bundle(raw).primary.crc_type is crc
