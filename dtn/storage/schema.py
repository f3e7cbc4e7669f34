"""The SQL schema of the bundle store (SQLAlchemy Core), its version, and migrations.

One table holds bundles and tombstones: a row whose ``constraints`` is 0 is a tombstone (payload cleared),
so the duplicate check is one unique-key probe. ``seq`` is the arrival order. Every query of the store has an
index: a partial index per retention flag (ordered by priority, then arrival), destination, next hop, expiry,
and the whole-bundle key of fragments.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    literal_column,
)

from dtn.storage.base import Constraint

#: The schema version this code writes. Bump it and add a migration when the schema grows.
SCHEMA_VERSION = 1

metadata = MetaData()

bundles = Table(
    "dtn_bundles",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("bundle_key", Text, nullable=False, unique=True),
    Column("whole_key", Text, nullable=True),
    Column("destination", Text, nullable=False),
    Column("next_hop", Text, nullable=True),
    Column("expiry_dtn_ms", BigInteger, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("constraints", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=True),
    Column("payload_file", Text, nullable=True),
)

schema_version = Table(
    "dtn_schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)


def has_flag(flag: Constraint) -> ColumnElement[bool]:
    """``(constraints & FLAG) != 0`` with literal constants, so that it matches the partial index exactly."""
    anded = bundles.c.constraints.op("&")(literal_column(str(int(flag))))
    return anded != literal_column("0")


def is_held() -> ColumnElement[bool]:
    """Not a tombstone."""
    return bundles.c.constraints != literal_column("0")


def _partial(name: str, where: ColumnElement[bool], *columns: ColumnElement[object]) -> Index:
    return Index(name, *columns, sqlite_where=where, postgresql_where=where)


_order = (bundles.c.priority.desc(), bundles.c.seq)

for _flag in Constraint:
    if _flag:
        _partial(f"ix_dtn_bundles_flag_{int(_flag)}", has_flag(_flag), *_order)

_partial("ix_dtn_bundles_destination", is_held(), bundles.c.destination, *_order)
_partial("ix_dtn_bundles_next_hop", bundles.c.next_hop.is_not(None), bundles.c.next_hop, *_order)
Index("ix_dtn_bundles_expiry", bundles.c.expiry_dtn_ms, bundles.c.seq)
_partial("ix_dtn_bundles_whole_key", bundles.c.whole_key.is_not(None), bundles.c.whole_key)

#: version -> function migrating a database at that version to version + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}
