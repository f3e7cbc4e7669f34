"""The conformance suite against every store: memory, SQLite on a real file, PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dtn.storage.base import BundleStore
from dtn.storage.memory import MemoryBundleStore
from tests.storage.conformance import CHECKS, StoreFactory, check_bundle_store
from tests.storage.conftest import BACKENDS


@pytest.mark.parametrize("make_store", BACKENDS, indirect=True)
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_conformance(make_store: StoreFactory, check: Callable[[StoreFactory], None]) -> None:
    check(make_store)


def test_check_bundle_store_runs_all_checks_on_memory() -> None:
    check_bundle_store(lambda **kw: MemoryBundleStore(quota_bytes=kw.get("quota_bytes")))


def test_stores_satisfy_the_protocol(tmp_path: object) -> None:
    assert isinstance(MemoryBundleStore(), BundleStore)
