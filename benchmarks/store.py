"""Bundle store throughput: 1 KiB bundles added and committed in groups of 1, 10 and 100, then read and deleted.

Runs the SQLite store, the PostgreSQL store (when --pg-url or DTN_TEST_PG_URL is given) and, as the physical
reference measured in the same run, the same workload on raw ``sqlite3``: one INSERT per bundle and one COMMIT per
group, into a minimal table (key + blob) and into the store's own schema with its indexes. Every measurement is
repeated (--repeat, interleaved across backends) and the best rate is kept, to tame a noisy shared machine.

    .venv/bin/python benchmarks/store.py [--count 3000] [--repeat 3] [--durability power-loss] [--pg-url URL]
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
INSERT_SAME_SCHEMA = (
    "INSERT INTO dtn_bundles (bundle_key, whole_key, destination, next_hop, expiry_dtn_ms, size_bytes,"
    " priority, constraints, payload, payload_file) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (bundle_key) DO NOTHING"
)
Rates = dict[str, float]


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


def per_second(count: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def store_add(store: BundleStore, batch: list[BundleMeta], group: int) -> None:
    for i, meta in enumerate(batch, 1):
        store.add(meta, PAYLOAD)
        if i % group == 0:
            store.commit()
    store.commit()


def store_read(store: BundleStore, batch: list[BundleMeta]) -> None:
    for meta in batch:
        store.raw(meta.id)


def store_query(store: BundleStore, times: int) -> None:
    for _ in range(times):
        store.with_constraint(Constraint.FORWARD_PENDING, limit=100)


def store_delete(store: BundleStore, batch: list[BundleMeta]) -> None:
    for i, meta in enumerate(batch, 1):
        store.delete(meta.id)
        if i % 100 == 0:
            store.commit()
    store.commit()


def bench_store(make: Callable[[], BundleStore], count: int, tag: int) -> Rates:
    rates: Rates = {}
    for n, group in enumerate(GROUPS):
        store = make()
        batch = metas(count, tag * 10 + n)
        rates[f"add/{group}"] = per_second(count, lambda: store_add(store, batch, group))  # noqa: B023
        if group == GROUPS[-1]:
            rates["read"] = per_second(count, lambda: store_read(store, batch))  # noqa: B023
            rates["query100"] = per_second(20, lambda: store_query(store, 20))  # noqa: B023
            rates["delete/100"] = per_second(count, lambda: store_delete(store, batch))  # noqa: B023
        store.close()
    return rates


def raw_add(db: sqlite3.Connection, batch: list[BundleMeta], group: int, same_schema: bool) -> None:
    for i, meta in enumerate(batch, 1):
        key = str(meta.id)
        if same_schema:
            db.execute(
                INSERT_SAME_SCHEMA,
                (key, None, meta.destination, None, meta.expiry_dtn_ms, meta.size_bytes,
                 meta.priority, int(meta.constraints), PAYLOAD, None),
            )  # fmt: skip
        else:
            db.execute("INSERT INTO b VALUES (?, ?)", (key, PAYLOAD))
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


def bench_raw(root: Path, count: int, same_schema: bool, sync: str, tag: int) -> Rates:
    rates: Rates = {}
    table, keycol = ("dtn_bundles", "bundle_key") if same_schema else ("b", "k")
    for n, group in enumerate(GROUPS):
        path = root / f"raw-{same_schema}-{tag}-{group}.db"
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={sync}")
        if same_schema:
            engine = create_engine(f"sqlite:///{path}")
            with engine.begin() as conn:
                schema.metadata.create_all(conn)
            engine.dispose()
        else:
            db.execute("CREATE TABLE b (k TEXT PRIMARY KEY, payload BLOB)")
        batch = metas(count, tag * 10 + n)
        rates[f"add/{group}"] = per_second(count, lambda: raw_add(db, batch, group, same_schema))  # noqa: B023
        if group == GROUPS[-1]:
            rates["read"] = per_second(count, lambda: raw_read(db, table, keycol, batch))  # noqa: B023
            rates["delete/100"] = per_second(count, lambda: raw_delete(db, table, keycol, batch))  # noqa: B023
        db.close()
    return rates


def best(into: dict[str, Rates], name: str, rates: Rates) -> None:
    known = into.setdefault(name, {})
    for key, value in rates.items():
        known[key] = max(known.get(key, 0.0), value)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="bundles per measurement (default 3000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept (default 3)")
    parser.add_argument("--durability", default="process-crash", choices=[d.value for d in Durability])
    parser.add_argument("--pg-url", default=os.environ.get("DTN_TEST_PG_URL"), help="PostgreSQL URL (optional)")
    args = parser.parse_args()
    durability = Durability(args.durability)
    sync = "FULL" if durability is Durability.POWER_LOSS else "NORMAL"
    print(f"{args.count} bundles of 1 KiB per run, best of {args.repeat}, durability {durability.value}")
    results: dict[str, Rates] = {}
    minimal, same, ours, pg = (
        "raw sqlite3 (key+blob)",
        "raw sqlite3 (store schema)",
        "SqlBundleStore SQLite",
        "SqlBundleStore PostgreSQL",
    )
    with tempfile.TemporaryDirectory(prefix="dtn-bench-") as tmp:
        root = Path(tmp)
        counter = iter(range(1_000_000))
        engine = create_engine(args.pg_url) if args.pg_url else None

        def make_sqlite() -> BundleStore:
            return open_store(f"sqlite:///{root / f'store{next(counter)}.db'}", durability=durability)

        def make_pg() -> BundleStore:
            assert engine is not None
            name = "bench_" + uuid.uuid4().hex[:8]
            with engine.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {name}"))
            sep = "&" if "?" in args.pg_url else "?"
            url = f"{args.pg_url}{sep}options=-csearch_path%3D{name}"
            return open_store(url, durability=durability, payload_dir=root / name)

        for tag in range(args.repeat):
            best(results, minimal, bench_raw(root, args.count, False, sync, tag))
            best(results, same, bench_raw(root, args.count, True, sync, tag))
            best(results, ours, bench_store(make_sqlite, args.count, tag))
            if engine is not None:
                best(results, pg, bench_store(make_pg, args.count, tag))
        if engine is not None:
            with engine.begin() as conn:
                for (name,) in conn.execute(text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench_%'")):
                    conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
            engine.dispose()
        else:
            print("PostgreSQL: skipped (no --pg-url and no DTN_TEST_PG_URL)")
    columns = [f"add/{g}" for g in GROUPS] + ["read", "delete/100", "query100"]
    print(f"{'bundles/s':<28}" + "".join(f"{c:>14}" for c in columns))
    for name, rates in results.items():
        print(f"{name:<28}" + "".join(f"{rates[c]:>14,.0f}" if c in rates else f"{'-':>14}" for c in columns))
    for group in GROUPS:
        key = f"add/{group}"
        print(
            f"add+commit group {group:>3}: SQLite store = {results[ours][key] / results[minimal][key]:6.1%} of raw "
            f"sqlite3 (key+blob), {results[ours][key] / results[same][key]:6.1%} of raw sqlite3 (same schema)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
