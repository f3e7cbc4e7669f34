"""Store factories for the storage tests: memory, SQLite on a real file, and a real PostgreSQL server.

PostgreSQL comes from DTN_TEST_PG_URL (scripts/test.sh starts a throwaway server). Without it the PostgreSQL
tests skip, except under CI (env CI set), where they fail: CI must run them. Each test gets its own schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from dtn.storage.base import BundleStore
from dtn.storage.memory import MemoryBundleStore
from dtn.storage.sql import open_store

StoreFactory = Callable[..., BundleStore]

BACKENDS = ["memory", "sqlite", "postgresql"]
SQL_BACKENDS = ["sqlite", "postgresql"]


def pg_base_url() -> str:
    url = os.environ.get("DTN_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI is set but DTN_TEST_PG_URL is not: the PostgreSQL store tests must run in CI")
        pytest.skip('DTN_TEST_PG_URL is not set (start a server: eval "$(bash scripts/pg-tmp.sh start)")')
    return url


def create_schema(base: str) -> tuple[str, str]:
    """Create a fresh schema; returns (URL whose search_path is it, its name)."""
    name = "t_" + uuid.uuid4().hex[:12]
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {name}"))
    engine.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{name}", name


def drop_schemas(base: str, names: list[str]) -> None:
    engine = create_engine(base)
    with engine.begin() as conn:
        for name in names:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
    engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped after the test."""
    base = pg_base_url()
    url, name = create_schema(base)
    yield url
    drop_schemas(base, [name])


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh SQL store of the backend named by the test's parameter."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory of fresh stores of the backend named by the test's parameter; closes them afterwards."""
    backend: str = request.param
    opened: list[BundleStore] = []
    schemas: list[str] = []
    base = pg_base_url() if backend == "postgresql" else ""

    def make(**kwargs: Any) -> BundleStore:
        n = len(opened)
        if backend == "memory":
            store: BundleStore = MemoryBundleStore(quota_bytes=kwargs.get("quota_bytes"))
        elif backend == "sqlite":
            store = open_store(f"sqlite:///{tmp_path / f'store{n}.db'}", **kwargs)
        else:
            url, name = create_schema(base)
            schemas.append(name)
            kwargs.setdefault("payload_dir", tmp_path / f"pg-payloads{n}")
            store = open_store(url, **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    if schemas:
        drop_schemas(base, schemas)
