"""Real ``dtnd`` processes and client commands for the CLI and system tests: free ports on 127.0.0.1, SQLite
stores in a temporary directory, readiness from the ``dtnd ... ready:`` line (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

READY_TIMEOUT_S = 30.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """Ports free for TCP and UDP at once (a node listens with both on one port)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        if port not in ports:
            ports.append(port)
    return ports


def command(name: str) -> list[str]:
    """How to run one of our console scripts with this interpreter (no dependence on PATH)."""
    return [sys.executable, "-c", f"from dtn.cli.{name} import run; run()"]


def run_cli(name: str, *args: str, timeout_s: float = 60, input_bytes: bytes | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("DTN_API", "DTN_API_TOKEN")}
    full_env.update(env or {})
    return subprocess.run([*command(name), *args], capture_output=True, timeout=timeout_s, check=False,
                          input=input_bytes, env=full_env)


class Dtnd:
    """One ``dtnd`` process; its stderr is drained by a thread into ``lines``."""

    def __init__(self, data_dir: Path, args: list[str]) -> None:
        self.data_dir = data_dir
        self.args = args
        self.lines: list[str] = []
        self.ready_line = ""
        self.api = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._exited = threading.Event()

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> Dtnd:
        self._ready.clear()
        self._exited.clear()
        self.proc = subprocess.Popen([*command("dtnd"), *self.args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        if not self._ready.wait(timeout_s) or self._exited.is_set() and not self.ready_line:
            self.kill()
            raise AssertionError("dtnd did not become ready:\n" + self.log())
        return self

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if line.startswith("dtnd ") and " ready: api " in line:
                self.ready_line = line
                self.api = line.split(" ready: api ", 1)[1].split(",", 1)[0]
                self._ready.set()
        self._exited.set()
        self._ready.set()

    def log(self) -> str:
        return "\n".join(self.lines)

    def terminate(self, timeout_s: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        self._exited.wait(timeout_s)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._exited.wait(30)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def dtnd(tmp: Path, name: str, node: str, *, api_port: int | None = None, listen: Sequence[str] = (),
         neighbours: Sequence[str] = (), routes: Sequence[str] = (), extra: Sequence[str] = ()) -> Dtnd:
    data_dir = tmp / name
    args = ["--node", node, "--data-dir", str(data_dir), "--api", f"127.0.0.1:{api_port or free_port()}",
            "--durability", "process", "--log-level", "info"]
    for url in listen:
        args += ["--listen", url]
    for n in neighbours:
        args += ["--neighbour", n]
    for r in routes:
        args += ["--route", r]
    return Dtnd(data_dir, [*args, *extra])


def line_of_nodes(tmp: Path, scheme: str, count: int = 3, *, destination_service: str = "*",
                  extra: Sequence[str] = ()) -> list[Dtnd]:
    """Nodes ipn:1 ... ipn:count in a line over ``scheme``; each routes the far nodes through its neighbour;
    ``extra``: more dtnd flags for every node."""
    ports = free_ports(count)
    url = [f"{scheme}://127.0.0.1:{p}" for p in ports]
    nodes = []
    for i in range(count):
        n = i + 1
        neighbours, routes = [], []
        if i + 1 < count:
            neighbours.append(f"ipn:{n + 1}={url[i + 1]}")
            routes += [f"ipn:{far}.{destination_service}=ipn:{n + 1}" for far in range(n + 2, count + 1)]
        if i > 0:
            neighbours.append(f"ipn:{n - 1}={url[i - 1]}")
            routes += [f"ipn:{far}.{destination_service}=ipn:{n - 1}" for far in range(1, n - 1)]
        nodes.append(dtnd(tmp, f"n{n}", f"ipn:{n}", listen=[url[i]], neighbours=neighbours, routes=routes,
                          extra=extra))
    return nodes


async def eventually(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(0.05)
