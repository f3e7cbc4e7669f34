"""Bundle store throughput: 1 KiB bundles added and committed in groups of 1, 10 and 100, then read and deleted.

Runs the SQLite store, the PostgreSQL store (when --pg-url or DTN_TEST_PG_URL is given) and, as the physical
reference measured in the same run, the same workload on raw ``sqlite3``: one INSERT per bundle and one COMMIT per
group, both into a minimal table (key + blob) and into the store's own schema with its indexes.

    .venv/bin/python benchmarks/store.py [--count 3000] [--durability process-crash|power-loss] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text

from dtn.bundle.ids import BundleId
from dtn.storage import schema
from dtn.storage.base import BundleMeta, BundleStore, Constraint
from dtn.storage.sql import Durability, open_store

GROUPS = (1, 10, 100)
PAYLOAD = os.urandom(1024)


def metas(count: int, tag: int) -> list[BundleMeta]:
    return [
        BundleMeta(
            id=BundleId("ipn:7.1", 800_000_000_000 + tag, i),
            destination=f"ipn:{i % 16}.1",
            expiry_dtn_ms=900_000_000_000 + i,
            size_bytes=len(PAYLOAD),
            constraints=Constraint.DISPATCH_PENDING | Constraint.FORWARD_PENDING,
            priority=i % 3,
        )
        for i in range(count)
    ]


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f}/s"


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_store(name: str, make: Callable[[], BundleStore], count: int) -> dict[int, float]:
    results: dict[int, float] = {}
    for tag, group in enumerate(GROUPS):
        store = make()
        batch = metas(count, tag)

        def add(store: BundleStore = store, batch: list[BundleMeta] = batch, group: int = group) -> None:
            for i, meta in enumerate(batch, 1):
                store.add(meta, PAYLOAD)
                if i % group == 0:
                    store.commit()
            store.commit()

        seconds = timed(add)
        results[group] = count / seconds
        line = f"{name:<34} add+commit group {group:>3}: {rate(count, seconds)}"
        if group == GROUPS[-1]:

            def read(store: BundleStore = store, batch: list[BundleMeta] = batch) -> None:
                for meta in batch:
                    store.raw(meta.id)

            def query(store: BundleStore = store) -> None:
                for _ in range(20):
                    store.with_constraint(Constraint.FORWARD_PENDING, limit=100)

            def remove(store: BundleStore = store, batch: list[BundleMeta] = batch) -> None:
                for i, meta in enumerate(batch, 1):
                    store.delete(meta.id)
                    if i % 100 == 0:
                        store.commit()
                store.commit()

            line += f"   read {rate(count, timed(read))}"
            line += f"   query(100) {rate(20, timed(query))}"
            line += f"   delete+commit/100 {rate(count, timed(remove))}"
        print(line, flush=True)
        store.close()
    return results


def raw_add(db: sqlite3.Connection, sql: str, batch: list[BundleMeta], group: int, same_schema: bool) -> None:
    for i, meta in enumerate(batch, 1):
        key = str(meta.id)
        if same_schema:
            params: tuple[object, ...] = (
                key, None, meta.destination, None, meta.expiry_dtn_ms, meta.size_bytes,
                meta.priority, int(meta.constraints), PAYLOAD, None,
            )  # fmt: skip
        else:
            params = (key, PAYLOAD)
        db.execute(sql, params)
        if i % group == 0:
            db.commit()
    db.commit()


def raw_read(db: sqlite3.Connection, table: str, keycol: str, batch: list[BundleMeta]) -> None:
    for meta in batch:
        db.execute(f"SELECT payload FROM {table} WHERE {keycol} = ?", (str(meta.id),)).fetchone()


def raw_delete(db: sqlite3.Connection, table: str, keycol: str, batch: list[BundleMeta]) -> None:
    for i, meta in enumerate(batch, 1):
        db.execute(f"DELETE FROM {table} WHERE {keycol} = ?", (str(meta.id),))
        if i % 100 == 0:
            db.commit()
    db.commit()


def bench_raw(name: str, path_for: Callable[[int], Path], count: int, same_schema: bool, sync: str) -> dict[int, float]:
    results: dict[int, float] = {}
    table, keycol = ("dtn_bundles", "bundle_key") if same_schema else ("b", "k")
    for tag, group in enumerate(GROUPS):
        path = path_for(tag)
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={sync}")
        if same_schema:
            engine = create_engine(f"sqlite:///{path}")
            with engine.begin() as conn:
                schema.metadata.create_all(conn)
            engine.dispose()
            sql = (
                "INSERT INTO dtn_bundles (bundle_key, whole_key, destination, next_hop, expiry_dtn_ms, size_bytes,"
                " priority, constraints, payload, payload_file) VALUES (?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (bundle_key) DO NOTHING"
            )
        else:
            db.execute("CREATE TABLE b (k TEXT PRIMARY KEY, payload BLOB)")
            sql = "INSERT INTO b VALUES (?, ?)"
        batch = metas(count, tag)
        seconds = timed(lambda: raw_add(db, sql, batch, group, same_schema))  # noqa: B023
        results[group] = count / seconds
        line = f"{name:<34} add+commit group {group:>3}: {rate(count, seconds)}"
        if group == GROUPS[-1]:
            line += f"   read {rate(count, timed(lambda: raw_read(db, table, keycol, batch)))}"  # noqa: B023
            line += f"   {'':>22}   delete+commit/100 "
            line += rate(count, timed(lambda: raw_delete(db, table, keycol, batch)))  # noqa: B023
        print(line, flush=True)
        db.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="bundles per measurement (default 3000)")
    parser.add_argument("--durability", default="process-crash", choices=[d.value for d in Durability])
    parser.add_argument("--pg-url", default=os.environ.get("DTN_TEST_PG_URL"), help="PostgreSQL URL (optional)")
    args = parser.parse_args()
    durability = Durability(args.durability)
    sync = "FULL" if durability is Durability.POWER_LOSS else "NORMAL"
    print(f"{args.count} bundles of 1 KiB per run, durability {durability.value} (SQLite synchronous={sync})")
    with tempfile.TemporaryDirectory(prefix="dtn-bench-") as tmp:
        root = Path(tmp)
        minimal = bench_raw("raw sqlite3 (key+blob table)", lambda t: root / f"raw{t}.db", args.count, False, sync)
        same = bench_raw("raw sqlite3 (store schema+indexes)", lambda t: root / f"raws{t}.db", args.count, True, sync)
        counter = iter(range(1_000_000))
        ours = bench_store(
            "dtn SqlBundleStore on SQLite",
            lambda: open_store(f"sqlite:///{root / f'store{next(counter)}.db'}", durability=durability),
            args.count,
        )
        if args.pg_url:
            engine = create_engine(args.pg_url)

            def make_pg() -> BundleStore:
                name = "bench_" + uuid.uuid4().hex[:8]
                with engine.begin() as conn:
                    conn.execute(text(f"CREATE SCHEMA {name}"))
                sep = "&" if "?" in args.pg_url else "?"
                url = f"{args.pg_url}{sep}options=-csearch_path%3D{name}"
                return open_store(url, durability=durability, payload_dir=root / name)

            bench_store("dtn SqlBundleStore on PostgreSQL", make_pg, args.count)
            engine.dispose()
        else:
            print("PostgreSQL: skipped (no --pg-url and no DTN_TEST_PG_URL)")
    for group in GROUPS:
        print(
            f"group {group:>3}: SQLite store = {ours[group] / minimal[group]:6.1%} of raw sqlite3 (key+blob), "
            f"{ours[group] / same[group]:6.1%} of raw sqlite3 (same schema)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
