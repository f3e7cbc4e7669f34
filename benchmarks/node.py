"""Node throughput: real ``dtnd`` processes with durable SQLite stores on 127.0.0.1 over TCPCLv4.

Two paths: sender -> receiver (2 nodes) and sender -> relay -> receiver (relay). For each, bundles are submitted
through the sender's API by concurrent senders (``POST /v1/bundles``, one request each; with ``--ws-send`` one
WebSocket message each on ``/v1/ws/send``; with ``--stream-send`` one length-prefixed payload each in the body of
one streamed ``POST /v1/bundles/stream``), and an application on the receiver takes
them over the WebSocket (``/v1/ws`` with a window) and acknowledges each one; a run ends when the node has
confirmed the last acknowledgement, so every figure is end to end and acknowledged (every bundle stored durably
on every node on its way, every delivery released durably). Figures:

  * bundles/s of 1 KiB payloads and MB/s of 1 MiB payloads, per durability (power: fsync every commit;
    process: survive a crash of dtnd only);
  * CPU seconds per bundle of each process (from /proc/PID/stat; "client" is this process, the applications at
    both ends, whose C allocator is tuned as ``dtnd``'s, see ``dtn/cli/allocator.py``) and peak RSS (VmHWM);
  * peak RSS of each ``dtnd`` while a 1 GiB file (``--large-mib``) crosses sender -> relay -> receiver: sent with
    ``send_file`` (streamed; the sender makes 16 MiB fragments as the body arrives), reassembled into the
    receiver's store piece by piece, received by long poll into a spool file like ``dtnrecv``;
  * as the reference measured in the same run: raw ``sqlite3`` inserting the same payloads with one COMMIT per
    bundle and per 100 bundles (``benchmarks/store.py``'s raw functions), with the matching synchronous level.

The bar (ION on this machine class, store in RAM, not crash-safe; quoted from the issue, not measured here):
about 4,000 bundles/s of 1 KB and about 500 MB/s in 1 MB bundles between two nodes over TCP. Targets: two durable
nodes reach half of that as a first milestone; the relay path at least half of the two-node figure; peak RSS of
a ``dtnd`` <= 200 MB.

    .venv/bin/python benchmarks/node.py [--quick] [--count N] [--durability power|process|both] [--repeat N]
                                        [--senders N] [--window N] [--batch N | --ws-send | --stream-send]
                                        [--no-large | --only-large] [--large-mib N]
                                        [--profile DIR [--profile-path relay|2nodes]]

``--profile DIR`` runs ``py-spy record`` (install it with ``.venv/bin/pip install py-spy``) on every ``dtnd`` of
the relay runs (or, with ``--profile-path 2nodes``, the two-node runs) of the first durability and writes, per
run (``DIR/1KiB``, ``DIR/1MiB``) and node, a flame graph of the busy samples (``ipnN.svg``), the collapsed stacks
with idle samples (``ipnN.txt``) and a summary, printed too: how much of the time the event loop was not waiting
in epoll, self time by component, the costliest functions.
Samples outside epoll include time blocked in other system calls (fsync in a COMMIT) and time waiting for a CPU,
so read them with the CPU figure from /proc printed beside them. Profiled runs are slower: take the throughput
figures from a run without ``--profile``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402
import store as store_bench  # noqa: E402
from procs import Dtnd, cpu_seconds, line_of_nodes, status_kib  # noqa: E402

from dtn.api.client import DtnClient  # noqa: E402
from dtn.api.models import PREFIX  # noqa: E402
from dtn.cli.allocator import tune_allocator  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20
LARGE_PAYLOAD_MIB = 1024  # the figure: relaying a 1 GiB file (sent as 16 MiB fragments made at the source)
ION_BUNDLES_PER_S, ION_MB_PER_S = 4000.0, 500.0
RSS_TARGET_MB = 200.0
LIFETIME_MS = 3_600_000
WARMUP_BUNDLES = 20
LINK_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 300.0


@dataclass
class Flow:
    """One measured run: ``count`` payloads of ``payload_bytes`` from the first node to the last one."""

    path: str
    durability: str
    payload_bytes: int
    count: int
    elapsed_s: float = 0.0
    submit_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    commits: dict[str, int] = field(default_factory=dict)
    commit_s: dict[str, float] = field(default_factory=dict)
    peak_rss_kib: dict[str, int] = field(default_factory=dict)
    profiled: Path | None = None
    batch: int = 1

    @property
    def size(self) -> str:
        return size_label(self.payload_bytes)

    @property
    def bundles_per_s(self) -> float:
        return self.count / self.elapsed_s

    @property
    def mb_per_s(self) -> float:
        return self.count * self.payload_bytes / self.elapsed_s / 1e6


def size_label(payload_bytes: int) -> str:
    return "1 KiB" if payload_bytes == KiB else "1 MiB" if payload_bytes == MiB else f"{payload_bytes} B"


# --- one flow --------------------------------------------------------------------------------------------------


class Receiver:
    """The application on the last node: a WebSocket subscription with a window; acknowledges every delivery at
    once and counts the node's confirmations of those acknowledgements. Payloads carry their sequence number in
    their first 8 bytes, so a lost, duplicated or damaged bundle is noticed."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, payload_bytes: int, *, batch_acks: bool = False) -> None:
        self.ws = ws
        self.payload_bytes = payload_bytes
        self.batch_acks = batch_acks
        self.seen: set[int] = set()
        self.confirmed = 0
        self.duplicates = 0
        self._to_ack: list[str] = []
        self._ack_ready = asyncio.Event()

    async def _acker(self) -> None:
        """Acknowledge, in one frame, every delivery taken since the last ack frame (runs when the receiving loop
        waits for the network, i.e. once the deliveries that arrived together are all taken)."""
        while True:
            await self._ack_ready.wait()
            self._ack_ready.clear()
            ids, self._to_ack = self._to_ack, []
            if ids:
                await self.ws.send_str(json.dumps({"type": "ack", "ids": ids}))

    async def run_until(self, confirmed: int) -> None:
        acker = asyncio.create_task(self._acker()) if self.batch_acks else None
        try:
            await self._run_until(confirmed)
        finally:
            if acker is not None:
                acker.cancel()

    async def _run_until(self, confirmed: int) -> None:
        pending: list[str] = []  # the ids of the delivery or group whose payloads come next
        while self.confirmed < confirmed:
            msg = await self.ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                doc = json.loads(msg.data)
                if doc["type"] == "delivery":
                    pending = [str(doc["id"])]
                elif doc["type"] == "deliveries":
                    pending = [str(item["id"]) for item in doc["items"]]
                elif doc["type"] == "ack":
                    oks = doc["ok"] if "ids" in doc else [doc["ok"]]
                    if not all(oks):
                        raise RuntimeError(f"the node refused an acknowledgement: {doc}")
                    self.confirmed += len(oks)
                else:
                    raise RuntimeError(f"unexpected message {doc}")
            elif msg.type == aiohttp.WSMsgType.BINARY:
                data: bytes = msg.data
                if not pending or len(data) != self.payload_bytes * len(pending):
                    raise RuntimeError(f"unexpected payload of {len(data)} bytes for {len(pending)} deliveries")
                for n, pending_id in enumerate(pending):
                    start = n * self.payload_bytes
                    seq = int.from_bytes(data[start : start + 8], "big")
                    if seq in self.seen:
                        self.duplicates += 1
                    self.seen.add(seq)
                    if self.batch_acks:
                        self._to_ack.append(pending_id)
                        self._ack_ready.set()
                    else:
                        await self.ws.send_str(json.dumps({"type": "ack", "id": pending_id}))
                pending = []
            else:
                raise RuntimeError(f"WebSocket closed: {msg.type!r} {self.ws.exception()}")


async def wait_links(nodes: list[Dtnd]) -> None:
    """Until every node sees each of its neighbours up."""
    expected = {node.name: (1 if i in (0, len(nodes) - 1) else 2) for i, node in enumerate(nodes)}
    deadline = time.monotonic() + LINK_TIMEOUT_S
    for node in nodes:
        async with DtnClient(node.api) as client:
            while True:
                up = [row for row in await client.neighbours() if row.get("up")]
                if len(up) >= expected[node.name]:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node.name}: links not up within {LINK_TIMEOUT_S} s: {up}")
                await asyncio.sleep(0.05)


#: ``send_all``'s ``batch`` for sending over one streamed HTTP request.
STREAM_SEND = -1


def numbered(buffer: bytearray, seq: int) -> bytearray:
    """``buffer`` (a sender's own copy of the payload) with ``seq`` in its first 8 bytes: like an application that
    reads each payload into the same buffer, a sender reuses its buffer once the node has answered."""
    buffer[:8] = seq.to_bytes(8, "big")
    return buffer


async def send_all(client: DtnClient, destination: str, payload: bytes, seqs: range, senders: int,
                   batch: int = 1) -> None:
    """``seqs`` payloads from ``senders`` concurrent senders, one bundle per request or ``batch`` per request
    (``send_many``: one commit each); ``batch`` 0: one bundle per WebSocket message on one sending socket
    (``DtnClient.sender``), ``senders`` messages outstanding; ``STREAM_SEND``: the same over one streamed HTTP
    request (``DtnClient.sender(over="http")``)."""
    todo = iter(seqs)
    if batch in (0, STREAM_SEND):
        async with client.sender(destination, lifetime_ms=LIFETIME_MS,
                                 over="websocket" if batch == 0 else "http") as sender:

            async def one_pipelined() -> None:
                buffer = bytearray(payload)
                for seq in todo:
                    await sender.send(numbered(buffer, seq))

            await asyncio.gather(*(one_pipelined() for _ in range(senders)))
        return

    async def one_sender() -> None:
        if batch > 1:
            buffers = [bytearray(payload) for _ in range(batch)]
            while chunk := list(itertools.islice(todo, batch)):
                await client.send_many(destination, [numbered(b, seq) for b, seq in zip(buffers, chunk, strict=False)],
                                       lifetime_ms=LIFETIME_MS)
            return
        buffer = bytearray(payload)
        for seq in todo:
            await client.send(destination, numbered(buffer, seq), lifetime_ms=LIFETIME_MS)

    await asyncio.gather(*(one_sender() for _ in range(senders)))


async def measure_flow(nodes: list[Dtnd], flow: Flow, senders: int, window: int,
                       profilers: list[subprocess.Popen[bytes]] | None = None,
                       profile_to: Path | None = None, batch: int = 1) -> Flow:
    """Run ``flow`` over the started ``nodes`` (first: sender, last: receiver); fills in the figures."""
    destination = f"ipn:{len(nodes)}.1"
    payload = os.urandom(flow.payload_bytes)
    async with DtnClient(nodes[0].api) as tx, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"http://{nodes[-1].api}{PREFIX}/ws", max_msg_size=0,
                                   params={"endpoint": destination, "window": str(window),
                                           **({"group": "1"} if flow.batch != 1 else {})})
        receiver = Receiver(ws, flow.payload_bytes, batch_acks=flow.batch != 1)
        warm = min(WARMUP_BUNDLES, flow.count)
        await asyncio.wait_for(asyncio.gather(send_all(tx, destination, payload, range(warm), senders),
                                              receiver.run_until(warm)), RUN_TIMEOUT_S)
        if profile_to is not None and profilers is not None:
            profilers.extend(start_profilers(nodes, profile_to))
            await asyncio.sleep(1.0)  # py-spy attaches
        stats_before = await node_statistics(nodes)
        cpu_before = {n.name: cpu_seconds(n.pid) for n in nodes} | {"client": time.process_time()}
        start = time.perf_counter()

        async def submit() -> None:
            await send_all(tx, destination, payload, range(warm, warm + flow.count), senders, flow.batch)
            flow.submit_s = time.perf_counter() - start

        await asyncio.wait_for(asyncio.gather(submit(), receiver.run_until(warm + flow.count)), RUN_TIMEOUT_S)
        flow.elapsed_s = time.perf_counter() - start
        cpu_after = {n.name: cpu_seconds(n.pid) for n in nodes} | {"client": time.process_time()}
        stats_after = await node_statistics(nodes)
        await ws.close()
    missing = flow.count + warm - len(receiver.seen)
    if missing or receiver.duplicates:
        raise RuntimeError(f"{missing} bundles missing, {receiver.duplicates} duplicates")
    flow.cpu_s = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    flow.commits = {name: int(stats_after[name]["commits"] - stats_before[name]["commits"]) for name in stats_after}
    flow.commit_s = {name: stats_after[name].get("commit_s", 0.0) - stats_before[name].get("commit_s", 0.0)
                     for name in stats_after}
    flow.peak_rss_kib = {n.name: status_kib(n.pid, "VmHWM") for n in nodes}
    return flow


async def commit_counts(nodes: list[Dtnd]) -> dict[str, int]:
    """Store commits of each node so far (``/v1/statistics``)."""
    return {name: int(stats["commits"]) for name, stats in (await node_statistics(nodes)).items()}


async def node_statistics(nodes: list[Dtnd]) -> dict[str, dict[str, float]]:
    """Each node's ``/v1/statistics``."""
    stats = {}
    for node in nodes:
        async with DtnClient(node.api) as client:
            stats[node.name] = await client.statistics()
    return stats


def start_nodes(root: Path, count: int, durability: str) -> list[Dtnd]:
    nodes = line_of_nodes(root, count, durability)
    started: list[Dtnd] = []
    try:
        for node in nodes:
            started.append(node.start())
    except Exception:
        stop_nodes(started)
        raise
    return nodes


def stop_nodes(nodes: list[Dtnd]) -> None:
    for node in nodes:
        node.stop()


def path_name(count: int) -> str:
    return "2 nodes" if count == 2 else "relay"


async def measure_path(root: Path, count: int, durability: str, sizes: list[tuple[int, int]], senders: int,
                       window: int, repeat: int, profile_to: Path | None, batch: int = 1) -> list[Flow]:
    """Start a line of ``count`` nodes; per payload size, the fastest of ``repeat`` flows (the first one
    profiled when ``profile_to`` is given)."""
    nodes = start_nodes(root / f"{path_name(count).replace(' ', '')}-{durability}", count, durability)
    profilers: list[subprocess.Popen[bytes]] = []
    flows = []
    try:
        await wait_links(nodes)
        for payload_bytes, n in sizes:
            tries = []
            for attempt in range(repeat):
                flow_batch = batch if payload_bytes < MiB or batch in (0, STREAM_SEND) else 1
                flow = Flow(path_name(count), durability, payload_bytes, n, batch=flow_batch)
                if profile_to is not None and attempt == 0:
                    flow.profiled = profile_to / size_label(payload_bytes).replace(" ", "")
                tries.append(await measure_flow(nodes, flow, senders, window, profilers, flow.profiled))
                stop_profilers(profilers)
                profilers.clear()
            flows.append(max(tries, key=lambda f: f.bundles_per_s))
    finally:
        stop_profilers(profilers)
        stop_nodes(nodes)
    return flows


# --- the largest payload: peak RSS -----------------------------------------------------------------------------


@dataclass
class Large:
    payload_bytes: int
    elapsed_s: float
    idle_rss_kib: dict[str, int]
    peak_rss_kib: dict[str, int]


async def measure_large(root: Path, durability: str, payload_bytes: int) -> Large:
    """One payload of ``payload_bytes`` streamed from a file (``send_file``) across sender -> relay -> receiver,
    received by long poll and acknowledged, on fresh processes; their peak RSS before and after."""
    nodes = start_nodes(root / f"large-{durability}", 3, durability)
    try:
        await wait_links(nodes)
        idle = {n.name: status_kib(n.pid, "VmHWM") for n in nodes}
        source = root / "large.bin"
        with source.open("wb") as out:
            for _ in range(payload_bytes // MiB):
                out.write(os.urandom(MiB))
            out.write(os.urandom(payload_bytes % MiB))
        destination = f"ipn:{len(nodes)}.1"
        async with DtnClient(nodes[0].api) as tx, DtnClient(nodes[-1].api) as rx:
            await rx.register(destination)
            start = time.perf_counter()
            await tx.send_file(destination, source)
            delivery = await rx.receive(destination, timeout_s=RUN_TIMEOUT_S, spool_dir=root / "received")
            if delivery is None or delivery.size_bytes != payload_bytes:
                raise RuntimeError("the large payload did not arrive whole")
            if delivery.payload_path is not None:
                delivery.payload_path.unlink()
            if not await rx.acknowledge(delivery):
                raise RuntimeError("the node refused the acknowledgement of the large payload")
            elapsed = time.perf_counter() - start
        peak = {n.name: status_kib(n.pid, "VmHWM") for n in nodes}
        source.unlink()
    finally:
        stop_nodes(nodes)
    return Large(payload_bytes, elapsed, idle, peak)


# --- reference: raw sqlite3 ------------------------------------------------------------------------------------


def raw_sqlite(root: Path, durability: str, payload_bytes: int, count: int) -> dict[str, float]:
    """bundles/s of raw sqlite3 inserting ``payload_bytes`` blobs (store benchmark, key+blob table, WAL) with one
    COMMIT per 1, 10 and 100 inserts, at the synchronous level matching ``durability``; best of two runs."""
    sync = "FULL" if durability == "power" else "NORMAL"
    saved = store_bench.PAYLOAD
    store_bench.PAYLOAD = os.urandom(payload_bytes)
    rates: dict[str, float] = {}
    try:
        for tag in range(2):
            where = root / f"raw-{durability}-{payload_bytes}-{tag}"
            where.mkdir()
            for key, value in store_bench.bench_raw(where, count, False, sync, tag).items():
                rates[key] = max(rates.get(key, 0.0), value)
            shutil.rmtree(where)
    finally:
        store_bench.PAYLOAD = saved
    return rates


# --- profiling -------------------------------------------------------------------------------------------------


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def start_profilers(nodes: list[Dtnd], out: Path) -> list[subprocess.Popen[bytes]]:
    """Per node: collapsed stacks of the main thread including idle samples (``NODE.txt``, for the summary) and
    a flame graph of the busy samples (``NODE.svg``)."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    for node in nodes:
        name = node.name.replace(":", "")
        for options, suffix in ((["--format", "raw", "--idle", "--rate", "200"], "txt"),
                                (["--format", "flamegraph", "--rate", "50"], "svg")):
            command = [exe, "record", "--pid", str(node.pid), "--nonblocking", *options,
                       "--output", str(out / f"{name}.{suffix}")]
            procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def stop_profilers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def frame_name(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)`` (line numbers merged; dtn paths kept)."""
    func, _, where = frame.partition(" (")
    filename = where.rsplit(":", 1)[0].rstrip(")")
    parts = filename.split("/")
    short = "/".join(parts[parts.index("dtn"):]) if "dtn" in parts else parts[-1]
    return f"{func} ({short})"


#: Self time by component: the first rule matching a frame, from the leaf towards the root, names the component.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("SqlBundleStore.commit ", "store COMMIT (sqlite3, fsync)"),
    ("dtn/storage/payloads.py", "store payload files (write, fsync, read, unlink)"),
    ("dtn/storage/", "store statements (SQL execute, rows)"),
    ("dtn/bundle/", "bundle codec and model"),
    ("dtn/agent/", "agent (RFC 9171 procedures)"),
    ("dtn/convergence/", "TCPCL (session, messages, adapter)"),
    ("dtn/api/", "API handlers (dtn/api)"),
    ("dtn/node.py", "node runtime (dtn/node.py)"),
    ("_SelectorSocketTransport.write ", "socket send (transport.write)"),
    ("aiohttp/", "aiohttp (HTTP and WebSocket)"),
    ("json/", "json"),
    ("logging/", "logging"),
    ("enum.py", "enum (flag arithmetic)"),
    ("asyncio/", "asyncio event loop"),
    ("selectors.py", "asyncio event loop"),
)


def component(frames: list[str]) -> str:
    for frame in reversed(frames):
        for needle, name in COMPONENTS:
            if needle in frame:
                return name
    return "other"


def is_idle(frames: list[str]) -> bool:
    """The main thread waits in epoll (no ready event)."""
    return frames[-1].startswith("EpollSelector.select ") or frames[-1].startswith("select (")


def is_worker(frames: list[str]) -> bool:
    """A sample of another thread than the event loop's (the store's commit thread)."""
    return "(threading.py" in frames[0]


def summarise_profile(collapsed: Path, top: int = 25) -> str:
    """Summary of a py-spy raw file recorded with ``--idle``: how busy the event loop was, self time by
    component, and the costliest functions (own and cumulative), in % of the busy samples."""
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    components: Counter[str] = Counter()
    total = idle = worker_commit = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        raw_frames = stack.split(";")
        if is_worker(raw_frames):
            if any(f.startswith("SqlBundleStore.commit ") for f in raw_frames):
                worker_commit += count
            continue
        total += count
        if is_idle(raw_frames):
            idle += count
            continue
        frames = [frame_name(f) for f in raw_frames]
        components[component(raw_frames)] += count
        own[frames[-1]] += count
        for name in set(frames):
            cumulative[name] += count
    busy = total - idle
    if not busy:
        return "(no busy samples)"
    lines = [f"{total} samples of the main thread; busy {busy / total:.1%} of the time, waiting in epoll "
             f"{idle / total:.1%}; figures below in % of the busy samples",
             f"the commit thread was in SqlBundleStore.commit {worker_commit / total:.1%} of the time",
             "self time by component:"]
    lines += [f"  {100 * c / busy:6.1f}  {name}" for name, c in components.most_common()]
    lines.append(f"{'own %':>7} {'cum %':>7}  function (top {top} by own time)")
    lines += [f"{100 * c / busy:7.1f} {100 * cumulative[name] / busy:7.1f}  {name}" for name, c in own.most_common(top)]
    lines.append(f"{'cum %':>7}  function (top {top} by cumulative time, below the event loop)")
    inner = [(name, c) for name, c in cumulative.most_common() if c < 0.8 * busy]
    lines += [f"{100 * c / busy:7.1f}  {name}" for name, c in inner[:top]]
    return "\n".join(lines)


# --- report ----------------------------------------------------------------------------------------------------


def print_flows(flows: list[Flow]) -> None:
    header = (f"{'path':<9}{'durability':<11}{'payload':>8}{'count':>7}{'bundles/s':>11}{'MB/s':>9}{'submit/s':>10}"
              f"   CPU ms per bundle: sender [relay] receiver client   bundles per commit   % of time committing"
              f"   peak RSS MB")
    print(header)
    for f in flows:
        size = f.size
        cpu = ", ".join(f"{1000 * s / f.count:.2f}" for s in f.cpu_s.values())
        rss = ", ".join(f"{kib / 1024:.0f}" for kib in f.peak_rss_kib.values())
        per_commit = ", ".join(f"{f.count / max(1, c):.1f}" for c in f.commits.values())
        committing = ", ".join(f"{100 * c / f.elapsed_s:.0f}" for c in f.commit_s.values())
        print(f"{f.path:<9}{f.durability:<11}{size:>8}{f.count:>7}{f.bundles_per_s:>11,.0f}{f.mb_per_s:>9,.1f}"
              f"{f.count / f.submit_s:>10,.0f}   {cpu:<49}   {per_commit:<18}   {committing:<20}   {rss}")


def print_targets(flows: list[Flow]) -> None:
    def find(path: str, durability: str, size: int) -> Flow | None:
        return next((f for f in flows if (f.path, f.durability, f.payload_bytes) == (path, durability, size)), None)

    print(f"\nagainst the bar (ION, 2 nodes, RAM store: ~{ION_BUNDLES_PER_S:,.0f} bundles/s of 1 KB, "
          f"~{ION_MB_PER_S:.0f} MB/s in 1 MB bundles; quoted, not measured)")
    for durability in dict.fromkeys(f.durability for f in flows):
        two_k, relay_k = find("2 nodes", durability, KiB), find("relay", durability, KiB)
        two_m, relay_m = find("2 nodes", durability, MiB), find("relay", durability, MiB)
        if two_k:
            print(f"  {durability:<8} 2 nodes 1 KiB: {two_k.bundles_per_s / ION_BUNDLES_PER_S:6.1%} of ION "
                  f"(milestone 50 %)" + (f"; relay = {relay_k.bundles_per_s / two_k.bundles_per_s:6.1%} of 2 nodes "
                                         f"(target >= 50 %)" if relay_k else ""))
        if two_m:
            print(f"  {durability:<8} 2 nodes 1 MiB: {two_m.mb_per_s / ION_MB_PER_S:6.1%} of ION "
                  f"(milestone 50 %)" + (f"; relay = {relay_m.mb_per_s / two_m.mb_per_s:6.1%} of 2 nodes "
                                         f"(target >= 50 %)" if relay_m else ""))


def print_raw(raw: dict[tuple[str, int], dict[str, float]], flows: list[Flow]) -> None:
    print("\nreference, same run: raw sqlite3 (store benchmark, key+blob, WAL), inserts with one COMMIT per group")
    for (durability, size), rates in raw.items():
        best_node = max((f.bundles_per_s for f in flows if (f.durability, f.payload_bytes) == (durability, size)),
                        default=0.0)
        label = "1 KiB" if size == KiB else "1 MiB"
        figures = "  ".join(f"{k}: {v:,.0f}/s ({v * size / 1e6:,.1f} MB/s)" for k, v in rates.items()
                            if k.startswith("add/"))
        ratio = f"  node best = {best_node / rates['add/1']:.1%} of add/1" if best_node else ""
        print(f"  {durability:<8} {label}: {figures}{ratio}")


def print_large(large: Large) -> None:
    print(f"\nlarge payload: {large.payload_bytes / MiB:.2f} MiB file across sender -> relay -> "
          f"receiver in {large.elapsed_s:.2f} s ({large.payload_bytes / large.elapsed_s / 1e6:.0f} MB/s), "
          f"sent as fragments made at the source, received by long poll into a spool file")
    for name, peak in large.peak_rss_kib.items():
        verdict = "ok" if peak / 1024 <= RSS_TARGET_MB else "over"
        print(f"  {name}: peak RSS {peak / 1024:6.0f} MB (idle {large.idle_rss_kib[name] / 1024:4.0f} MB)  "
              f"target <= {RSS_TARGET_MB:.0f} MB: {verdict}")


async def amain(args: argparse.Namespace) -> int:
    tune_allocator()  # the applications' 1 MiB buffers are reused, not faulted in afresh (as in dtnd)
    durabilities = ["power", "process"] if args.durability == "both" else [args.durability]
    count_k = args.count or (300 if args.quick else 2000)
    count_m = max(10, count_k // 10)
    sizes = [(KiB, count_k), (MiB, count_m)]
    mode = ("one bundle per WebSocket message" if args.ws_send else
            "one streamed HTTP request (8-byte length + payload each)" if args.stream_send else
            f"{args.batch} x 1 KiB per request")
    print(f"dtnd over TCPCLv4 on 127.0.0.1, SQLite stores; {args.senders} concurrent API senders, {mode}, "
          f"WebSocket window {args.window}; {count_k} x 1 KiB and {count_m} x 1 MiB "
          f"per run (after {WARMUP_BUNDLES} warm-up bundles), best of {args.repeat}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start",
          flush=True)
    send_mode = 0 if args.ws_send else STREAM_SEND if args.stream_send else args.batch
    flows: list[Flow] = []
    raw: dict[tuple[str, int], dict[str, float]] = {}
    large: Large | None = None
    with tempfile.TemporaryDirectory(prefix="dtn-bench-node-") as tmp:
        root = Path(tmp)
        for durability in [] if args.only_large else durabilities:
            for count in (2, 3):
                profiled_path = count == (3 if args.profile_path == "relay" else 2)
                profile = args.profile if (args.profile and profiled_path and durability == durabilities[0]) else None
                flows += await measure_path(root, count, durability, sizes, args.senders, args.window,
                                            1 if profile else args.repeat, profile, send_mode)
                print_flows(flows[-2:])
            raw[(durability, KiB)] = raw_sqlite(root, durability, KiB, min(count_k, 2000))
            raw[(durability, MiB)] = raw_sqlite(root, durability, MiB, min(count_m, 100))
        if not args.no_large:
            large = await measure_large(root, durabilities[0], args.large_mib * MiB)
    print()
    print_flows(flows)
    print_targets(flows)
    print_raw(raw, flows)
    if large is not None:
        print_large(large)
    for flow in flows:
        if flow.profiled is None:
            continue
        for name, cpu_s in flow.cpu_s.items():
            collapsed = flow.profiled / f"{name.replace(':', '')}.txt"
            if not collapsed.exists():
                continue
            summary = (f"profile of {name} ({flow.path}, {flow.size}, {flow.durability}, {flow.bundles_per_s:,.0f} "
                       f"bundles/s): CPU {cpu_s / flow.elapsed_s:.0%} of one core, {1000 * cpu_s / flow.count:.2f} "
                       f"ms per bundle (/proc)\n" + summarise_profile(collapsed))
            collapsed.with_suffix(".summary.txt").write_text(summary + "\n")
            print("\n" + summary)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer bundles (300 x 1 KiB, 30 x 1 MiB)")
    parser.add_argument("--count", type=int, help="1 KiB bundles per run (default 2000; 1 MiB runs use a tenth)")
    parser.add_argument("--durability", choices=["power", "process", "both"], default="both",
                        help="store durability of the nodes (default both: power, then process)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs per figure on the same nodes, the fastest is kept (default 2; 1 with --profile)")
    parser.add_argument("--senders", type=int, default=16, help="concurrent API senders (default 16)")
    parser.add_argument("--window", type=int, default=64, help="WebSocket delivery window (default 64, the max)")
    parser.add_argument("--batch", type=int, default=1,
                        help="1 KiB payloads per API request (POST /v1/bundles?sizes=...; default 1: one each); "
                             "above 1 the receiver also takes deliveries in groups and acknowledges the deliveries it "
                             "has in one frame")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--ws-send", action="store_true",
                        help="submit over the sending WebSocket (/v1/ws/send): one bundle per message, --senders "
                             "messages outstanding (instead of one HTTP request per bundle); the receiver "
                             "takes deliveries in groups and acknowledges the deliveries it has in one frame, as "
                             "with --batch")
    modes.add_argument("--stream-send", action="store_true",
                        help="as --ws-send over one streamed HTTP request (POST /v1/bundles/stream): each payload "
                             "after its 8-byte length in the body, answers streamed back")
    parser.add_argument("--no-large", action="store_true", help="skip the large-payload peak RSS run")
    parser.add_argument("--large-mib", type=int, default=LARGE_PAYLOAD_MIB,
                        help=f"size of the large payload in MiB (default {LARGE_PAYLOAD_MIB})")
    parser.add_argument("--only-large", action="store_true", help="only the large-payload peak RSS run")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy every dtnd of the runs of one path (--profile-path) at the first "
                             "durability; flame graphs and summaries into DIR")
    parser.add_argument("--profile-path", choices=("relay", "2nodes"), default="relay",
                        help="the path whose runs --profile records (default relay)")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
