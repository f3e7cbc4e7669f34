"""Write pcaps of our own bytes (scapy) and ask Wireshark's tshark what it makes of them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from scapy.all import IP, TCP, UDP, Ether, Packet, wrpcap  # type: ignore[attr-defined]

LOOPBACK = "127.0.0.1"


def require_tshark() -> str:
    """Path of tshark; skips the test when absent, fails it in CI (where .ci/run installs it)."""
    import os

    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is not installed but CI must run the Wireshark tests")
        pytest.skip("tshark is not installed (apt-get install tshark)")
    return path


def write_udp_pcap(path: Path, datagrams: Iterable[bytes], *, sport: int = 4556, dport: int = 4556) -> None:
    packets = [
        Ether() / IP(src=LOOPBACK, dst=LOOPBACK) / UDP(sport=sport, dport=dport) / d for d in datagrams
    ]
    wrpcap(str(path), packets)


def write_tcp_pcap(
    path: Path,
    exchange: Sequence[tuple[bool, bytes]],
    *,
    client_port: int = 40000,
    server_port: int = 4556,
    max_segment: int = 60000,
) -> None:
    """A whole TCP connection: handshake, ``exchange`` as (from_client, bytes) in order, then FINs.

    Sequence and acknowledgement numbers are consistent, so Wireshark reassembles the streams.
    """
    c_seq, s_seq = 1000, 5000
    packets: list[Packet] = []

    def seg(from_client: bool, flags: str, payload: bytes = b"") -> Packet:
        if from_client:
            hdr = TCP(sport=client_port, dport=server_port, flags=flags, seq=c_seq, ack=s_seq)
        else:
            hdr = TCP(sport=server_port, dport=client_port, flags=flags, seq=s_seq, ack=c_seq)
        return Ether() / IP(src=LOOPBACK, dst=LOOPBACK) / hdr / payload

    packets.append(
        Ether()
        / IP(src=LOOPBACK, dst=LOOPBACK)
        / TCP(sport=client_port, dport=server_port, flags="S", seq=c_seq - 1)
    )
    packets.append(
        Ether()
        / IP(src=LOOPBACK, dst=LOOPBACK)
        / TCP(sport=server_port, dport=client_port, flags="SA", seq=s_seq - 1, ack=c_seq)
    )
    packets.append(seg(True, "A"))
    for from_client, data in exchange:
        for start in range(0, len(data), max_segment):
            chunk = data[start : start + max_segment]
            packets.append(seg(from_client, "PA", chunk))
            if from_client:
                c_seq += len(chunk)
            else:
                s_seq += len(chunk)
    packets.append(seg(True, "FA"))
    c_seq += 1
    packets.append(seg(False, "FA"))
    s_seq += 1
    packets.append(seg(True, "A"))
    wrpcap(str(path), packets)


def tshark(path: Path, *args: str) -> str:
    """Run ``tshark -r path ARGS`` and return its standard output (fails the test on a non-zero exit)."""
    exe = require_tshark()
    done = subprocess.run([exe, "-r", str(path), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


#: Wireshark 4.0 has no sub-dissector for an ordinary payload and reports each one as undecoded: not a problem.
BENIGN_EXPERT_SUMMARIES = ("Unknown type code",)


def expert_problems(path: Path, *, allow: tuple[str, ...] = BENIGN_EXPERT_SUMMARIES) -> list[str]:
    """Wireshark's expert-info entries of severity warning or error (but the ``allow``-ed summaries), and
    malformed-packet markers."""
    out = tshark(path, "-q", "-z", "expert,warn")
    problems: list[str] = []
    in_table = False
    for line in out.splitlines():
        stripped = line.strip()
        if stripped.startswith(("Errors (", "Warns (")):
            in_table = True
            continue
        if stripped.startswith(("Notes (", "Chats (", "Comments (")):
            in_table = False
            continue
        if not in_table or not stripped or stripped.startswith(("=", "Frequency")):
            continue
        if not any(text in stripped for text in allow):
            problems.append(stripped)
    verbose = tshark(path, "-V")
    if "Malformed Packet" in verbose and not any("Malformed" in p for p in problems):
        problems.append("Malformed Packet")
    return problems
