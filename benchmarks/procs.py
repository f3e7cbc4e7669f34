"""Real ``dtnd`` processes for the benchmarks: free ports on 127.0.0.1, SQLite stores in a directory, readiness
from the ``dtnd ... ready:`` line, and what the kernel says about each process (CPU seconds, peak RSS)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

READY_TIMEOUT_S = 30.0
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def free_ports(count: int) -> list[int]:
    """Distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in ports:
            ports.append(port)
    return ports


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (from /proc/PID/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S  # utime, stime (fields 14, 15 of stat)


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` value of /proc/PID/status, e.g. ``VmHWM`` (peak resident set) or ``VmRSS``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


class Dtnd:
    """One ``dtnd`` process; its stderr is drained by a thread (the last lines are kept for error messages)."""

    def __init__(self, name: str, args: Sequence[str]) -> None:
        self.name = name
        self.args = list(args)
        self.lines: list[str] = []
        self.api = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Dtnd:
        command = [sys.executable, "-c", "from dtn.cli.dtnd import run; run()", *self.args]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        if not self._ready.wait(READY_TIMEOUT_S) or not self.api:
            self.kill()
            raise RuntimeError(f"dtnd {self.name} did not become ready:\n" + "\n".join(self.lines[-30:]))
        return self

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            del self.lines[:-200]
            if line.startswith("dtnd ") and " ready: api " in line:
                self.api = line.split(" ready: api ", 1)[1].split(",", 1)[0]
                self._ready.set()
        self._ready.set()

    def stop(self, timeout_s: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def line_of_nodes(root: Path, count: int, durability: str, *, log_level: str = "info") -> list[Dtnd]:
    """``count`` nodes ipn:1 ... ipn:count in a line over TCPCLv4 on 127.0.0.1, each with its own SQLite store
    under ``root``; node i knows its neighbours and routes every farther node through them (not started)."""
    ports = free_ports(2 * count)
    cl_ports, api_ports = ports[:count], ports[count:]
    url = [f"tcpcl://127.0.0.1:{p}" for p in cl_ports]
    nodes = []
    for i in range(count):
        n = i + 1
        args = ["--node", f"ipn:{n}", "--data-dir", str(root / f"n{n}"), "--api", f"127.0.0.1:{api_ports[i]}",
                "--durability", durability, "--log-level", log_level, "--listen", url[i]]
        if i + 1 < count:
            args += ["--neighbour", f"ipn:{n + 1}={url[i + 1]}"]
            args += [a for far in range(n + 2, count + 1) for a in ("--route", f"ipn:{far}.*=ipn:{n + 1}")]
        if i > 0:
            args += ["--neighbour", f"ipn:{n - 1}={url[i - 1]}"]
            args += [a for far in range(1, n - 1) for a in ("--route", f"ipn:{far}.*=ipn:{n - 1}")]
        nodes.append(Dtnd(f"ipn:{n}", args))
    return nodes
