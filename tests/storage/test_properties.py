"""Random sequences of add / set_constraints / delete / next hop / expire / commit / reopen give the same answers
on the memory reference and on the SQL stores (hypothesis stateful testing)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dtn.bundle.ids import BundleId
from dtn.errors import StoreFull
from dtn.storage.base import ANY_CONSTRAINT, BundleMeta, BundleStore, Constraint
from dtn.storage.memory import MemoryBundleStore
from dtn.storage.sql import SqlBundleStore, open_store
from tests.storage.conformance import payload
from tests.storage.conftest import create_schema, drop_schemas, pg_base_url

QUOTA = 40_000
LARGE = 3_000

bundle_ids = st.builds(
    BundleId,
    source=st.sampled_from(["ipn:1.1", "dtn://a/b"]),
    creation_ms=st.sampled_from([0, 7]),
    sequence=st.integers(0, 3),
    fragment_offset=st.none(),
    payload_length=st.none(),
) | st.builds(
    BundleId,
    source=st.just("ipn:1.1"),
    creation_ms=st.just(7),
    sequence=st.integers(0, 1),
    fragment_offset=st.sampled_from([0, 10, 20]),
    payload_length=st.just(30),
)
constraints = st.integers(0, int(ANY_CONSTRAINT)).map(Constraint)
nonempty_constraints = st.integers(1, int(ANY_CONSTRAINT)).map(Constraint)
eids = st.sampled_from(["ipn:2.1", "ipn:3.1", "dtn://c/"])
times = st.integers(0, 12)
metas = st.builds(
    BundleMeta,
    id=bundle_ids,
    destination=eids,
    expiry_dtn_ms=times,
    size_bytes=st.sampled_from([0, 10, 500, 4_000, 9_000]),
    constraints=nonempty_constraints,
    priority=st.integers(0, 2),
    next_hop=st.none() | eids,
)


def outcome(store: BundleStore, meta: BundleMeta, streamed: bool) -> object:
    data = payload(meta.id, meta.size_bytes)
    try:
        if streamed:
            return store.add_stream(meta, (data[i : i + 1000] for i in range(0, len(data), 1000)))
        return store.add(meta, data)
    except StoreFull:
        return "full"


class SameAnswers(RuleBasedStateMachine):
    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="dtn-prop-"))
        self.schema: str | None = None
        if self.backend == "sqlite":
            self.url = f"sqlite:///{self.dir / 'store.db'}"
        else:
            self.url, self.schema = create_schema(pg_base_url())
        self.ref = MemoryBundleStore(quota_bytes=QUOTA)
        self.sql = self._open()
        self.known: list[BundleId] = []

    def _open(self) -> SqlBundleStore:
        return open_store(self.url, quota_bytes=QUOTA, large_payload_bytes=LARGE, payload_dir=self.dir / "payloads")

    def teardown(self) -> None:
        self.sql.close()
        if self.schema:
            drop_schemas(pg_base_url(), [self.schema])
        shutil.rmtree(self.dir, ignore_errors=True)

    def _some_id(self, data: st.DataObject) -> BundleId:
        if self.known and data.draw(st.booleans()):
            return data.draw(st.sampled_from(self.known))
        return data.draw(bundle_ids)

    @rule(meta=metas, streamed=st.booleans())
    def add(self, meta: BundleMeta, streamed: bool) -> None:
        self.known.append(meta.id)
        assert outcome(self.ref, meta, streamed) == outcome(self.sql, meta, streamed)

    @rule(data=st.data(), new=constraints)
    def set_constraints(self, data: st.DataObject, new: Constraint) -> None:
        bundle_id = self._some_id(data)
        assert self.ref.set_constraints(bundle_id, new) == self.sql.set_constraints(bundle_id, new)

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        bundle_id = self._some_id(data)
        assert self.ref.delete(bundle_id) == self.sql.delete(bundle_id)

    @rule(data=st.data(), hop=st.none() | eids)
    def set_next_hop(self, data: st.DataObject, hop: str | None) -> None:
        bundle_id = self._some_id(data)
        assert self.ref.set_next_hop(bundle_id, hop) == self.sql.set_next_hop(bundle_id, hop)

    @rule(now=times)
    def expire(self, now: int) -> None:
        """What the agent does at a timer: delete what expired, forget tombstones that expired."""
        expired = self.ref.expiring_before(now)
        assert expired == self.sql.expiring_before(now)
        for meta in expired:
            assert self.ref.delete(meta.id) and self.sql.delete(meta.id)
        assert self.ref.purge_tombstones(now) == self.sql.purge_tombstones(now)

    @rule()
    def commit(self) -> None:
        self.ref.commit()
        self.sql.commit()

    @rule()
    def commit_and_reopen(self) -> None:
        self.sql.commit()
        self.sql.close()
        self.sql = self._open()
        assert self.sql.recovery.clean, str(self.sql.recovery)

    @invariant()
    def same_contents(self) -> None:
        assert len(self.ref) == len(self.sql)
        assert self.ref.bytes_used == self.sql.bytes_used
        assert self.ref.with_constraint(ANY_CONSTRAINT) == self.sql.with_constraint(ANY_CONSTRAINT)

    @rule(mask=constraints, limit=st.none() | st.integers(0, 3))
    def same_by_constraint(self, mask: Constraint, limit: int | None) -> None:
        assert self.ref.with_constraint(mask, limit) == self.sql.with_constraint(mask, limit)

    @rule(eid=eids)
    def same_by_destination_and_hop(self, eid: str) -> None:
        assert self.ref.by_destination(eid) == self.sql.by_destination(eid)
        assert self.ref.by_next_hop(eid) == self.sql.by_next_hop(eid)

    @rule(data=st.data())
    def same_by_id(self, data: st.DataObject) -> None:
        bundle_id = self._some_id(data)
        assert self.ref.is_known(bundle_id) == self.sql.is_known(bundle_id)
        assert self.ref.get(bundle_id) == self.sql.get(bundle_id)
        assert self.ref.fragments_of(bundle_id) == self.sql.fragments_of(bundle_id)
        if bundle_id in self.ref:
            assert self.ref.raw(bundle_id) == self.sql.raw(bundle_id)

    @precondition(lambda self: self.known)
    @rule(now=times)
    def same_expiring(self, now: int) -> None:
        assert self.ref.expiring_before(now, limit=2) == self.sql.expiring_before(now, limit=2)


_settings = settings(
    max_examples=int(os.environ.get("DTN_PROPERTY_EXAMPLES", "40")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestSameAnswersSqlite = SameAnswers.TestCase
TestSameAnswersSqlite.settings = _settings


class SameAnswersPostgres(SameAnswers):
    backend = "postgresql"


def test_same_answers_postgresql() -> None:
    pg_base_url()  # skips (or fails under CI) without a server
    run = SameAnswersPostgres.TestCase("runTest")
    run.settings = settings(_settings, max_examples=15)
    run.runTest()
