"""The store's SQL statements, written in SQLAlchemy Core and compiled once per dialect.

The hot path (add, read, delete) runs these compiled strings on the driver's cursor: SQLAlchemy decides the SQL
and its dialect, and a call costs what the driver costs. ``Prepared.params`` turns named values into what the
driver's paramstyle wants (qmark tuple for sqlite3, pyformat dict for psycopg).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import BigInteger, Dialect, bindparam, delete, func, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from dtn.storage.base import Constraint
from dtn.storage.schema import bundles, has_flag, is_held

#: Columns that make a ``BundleMeta``, in the order ``meta_from_row`` reads them.
META_COLUMNS = (
    bundles.c.bundle_key,
    bundles.c.destination,
    bundles.c.next_hop,
    bundles.c.expiry_dtn_ms,
    bundles.c.size_bytes,
    bundles.c.priority,
    bundles.c.constraints,
)

#: Stands for "no limit" in the listing queries' LIMIT.
NO_LIMIT = 2**62

INSERT_COLUMNS = [c.name for c in bundles.c if c.name != "seq"]


class Prepared:
    """One statement compiled for one dialect."""

    __slots__ = ("sql", "names", "defaults", "_pick")

    def __init__(self, stmt: ClauseElement, dialect: Dialect, column_keys: list[str] | None = None) -> None:
        compiled = cast(SQLCompiler, stmt.compile(dialect=dialect, column_keys=column_keys))
        self.sql = compiled.string
        self.names: tuple[str, ...] | None = tuple(compiled.positiontup or ()) if compiled.positional else None
        self.defaults: dict[str, Any] = dict(compiled.params)
        names = self.names or ()
        # The values in statement order when the caller gave every name (the hot path): one C call.
        self._pick: Callable[[Mapping[str, Any]], Any] | None = itemgetter(*names) if len(names) > 1 else None

    def params(self, given: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        names = self.names
        if names is None:
            return {**self.defaults, **given} if self.defaults else given
        if self._pick is not None:
            try:
                return self._pick(given)  # type: ignore[no-any-return]
            except KeyError:
                pass
        defaults = self.defaults
        return tuple(given[n] if n in given else defaults[n] for n in names)


class Statements:
    """Every statement the store runs after opening, for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        key = bundles.c.bundle_key == bindparam("k")
        order = (bundles.c.priority.desc(), bundles.c.seq)
        limit = bindparam("lim", type_=BigInteger)
        insert = sqlite.insert if dialect.name == "sqlite" else postgresql.insert
        self.insert = Prepared(
            insert(bundles).inline().on_conflict_do_nothing(index_elements=[bundles.c.bundle_key]),
            dialect,
            INSERT_COLUMNS,
        )
        self.known = self._p(select(bundles.c.seq).where(key))
        self.meta = self._p(select(*META_COLUMNS).where(key, is_held()))
        self.payload = self._p(select(bundles.c.payload, bundles.c.payload_file).where(key, is_held()))
        self.set_constraints = self._p(update(bundles).where(key, is_held()).values(constraints=bindparam("new_c")))
        # a held bundle becomes a tombstone in one statement, which says what it freed (size, file); the file's
        # name is cleared by a second one, only for a bundle kept in a file (RETURNING gives the new values)
        self.tombstone = self._p(
            update(bundles)
            .where(key, is_held())
            .values(constraints=literal_column("0"), payload=None, next_hop=None)
            .returning(bundles.c.size_bytes, bundles.c.payload_file)
        )
        self.forget_file = self._p(update(bundles).where(key).values(payload_file=None))
        self.set_next_hop = self._p(update(bundles).where(key, is_held()).values(next_hop=bindparam("hop")))
        self.by_destination = self._p(
            select(*META_COLUMNS)
            .where(bundles.c.destination == bindparam("dest"), is_held())
            .order_by(*order)
            .limit(limit)
        )
        self.by_next_hop = self._p(
            select(*META_COLUMNS)
            .where(bundles.c.next_hop.is_not(None), bundles.c.next_hop == bindparam("hop"), is_held())
            .order_by(*order)
            .limit(limit)
        )
        self.expiring_before = self._p(
            select(*META_COLUMNS)
            .where(bundles.c.expiry_dtn_ms < bindparam("t"), is_held())
            .order_by(bundles.c.expiry_dtn_ms, bundles.c.seq)
            .limit(limit)
        )
        self.fragments = self._p(
            select(*META_COLUMNS).where(
                bundles.c.whole_key.is_not(None), bundles.c.whole_key == bindparam("whole"), is_held()
            )
        )
        self.purge_tombstones = self._p(
            delete(bundles).where(
                bundles.c.constraints == literal_column("0"), bundles.c.expiry_dtn_ms < bindparam("t")
            )
        )
        self.totals = self._p(select(func.count(), func.coalesce(func.sum(bundles.c.size_bytes), 0)).where(is_held()))
        self._by_flags: dict[int, Prepared] = {}

    def _p(self, stmt: ClauseElement) -> Prepared:
        return Prepared(stmt, self._dialect)

    def with_constraint(self, mask: Constraint) -> Prepared | None:
        """The listing of bundles having any flag of ``mask`` (None when the mask is empty)."""
        prepared = self._by_flags.get(int(mask))
        if prepared is None:
            flags = [flag for flag in Constraint if flag and flag & mask]
            if not flags:
                return None
            cond = has_flag(flags[0]) if len(flags) == 1 else or_(*(has_flag(f) for f in flags))
            stmt = (
                select(*META_COLUMNS)
                .where(cond)
                .order_by(bundles.c.priority.desc(), bundles.c.seq)
                .limit(bindparam("lim", type_=BigInteger))
            )
            prepared = self._by_flags[int(mask)] = self._p(stmt)
        return prepared
