"""A PostgreSQL database for study tests: the server at IMGCLF_TEST_POSTGRES_URL (.ci/run starts
one and sets it), in a new schema per test (dropped after); skipped, saying why, when the
variable is unset or the server unreachable."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from imgclf.tune.storage import storage_url

POSTGRES_ENV = "IMGCLF_TEST_POSTGRES_URL"


@pytest.fixture
def postgres_storage():
    """A study storage URL whose tables go to a fresh schema."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (.ci/run starts PostgreSQL and sets it)")
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_ENV} is unreachable: {str(exc).strip().splitlines()[-1]}")
    schema = f"imgclf_tune_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield storage_url(f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}", Path("."))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
