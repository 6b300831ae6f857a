"""The store's tables, written once for SQLite and PostgreSQL (only a few column types differ).

``schema_version`` holds one row; a store written by a newer imgclf is refused rather than
misread. A later version adds its migration steps to :data:`MIGRATIONS`.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

_TYPES = {
    # PostgreSQL's REAL is 4 bytes: times would lose their milliseconds, so it gets DOUBLE PRECISION.
    "sqlite": {"real": "REAL", "blob": "BLOB"},
    "postgresql": {"real": "DOUBLE PRECISION", "blob": "BYTEA"},
}

_TABLES = [
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS predictions (
        id TEXT PRIMARY KEY,
        created {real} NOT NULL,
        model_version TEXT NOT NULL,
        image_sha256 TEXT NOT NULL,
        image_kept INTEGER NOT NULL,
        topk TEXT NOT NULL,
        confidence {real} NOT NULL,
        unsure INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS review_queue (
        prediction_id TEXT PRIMARY KEY REFERENCES predictions (id),
        state TEXT NOT NULL CHECK (state IN ('queued', 'labelled', 'skipped')),
        queued {real} NOT NULL,
        decided {real},
        reviewer TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS review_queue_by_state ON review_queue (state, queued)",
    """CREATE TABLE IF NOT EXISTS feedback (
        id TEXT PRIMARY KEY,
        created {real} NOT NULL,
        label TEXT NOT NULL,
        who TEXT NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('user', 'review')),
        image_sha256 TEXT NOT NULL,
        note TEXT,
        prediction_id TEXT REFERENCES predictions (id),
        predicted_label TEXT,
        predicted_probability {real},
        model_version TEXT,
        topk TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS feedback_by_time ON feedback (created)",
]

# Images live in the database only for PostgreSQL, so that several servers share them.
_POSTGRES_ONLY = [
    """CREATE TABLE IF NOT EXISTS images (
        sha256 TEXT PRIMARY KEY,
        data {blob} NOT NULL,
        created {real} NOT NULL
    )""",
]

MIGRATIONS: dict[int, list[str]] = {}  # version -> statements that bring version-1 up to it


def create_statements(dialect: str) -> list[str]:
    tables = _TABLES + (_POSTGRES_ONLY if dialect == "postgresql" else [])
    return [sql.format(**_TYPES[dialect]) for sql in tables]
