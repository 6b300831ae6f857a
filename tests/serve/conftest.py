"""Feedback stores for the tests: SQLite in a tmp folder, and PostgreSQL in a schema of its own.

PostgreSQL tests use the server at IMGCLF_TEST_POSTGRES_URL (.ci/run starts one and sets it) and
skip, saying why, when it is unset or unreachable. Each test gets a fresh schema, dropped after.
"""

from __future__ import annotations

import os
import uuid

import pytest

POSTGRES_ENV = "IMGCLF_TEST_POSTGRES_URL"


def _postgres_or_skip() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (.ci/run starts PostgreSQL and sets it)")
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed (it is in the `all` extra)")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_ENV} is unreachable: {str(exc).strip().splitlines()[-1]}")
    return url


@pytest.fixture
def postgres_url():
    """A URL whose search_path is a new, empty schema (dropped after the test)."""
    import psycopg

    url = _postgres_or_skip()
    schema = f"imgclf_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_spec(request, tmp_path):
    """Where a store lives, once for each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "store")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_spec):
    from imgclf.serve.store import open_store

    with open_store(store_spec) as s:
        yield s
