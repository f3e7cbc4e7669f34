"""The durable bundle store on SQLAlchemy 2 Core: SQLite by default (WAL), PostgreSQL by URL.

``open_store("sqlite:///var/dtn/store.db")`` or ``open_store("postgresql+psycopg://user@host/db")``.
Every change goes into one open transaction; ``commit()`` ends it (group commit), so a node acknowledges a
batch of bundles after one sync. Bundles above ``large_payload_bytes`` are files beside the database (see
``payloads``), streamed in and out. Opening a store recovers from a crash and reports what it did.

Durability levels:

* ``Durability.PROCESS_CRASH``: a returned ``commit()`` survives the death of this process (SQLite WAL with
  ``synchronous=NORMAL``; PostgreSQL ``synchronous_commit=off``; payload files renamed into place unsynced).
* ``Durability.POWER_LOSS``: it also survives an OS crash or power cut (SQLite ``synchronous=FULL``;
  PostgreSQL ``synchronous_commit=on``; the payload files of a commit and their directory fsynced, once per
  commit, before the rows pointing to them are committed).

A single process owns a store (for several nodes in one PostgreSQL database, give each its own schema, e.g.
``...?options=-csearch_path%3Dnode4``).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import itertools
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    inspect,
    literal_column,
    make_url,
    select,
    update,
)
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from dtn.bundle.ids import BundleId
from dtn.errors import StoreError, StoreFull
from dtn.storage import schema
from dtn.storage.base import (
    BundleMeta,
    Constraint,
    RecoveryReport,
    check_new_bundle,
    fragment_order_key,
    quota_message,
)
from dtn.storage.payloads import PayloadFiles, os_error_message
from dtn.storage.schema import bundles, is_held
from dtn.storage.statements import NO_LIMIT, Prepared, Statements

logger = logging.getLogger(__name__)

#: Bundles larger than this many bytes are stored as files (when the store has a payload directory).
DEFAULT_LARGE_PAYLOAD_BYTES = 256 * 1024
#: Bytes of bundle files that ``add`` leaves in memory for ``commit`` to write (beyond: written at once), and the
#: largest file left so (a larger one is written at once: its bytes need not stay in memory until the commit).
MAX_UNWRITTEN_BYTES = 32 * 1024 * 1024
MAX_UNWRITTEN_FILE_BYTES = 4 * 1024 * 1024


class Durability(StrEnum):
    """What a returned ``commit()`` survives."""

    PROCESS_CRASH = "process-crash"
    POWER_LOSS = "power-loss"


def _meta_from_row(row: Sequence[Any]) -> BundleMeta:
    return BundleMeta(
        id=BundleId.parse(row[0]),
        destination=row[1],
        expiry_dtn_ms=row[3],
        size_bytes=row[4],
        constraints=Constraint(row[6]),
        priority=row[5],
        next_hop=row[2],
    )


def open_store(
    url: str,
    *,
    durability: Durability | str = Durability.PROCESS_CRASH,
    quota_bytes: int | None = None,
    payload_dir: str | Path | None = None,
    large_payload_bytes: int = DEFAULT_LARGE_PAYLOAD_BYTES,
    dtn_ms: int | None = None,
) -> SqlBundleStore:
    """Open (creating if needed) the store at ``url`` and recover it.

    ``payload_dir`` defaults to ``<database file>.payloads`` for SQLite files; without one (in-memory SQLite,
    PostgreSQL unless given) large bundles are stored in the database. ``dtn_ms`` (the current DTN time), when
    given, purges bundles and tombstones that expired while the node was down. Raises ``StoreError`` with what
    to do when the store cannot be opened.
    """
    try:
        level = Durability(durability)
    except ValueError:
        choices = ", ".join(d.value for d in Durability)
        raise StoreError(f"unknown store durability {durability!r}: choose one of {choices}") from None
    if quota_bytes is not None and quota_bytes < 0:
        raise StoreError(f"store quota must not be negative, got {quota_bytes}")
    if large_payload_bytes < 0:
        raise StoreError(f"large_payload_bytes must not be negative, got {large_payload_bytes}")
    engine = _make_engine(url, level)
    payload_path = Path(payload_dir) if payload_dir is not None else _default_payload_dir(engine)
    payloads = PayloadFiles(payload_path, sync=level is Durability.POWER_LOSS) if payload_path else None
    store = SqlBundleStore(engine, payloads, quota_bytes=quota_bytes, large_payload_bytes=large_payload_bytes)
    store.commit_waits_for_disk = level is Durability.POWER_LOSS or engine.dialect.name != "sqlite"
    try:
        store._open(dtn_ms)
    except BaseException:
        store.close()
        raise
    return store


def _make_engine(url: str, level: Durability) -> Engine:
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise StoreError(
            f"bad store URL {url!r}: {exc}; use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from exc
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported store database {backend!r} in {url!r}: use sqlite:/// or postgresql+psycopg://")
    # The store's one connection is used by the node's thread and by the thread that commits (see
    # ``SqlBundleStore.thread_safe_commit``); the store serialises them with its own lock.
    connect_args = {"check_same_thread": False} if backend == "sqlite" else {}
    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except ImportError as exc:
        raise StoreError(
            f"the database driver for {url!r} is not installed ({exc}); for PostgreSQL install the pg extra "
            "(pip install 'dtn[pg]')"
        ) from exc
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise StoreError(
            f"bad store URL {url!r}: {exc}; use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from exc
    name = engine.dialect.name
    if name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            parent = Path(database).resolve().parent
            if not parent.is_dir():
                raise StoreError(f"the store directory {parent} does not exist: create it or fix the store URL")
        synchronous = "FULL" if level is Durability.POWER_LOSS else "NORMAL"

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                if database and database != ":memory:":
                    cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA synchronous={synchronous}")
                cursor.execute("PRAGMA busy_timeout=5000")
            finally:
                cursor.close()

    elif name == "postgresql":
        setting = "on" if level is Durability.POWER_LOSS else "off"

        @event.listens_for(engine, "connect")
        def _pg_settings(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"SET synchronous_commit TO {setting}")
            finally:
                cursor.close()
            dbapi_connection.commit()

    else:
        raise StoreError(f"unsupported store database {name!r} in {url!r}: use sqlite:/// or postgresql+psycopg://")
    return engine


def _default_payload_dir(engine: Engine) -> Path | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    return path.with_name(path.name + ".payloads")


class _Result:
    """What a statement returned, read while the store's lock was held."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


class SqlBundleStore:
    """``BundleStore`` on SQLite or PostgreSQL. Create it with ``open_store``.

    Opening (schema, migrations, recovery) goes through a SQLAlchemy ``Connection``; after that every
    statement is a Core statement compiled once (``statements``) and run on the driver's cursor.

    ``commit()`` may run in another thread than the other calls (``thread_safe_commit``): a lock serialises the
    statements, the commit, and the writing of a bundle file with its row, so a call made while a commit runs
    waits for it. ``commit_waits_for_disk`` says whether a commit waits for the disk or the server (fsync in
    power-loss mode, a round trip to PostgreSQL), i.e. whether running it in a thread is worth a thread switch.
    In power-loss mode, the bundle files written since the last commit are fsynced (with their directory, once)
    by ``commit()`` itself, before the rows pointing to them are committed.
    """

    #: ``commit()`` may be called from a worker thread while the owner's thread waits or uses the store.
    thread_safe_commit = True

    def __init__(
        self,
        engine: Engine,
        payloads: PayloadFiles | None,
        *,
        quota_bytes: int | None,
        large_payload_bytes: int,
    ) -> None:
        self._engine = engine
        self._payloads = payloads
        self._quota_bytes = quota_bytes
        self._large_payload_bytes = large_payload_bytes
        self._where = engine.url.render_as_string(hide_password=True)
        self._conn: Connection | None = None
        self._db: Any = None
        self._cur: Any = None
        self._db_errors: tuple[type[BaseException], ...] = (SQLAlchemyError, engine.dialect.loaded_dbapi.Error)
        self._sql = Statements(engine.dialect)
        self._bytes_used = 0
        self._count = 0
        self._new_files: list[str] = []
        self._unlink_after_commit: list[str] = []
        # Files of the open transaction still in memory: commit() writes them (in its thread) before the rows.
        self._unwritten: dict[str, bytes] = {}
        self._unwritten_bytes = 0
        self._lock = threading.RLock()
        #: A commit waits for the disk or a server (see the class docstring); set by ``open_store``.
        self.commit_waits_for_disk = True
        self.recovery = RecoveryReport()

    # -- opening, recovery, errors -------------------------------------------------------------------------

    @property
    def payload_dir(self) -> Path | None:
        """Where large bundles live as files (None: in the database)."""
        return None if self._payloads is None else self._payloads.directory

    @property
    def payload_spares(self) -> frozenset[str]:
        """The removed bundle files kept in ``payload_dir`` to be written over (see ``PayloadFiles``)."""
        return frozenset() if self._payloads is None else self._payloads.spares

    def _open(self, dtn_ms: int | None) -> None:
        try:
            conn = self._conn = self._engine.connect()
            migrated = self._ensure_schema(conn)
            conn.commit()
            report = self._recover(conn, dtn_ms)
            self.recovery = dataclasses.replace(report, migrated_from_version=migrated)
            conn.commit()
            self._db = conn.connection.dbapi_connection
            self._cur = self._db.cursor()
            self._refresh_totals()
        except self._db_errors as exc:
            raise self._error(exc, "opening the store") from exc
        if not self.recovery.clean:
            logger.warning("%s: %s", self._where, self.recovery)
        else:
            logger.info("%s: %s", self._where, self.recovery)

    def _ensure_schema(self, conn: Connection) -> int | None:
        inspector = inspect(conn)
        if not inspector.has_table(schema.schema_version.name):
            if inspector.has_table(bundles.name):
                raise StoreError(
                    f"the store {self._where} has bundles but no schema version table: it was not written by "
                    "dtn or is damaged; move it aside and start with an empty store"
                )
            schema.metadata.create_all(conn)
            conn.execute(schema.schema_version.insert().values(version=schema.SCHEMA_VERSION))
            return None
        versions = [int(v) for v in conn.execute(select(schema.schema_version.c.version)).scalars()]
        if len(versions) != 1:
            raise StoreError(
                f"the store {self._where} has {len(versions)} schema version rows (expected 1): it is damaged; "
                "move it aside and start with an empty store"
            )
        version = versions[0]
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"the store {self._where} was written by a newer dtn (schema version {version}; this dtn "
                f"understands up to {schema.SCHEMA_VERSION}): upgrade dtn, or point it at another store"
            )
        if version == schema.SCHEMA_VERSION:
            return None
        start = version
        while version < schema.SCHEMA_VERSION:
            migration = schema.MIGRATIONS.get(version)
            if migration is None:
                raise StoreError(
                    f"the store {self._where} has schema version {version}, which this dtn cannot migrate: "
                    "open it with an older dtn to forward its bundles, then start with an empty store"
                )
            migration(conn)
            version += 1
        conn.execute(update(schema.schema_version).values(version=version))
        return start

    def _recover(self, conn: Connection, dtn_ms: int | None) -> RecoveryReport:
        file_col = bundles.c.payload_file
        referenced: dict[str, str] = {
            row[0]: row[1] for row in conn.execute(select(file_col, bundles.c.bundle_key).where(file_col.is_not(None)))
        }
        orphans: set[str] = set()
        temps: list[str] = []
        missing: list[BundleId] = []
        if self._payloads is None:
            if referenced:
                raise StoreError(
                    f"the store {self._where} keeps {len(referenced)} bundle(s) in files but no payload "
                    "directory was given: open it with the payload directory it was written with"
                )
        else:
            finished, temps = self._payloads.listing()
            orphans = finished - set(referenced)
            for name in sorted(set(referenced) - finished):
                bundle_id = BundleId.parse(referenced[name])
                logger.warning("bundle %s dropped: its payload file %s is missing", bundle_id, name)
                missing.append(bundle_id)
                conn.execute(delete(bundles).where(file_col == name))
        expired = tombstones = 0
        expired_files: list[str] = []
        if dtn_ms is not None:
            expired_where = (is_held(), bundles.c.expiry_dtn_ms < dtn_ms)
            expired_rows = conn.execute(select(bundles.c.seq, file_col).where(*expired_where)).all()
            expired_files = [row[1] for row in expired_rows if row[1] is not None]
            expired = len(expired_rows)
            if expired:
                conn.execute(delete(bundles).where(*expired_where))
            purge = delete(bundles).where(
                bundles.c.constraints == literal_column("0"), bundles.c.expiry_dtn_ms < dtn_ms
            )
            tombstones = int(conn.execute(purge).rowcount)
        conn.commit()
        if self._payloads is not None:
            self._payloads.remove_temps(temps)
            self._payloads.remove(sorted(orphans) + expired_files, spare=False)
        return RecoveryReport(
            orphan_files_removed=len(orphans),
            temp_files_removed=len(temps),
            rows_missing_file=tuple(missing),
            expired_purged=expired,
            tombstones_purged=tombstones,
        )

    def _x(self, prepared: Prepared, params: Mapping[str, Any]) -> _Result:
        """Run a prepared statement on the driver's cursor; its rows and row count."""
        with self._lock:
            cur = self._cur
            if cur is None:
                raise StoreError(f"the bundle store {self._where} is closed")
            cur.execute(prepared.sql, prepared.params(params))
            return _Result(cur.fetchall() if cur.description is not None else [], cur.rowcount)

    def _refresh_totals(self) -> None:
        row = self._x(self._sql.totals, {}).fetchone()
        self._count, self._bytes_used = int(row[0]), int(row[1])

    def _error(self, exc: BaseException, action: str) -> StoreError:
        """Discard the uncommitted work and describe the failure with what to do about it."""
        self._discard()
        orig = getattr(exc, "orig", None) or exc
        text = str(orig).lower()
        where = self._where
        lost = "Changes since the last commit were discarded."
        if "full" in text or "no space" in text:
            message = (
                f"{action}: the disk holding the store {where} is full; free space on it or lower the store "
                f"quota, then retry. {lost}"
            )
        elif "not a database" in text or "malformed" in text or "corrupt" in text:
            message = (
                f"{action}: the store database {where} is corrupt; stop dtnd, move the file aside (keep it: "
                "`sqlite3 FILE .recover` may salvage bundles) and start with an empty store or a backup"
            )
        elif "locked" in text or "busy" in text:
            message = f"{action}: the store {where} is in use by another process; stop it or use another store"
        elif "disk i/o error" in text or "readonly" in text or "read-only" in text:
            message = f"{action}: the disk holding the store {where} failed or is read-only; check it. {lost}"
        elif "connect" in text or "connection" in text or "server closed" in text or "terminating" in text:
            message = f"{action}: cannot reach the store database {where}: {orig}; is the server running? {lost}"
        else:
            message = f"{action} failed on the store {where}: {orig}. {lost}"
        return StoreError(message)

    def _discard(self) -> None:
        """Roll back the open transaction and forget what it did (quietly: used on the error path)."""
        with self._lock:
            self._discard_locked()

    def _discard_locked(self) -> None:
        try:
            if self._db is not None:
                self._db.rollback()
            elif self._conn is not None:
                self._conn.rollback()
        except self._db_errors:
            logger.exception("rollback of the store %s failed", self._where)
        if self._payloads is not None and self._new_files:
            try:
                self._payloads.remove(self._new_files)
            except (OSError, StoreError):
                logger.exception("could not remove uncommitted bundle files (recovery will)")
        self._new_files.clear()
        self._unlink_after_commit.clear()
        if self._payloads is not None and self._unwritten:
            self._payloads.give_back(self._unwritten)
        self._unwritten.clear()
        self._unwritten_bytes = 0
        if self._cur is not None:
            try:
                self._refresh_totals()
            except self._db_errors:
                logger.exception("cannot recount the store %s", self._where)

    # -- the BundleStore protocol ----------------------------------------------------------------------------

    @property
    def quota_bytes(self) -> int | None:
        return self._quota_bytes

    @property
    def bytes_used(self) -> int:
        return self._bytes_used

    def __len__(self) -> int:
        return self._count

    def __contains__(self, bundle_id: object) -> bool:
        if not isinstance(bundle_id, BundleId):
            return False
        return self.get(bundle_id) is not None

    def is_known(self, bundle_id: BundleId) -> bool:
        try:
            return self._x(self._sql.known, {"k": str(bundle_id)}).fetchone() is not None
        except self._db_errors as exc:
            raise self._error(exc, "looking up a bundle") from exc

    def _check_quota(self, meta: BundleMeta) -> None:
        quota = self._quota_bytes
        if quota is not None and self._bytes_used + meta.size_bytes > quota:
            raise StoreFull(quota_message(self._bytes_used, quota, meta.size_bytes, meta.id))

    def add(self, meta: BundleMeta, raw: bytes) -> bool:
        check_new_bundle(meta, len(raw))
        with self._lock:
            return self._add(meta, raw)

    def _add(self, meta: BundleMeta, raw: bytes) -> bool:
        if self._payloads is not None and len(raw) > self._large_payload_bytes:
            if len(raw) > MAX_UNWRITTEN_FILE_BYTES or self._unwritten_bytes + len(raw) > MAX_UNWRITTEN_BYTES:
                if self.is_known(meta.id):  # written now: not for a duplicate
                    return False
                self._check_quota(meta)
                return self._insert_file(meta, self._payloads, raw, ())
            if not self._room_for(meta):
                return False
            name = self._payloads.take_name()  # a duplicate's insert does nothing: the name is given back
            inserted = False
            try:
                inserted = self._insert_row(meta, None, name)
            finally:
                if not inserted:
                    self._payloads.give_back([name])
            if not inserted:
                return False
            self._unwritten[name] = bytes(raw)
            self._unwritten_bytes += len(raw)
            return True
        if not self._room_for(meta):
            return False
        return self._insert_row(meta, bytes(raw), None)

    def _room_for(self, meta: BundleMeta) -> bool:
        """Whether ``meta`` fits the quota; False for a known bundle that would not (``add`` says False for a
        duplicate, not ``StoreFull``); ``StoreFull`` for a new one. Known or not is looked up only then: an
        insert of a duplicate does nothing."""
        quota = self._quota_bytes
        if quota is not None and self._bytes_used + meta.size_bytes > quota:
            if self.is_known(meta.id):
                return False
            self._check_quota(meta)
        return True

    def add_stream(self, meta: BundleMeta, chunks: Iterable[bytes | bytearray | memoryview]) -> bool:
        check_new_bundle(meta, None)
        with self._lock:
            return self._add_stream(meta, chunks)

    def _add_stream(self, meta: BundleMeta, chunks: Iterable[bytes | bytearray | memoryview]) -> bool:
        if self.is_known(meta.id):
            return False
        self._check_quota(meta)
        stream: Iterator[bytes | bytearray | memoryview] = iter(chunks)
        head: list[bytes | bytearray | memoryview] = []  # joined once, or written to the file as they are
        size = 0
        spill = self._payloads is not None and meta.size_bytes > self._large_payload_bytes
        if not spill:
            for chunk in stream:
                head.append(chunk)
                size += len(chunk)
                if self._payloads is not None and size > self._large_payload_bytes:
                    spill = True
                    break
        if spill and self._payloads is not None:
            return self._insert_file(meta, self._payloads, b"", itertools.chain(head, stream))
        check_new_bundle(meta, size)
        return self._insert_row(meta, b"".join(head), None)

    def add_file(self, meta: BundleMeta, path: Path) -> bool:
        """``add`` for a bundle already written to the file ``path`` (a received bundle spooled to disk): a file
        in the payload directory is renamed into place (no copy), any other is copied. False (and the file is
        left where it is) for a duplicate. The file must be complete and ``meta.size_bytes`` long."""
        check_new_bundle(meta, None)
        with self._lock:
            payloads = self._payloads
            if payloads is None or path.parent.resolve() != payloads.directory.resolve():
                with open(path, "rb") as f:
                    return self._add_stream(meta, iter(functools.partial(f.read, 1 << 20), b""))
            if self.is_known(meta.id):
                return False
            self._check_quota(meta)
            size = path.stat().st_size
            check_new_bundle(meta, size)
            name = payloads.new_name()
            try:
                os.replace(path, payloads.directory / name)
            except OSError as exc:
                raise StoreError(os_error_message(exc, f"cannot move {path} into the store")) from exc
            self._new_files.append(name)
            return self._insert_row(meta, None, name)

    def _insert_file(
        self, meta: BundleMeta, payloads: PayloadFiles, head: bytes, rest: Iterable[bytes | bytearray | memoryview]
    ) -> bool:
        name, size = payloads.write(head, rest)
        self._new_files.append(name)
        if size != meta.size_bytes:
            self._new_files.remove(name)
            payloads.remove([name])
            check_new_bundle(meta, size)
        return self._insert_row(meta, None, name)

    def _insert_row(self, meta: BundleMeta, payload: bytes | None, payload_file: str | None) -> bool:
        bundle_id = meta.id
        row = {
            "bundle_key": str(bundle_id),
            "whole_key": str(bundle_id.whole()) if bundle_id.fragment_offset is not None else None,
            "destination": meta.destination,
            "next_hop": meta.next_hop,
            "expiry_dtn_ms": meta.expiry_dtn_ms,
            "size_bytes": meta.size_bytes,
            "priority": meta.priority,
            "constraints": int(meta.constraints),
            "payload": payload,
            "payload_file": payload_file,
        }
        try:
            inserted = self._x(self._sql.insert, row).rowcount
        except self._db_errors as exc:
            raise self._error(exc, f"storing bundle {meta.id}") from exc
        if not inserted:
            return False
        self._bytes_used += meta.size_bytes
        self._count += 1
        return True

    def get(self, bundle_id: BundleId) -> BundleMeta | None:
        try:
            row = self._x(self._sql.meta, {"k": str(bundle_id)}).fetchone()
        except self._db_errors as exc:
            raise self._error(exc, f"reading bundle {bundle_id}") from exc
        return None if row is None else _meta_from_row(row)

    def _payload(self, bundle_id: BundleId) -> tuple[bytes | None, str | None]:
        try:
            row = self._x(self._sql.payload, {"k": str(bundle_id)}).fetchone()
        except self._db_errors as exc:
            raise self._error(exc, f"reading bundle {bundle_id}") from exc
        if row is None:
            raise KeyError(f"bundle {bundle_id} is not in the store")
        return row[0], row[1]

    def raw(self, bundle_id: BundleId) -> bytes:
        with self._lock:
            payload, name = self._payload(bundle_id)
            if name is not None and self._payloads is not None:
                unwritten = self._unwritten.get(name)
                return self._payloads.read(name) if unwritten is None else unwritten
        return bytes(payload or b"")

    def open_raw(self, bundle_id: BundleId) -> BinaryIO:
        with self._lock:
            payload, name = self._payload(bundle_id)
            if name is not None and self._payloads is not None:
                unwritten = self._unwritten.get(name)
                return self._payloads.open(name) if unwritten is None else io.BytesIO(unwritten)
        return io.BytesIO(payload or b"")

    def set_constraints(self, bundle_id: BundleId, constraints: Constraint) -> bool:
        with self._lock:
            return self._set_constraints(bundle_id, constraints)

    def _set_constraints(self, bundle_id: BundleId, constraints: Constraint) -> bool:
        key = {"k": str(bundle_id)}
        try:
            if constraints:
                return bool(self._x(self._sql.set_constraints, {**key, "new_c": int(constraints)}).rowcount)
            found = self._x(self._sql.tombstone, key).fetchone()
            if found is None:
                return False
            if found[1] is not None:
                self._x(self._sql.forget_file, key)
        except self._db_errors as exc:
            raise self._error(exc, f"updating bundle {bundle_id}") from exc
        self._bytes_used -= int(found[0])
        self._count -= 1
        name = found[1]
        if name is not None:
            unwritten = self._unwritten.pop(name, None)
            if unwritten is None:
                self._unlink_after_commit.append(name)
            else:  # stored and deleted in the same transaction: never written
                self._unwritten_bytes -= len(unwritten)
                if self._payloads is not None:
                    self._payloads.give_back([name])
        return True

    def delete(self, bundle_id: BundleId) -> bool:
        return self.set_constraints(bundle_id, Constraint.NONE)

    def set_next_hop(self, bundle_id: BundleId, next_hop: str | None) -> bool:
        try:
            return bool(self._x(self._sql.set_next_hop, {"k": str(bundle_id), "hop": next_hop}).rowcount)
        except self._db_errors as exc:
            raise self._error(exc, f"updating bundle {bundle_id}") from exc

    def _listing(self, prepared: Prepared, params: dict[str, Any], limit: int | None) -> list[BundleMeta]:
        params["lim"] = NO_LIMIT if limit is None else max(limit, 0)
        try:
            rows = self._x(prepared, params).fetchall()
        except self._db_errors as exc:
            raise self._error(exc, "listing bundles") from exc
        return [_meta_from_row(row) for row in rows]

    def with_constraint(self, constraint: Constraint, limit: int | None = None) -> list[BundleMeta]:
        prepared = self._sql.with_constraint(constraint)
        return [] if prepared is None else self._listing(prepared, {}, limit)

    def by_destination(self, destination: str, limit: int | None = None) -> list[BundleMeta]:
        return self._listing(self._sql.by_destination, {"dest": destination}, limit)

    def by_next_hop(self, next_hop: str, limit: int | None = None) -> list[BundleMeta]:
        return self._listing(self._sql.by_next_hop, {"hop": next_hop}, limit)

    def expiring_before(self, dtn_ms: int, limit: int | None = None) -> list[BundleMeta]:
        return self._listing(self._sql.expiring_before, {"t": dtn_ms}, limit)

    def fragments_of(self, whole_id: BundleId) -> list[BundleMeta]:
        try:
            rows = self._x(self._sql.fragments, {"whole": str(whole_id.whole())}).fetchall()
        except self._db_errors as exc:
            raise self._error(exc, "listing fragments") from exc
        return sorted((_meta_from_row(row) for row in rows), key=lambda m: fragment_order_key(m.id))

    def purge_tombstones(self, dtn_ms: int) -> int:
        try:
            return int(self._x(self._sql.purge_tombstones, {"t": dtn_ms}).rowcount)
        except self._db_errors as exc:
            raise self._error(exc, "purging tombstones") from exc

    def commit(self) -> None:
        with self._lock:
            if self._db is None:
                raise StoreError(f"the bundle store {self._where} is closed")
            payloads = self._payloads
            try:
                if payloads is not None and (self._unwritten or (payloads.sync and self._new_files)):
                    # the files first (written, synced): a committed row never lacks its file
                    unwritten = dict(self._unwritten)
                    written = list(self._new_files)
                    self._new_files.extend(unwritten)  # removed again if the commit fails
                    self._unwritten.clear()
                    self._unwritten_bytes = 0
                    payloads.persist(unwritten, written)
            except StoreError:
                self._discard()  # its message says what to do and that the work since the last commit is lost
                raise
            try:
                self._db.commit()
            except self._db_errors as exc:
                raise self._error(exc, "committing the store") from exc
            self._new_files.clear()
            names, self._unlink_after_commit = self._unlink_after_commit, []
        if names and payloads is not None:
            try:
                payloads.remove(names)
            except (OSError, StoreError):
                logger.exception("could not remove deleted bundle files (recovery will)")

    def rollback(self) -> None:
        """Discard every change since the last commit."""
        self._discard()

    def close(self) -> None:
        """Release the store; uncommitted changes are discarded."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._discard()
            if self._cur is not None:
                self._cur.close()
            self._cur = None
            self._db = None
            self._conn.close()
            self._conn = None
        if self._payloads is not None:
            self._payloads.close()
        self._engine.dispose()

    def __enter__(self) -> SqlBundleStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
