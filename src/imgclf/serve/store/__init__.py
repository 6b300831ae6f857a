"""The feedback store: predictions, the human review queue, feedback, and the images they name.

    store = open_store("runs/demo/feedback")              # SQLite + image files (embedded)
    store = open_store("postgresql://user:pw@host/db")    # PostgreSQL (several servers)

    p = store.record_prediction(image_bytes, model_version="demo@1", topk=[...], unsure=True)
    store.next_for_review(10); store.decide(p.id, "cat", reviewer="ann")   # or decide(p.id, SKIP, ...)
    store.add_feedback("dog", prediction_id=p.id, who="bob", note="it's a dog")
    store.counts()                                          # totals for /metrics
    export_feedback(store, "feedback-export/")              # a manifest `imgclf train` reads
"""

from __future__ import annotations

import os

from .base import SKIP, Store
from .export import ExportSummary, export_feedback
from .records import (
    LABELLED,
    QUEUED,
    SKIPPED,
    SOURCE_REVIEW,
    SOURCE_USER,
    Feedback,
    NewPrediction,
    Prediction,
    ReviewItem,
    StoreCounts,
)

POSTGRES_SCHEMES = ("postgresql://", "postgres://")

__all__ = [
    "open_store", "is_postgres_url", "export_feedback", "ExportSummary", "Store", "SKIP",
    "NewPrediction", "Prediction", "ReviewItem", "Feedback", "StoreCounts",
    "QUEUED", "LABELLED", "SKIPPED", "SOURCE_USER", "SOURCE_REVIEW",
]  # fmt: skip


def is_postgres_url(spec: str | os.PathLike) -> bool:
    return str(spec).startswith(POSTGRES_SCHEMES)


def open_store(spec: str | os.PathLike, *, max_connections: int = 8) -> Store:
    """A ``postgresql://`` URL opens a PostgreSQL store (``max_connections`` per process); anything
    else is a folder for an SQLite store, created if missing. The schema is created on first open."""
    if is_postgres_url(spec):
        from .postgres import PostgresStore

        return PostgresStore(str(spec), max_connections=max_connections)
    from .sqlite import SQLiteStore

    return SQLiteStore(spec)
