"""The Bundle Protocol Agent's own cost per bundle, without sockets or processes: two agents over SQLite stores
(process-crash durability) in one process, 1 KiB bundles submitted at the first, transmitted, received by the
second, delivered and acknowledged there, and the transmission's outcome handed back to the first; a commit per
group of 8 on each side. That is every store statement, every encode and decode, and every RFC 9171 step of a
bundle crossing two nodes, and nothing of TCPCL, asyncio or the API.

The reference, measured in the same run: raw ``sqlite3`` doing the store's minimum for the same bundles (one
INSERT, one UPDATE to a tombstone per bundle and node; a COMMIT per group of 8).

    .venv/bin/python benchmarks/agent.py [--count 4000] [--repeat 3]

For a figure that does not move with the machine's load, count instructions instead of seconds:
``valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python benchmarks/agent.py --count 400
--repeat 1`` minus the same with ``--count 0``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from dtn.agent.actions import Deliver, Transmit
from dtn.agent.agent import AgentConfig, BundleAgent
from dtn.agent.registrations import DeliveryMode
from dtn.bundle.eid import parse_eid
from dtn.clock import VirtualClock
from dtn.routing.static import StaticRouter, rule
from dtn.storage.sql import open_store

GROUP = 8
PAYLOAD = os.urandom(1024)


def agents_ms_per_bundle(directory: Path, count: int) -> float:
    """CPU ms per bundle of the two agents and their stores (sender and receiver together)."""
    clock = VirtualClock()
    sender_store = open_store(f"sqlite:///{directory / 'a.sqlite'}")
    receiver_store = open_store(f"sqlite:///{directory / 'b.sqlite'}")
    sender = BundleAgent(AgentConfig(parse_eid("ipn:1.0")), sender_store,
                         StaticRouter([rule("ipn:2.*", "ipn:2.0")]))
    receiver = BundleAgent(AgentConfig(parse_eid("ipn:2.0")), receiver_store, StaticRouter([]))
    now, ms = clock.now(), clock.dtn_ms()
    sender.link_up("ipn:2.0", now, ms)
    receiver.link_up("ipn:1.0", now, ms)
    receiver.register("ipn:2.1", DeliveryMode.ACTIVE, now, ms)
    started = time.process_time()
    for _ in range(count // GROUP):
        for _ in range(GROUP):
            sender.submit("ipn:2.1", PAYLOAD, now, ms)
        sender_store.commit()
        sent = []
        while (action := sender.next_action()) is not None:
            if isinstance(action, Transmit):
                receiver.receive(action.data, now, ms, from_node="ipn:1.0")
                sent.append(action.transmission_id)
        receiver_store.commit()
        for transmission_id in sent:
            sender.transfer_done(transmission_id, True, now, ms)
        sender_store.commit()
        while (action := receiver.next_action()) is not None:
            if isinstance(action, Deliver):
                receiver.delivery_acknowledged(action.endpoint, action.bundle_id, now, ms)
        receiver_store.commit()
    elapsed = time.process_time() - started
    sender_store.close()
    receiver_store.close()
    return 1e3 * elapsed / max(count, 1)


def raw_ms_per_bundle(directory: Path, count: int) -> float:
    """CPU ms per bundle of raw sqlite3 doing the minimum for two nodes: insert, then tombstone, on each side."""
    connections = []
    for name in ("ra.sqlite", "rb.sqlite"):
        conn = sqlite3.connect(directory / name, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE b (k TEXT PRIMARY KEY, c INTEGER, v BLOB)")
        connections.append(conn)
    started = time.process_time()
    for group in range(count // GROUP):
        keys = [f"ipn:1.0/{group}/{n}" for n in range(GROUP)]
        for conn in connections:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO b VALUES (?, 1, ?)", [(k, PAYLOAD) for k in keys])
            conn.execute("COMMIT")
            conn.execute("BEGIN")
            conn.executemany("UPDATE b SET c = 0, v = NULL WHERE k = ?", [(k,) for k in keys])
            conn.execute("COMMIT")
    elapsed = time.process_time() - started
    for conn in connections:
        conn.close()
    return 1e3 * elapsed / max(count, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=4000, help="bundles per run (default 4000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs, the fastest is kept (default 3)")
    args = parser.parse_args()
    if args.count < GROUP:  # --count 0: start-up only (the baseline of an instruction count)
        with tempfile.TemporaryDirectory(prefix="dtn-bench-agent-") as tmp:
            agents_ms_per_bundle(Path(tmp), 0)
        return 0
    best_agents = best_raw = float("inf")
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="dtn-bench-agent-") as tmp:
            best_agents = min(best_agents, agents_ms_per_bundle(Path(tmp), args.count))
            best_raw = min(best_raw, raw_ms_per_bundle(Path(tmp), args.count))
    print(f"two agents and their SQLite stores, {args.count} x 1 KiB bundles, commits per {GROUP}, best of "
          f"{args.repeat}: {best_agents:.3f} ms CPU per bundle ({1e3 / best_agents if best_agents else 0:,.0f} "
          "bundles/s on one core)")
    print(f"reference, same run: raw sqlite3 insert + tombstone on both sides: {best_raw:.3f} ms CPU per bundle "
          f"(agents = {best_agents / best_raw if best_raw else 0:.1f} x raw)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
