"""The demo: three dtnd nodes in a line on this machine, a file moved across them.

    ipn:1 --TCPCLv4--> ipn:2 --UDP--> ipn:3

Each node keeps a durable SQLite store under a temporary directory. dtnsend hands a file to ipn:1 and waits for
the delivery report; dtnrecv on ipn:3 writes what arrives; the script compares the two and prints what happened.
Run it through ``bash scripts/demo.sh`` (which sets up .venv first).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
#: UDP has no flow control: the relay paces its datagrams (bytes/s), as a long-haul link would be.
UDP_RATE = 20_000_000


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_node(work: Path, args: list[str], name: str) -> subprocess.Popen[bytes]:
    """Start dtnd with its log in WORK/NAME.log and wait for its ready line."""
    log_path = work / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(BIN / "dtnd"), *args], stderr=log, stdout=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        for line in log_path.read_text(errors="replace").splitlines():
            if " ready: " in line:
                print(f"   {line.strip()}")
                return proc
        time.sleep(0.05)
    raise SystemExit(f"{name} did not start; see {log_path}")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="dtn-demo-"))
    tcp = [free_port(socket.SOCK_STREAM) for _ in range(2)]
    udp = [free_port(socket.SOCK_DGRAM) for _ in range(2)]
    api = [free_port(socket.SOCK_STREAM) for _ in range(3)]
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        print("== three dtnd nodes: ipn:1 --TCPCLv4--> ipn:2 --UDP--> ipn:3 (SQLite stores in", work, ")")
        nodes.append(start_node(work, [
            "--node", "ipn:1", "--data-dir", str(work / "ipn1"), "--api", f"127.0.0.1:{api[0]}",
            "--neighbour", f"ipn:2=tcpcl://127.0.0.1:{tcp[1]}", "--route", "ipn:3.*=ipn:2",
            "--log-level", "warning"], "ipn1"))
        nodes.append(start_node(work, [
            "--node", "ipn:2", "--data-dir", str(work / "ipn2"), "--api", f"127.0.0.1:{api[1]}",
            "--listen", f"tcpcl://127.0.0.1:{tcp[1]}", "--listen", f"udp://127.0.0.1:{udp[0]}",
            "--neighbour", f"ipn:3=udp://127.0.0.1:{udp[1]}@{UDP_RATE}", "--log-level", "warning"], "ipn2"))
        nodes.append(start_node(work, [
            "--node", "ipn:3", "--data-dir", str(work / "ipn3"), "--api", f"127.0.0.1:{api[2]}",
            "--listen", f"udp://127.0.0.1:{udp[1]}", "--neighbour", f"ipn:2=udp://127.0.0.1:{udp[0]}@{UDP_RATE}",
            "--route", "ipn:1.*=ipn:2", "--log-level", "warning"], "ipn3"))
        source = work / "mission-report.bin"
        source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
        out = work / "received"
        out.mkdir()
        print(f"== dtnrecv on ipn:3.1; dtnsend {source.name} ({source.stat().st_size:,} bytes) from ipn:1")
        recv = subprocess.Popen([str(BIN / "dtnrecv"), "--api", f"127.0.0.1:{api[2]}", "--endpoint", "ipn:3.1",
                                 "--out", str(out), "--count", "1", "--timeout", "60"],
                                stdout=subprocess.DEVNULL, text=True)
        started = time.monotonic()
        send = subprocess.run([str(BIN / "dtnsend"), "--api", f"127.0.0.1:{api[0]}", "--to", "ipn:3.1",
                               "--report", "delivered", "--wait", "--timeout", "60", "--quiet", str(source)],
                              capture_output=True, text=True)
        print(f"   dtnsend printed the bundle ID {send.stdout.strip()}; {send.stderr.strip()}")
        if send.returncode != 0 or recv.wait(timeout=90) != 0:
            print("   the file did not arrive", file=sys.stderr)
            return 1
        elapsed = time.monotonic() - started
        received = out / source.name
        same = hashlib.sha256(received.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
        print(f"   {received.name} arrived at ipn:3 in {elapsed:.2f} s, "
              f"{'byte-identical' if same else 'DIFFERENT'} to what was sent")
        print("== dtnping ipn:3 from ipn:1 (echo service, through the relay)")
        ping = subprocess.run([str(BIN / "dtnping"), "--api", f"127.0.0.1:{api[0]}", "--count", "3",
                               "--interval", "0.2", "ipn:3"], capture_output=True, text=True, timeout=60)
        print("   " + ping.stdout.strip().replace("\n", "\n   "))
        print("== dtn status of the relay ipn:2")
        status = subprocess.run([str(BIN / "dtn"), "status", "--api", f"127.0.0.1:{api[1]}"],
                                capture_output=True, text=True, timeout=30)
        print("   " + (status.stdout.strip() or status.stderr.strip()).replace("\n", "\n   "))
        return 0 if same else 1
    finally:
        for proc in nodes:
            proc.terminate()
        for proc in nodes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if os.environ.get("DTN_DEMO_KEEP"):
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
