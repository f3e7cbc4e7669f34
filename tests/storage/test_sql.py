"""What only a durable store does: commit and reopen, recovery, schema versions, errors that say what to do."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from dtn.errors import StoreError
from dtn.storage.base import Constraint
from dtn.storage.sql import Durability, SqlBundleStore, open_store
from tests.storage.conformance import meta, payload, put
from tests.storage.conftest import SQL_BACKENDS

DP = Constraint.DISPATCH_PENDING


def reopen(url: str, tmp_path: Path, **kwargs: object) -> SqlBundleStore:
    if url.startswith("postgresql"):
        kwargs.setdefault("payload_dir", tmp_path / "pg-payloads")
    return open_store(url, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
@pytest.mark.parametrize("durability", list(Durability))
def test_committed_work_survives_close_and_uncommitted_does_not(
    store_url: str, tmp_path: Path, durability: Durability
) -> None:
    store = reopen(store_url, tmp_path, durability=durability, large_payload_bytes=1000)
    kept = [meta(n, size=50 if n % 2 else 5000) for n in range(6)]
    for m in kept:
        assert put(store, m)
    store.delete(kept[0].id)
    store.set_next_hop(kept[1].id, "ipn:8.0")
    store.commit()
    lost = meta(100, size=5000)
    put(store, lost)
    store.delete(kept[2].id)
    store.close()

    store = reopen(store_url, tmp_path, durability=durability, large_payload_bytes=1000)
    assert store.recovery.clean, str(store.recovery)
    assert store.get(lost.id) is None and not store.is_known(lost.id)
    assert store.is_known(kept[0].id) and kept[0].id not in store
    for m in kept[1:]:
        assert store.raw(m.id) == payload(m.id, m.size_bytes)
    got = store.get(kept[1].id)
    assert got is not None and got.next_hop == "ipn:8.0"
    assert len(store) == 5 and store.bytes_used == sum(m.size_bytes for m in kept[1:])
    store.close()


def bundle_files(store: SqlBundleStore) -> list[str]:
    """The bundle files in a store's payload directory (not the spares kept to be written over)."""
    assert store.payload_dir is not None
    return [name for name in os.listdir(store.payload_dir)
            if not name.startswith(".") and name not in store.payload_spares]


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
def test_rollback_discards_work_and_files(store_url: str, tmp_path: Path) -> None:
    store = reopen(store_url, tmp_path, large_payload_bytes=100)
    put(store, meta(1, size=500))
    store.commit()
    put(store, meta(2, size=500))  # kept in memory until the commit writes it
    streamed = meta(3, size=500)
    assert store.add_stream(streamed, [payload(streamed.id, 500)[:200], payload(streamed.id, 500)[200:]])
    store.delete(meta(1).id)
    assert store.payload_dir is not None
    assert len(bundle_files(store)) == 2  # the committed one and the streamed one
    store.rollback()
    assert meta(1).id in store and not store.is_known(meta(2).id) and not store.is_known(streamed.id)
    assert len(store) == 1 and store.bytes_used == 500
    assert len(bundle_files(store)) == 1
    store.close()


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
def test_payload_files_are_removed_only_after_the_delete_commits(store_url: str, tmp_path: Path) -> None:
    store = reopen(store_url, tmp_path, large_payload_bytes=100)
    put(store, meta(1, size=500))
    store.commit()
    assert store.payload_dir is not None
    store.delete(meta(1).id)
    assert len(bundle_files(store)) == 1, "the delete is not durable yet"
    store.commit()
    assert bundle_files(store) == []
    store.close()


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
def test_recovery_cleans_up_and_reports(store_url: str, tmp_path: Path) -> None:
    store = reopen(store_url, tmp_path, large_payload_bytes=100)
    for n, size in enumerate([500, 500, 50, 50]):
        put(store, meta(n, size=size, expiry=1_000 if n in (1, 2) else 10_000))
    put(store, meta(9, size=50, expiry=500))
    store.delete(meta(9).id)
    store.commit()
    directory = store.payload_dir
    assert directory is not None
    files = sorted(os.listdir(directory))
    store.close()
    # What a crash leaves: an unfinished temp file, a finished file whose row never committed, and
    # (after a power cut at the weaker durability level) a row whose file did not reach the disk.
    (directory / ".tmp-deadbeef").write_bytes(b"partial")
    (directory / ("0" * 32 + ".bundle")).write_bytes(b"orphan")
    victim = next(f for f in files if (directory / f).read_bytes() == payload(meta(0).id, 500))
    (directory / victim).unlink()

    store = reopen(store_url, tmp_path, large_payload_bytes=100, dtn_ms=2_000)
    report = store.recovery
    assert report.temp_files_removed == 1
    assert report.orphan_files_removed == 1
    assert report.rows_missing_file == (meta(0).id,)
    assert report.expired_purged == 2, "bundles 1 (in a file) and 2 expired while the node was down"
    assert report.tombstones_purged == 1
    assert not report.clean
    assert "1 bundle(s) dropped because their payload file was missing" in str(report)
    assert [m.id.sequence for m in store.with_constraint(DP)] == [3]
    assert os.listdir(directory) == [], "the expired bundle's file went with it"
    assert not store.is_known(meta(0).id) and not store.is_known(meta(9).id)
    store.close()
    store = reopen(store_url, tmp_path, large_payload_bytes=100, dtn_ms=2_000)
    assert store.recovery.clean and store.recovery.expired_purged == 0
    store.close()


def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    open_store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE dtn_schema_version SET version = 99")
    with pytest.raises(StoreError, match=r"newer dtn \(schema version 99; this dtn understands up to 1\)"):
        open_store(f"sqlite:///{path}")


def test_foreign_table_without_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE dtn_bundles (x INTEGER)")
    with pytest.raises(StoreError, match="no schema version table"):
        open_store(f"sqlite:///{path}")


def test_corrupt_database_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not an SQLite database, just some bytes " * 100)
    with pytest.raises(StoreError, match="corrupt.*move the file aside"):
        open_store(f"sqlite:///{path}")


def test_disk_full_says_what_to_do_and_keeps_committed_work(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = open_store(f"sqlite:///{path}")
    put(store, meta(1, size=100))
    store.commit()
    # SQLite's own "database or disk is full" (SQLITE_FULL), provoked by a page limit on this connection.
    store._db.execute("PRAGMA max_page_count = 8")
    with pytest.raises(StoreError, match="full; free space"):
        for n in range(2, 200):
            put(store, meta(n, size=4000))
        store.commit()
    assert [m.id.sequence for m in store.with_constraint(DP)] == [1]
    assert len(store) == 1 and store.bytes_used == 100
    store.close()


def test_payload_file_write_failure_is_a_store_error(tmp_path: Path) -> None:
    """A file-size limit (EFBIG, as a full disk would give ENOSPC) while writing a large bundle."""
    code = f"""
import resource, signal
from dtn.errors import StoreError
from dtn.storage.sql import open_store
from tests.storage.conformance import meta, payload
store = open_store("sqlite:///{tmp_path / "store.db"}", large_payload_bytes=100)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
m = meta(1, size=60_000)
try:
    store.add(m, payload(m.id, 60_000))
    store.commit()  # the file is written at the latest by the commit that holds its row
except StoreError as exc:
    print("StoreError:", exc)
print(len(store), store.bytes_used, sorted(p.name for p in store.payload_dir.iterdir()))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "StoreError: cannot write a bundle file" in done.stdout
    assert "no space left" in done.stdout
    assert done.stdout.strip().endswith("0 0 []")


def test_bad_options_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unknown store durability 'fast'"):
        open_store(f"sqlite:///{tmp_path / 's.db'}", durability="fast")
    with pytest.raises(StoreError, match="bad store URL"):
        open_store("no-such-scheme://x")
    with pytest.raises(StoreError, match="bad store URL"):
        open_store("not a url")
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'missing' / 's.db'}")
    with pytest.raises(StoreError, match="unsupported store database"):
        open_store("mysql+pymysql://u@127.0.0.1/db")


def test_closed_store_raises_store_error(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.commit()
    with pytest.raises(StoreError, match="closed"):
        store.get(meta(1).id)


def test_every_query_uses_an_index(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    statements = store._sql
    queries = [
        (statements.known, {"k": "x"}),
        (statements.meta, {"k": "x"}),
        (statements.by_destination, {"dest": "x", "lim": 5}),
        (statements.by_next_hop, {"hop": "x", "lim": 5}),
        (statements.expiring_before, {"t": 5, "lim": 5}),
        (statements.fragments, {"whole": "x"}),
        (statements.purge_tombstones, {"t": 5}),
    ]
    queries += [(statements.with_constraint(flag), {"lim": 5}) for flag in Constraint if flag]  # type: ignore[misc]
    for prepared, params in queries:
        assert prepared is not None
        plan = store._db.execute("EXPLAIN QUERY PLAN " + prepared.sql, prepared.params(params)).fetchall()
        details = " ".join(row[-1] for row in plan)
        assert "USING INDEX" in details or "USING COVERING INDEX" in details, (prepared.sql, details)
        assert "TEMP B-TREE" not in details, (prepared.sql, details)
    store.close()


def test_sqlite_uses_wal_and_the_chosen_sync_level(tmp_path: Path) -> None:
    for durability, level in [(Durability.PROCESS_CRASH, 1), (Durability.POWER_LOSS, 2)]:
        store = open_store(f"sqlite:///{tmp_path / (durability.value + '.db')}", durability=durability)
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == level
        assert store.commit_waits_for_disk is (durability is Durability.POWER_LOSS)  # no fsync: commit inline
        store.close()


def test_postgresql_sync_level(pg_url: str, tmp_path: Path) -> None:
    for durability, setting in [(Durability.PROCESS_CRASH, "off"), (Durability.POWER_LOSS, "on")]:
        store = open_store(pg_url, durability=durability, payload_dir=tmp_path)
        cur = store._db.cursor()
        cur.execute("SHOW synchronous_commit")
        assert cur.fetchone()[0] == setting
        assert store.commit_waits_for_disk  # a round trip to the server
        store.close()


def test_postgresql_stores_in_separate_schemas_are_independent(pg_url: str, tmp_path: Path) -> None:
    base = pg_url.split("?")[0]
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS other_node"))
    try:
        a = open_store(pg_url, payload_dir=tmp_path / "a")
        b = open_store(base + "?options=-csearch_path%3Dother_node", payload_dir=tmp_path / "b")
        put(a, meta(1))
        a.commit()
        assert not b.is_known(meta(1).id)
        a.close()
        b.close()
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA other_node CASCADE"))
        engine.dispose()


def _generated(total: int, chunk: int) -> Iterator[bytes]:
    block = bytes(range(256)) * (chunk // 256)
    for _ in range(total // chunk):
        yield block


def test_large_bundle_is_streamed_not_held_in_memory(tmp_path: Path) -> None:
    total, chunk = 64 << 20, 1 << 20
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    m = meta(1, size=total)
    tracemalloc.start()
    try:
        assert store.add_stream(m, _generated(total, chunk))
        store.commit()
        seen = 0
        with store.open_raw(m.id) as f:
            while block := f.read(chunk):
                assert block[:4] == b"\x00\x01\x02\x03"
                seen += len(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == total
    assert peak < 8 << 20, f"peak {peak} bytes: the bundle was held in memory"
    store.close()


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
def test_commit_in_a_worker_thread_while_the_owner_keeps_using_the_store(store_url: str, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = reopen(store_url, tmp_path, durability=Durability.POWER_LOSS, large_payload_bytes=1000)
    assert store.thread_safe_commit and store.commit_waits_for_disk
    added = [meta(n, size=5000 if n % 3 == 0 else 50) for n in range(40)]
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for m in added:
            assert put(store, m)  # while the previous commit may be running in the worker
            assert store.raw(m.id) == payload(m.id, m.size_bytes)
            if m.id.sequence % 4 == 1:
                store.delete(added[m.id.sequence - 1].id)
            if pending is not None:
                pending.result()
            pending = pool.submit(store.commit)
        assert pending is not None
        pending.result()
    store.close()

    store = reopen(store_url, tmp_path, durability=Durability.POWER_LOSS, large_payload_bytes=1000)
    assert store.recovery.clean, str(store.recovery)
    kept = [m for m in added if m.id.sequence % 4 != 0]
    assert len(store) == len(kept) and store.bytes_used == sum(m.size_bytes for m in kept)
    for m in kept:
        assert store.raw(m.id) == payload(m.id, m.size_bytes)
    assert store.payload_dir is not None
    assert len(bundle_files(store)) == sum(1 for m in kept if m.size_bytes > 1000)
    store.close()


@pytest.mark.parametrize("store_url", SQL_BACKENDS, indirect=True)
def test_a_bundle_file_is_written_by_the_commit_that_holds_its_row(store_url: str, tmp_path: Path) -> None:
    store = reopen(store_url, tmp_path, durability=Durability.POWER_LOSS, large_payload_bytes=100)
    assert store.payload_dir is not None
    first, second = meta(1, size=5000), meta(2, size=5000)
    assert put(store, first)
    assert bundle_files(store) == []  # in memory until the commit
    assert store.raw(first.id) == payload(first.id, 5000)
    with store.open_raw(first.id) as stream:
        assert stream.read() == payload(first.id, 5000)
    store.commit()
    assert len(bundle_files(store)) == 1
    assert put(store, second) and store.delete(second.id)  # stored and deleted in one transaction
    store.commit()
    assert len(bundle_files(store)) == 1 and store.raw(first.id) == payload(first.id, 5000)
    assert not put(store, first)  # still a duplicate
    store.close()
    store = reopen(store_url, tmp_path, durability=Durability.POWER_LOSS, large_payload_bytes=100)
    assert store.recovery.clean and store.raw(first.id) == payload(first.id, 5000) and len(store) == 1
    store.close()
